//! The embedded backend: one redb file, written by a single writer thread that group-commits
//! concurrent appends, so one fsync covers many webhooks.
//!
//! Why redb: pure Rust (no C toolchain), a single ACID file with copy-on-write B-trees and
//! checksummed commits, so a crash (even `kill -9` or power loss) leaves the last committed
//! state and nothing half-written. Readers use MVCC snapshots and never block the writer.

mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};
use tributary_model::v1::{DeadLetter, Event};
use tributary_model::well_known::Timestamp;

use crate::{AppendOutcome, AppendRequest, EventLog, LogError};

/// sequence -> encoded `Event` (with its sequence set).
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (source, provider event id) -> sequence, or dead-letter id with [`DEAD_LETTER_TAG`].
pub(crate) const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
/// dead-letter id -> encoded `DeadLetter`.
pub(crate) const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
/// log time (unix ms, non-decreasing) -> first sequence appended in that millisecond.
pub(crate) const TIME_INDEX: TableDefinition<u64, u64> = TableDefinition::new("time_index");

/// Marks a dedup entry that points at a dead letter rather than an event.
pub(crate) const DEAD_LETTER_TAG: u64 = 1 << 63;

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Directory holding `events.redb`.
    pub data_dir: PathBuf,
    /// fsync every commit (the default). Off only for benchmarks: a crash may lose recent
    /// acknowledged webhooks.
    pub durable: bool,
    /// Most appends folded into one commit.
    pub max_batch: usize,
}

impl EmbeddedConfig {
    /// Durable defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durable: true,
            max_batch: 1024,
        }
    }
}

/// The embedded event log. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    db: Arc<Database>,
    appends: mpsc::Sender<writer::Job>,
    last_sequence: watch::Receiver<u64>,
    health: Arc<Mutex<Result<(), String>>>,
}

fn storage(e: impl std::fmt::Display) -> LogError {
    LogError::Storage(e.to_string())
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `config.data_dir` and starts its writer thread.
    pub fn open(config: EmbeddedConfig) -> Result<Self, LogError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            LogError::Storage(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let path = config.data_dir.join("events.redb");
        let db = Database::create(&path)
            .map_err(|e| LogError::Storage(format!("cannot open {}: {e}", path.display())))?;
        let db = Arc::new(db);
        let last = init_tables(&db)?;
        let (last_tx, last_rx) = watch::channel(last);
        let health = Arc::new(Mutex::new(Ok(())));
        let (appends, jobs) = mpsc::channel(4096);
        writer::spawn(Arc::clone(&db), config, jobs, last_tx, Arc::clone(&health))?;
        Ok(Self {
            db,
            appends,
            last_sequence: last_rx,
            health,
        })
    }

    /// Path of the database file in `data_dir`.
    pub fn file_in(data_dir: &Path) -> PathBuf {
        data_dir.join("events.redb")
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| LogError::Storage(format!("reader task failed: {e}")))?
    }
}

/// Creates missing tables and returns the last stored sequence.
fn init_tables(db: &Database) -> Result<u64, LogError> {
    let txn = db.begin_write().map_err(storage)?;
    {
        txn.open_table(EVENTS).map_err(storage)?;
        txn.open_table(DEDUP).map_err(storage)?;
        txn.open_table(DEAD_LETTERS).map_err(storage)?;
        txn.open_table(TIME_INDEX).map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    let read = db.begin_read().map_err(storage)?;
    let events = read.open_table(EVENTS).map_err(storage)?;
    let last = events.last().map_err(storage)?.map(|(k, _)| k.value());
    Ok(last.unwrap_or(0))
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, LogError> {
        if request.source.is_empty() {
            return Err(LogError::Invalid("empty source".into()));
        }
        let (reply, outcome) = oneshot::channel();
        self.appends
            .send(writer::Job { request, reply })
            .await
            .map_err(|_| LogError::Closed)?;
        outcome.await.map_err(|_| LogError::Closed)?
    }

    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<Event>, LogError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let table = txn.open_table(EVENTS).map_err(storage)?;
            let mut events = Vec::new();
            for entry in table
                .range(after.saturating_add(1)..)
                .map_err(storage)?
                .take(max)
            {
                let (key, value) = entry.map_err(storage)?;
                let event = Event::decode(value.value()).map_err(|source| LogError::Corrupt {
                    key: key.value(),
                    source,
                })?;
                events.push(event);
            }
            Ok(events)
        })
        .await
    }

    async fn sequence_before_time(&self, time: Timestamp) -> Result<u64, LogError> {
        let millis =
            u64::try_from(time.seconds.saturating_mul(1000) + i64::from(time.nanos / 1_000_000))
                .unwrap_or(0);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let index = txn.open_table(TIME_INDEX).map_err(storage)?;
            if let Some(entry) = index.range(millis..).map_err(storage)?.next() {
                let (_, first) = entry.map_err(storage)?;
                return Ok(first.value().saturating_sub(1));
            }
            // Nothing at or after `time`: start after the newest event.
            let events = txn.open_table(EVENTS).map_err(storage)?;
            Ok(events
                .last()
                .map_err(storage)?
                .map(|(k, _)| k.value())
                .unwrap_or(0))
        })
        .await
    }

    async fn dead_letters(&self, after: u64, max: usize) -> Result<Vec<DeadLetter>, LogError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let table = txn.open_table(DEAD_LETTERS).map_err(storage)?;
            let mut out = Vec::new();
            for entry in table
                .range(after.saturating_add(1)..)
                .map_err(storage)?
                .take(max)
            {
                let (key, value) = entry.map_err(storage)?;
                out.push(DeadLetter::decode(value.value()).map_err(|source| {
                    LogError::Corrupt {
                        key: key.value(),
                        source,
                    }
                })?);
            }
            Ok(out)
        })
        .await
    }

    fn last_sequence(&self) -> watch::Receiver<u64> {
        self.last_sequence.clone()
    }

    fn health(&self) -> Result<(), String> {
        self.health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| Err("health lock poisoned".into()))
    }
}
