//! The embedded event log: one redb file, written by a single writer thread that
//! group-commits concurrent operations, so one fsync covers many webhooks. It implements the
//! backend-neutral [`EventLog`] contract of `tributary-event-log`.
//!
//! Why redb: pure Rust (no C toolchain), a single ACID file with copy-on-write B-trees and
//! checksummed commits, so a crash (even `kill -9` or power loss) leaves the last committed
//! state and nothing half-written. Readers use MVCC snapshots and never block the writer.

mod archive;
mod block;
mod cursor;
mod handle;
mod queue;
mod retention;
mod tables;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use prost::Message;
use prost::bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};
use tributary_event_log::{
    AppendOutcome, AppendRequest, EventLog, LogError, PendingEvent, RedriveOutcome, Reseal,
    ResealOutcome, Retention, StoredEvent, rules,
};
use tributary_model::v1::{ArchiveEntry, Consumer, DeadLetter, Event, Filter};
use tributary_model::well_known::Timestamp;

use handle::DbHandle;
use queue::{Op, Reply};
use tributary_event_log::recent::Recent;

// What the log was doing, named in its storage errors.
const CREATING: &str = "creating the tables";
const READING_EVENTS: &str = "reading events";
const READING_TIMES: &str = "reading the time index";
const READING_FIRST: &str = "reading the first event";
const READING_DEAD_LETTERS: &str = "reading dead letters";
const READING_CONSUMERS: &str = "reading consumers";

/// sequence -> encoded `Event` (with its sequence set).
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (source, provider event id) -> sequence, or dead-letter id with [`DEAD_LETTER_TAG`], or
/// [`RETIRED`] once retention removed the item (the key outlives it, see [`DEDUP_RETIRED`]).
pub(crate) const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
/// (unix ms of the removal, source, provider event id) of every [`RETIRED`] dedup key, oldest
/// first, so retention prunes the keys older than the dedup horizon without a scan.
pub(crate) const DEDUP_RETIRED: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("dedup_retired");
/// (unix ms of `resolved_at`, dead-letter id) of every resolved dead letter, oldest first, for
/// dead-letter retention by age.
pub(crate) const RESOLVED: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("resolved_dead_letters");
/// dead-letter id -> encoded `DeadLetter`.
pub(crate) const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
/// log time (unix ms, non-decreasing) -> first sequence appended in that millisecond.
pub(crate) const TIME_INDEX: TableDefinition<u64, u64> = TableDefinition::new("time_index");
/// first raw-archive id of a commit -> its entries (`block::ArchiveBlock`; values written
/// before blocks: one encoded `ArchiveEntry`).
pub(crate) const ARCHIVE: TableDefinition<u64, &[u8]> = TableDefinition::new("archive");
/// (source, content key) -> raw-archive id of the entries whose webhook stored no event or
/// dead letter (a retry of the others finds its entry through them).
pub(crate) const ARCHIVE_KEYS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("archive_keys");
/// durable consumer name -> encoded `Consumer` (lag not stored).
pub(crate) const CONSUMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("consumers");
/// counters: "event_bytes" (stored event bytes, for size retention), "last_sequence" and
/// "last_dead_letter" (the highest ever assigned, which outlive their items), and
/// "resolved_index" (1 once [`RESOLVED`] covers every stored dead letter).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Marks a dedup entry that points at a dead letter rather than an event.
pub(crate) const DEAD_LETTER_TAG: u64 = 1 << 63;
/// A dedup entry whose item retention removed: still a duplicate until the horizon passes.
pub(crate) const RETIRED: u64 = u64::MAX;

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Directory holding `events.redb`.
    pub data_dir: PathBuf,
    /// fsync every commit (the default). Off only for benchmarks: a crash may lose recent
    /// acknowledged webhooks.
    pub durable: bool,
    /// Most operations folded into one commit.
    pub max_batch: usize,
    pub retention: Retention,
}

