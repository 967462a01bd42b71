//! The audit log: who did what to which target, from where, and how it ended, for every
//! admin action (consumer reset and delete, redrive, reload, replay, raw reads) and every
//! console login, logout and failed login.
//!
//! Stored as an append-only file of JSON lines, `data_dir/audit.jsonl` (0600), each entry
//! written and `fdatasync`ed before the action's answer, so it survives restarts and kill -9
//! whichever event log backs the service (embedded or NATS: the file is each instance's own).
//! A line torn by a crash is skipped when read, and the next entry starts on a line of its
//! own. No API edits or deletes entries; only retention (`[audit] max_age_days`) drops the
//! oldest, by rewriting the file to a temporary one and renaming it over.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tributary_model::v1::AuditEntry;

/// The audit file's name in the data directory.
pub const FILE: &str = "audit.jsonl";
/// Entries one listing returns at most.
pub const MAX_PAGE: usize = 1_000;

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One line of the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Line {
    id: u64,
    time_ms: u64,
    credential: String,
    client: String,
    action: String,
    target: String,
    outcome: String,
}

/// What an action records (the id and time are the log's).
#[derive(Debug, Clone)]
pub struct Record {
    /// The credential's name (empty for the anonymous administrator or a failed login).
    pub credential: String,
    /// The caller's address, when known.
    pub client: Option<IpAddr>,
    /// What was done (`consumer.reset`, `console.login`...).
    pub action: &'static str,
    /// What it was done to.
    pub target: String,
    /// `ok`, or the error code's label.
    pub outcome: String,
}

struct Writer {
    file: File,
    next_id: u64,
}

/// The audit log of one instance. Cheap to share (`Arc`).
pub struct AuditLog {
    path: PathBuf,
    max_age: Option<Duration>,
    writer: Mutex<Writer>,
}

impl AuditLog {
    /// Opens (or creates, 0600) `dir/audit.jsonl`, applies retention, and continues the ids
    /// after the last entry. `max_age`: entries older are dropped (`None` keeps them all).
    pub fn open(dir: &Path, max_age: Option<Duration>) -> Result<Arc<Self>, AuditError> {
        let path = dir.join(FILE);
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let lines = read_lines(&path).map_err(io)?;
        let next_id = lines.last().map_or(1, |line| line.id + 1);
        let file = open_append(&path).map_err(io)?;
        let log = Arc::new(AuditLog {
            path: path.clone(),
            max_age,
            writer: Mutex::new(Writer { file, next_id }),
        });
        log.prune()?;
        Ok(log)
    }

    /// Appends `record` and syncs it to disk before returning. Blocking: call from a blocking
    /// thread, or through [`Self::record`].
    pub fn record_blocking(&self, record: Record) -> Result<u64, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let line = Line {
            id: writer.next_id,
            time_ms: now_ms(),
            credential: record.credential,
            client: record.client.map(|ip| ip.to_string()).unwrap_or_default(),
            action: record.action.to_owned(),
            target: record.target,
            outcome: record.outcome,
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        writer.file.write_all(text.as_bytes()).map_err(io)?;
        writer.file.sync_data().map_err(io)?;
        writer.next_id += 1;
        Ok(line.id)
    }

    /// [`Self::record_blocking`] on the blocking pool.
    pub async fn record(self: &Arc<Self>, record: Record) -> Result<u64, AuditError> {
        let log = Arc::clone(self);
        match tokio::task::spawn_blocking(move || log.record_blocking(record)).await {
            Ok(result) => result,
            Err(join) => Err(AuditError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }

    /// Records `record`, logging (never answering) a failure: for actions already done.
    pub async fn record_or_log(self: &Arc<Self>, record: Record) {
        if let Err(error) = self.record(record).await {
            tracing::error!(%error, "audit entry not written");
        }
    }

    /// Up to `limit` entries with an id above `after_id`, oldest first.
    pub async fn list(
        self: &Arc<Self>,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let limit = limit.clamp(1, MAX_PAGE);
        Ok(self
            .read()
            .await?
            .into_iter()
            .filter(|line| line.id > after_id)
            .take(limit)
            .map(entry)
            .collect())
    }

    /// Up to `limit` entries with an id below `before_id`, newest first (the console's pages).
    pub async fn newest(
        self: &Arc<Self>,
        before_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let limit = limit.clamp(1, MAX_PAGE);
        Ok(self
            .read()
            .await?
            .into_iter()
            .rev()
            .filter(|line| line.id < before_id)
            .take(limit)
            .map(entry)
            .collect())
    }

    /// Every whole entry, read on the blocking pool.
    async fn read(self: &Arc<Self>) -> Result<Vec<Line>, AuditError> {
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Under the writer's lock: never a half-written last line.
            let _writer = log.writer.lock().unwrap_or_else(|p| p.into_inner());
            read_lines(&log.path)
        })
        .await
        .map_err(|join| std::io::Error::other(join.to_string()))
        .and_then(|result| result)
        .map_err(|source| AuditError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Drops entries older than the retention: the kept ones are written to a temporary
    /// file, synced, and renamed over the log (atomic), then appending continues there.
    pub fn prune(&self) -> Result<usize, AuditError> {
        let Some(max_age) = self.max_age else {
            return Ok(0);
        };
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let cutoff =
            now_ms().saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX));
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let lines = read_lines(&self.path).map_err(io)?;
        let kept: Vec<&Line> = lines.iter().filter(|line| line.time_ms >= cutoff).collect();
        let dropped = lines.len() - kept.len();
        if dropped == 0 {
            return Ok(0);
        }
        let temporary = self.path.with_extension("jsonl.tmp");
        let mut text = String::new();
        for line in kept {
            text.push_str(&serde_json::to_string(line).unwrap_or_default());
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|dir| dir.sync_all()).map_err(io)?;
        }
        writer.file = open_append(&self.path).map_err(io)?;
        Ok(dropped)
    }

    /// Prunes once a day until `shutdown`.
    pub async fn retention_task(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let log = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || log.prune()).await {
                Ok(Ok(dropped)) if dropped > 0 => {
                    tracing::info!(dropped, "audit log retention");
                }
                Ok(Err(error)) => tracing::error!(%error, "audit log retention failed"),
                _ => {}
            }
        }
    }
}

