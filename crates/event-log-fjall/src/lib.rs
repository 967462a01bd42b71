//! The embedded event log on [fjall](https://docs.rs/fjall) 3: a journal plus LSM-tree
//! keyspaces in `data_dir/fjall/`. It implements the backend-neutral [`EventLog`] contract of
//! `tributary-event-log` with the same semantics as the redb backend (shared dedup keys for
//! events and dead letters, tombstoned keys that outlive retention for the dedup horizon, the
//! raw archive, redrive, durable consumers, retention by age and size).
//!
//! Why fjall: a commit is one sequential append to the journal plus one `fdatasync`, whatever
//! the log's size, where a copy-on-write B-tree rewrites a path of pages per commit. The LSM
//! trees are written in the background (memtable flushes, compaction).
//!
//! - **Commits** (`commit.rs`): group commit without a writer thread; the caller that finds no
//!   commit in progress commits itself. Each batch is one atomic [`fjall::OwnedWriteBatch`]
//!   written to the journal without waiting for the disk; a failed one stores nothing and
//!   fails every operation in it, and the next commit reopens the database (fjall refuses
//!   writes after an I/O error) and retries from what is stored.
//! - **Durability** (`sync.rs`): one thread `fdatasync`s the journal for everything written
//!   since its last round, then publishes those commits to readers and answers their callers,
//!   in commit order. Nothing is visible or acknowledged before it is durable.
//! - **Keyspaces** (`store.rs`): dedup, retired keys, dead letters, resolved index, archive
//!   (key-value separated), archive index and keys, consumers, meta. Events are stored
//!   LZ4-compressed (`event_value.rs`), other tables are compressed by fjall.
//! - **Segments** (`segments.rs`): events, their time index and their dedup keys live in
//!   per-segment keyspaces, so retention drops whole keyspaces and costs O(segments removed).
//! - **Opening** (`state.rs`) reads counters and segment records from `meta`: recovery replays
//!   the journal's tail only and does not grow with the log.

mod archive;
mod commit;
mod event_value;
mod keys;
mod retention;
mod segments;
mod staged;
mod state;
mod store;
mod sync;
mod tx;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::watch;
use tributary_event_log::{
    AppendOutcome, AppendRequest, EventLog, LogError, PendingEvent, RedriveOutcome, Reseal,
    ResealOutcome, Retention, StoredEvent, rules,
};
use tributary_model::v1::{ArchiveEntry, Consumer, DeadLetter, Event, Filter};
use tributary_model::well_known::Timestamp;

use segments::Segment;
use state::State;
use store::{DEAD_LETTER_TAG, RETIRED, Store, storage};
use tributary_event_log::recent::Recent;
use tx::Tx;
use writer::{Op, Reply};

use crate::commit::Answer;
use crate::sync::{Publication, Synced, Syncer};

// What the log was doing, named in its storage errors.
const COMMITTING: &str = "committing";
const READING_EVENTS: &str = "reading events";
const READING_TIMES: &str = "reading the time index";
const READING_DEAD_LETTERS: &str = "reading dead letters";
const READING_CONSUMERS: &str = "reading consumers";
const READING_DEDUP: &str = "reading dedup keys";

/// Default [`FjallConfig::segment_events`]: about 1 GiB of events at 1 KB each; a segment is
/// the unit retention removes whole.
pub const DEFAULT_SEGMENT_EVENTS: u64 = 1 << 20;

/// How long a reopen after a storage fault waits for readers to let go of the old database.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the fjall log.
#[derive(Debug, Clone)]
pub struct FjallConfig {
    /// Directory holding the `fjall` database directory.
    pub data_dir: PathBuf,
    /// fdatasync every commit (the default). Off only for benchmarks: a crash may lose recent
    /// acknowledged webhooks.
    pub durable: bool,
    /// Most operations folded into one commit.
    pub max_batch: usize,
    /// Sequences per segment (at least 1) for a new log. A log keeps the value it was created
    /// with (segment numbers derive from it); a different one here is ignored with a warning.
    pub segment_events: u64,
    /// What history is kept; a pass runs every `retention.interval` on a thread of its own.
    pub retention: Retention,
}

impl FjallConfig {
    /// Durable defaults for `data_dir`, keeping everything.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durable: true,
            max_batch: 1024,
            segment_events: DEFAULT_SEGMENT_EVENTS,
            retention: Retention::default(),
        }
    }
}

/// The fjall event log. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct FjallLog {
    inner: Arc<Inner>,
}