impl EmbeddedConfig {
    /// Durable defaults for `data_dir`, keeping everything.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durable: true,
            max_batch: 1024,
            retention: Retention {
                interval: Duration::from_secs(30),
                ..Retention::default()
            },
        }
    }
}

/// The embedded event log. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    db: Arc<DbHandle>,
    recent: Arc<RwLock<Recent>>,
    ops: mpsc::Sender<queue::Job>,
    last_sequence: watch::Receiver<u64>,
    health: Arc<Mutex<Result<(), String>>>,
}

/// Wraps a redb error as a storage failure while doing `context`.
pub(crate) fn storage<E>(context: &'static str) -> impl Fn(E) -> LogError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| LogError::storage(context, source)
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `config.data_dir` and starts its writer thread.
    pub fn open(config: EmbeddedConfig) -> Result<Self, LogError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            LogError::storage(format!("cannot create {}", config.data_dir.display()), e)
        })?;
        let path = config.data_dir.join("events.redb");
        let db = Arc::new(DbHandle::open(path)?);
        let last = init_tables(&*db.get()?)?;
        let (last_tx, last_rx) = watch::channel(last);
        let health = Arc::new(Mutex::new(Ok(())));
        let (ops, jobs) = mpsc::channel(4096);
        let interval = config.retention.interval;
        let recent = Arc::new(RwLock::new(Recent::new()));
        writer::spawn(
            Arc::clone(&db),
            config,
            jobs,
            last_tx,
            Arc::clone(&health),
            Arc::clone(&recent),
        )?;
        // Always: besides the configured limits, each pass prunes dedup keys past the horizon
        // (perhaps retired under an earlier configuration).
        retention::schedule(&ops, interval);
        Ok(Self {
            db,
            recent,
            ops,
            last_sequence: last_rx,
            health,
        })
    }

    async fn submit(&self, op: Op) -> Result<Reply, LogError> {
        let (reply, outcome) = oneshot::channel();
        self.ops
            .send(queue::Job { op, reply })
            .await
            .map_err(|_| LogError::Closed)?;
        outcome.await.map_err(|_| LogError::Closed)?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let db = self.db.get()?;
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| LogError::storage("reader task failed", e))?
    }
}

/// Creates missing tables and returns the last stored sequence.
fn init_tables(db: &Database) -> Result<u64, LogError> {
    let txn = db.begin_write().map_err(storage(CREATING))?;
    {
        txn.open_table(EVENTS).map_err(storage(CREATING))?;
        txn.open_table(DEDUP).map_err(storage(CREATING))?;
        txn.open_table(DEAD_LETTERS).map_err(storage(CREATING))?;
        txn.open_table(TIME_INDEX).map_err(storage(CREATING))?;
        txn.open_table(CONSUMERS).map_err(storage(CREATING))?;
        txn.open_table(META).map_err(storage(CREATING))?;
        txn.open_table(DEDUP_RETIRED).map_err(storage(CREATING))?;
        txn.open_table(RESOLVED).map_err(storage(CREATING))?;
        txn.open_table(ARCHIVE).map_err(storage(CREATING))?;
        txn.open_table(ARCHIVE_KEYS).map_err(storage(CREATING))?;
        index_resolved_dead_letters(&txn)?;
    }
    txn.commit().map_err(storage(CREATING))?;
    let read = db.begin_read().map_err(storage(CREATING))?;
    let events = read.open_table(EVENTS).map_err(storage(CREATING))?;
    let last = events
        .last()
        .map_err(storage(CREATING))?
        .map(|(k, _)| k.value());
    Ok(last.unwrap_or(0))
}