/// The outcome label of a gRPC answer: `ok`, or the code in snake case.
pub fn outcome_of_status(status: Option<&tonic::Status>) -> String {
    let Some(status) = status else {
        return "ok".to_owned();
    };
    let mut label = String::new();
    for (n, c) in format!("{:?}", status.code()).chars().enumerate() {
        if c.is_ascii_uppercase() {
            if n > 0 {
                label.push('_');
            }
            label.push(c.to_ascii_lowercase());
        } else {
            label.push(c);
        }
    }
    label
}

fn entry(line: Line) -> AuditEntry {
    AuditEntry {
        id: line.id,
        time: Some(tributary_event_log::rules::timestamp_from_millis(
            line.time_ms,
        )),
        credential: line.credential,
        client_address: line.client,
        action: line.action,
        target: line.target,
        outcome: line.outcome,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Opens for appending (creating it 0600); a last line torn by a crash is ended first, so the
/// next entry starts a line of its own.
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let length = file.metadata()?.len();
    if length > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(length - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
    }
    Ok(file)
}

/// Every whole entry of the file (none if it does not exist); torn or foreign lines skipped.
fn read_lines(path: &Path) -> std::io::Result<Vec<Line>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut lines = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        if let Ok(line) = serde_json::from_slice::<Line>(&line?) {
            lines.push(line);
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record(action: &'static str, target: &str) -> Record {
        Record {
            credential: "ops".into(),
            client: Some("192.0.2.1".parse().expect("ip")),
            action,
            target: target.into(),
            outcome: "ok".into(),
        }
    }

    #[test]
    fn entries_survive_reopening_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("dir");
        let log = AuditLog::open(dir.path(), None).expect("open");
        assert_eq!(
            log.record_blocking(record("consumer.reset", "a"))
                .expect("1"),
            1
        );
        assert_eq!(
            log.record_blocking(record("consumer.delete", "b"))
                .expect("2"),
            2
        );
        drop(log);
        let path = dir.path().join(FILE);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A crash in the middle of a write leaves a torn line.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open")
            .write_all(br#"{"id":3,"time_ms":1,"cred"#)
            .expect("write");
        let log = AuditLog::open(dir.path(), None).expect("reopen");
        assert_eq!(
            log.record_blocking(record("replay", "arcadia")).expect("3"),
            3
        );
        let lines = read_lines(&path).expect("read");
        let actions: Vec<(u64, &str)> = lines.iter().map(|l| (l.id, l.action.as_str())).collect();
        assert_eq!(
            actions,
            [(1, "consumer.reset"), (2, "consumer.delete"), (3, "replay")]
        );
        assert_eq!(lines[0].client, "192.0.2.1");
    }

    #[test]
    fn retention_drops_only_old_entries() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(FILE);
        let old = Line {
            id: 1,
            time_ms: 1_000,
            credential: "ops".into(),
            client: String::new(),
            action: "console.login".into(),
            target: String::new(),
            outcome: "ok".into(),
        };
        std::fs::write(
            &path,
            format!("{}\n", serde_json::to_string(&old).expect("json")),
        )
        .expect("write");
        let log = AuditLog::open(dir.path(), Some(Duration::from_secs(3600))).expect("open");
        assert!(
            read_lines(&path).expect("read").is_empty(),
            "the old entry is gone"
        );
        assert_eq!(log.record_blocking(record("raw.read", "1")).expect("id"), 2);
        assert_eq!(read_lines(&path).expect("read").len(), 1);
    }

    #[test]
    fn outcomes_are_snake_case_codes() {
        assert_eq!(outcome_of_status(None), "ok");
        let denied = tonic::Status::permission_denied("no");
        assert_eq!(outcome_of_status(Some(&denied)), "permission_denied");
    }
}

/// Who made a call: the credential's name and the client address, taken from a gRPC request
/// before it is consumed.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The credential's name (empty when unknown or anonymous).
    pub credential: String,
    /// The TCP peer's address.
    pub client: Option<IpAddr>,
}

impl Caller {
    /// The caller of `request` (its principal, as the interceptor left it, and its peer).
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        Caller {
            credential: crate::auth::Principal::of(request)
                .map(|principal| principal.name.clone())
                .unwrap_or_default(),
            client: request.remote_addr().map(|address| address.ip()),
        }
    }

    /// This caller's record of `action` on `target` that ended with `result`.
    pub fn record<T>(
        &self,
        action: &'static str,
        target: impl Into<String>,
        result: &Result<T, tonic::Status>,
    ) -> Record {
        Record {
            credential: self.credential.clone(),
            client: self.client,
            action,
            target: target.into(),
            outcome: outcome_of_status(result.as_ref().err()),
        }
    }
}