/// What readers see: the open database and the live segments as of the last commit.
pub(crate) struct View {
    store: Arc<Store>,
    segments: Vec<Segment>,
}

/// The writer's side: the open database (absent after a fault until reopened) and state.
pub(crate) struct Writer {
    store: Option<Arc<Store>>,
    state: State,
    faulted: bool,
}

/// What readers see and the log's health: shared with the syncer thread, which publishes
/// durable commits into it without keeping the log itself alive.
pub(crate) struct Shared {
    view: RwLock<Option<Arc<View>>>,
    recent: RwLock<Recent>,
    last_tx: watch::Sender<u64>,
    health: Mutex<Result<(), String>>,
    /// A journal sync failed: every commit until the database is reopened fails too.
    sync_failed: AtomicBool,
    /// Counts reopens of the database, so the syncer opens the journal again.
    generation: AtomicU64,
}

pub(crate) struct Inner {
    config: FjallConfig,
    queue: Mutex<commit::Queue>,
    writer: Mutex<Writer>,
    shared: Arc<Shared>,
    last_rx: watch::Receiver<u64>,
    /// Durable commits waiting for the journal's `fdatasync` (see `sync.rs`).
    syncer: Arc<Syncer>,
    sync_thread: Mutex<Option<JoinHandle<()>>>,
    /// The highest segment whose keyspaces exist ahead of its first event.
    prepared: AtomicU64,
    prepare_thread: Mutex<Option<JoinHandle<()>>>,
    /// Dropped with the log: ends the retention thread.
    _stop_retention: Mutex<std::sync::mpsc::Sender<()>>,
}

impl Drop for Inner {
    /// Lets the threads that hold the database go first, so that the database is closed
    /// (and may be opened again) once the last handle is dropped.
    fn drop(&mut self) {
        self.syncer.stop();
        for thread in [&self.sync_thread, &self.prepare_thread] {
            let handle = thread.lock().ok().and_then(|mut handle| handle.take());
            if let Some(handle) = handle
                && handle.thread().id() != std::thread::current().id()
            {
                let _ = handle.join();
            }
        }
    }
}

impl FjallLog {
    /// Opens (or creates) the log in `config.data_dir/fjall` and starts its retention thread.
    /// Reads counters and segment records only; fjall replays the journal tail.
    pub fn open(config: FjallConfig) -> Result<Self, LogError> {
        let mut config = config;
        config.segment_events = config.segment_events.max(1);
        let dir = store::database_dir(&config.data_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| LogError::storage(format!("cannot create {}", dir.display()), e))?;
        let store = Arc::new(Store::open(&dir)?);
        config.segment_events = store.segment_events(config.segment_events)?;
        let state = State::load(&store, config.segment_events)?;
        let last = state.counters.last_sequence;
        let active = segments::number_of(last + 1, config.segment_events);
        segments::prepare(&store.db, active)?;
        let view = View {
            store: Arc::clone(&store),
            segments: state.segments.values().cloned().collect(),
        };
        let recent = Recent::new();
        let (last_tx, last_rx) = watch::channel(last);
        let (stop, stopped) = std::sync::mpsc::channel();
        let interval = config.retention.interval.max(Duration::from_millis(10));
        let inner = Arc::new(Inner {
            config,
            queue: Mutex::new(commit::Queue::default()),
            writer: Mutex::new(Writer {
                store: Some(store),
                state,
                faulted: false,
            }),
            shared: Arc::new(Shared {
                view: RwLock::new(Some(Arc::new(view))),
                recent: RwLock::new(recent),
                last_tx,
                health: Mutex::new(Ok(())),
                sync_failed: AtomicBool::new(false),
                generation: AtomicU64::new(0),
            }),
            last_rx,
            syncer: Arc::new(Syncer::default()),
            sync_thread: Mutex::new(None),
            prepared: AtomicU64::new(active),
            prepare_thread: Mutex::new(None),
            _stop_retention: Mutex::new(stop),
        });
        if inner.config.durable {
            let thread = sync::spawn(Arc::clone(&inner.shared), Arc::clone(&inner.syncer), dir)?;
            if let Ok(mut slot) = inner.sync_thread.lock() {
                *slot = Some(thread);
            }
        }
        spawn_retention(Arc::downgrade(&inner), interval, stopped)?;
        Ok(Self { inner })
    }