/// Fills [`RESOLVED`] from the stored dead letters once: files written before the index
/// existed have resolved letters it does not list.
fn index_resolved_dead_letters(txn: &redb::WriteTransaction) -> Result<(), LogError> {
    const INDEXING: &str = "indexing resolved dead letters";
    let mut meta = txn.open_table(META).map_err(storage(INDEXING))?;
    if meta
        .get("resolved_index")
        .map_err(storage(INDEXING))?
        .is_some()
    {
        return Ok(());
    }
    let dead = txn.open_table(DEAD_LETTERS).map_err(storage(INDEXING))?;
    let mut resolved = txn.open_table(RESOLVED).map_err(storage(INDEXING))?;
    let mut indexed = 0u64;
    for entry in dead.iter().map_err(storage(INDEXING))? {
        let (id, value) = entry.map_err(storage(INDEXING))?;
        // An undecodable letter is reported when read; it is only left out of the index.
        if let Ok(letter) = DeadLetter::decode(value.value())
            && let Some(at) = &letter.resolved_at
        {
            resolved
                .insert((rules::unix_millis(at), id.value()), ())
                .map_err(storage(INDEXING))?;
            indexed += 1;
        }
    }
    meta.insert("resolved_index", 1)
        .map_err(storage(INDEXING))?;
    if indexed > 0 {
        tracing::info!(indexed, "indexed resolved dead letters for retention");
    }
    Ok(())
}