    /// The names of the database's keyspaces (segments appear as `events.<n>`, `times.<n>`
    /// and `keys.<n>`, `n` in hex): for diagnostics and tests of retention.
    pub fn keyspace_names(&self) -> Result<Vec<String>, LogError> {
        let view = self.view()?;
        let mut names: Vec<String> = view
            .store
            .db
            .list_keyspace_names()
            .iter()
            .map(|name| name.to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    fn view(&self) -> Result<Arc<View>, LogError> {
        self.inner
            .shared
            .view
            .read()
            .ok()
            .and_then(|view| view.clone())
            .ok_or_else(|| LogError::unavailable("event log is recovering from a storage fault"))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&View) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let view = self.view()?;
        tokio::task::spawn_blocking(move || f(&view))
            .await
            .map_err(|e| LogError::storage("reader task failed", e))?
    }

    fn last(&self) -> u64 {
        *self.inner.last_rx.borrow()
    }
}

fn spawn_retention(
    inner: Weak<Inner>,
    interval: Duration,
    stopped: std::sync::mpsc::Receiver<()>,
) -> Result<(), LogError> {
    std::thread::Builder::new()
        .name("event-log-retention".into())
        .spawn(move || {
            // Always: besides the configured limits, each pass prunes dedup keys past the
            // horizon (perhaps retired under an earlier configuration).
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(interval)
            {
                let Some(inner) = inner.upgrade() else { return };
                if let Err(error) = inner.run_retention() {
                    tracing::warn!(%error, "retention pass failed");
                }
            }
        })
        .map_err(|e| LogError::storage("cannot start the retention thread", e))?;
    Ok(())
}

pub(crate) fn set_health(health: &Mutex<Result<(), String>>, status: Result<(), String>) {
    if let Ok(mut h) = health.lock() {
        *h = status;
    }
}

impl Writer {
    /// The open database; after a fault, closes it (once readers let go) and opens it again,
    /// reloading the state from what is stored.
    fn ensure_open(&mut self, inner: &Inner) -> Result<Arc<Store>, LogError> {
        if !self.faulted
            && let Some(store) = &self.store
        {
            return Ok(Arc::clone(store));
        }
        // Commits written before the fault are answered first (they fail if their sync
        // does); none is queued meanwhile, as this thread holds the writer.
        inner.syncer.wait_idle();
        if let Ok(mut view) = inner.shared.view.write() {
            *view = None;
        }
        self.state.segments.clear();
        self.state.keys.clear();
        if let Some(old) = self.store.take() {
            let weak = Arc::downgrade(&old);
            drop(old);
            let started = Instant::now();
            while weak.strong_count() > 0 {
                if started.elapsed() > DRAIN_TIMEOUT {
                    return Err(LogError::unavailable(
                        "cannot reopen the event log: readers still hold it",
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let dir = store::database_dir(&inner.config.data_dir);
        let store = Arc::new(Store::open(&dir)?);
        self.state = State::load(&store, inner.config.segment_events)?;
        self.store = Some(Arc::clone(&store));
        self.faulted = false;
        inner.shared.generation.fetch_add(1, Ordering::AcqRel);
        inner.shared.sync_failed.store(false, Ordering::Release);
        inner.publish(&store, &self.state);
        if let Ok(mut recent) = inner.shared.recent.write() {
            *recent = Recent::new();
        }
        tracing::info!(dir = %dir.display(), "event log reopened");
        Ok(store)
    }
}

impl Inner {
    /// Makes the state readers see the committed one (durable: the syncer is idle).
    fn publish(&self, store: &Arc<Store>, state: &State) {
        self.shared
            .publish_segments(store, state.segments.values().cloned().collect());
    }

    /// The writer. After a panic while it was held (its state may not match what is
    /// stored), the next user reopens the database and reloads the state.
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|poisoned| {
            let mut writer = poisoned.into_inner();
            writer.faulted = true;
            writer
        })
    }

    /// Applies a batch of operations and writes them to the journal as one write batch.
    /// On success `answer` turns the replies (one per operation: an invalid one gets its own
    /// error and wrote nothing) into answers, sent once the batch is durable; on failure
    /// nothing is stored, and the log is unhealthy until a commit succeeds.
    fn commit(
        &self,
        ops: &mut [Op],
        answer: impl FnOnce(Vec<Result<Reply, LogError>>) -> Vec<Answer>,
    ) -> Result<(), LogError> {
        let mut writer = self.lock_writer();
        if self.shared.sync_failed.load(Ordering::Acquire) {
            writer.faulted = true;
        }
        let result = self.commit_locked(&mut writer, ops);
        let (replies, publication) = match result {
            Ok(written) => written,
            Err(error) => {
                tracing::error!(%error, operations = ops.len(), "event log commit failed");
                writer.faulted = true;
                set_health(&self.shared.health, Err(error.detail()));
                return Err(error);
            }
        };
        if writer.faulted {
            tracing::info!("event log writes again");
        }
        set_health(&self.shared.health, Ok(()));
        let answers = answer(replies);
        if self.config.durable {
            // Queued with the writer held: the syncer publishes in commit order.
            self.syncer.push(Synced {
                publication,
                answers,
            });
        } else {
            self.shared.publish_commit(publication);
            drop(writer);
            for answer in answers {
                answer.send();
            }
        }
        Ok(())
    }

    /// Once the log is half-way through a segment, creates the next one's keyspaces on a
    /// thread of its own (see [`segments::prepare`]).
    fn prepare_ahead(&self, store: &Arc<Store>, last_sequence: u64) {
        let segment_events = self.config.segment_events;
        let next = segments::number_of(last_sequence + 1 + segment_events / 2, segment_events);
        if self.prepared.fetch_max(next, Ordering::AcqRel) >= next {
            return;
        }
        let store = Arc::clone(store);
        let spawned = std::thread::Builder::new()
            .name("event-log-segment".into())
            .spawn(move || {
                if let Err(error) = segments::prepare(&store.db, next) {
                    tracing::warn!(%error, segment = next, "cannot create a segment ahead");
                }
            });
        match spawned {
            Ok(thread) => {
                let previous = self
                    .prepare_thread
                    .lock()
                    .ok()
                    .and_then(|mut slot| slot.replace(thread));
                // Half a segment ago: long finished.
                if let Some(previous) = previous {
                    let _ = previous.join();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start a thread to create a segment ahead");
            }
        }
    }

    fn commit_locked(
        &self,
        writer: &mut Writer,
        ops: &mut [Op],
    ) -> Result<(Vec<Result<Reply, LogError>>, Publication), LogError> {
        let store = writer.ensure_open(self)?;
        let mut tx = Tx::new(&store, &writer.state, self.config.segment_events);
        let mut replies = Vec::with_capacity(ops.len());
        for op in ops.iter_mut() {
            replies.push(tx.apply(op)?);
        }
        let before = writer.state.counters;
        let (batch, finished) = tx.finish(&before)?;
        // Durable: into the page cache now (the syncer's `fdatasync` covers it).
        let mode = self.config.durable.then_some(fjall::PersistMode::Buffer);
        batch
            .durability(mode)
            .commit()
            .map_err(storage(COMMITTING))?;
        writer.state.counters = finished.next;
        writer.state.segments = finished.segments;
        writer.state.keys = finished.keys;
        self.prepare_ahead(&store, writer.state.counters.last_sequence);
        let publication = Publication {
            store,
            segments: writer.state.segments.values().cloned().collect(),
            last_sequence: writer.state.counters.last_sequence,
            fresh: finished.fresh,
        };
        Ok((replies, publication))
    }

    /// One retention pass: stages removals, commits them, then deletes the keyspaces of
    /// dropped segments (a crash before that leaves them to the next open, which deletes
    /// keyspaces no record names).
    fn run_retention(&self) -> Result<(), LogError> {
        let mut writer = self.lock_writer();
        let result = self.retention_locked(&mut writer);
        match &result {
            Ok(()) => set_health(&self.shared.health, Ok(())),
            Err(error) => {
                writer.faulted = true;
                set_health(&self.shared.health, Err(error.detail()));
            }
        }
        result
    }

    fn retention_locked(&self, writer: &mut Writer) -> Result<(), LogError> {
        // Commits still waiting for their sync publish first: this pass publishes the
        // writer's state itself, after its own synced commit.
        self.syncer.wait_idle();
        let store = writer.ensure_open(self)?;
        let mut tx = Tx::new(&store, &writer.state, self.config.segment_events);
        let pass = retention::apply(&mut tx, &self.config.retention)?;
        let before = writer.state.counters;
        let (batch, finished) = tx.finish(&before)?;
        let mode = self.config.durable.then_some(fjall::PersistMode::SyncData);
        batch
            .durability(mode)
            .commit()
            .map_err(storage("committing retention"))?;
        writer.state.counters = finished.next;
        writer.state.segments = finished.segments;
        writer.state.keys = finished.keys;
        for number in &pass.dropped_keys {
            writer.state.keys.remove(number);
        }
        // The batch is durable: a keyspace that fails to go now is an orphan the next open
        // deletes, so its failure is logged, not returned. Deleted before readers see the
        // new state, so a reader that sees the new first sequence sees the keyspaces gone.
        let names = pass
            .dropped
            .iter()
            .flat_map(|&n| [segments::events_name(n), segments::times_name(n)])
            .chain(pass.dropped_keys.iter().map(|&n| segments::keys_name(n)));
        for name in names {
            if let Err(error) = segments::delete(&store.db, &name) {
                tracing::warn!(%error, keyspace = name, "cannot delete a segment keyspace");
            }
        }
        if let Some(through) = pass.removed_through
            && let Ok(mut recent) = self.shared.recent.write()
        {
            recent.remove_through(through);
        }
        self.publish(&store, &writer.state);
        Ok(())
    }
}

fn unexpected(reply: Reply) -> LogError {
    LogError::unavailable(format!("commit answered {reply:?} to the wrong request"))
}

/// Up to `max` stored events after `after`, across segments.
fn read_stored(view: &View, after: u64, max: usize) -> Result<Vec<StoredEvent>, LogError> {
    let mut events = Vec::new();
    for segment in &view.segments {
        if events.len() >= max {
            break;
        }
        if segment.meta.last <= after {
            continue;
        }
        let from = after.saturating_add(1).max(segment.meta.first);
        // Bounded by the published record: later events may be written but not yet durable.
        for item in segment
            .events
            .range(keys::u64_key(from)..=keys::u64_key(segment.meta.last))
            .take(max - events.len())
        {
            let (key, value) = item.into_inner().map_err(storage(READING_EVENTS))?;
            let sequence = keys::read_u64(&key).unwrap_or(0);
            let encoded = event_value::unpack(&value)
                .map_err(|e| LogError::storage(format!("reading event {sequence}"), e))?;
            // A decompressed event is moved, not copied.
            let event =
                StoredEvent::decode(Bytes::from(encoded.into_owned())).map_err(|source| {
                    LogError::Corrupt {
                        key: sequence,
                        source,
                    }
                })?;
            events.push(event);
        }
    }
    Ok(events)
}

/// The sequence before the first event stored at or after log millisecond `millis`, if any
/// stored event is that recent. The time entry of a millisecond whose first events retention
/// removed may name a removed sequence: the segment's first stored one is the answer then.
fn sequence_before(view: &View, millis: u64) -> Result<Option<u64>, LogError> {
    let Some(segment) = view.segments.iter().find(|s| s.meta.newest_ms >= millis) else {
        return Ok(None);
    };
    let found = segment
        .times
        .range(keys::u64_key(millis)..)
        .next()
        .map(|item| item.into_inner().map_err(storage(READING_TIMES)))
        .transpose()?
        .and_then(|(_, first)| keys::read_u64(&first));
    Ok(Some(
        found
            .map_or(segment.meta.last + 1, |first| first.max(segment.meta.first))
            .saturating_sub(1),
    ))
}

impl FjallLog {
    /// [`EventLog::append`] for a caller already on a blocking thread (one that may wait for
    /// an fsync): it leads the group commit, or waits for the one it joined; no async hop.
    pub fn append_blocking(&self, request: AppendRequest) -> Result<AppendOutcome, LogError> {
        rules::validate_append(&request)?;
        match self.inner.submit_blocking(Op::Append(Box::new(request)))? {
            Reply::Appended(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }
}

#[async_trait]
impl EventLog for FjallLog {
    /// Commits on the calling task's thread when no commit is in progress: a write into the
    /// journal, never a wait for the disk, so the async worker is not blocked and not handed
    /// off. Callers arriving meanwhile await without blocking and are committed together by
    /// the next leader. The answer comes once the syncer has made the commit durable.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, LogError> {
        rules::validate_append(&request)?;
        match self.inner.submit(Op::Append(Box::new(request))).await? {
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
        let recent = self
            .inner
            .shared
            .recent
            .read()
            .ok()
            .and_then(|r| r.after(after, max));
        if let Some(events) = recent {
            return Ok(events);
        }
        self.blocking(move |view| read_stored(view, after, max))
            .await
    }

    async fn sequence_before_time(&self, time: Timestamp) -> Result<u64, LogError> {
        let millis = rules::unix_millis(&time);
        let last = self.last();
        let found = self
            .blocking(move |view| sequence_before(view, millis))
            .await?;
        // Nothing at or after `time`: start after the newest event.
        Ok(found.unwrap_or(last))
    }

    async fn first_sequence(&self) -> Result<u64, LogError> {
        let last = self.last();
        let view = self.view()?;
        Ok(view
            .segments
            .first()
            .map_or(last + 1, |segment| segment.meta.first))
    }

    async fn dead_letters(&self, after: u64, max: usize) -> Result<Vec<DeadLetter>, LogError> {
        self.blocking(move |view| {
            let mut out = Vec::new();
            let from = keys::u64_key(after.saturating_add(1));
            for item in view.store.dead_letters.range(from..).take(max) {
                let (key, value) = item.into_inner().map_err(storage(READING_DEAD_LETTERS))?;
                out.push(DeadLetter::decode(value.as_ref()).map_err(|source| {
                    LogError::Corrupt {
                        key: keys::read_u64(&key).unwrap_or(0),
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
        let op = Op::Redrive {
            id,
            events,
            still_failing,
        };
        match self.inner.submit(op).await? {
            Reply::Redriven(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
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
        match self.inner.submit(op).await? {
            Reply::Consumer(consumer) => Ok(consumer),
            other => Err(unexpected(other)),
        }
    }

    async fn ack(&self, name: &str, sequence: u64) -> Result<Consumer, LogError> {
        let op = Op::Ack {
            name: name.to_owned(),
            sequence,
        };
        match self.inner.submit(op).await? {
            Reply::Consumer(consumer) => Ok(consumer),
            other => Err(unexpected(other)),
        }
    }

    async fn reset_consumer(&self, name: &str, after: u64) -> Result<Consumer, LogError> {
        let op = Op::ResetConsumer {
            name: name.to_owned(),
            after,
        };
        match self.inner.submit(op).await? {
            Reply::Consumer(consumer) => Ok(consumer),
            other => Err(unexpected(other)),
        }
    }

    async fn delete_consumer(&self, name: &str) -> Result<bool, LogError> {
        let op = Op::DeleteConsumer {
            name: name.to_owned(),
        };
        match self.inner.submit(op).await? {
            Reply::Deleted(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }

    async fn consumers(&self) -> Result<Vec<Consumer>, LogError> {
        let last = self.last();
        self.blocking(move |view| {
            let mut out = Vec::new();
            for item in view.store.consumers.iter() {
                let (name, value) = item.into_inner().map_err(storage(READING_CONSUMERS))?;
                let name = String::from_utf8_lossy(&name);
                let mut consumer = rules::decode_consumer(&name, &value)?;
                rules::set_lag(&mut consumer, last);
                out.push(consumer);
            }
            Ok(out)
        })
        .await
    }

    fn last_sequence(&self) -> watch::Receiver<u64> {
        self.inner.last_rx.clone()
    }

    async fn archive_entry(&self, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
        self.blocking(move |view| archive::get(&view.store, id))
            .await
    }

    async fn archive_entries(&self, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError> {
        self.blocking(move |view| archive::list(&view.store, after, max))
            .await
    }

    async fn reseal_archive_entry(&self, reseal: Reseal) -> Result<ResealOutcome, LogError> {
        rules::validate_reseal(&reseal)?;
        match self.inner.submit(Op::Reseal(Box::new(reseal))).await? {
            Reply::Resealed(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn reseal_dead_letter(&self, reseal: Reseal) -> Result<ResealOutcome, LogError> {
        rules::validate_reseal(&reseal)?;
        match self
            .inner
            .submit(Op::ResealDeadLetter(Box::new(reseal)))
            .await?
        {
            Reply::Resealed(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn sequence_of(
        &self,
        source: &str,
        provider_event_id: &str,
    ) -> Result<Option<u64>, LogError> {
        let key = keys::dedup_key(source, provider_event_id);
        self.blocking(move |view| {
            let owner = view
                .store
                .dedup
                .get(&key)
                .map_err(storage(READING_DEDUP))?
                .and_then(|value| keys::read_u64(&value));
            let first = view.segments.first().map_or(u64::MAX, |s| s.meta.first);
            // A removed event's key keeps its sequence (retired until the horizon).
            Ok(owner.filter(|&owner| {
                owner != RETIRED && owner & DEAD_LETTER_TAG == 0 && owner >= first
            }))
        })
        .await
    }

    fn health(&self) -> Result<(), String> {
        self.inner
            .shared
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| Err("health lock poisoned".into()))
    }
}