fn unexpected(reply: Reply) -> LogError {
    LogError::unavailable(format!("writer answered {reply:?} to the wrong request"))
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, LogError> {
        rules::validate_append(&request)?;
        match self.submit(Op::Append(Box::new(request))).await? {
            Reply::Appended(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<Event>, LogError> {
        let stored = self.read_stored_after(after, max).await?;
        stored
            .iter()
            .map(|event| {
                event.event().map_err(|source| LogError::Corrupt {
                    key: event.sequence(),
                    source,
                })
            })
            .collect()
    }

    async fn read_stored_after(
        &self,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let recent = self.recent.read().ok().and_then(|r| r.after(after, max));
        if let Some(events) = recent {
            return Ok(events);
        }
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage(READING_EVENTS))?;
            let table = txn.open_table(EVENTS).map_err(storage(READING_EVENTS))?;
            let mut events = Vec::new();
            for entry in table
                .range(after.saturating_add(1)..)
                .map_err(storage(READING_EVENTS))?
                .take(max)
            {
                let (key, value) = entry.map_err(storage(READING_EVENTS))?;
                let event = StoredEvent::decode(Bytes::copy_from_slice(value.value())).map_err(
                    |source| LogError::Corrupt {
                        key: key.value(),
                        source,
                    },
                )?;
                events.push(event);
            }
            Ok(events)
        })
        .await
    }

    async fn sequence_before_time(&self, time: Timestamp) -> Result<u64, LogError> {
        let millis = rules::unix_millis(&time);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage(READING_TIMES))?;
            let index = txn.open_table(TIME_INDEX).map_err(storage(READING_TIMES))?;
            if let Some(entry) = index
                .range(millis..)
                .map_err(storage(READING_TIMES))?
                .next()
            {
                let (_, first) = entry.map_err(storage(READING_TIMES))?;
                return Ok(first.value().saturating_sub(1));
            }
            // Nothing at or after `time`: start after the newest event.
            let events = txn.open_table(EVENTS).map_err(storage(READING_TIMES))?;
            Ok(events
                .last()
                .map_err(storage(READING_TIMES))?
                .map(|(k, _)| k.value())
                .unwrap_or(0))
        })
        .await
    }

    async fn first_sequence(&self) -> Result<u64, LogError> {
        let last = *self.last_sequence.borrow();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage(READING_FIRST))?;
            let events = txn.open_table(EVENTS).map_err(storage(READING_FIRST))?;
            let first = events
                .first()
                .map_err(storage(READING_FIRST))?
                .map(|(k, _)| k.value());
            Ok(first.unwrap_or(last + 1))
        })
        .await
    }

    async fn dead_letters(&self, after: u64, max: usize) -> Result<Vec<DeadLetter>, LogError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage(READING_DEAD_LETTERS))?;
            let table = txn
                .open_table(DEAD_LETTERS)
                .map_err(storage(READING_DEAD_LETTERS))?;
            let mut out = Vec::new();
            for entry in table
                .range(after.saturating_add(1)..)
                .map_err(storage(READING_DEAD_LETTERS))?
                .take(max)
            {
                let (key, value) = entry.map_err(storage(READING_DEAD_LETTERS))?;
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

    async fn redrive(
        &self,
        id: u64,
        events: Vec<PendingEvent>,
        still_failing: Option<String>,
    ) -> Result<RedriveOutcome, LogError> {
        match self
            .submit(Op::Redrive {
                id,
                events,
                still_failing,
            })
            .await?
        {
            Reply::Redriven(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn archive_entry(&self, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
        self.blocking(move |db| archive::get(db, id)).await
    }

    async fn archive_entries(&self, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError> {
        self.blocking(move |db| archive::list(db, after, max)).await
    }

    async fn reseal_archive_entry(&self, reseal: Reseal) -> Result<ResealOutcome, LogError> {
        tributary_event_log::rules::validate_reseal(&reseal)?;
        match self.submit(Op::Reseal(Box::new(reseal))).await? {
            Reply::Resealed(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn reseal_dead_letter(&self, reseal: Reseal) -> Result<ResealOutcome, LogError> {
        tributary_event_log::rules::validate_reseal(&reseal)?;
        match self.submit(Op::ResealDeadLetter(Box::new(reseal))).await? {
            Reply::Resealed(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn sequence_of(
        &self,
        source: &str,
        provider_event_id: &str,
    ) -> Result<Option<u64>, LogError> {
        let (source, id) = (source.to_owned(), provider_event_id.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage(READING_EVENTS))?;
            let dedup = txn.open_table(DEDUP).map_err(storage(READING_EVENTS))?;
            let owner = dedup
                .get((source.as_str(), id.as_str()))
                .map_err(storage(READING_EVENTS))?
                .map(|v| v.value());
            Ok(owner.filter(|owner| *owner != RETIRED && owner & DEAD_LETTER_TAG == 0))
        })
        .await
    }

    async fn open_consumer(
        &self,
        name: &str,
        start_after: u64,
        filter: &Filter,
    ) -> Result<Consumer, LogError> {
        rules::check_consumer_name(name)?;
        let op = Op::OpenConsumer {
            name: name.to_owned(),
            after: start_after,
            filter: filter.clone(),
        };
        match self.submit(op).await? {
            Reply::Consumer(consumer) => Ok(consumer),
            other => Err(unexpected(other)),
        }
    }

    async fn ack(&self, name: &str, sequence: u64) -> Result<Consumer, LogError> {
        let op = Op::Ack {
            name: name.to_owned(),
            sequence,
        };
        match self.submit(op).await? {
            Reply::Consumer(consumer) => Ok(consumer),
            other => Err(unexpected(other)),
        }
    }

    async fn reset_consumer(&self, name: &str, after: u64) -> Result<Consumer, LogError> {
        let op = Op::ResetConsumer {
            name: name.to_owned(),
            after,
        };
        match self.submit(op).await? {
            Reply::Consumer(consumer) => Ok(consumer),
            other => Err(unexpected(other)),
        }
    }

    async fn delete_consumer(&self, name: &str) -> Result<bool, LogError> {
        match self
            .submit(Op::DeleteConsumer {
                name: name.to_owned(),
            })
            .await?
        {
            Reply::Deleted(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    async fn consumers(&self) -> Result<Vec<Consumer>, LogError> {
        let last = *self.last_sequence.borrow();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage(READING_CONSUMERS))?;
            let table = txn
                .open_table(CONSUMERS)
                .map_err(storage(READING_CONSUMERS))?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(storage(READING_CONSUMERS))? {
                let (name, value) = entry.map_err(storage(READING_CONSUMERS))?;
                let mut consumer = rules::decode_consumer(name.value(), value.value())?;
                rules::set_lag(&mut consumer, last);
                out.push(consumer);
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
