//! The event log contract: where canonical events become durable, ordered and deduplicated.
//!
//! [`EventLog`] is the one interface the service uses. This crate holds only the contract, so
//! a backend depends on nothing of another: `tributary-event-log-redb` (the embedded default,
//! a redb file in the data directory) and `tributary-event-log-nats` (NATS JetStream) implement
//! it. The trait is shaped so JetStream maps onto it directly: the sequence is the stream
//! sequence, the dedup key is the message id, and readers read by sequence.

pub mod filtered;
mod pending;
pub mod recent;
pub mod rules;
mod source_name;
mod stored;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tributary_model::v1::{ArchiveEntry, Consumer, DeadLetter, Event, Filter};
use tributary_model::well_known::Timestamp;

pub use pending::{PendingEvent, UnreadableEvent, varint_field};
pub use source_name::{MAX_SOURCE_NAME, SourceName};
pub use stored::StoredEvent;

/// Everything one webhook produced. Whether it is stored as one unit depends on the backend
/// (see [`EventLog`]); retrying a failed append is always safe.
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    /// The source that received the webhook (a valid [`SourceName`]); with each item's provider event id it
    /// forms the dedup key. Each event's and dead letter's own `source` should be the same:
    /// redrive and retention use those.
    pub source: String,
    /// Canonical events, in order, encoded ([`PendingEvent`]: an adapter's bytes are stored as
    /// they came back). `provenance.provider_event_id` must be non-empty.
    pub events: Vec<PendingEvent>,
    /// Items the adapter could not map. `provider_event_id` must be non-empty.
    pub dead_letters: Vec<DeadLetter>,
    /// The webhook itself, for the raw archive (sealed by the caller; the log stores it as
    /// given). Stored in the same unit as the items (redb; NATS: first, see [`EventLog`]); its
    /// `id` is assigned by the log and set as `raw_id` on every stored event and dead letter.
    /// When an entry with the same (`source`, `content_key`) is stored, that one is kept and
    /// extended with what this append stored.
    pub archive: Option<ArchiveEntry>,
}

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Sequences assigned to the newly stored events, in request order.
    pub sequences: Vec<u64>,
    /// Items (events or dead letters) already stored by an earlier request.
    pub duplicates: usize,
    /// Dead letters newly stored.
    pub dead_lettered: usize,
    /// The archive entry of the request (new or already stored); 0 without one.
    pub archive_id: u64,
}

/// The storage's own error under a [`LogError::Storage`]. Shared (`Arc`) so that one failed
/// commit can answer every request it batched with the same cause.
pub type StorageSource = Arc<dyn std::error::Error + Send + Sync>;

/// Why the log could not do what was asked. Callers map the variants to what a client can act
/// on: `Invalid` to INVALID_ARGUMENT, the two `Unknown*` to NOT_FOUND, the rest to UNAVAILABLE.
///
/// The messages include their cause (like `Corrupt`'s decode error) because they are shown
/// whole: in gRPC statuses, logs and `/readyz`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The storage failed (I/O error, full disk, JetStream unreachable or timing out, too much
    /// contention); trying again later may work. `context` says what the log was doing;
    /// `source` is the storage's error, absent when the log itself gave up.
    #[error("event log storage failed: {}", storage_detail(.context, .source.as_ref()))]
    Storage {
        context: String,
        #[source]
        source: Option<StorageSource>,
    },
    /// The log was shut down while the request waited.
    #[error("event log is shutting down")]
    Closed,
    /// A stored record no longer decodes; `key` is its sequence or id (0 for a consumer).
    #[error("stored record is corrupt at {key}: {source}")]
    Corrupt {
        key: u64,
        source: prost::DecodeError,
    },
    /// The request breaks a rule of the log (see [`rules`]); nothing was stored.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No durable consumer has this name.
    #[error("no consumer named `{0}`")]
    UnknownConsumer(String),
    /// No dead letter has this id.
    #[error("no dead letter {0}")]
    UnknownDeadLetter(u64),
}

fn storage_detail(context: &str, source: Option<&StorageSource>) -> String {
    match source {
        Some(source) => format!("{context}: {source}"),
        None => context.to_owned(),
    }
}

impl LogError {
    /// A storage failure caused by `source` while the log was doing `context`.
    pub fn storage(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Storage {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A storage failure without an underlying error: the log gave up by itself (not
    /// connected, recovering, contended).
    pub fn unavailable(context: impl Into<String>) -> Self {
        Self::Storage {
            context: context.into(),
            source: None,
        }
    }

    /// The failure without the "event log storage failed" prefix, for `health` (which
    /// `/readyz` shows after its own prefix).
    pub fn detail(&self) -> String {
        match self {
            Self::Storage { context, source } => storage_detail(context, source.as_ref()),
            other => other.to_string(),
        }
    }
}

/// Default [`Retention::dedup_horizon`]: 30 days, well past the longest provider retry period
/// (Finicity retries for 3 days, Arcadia for 1).
pub const DEFAULT_DEDUP_HORIZON: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default [`Retention::dead_letter_max_age`]: resolved dead letters go 30 days after their
/// resolution.
pub const DEFAULT_DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default [`Retention::dead_letter_max_count`].
pub const DEFAULT_DEAD_LETTER_MAX_COUNT: u64 = 100_000;

/// How much history the log keeps. Events still unacknowledged by a durable consumer are kept
/// unless `override_consumers` is set. Removing an event or a dead letter never forgets its
/// dedup key at once: see `dedup_horizon`.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Remove events stored longer ago than this.
    pub max_age: Option<Duration>,
    /// Remove the oldest events while stored event bytes exceed this.
    pub max_bytes: Option<u64>,
    /// Remove events even when a durable consumer has not acknowledged them.
    pub override_consumers: bool,
    /// How often retention runs.
    pub interval: Duration,
    /// How long a (source, provider event id) stays a duplicate although retention removed its
    /// event or dead letter: at least this long after the item was first stored (see
    /// [`EventLog`] for each backend's exact rule). Must exceed the longest provider retry
    /// period. Zero: a key goes with its item (redb) or only JetStream's duplicate window
    /// remains (NATS).
    pub dedup_horizon: Duration,
    /// Remove resolved dead letters resolved longer ago than this. Unresolved ones are only
    /// removed by `dead_letter_max_count`.
    pub dead_letter_max_age: Option<Duration>,
    /// Remove the oldest dead letters (resolved or not) while more than this many are stored.
    pub dead_letter_max_count: Option<u64>,
    /// Remove raw-archive entries received longer ago than this. Independent of the events:
    /// an event may outlive its raw webhook and the other way round. NATS: the archive
    /// stream's own `max_age` (counted from storage, at least 100 ms), applied to an existing
    /// stream on start.
    pub archive_max_age: Option<Duration>,
    /// Remove the oldest raw-archive entries while their stored bytes exceed this. NATS: the
    /// archive stream's `max_bytes` (message bytes as JetStream counts them).
    pub archive_max_bytes: Option<u64>,
}

impl Default for Retention {
    /// Events are kept; dedup keys outlive removed items by [`DEFAULT_DEDUP_HORIZON`];
    /// resolved dead letters go after [`DEFAULT_DEAD_LETTER_MAX_AGE`] and at most
    /// [`DEFAULT_DEAD_LETTER_MAX_COUNT`] are kept; a pass every 30 seconds.
    fn default() -> Self {
        Self {
            max_age: None,
            max_bytes: None,
            override_consumers: false,
            interval: Duration::from_secs(30),
            dedup_horizon: DEFAULT_DEDUP_HORIZON,
            dead_letter_max_age: Some(DEFAULT_DEAD_LETTER_MAX_AGE),
            dead_letter_max_count: Some(DEFAULT_DEAD_LETTER_MAX_COUNT),
            archive_max_age: None,
            archive_max_bytes: None,
        }
    }
}

impl Retention {
    /// Whether any limit is set, so that passes have something to remove.
    pub fn removes_anything(&self) -> bool {
        self.max_age.is_some()
            || self.max_bytes.is_some()
            || self.dead_letter_max_age.is_some()
            || self.dead_letter_max_count.is_some()
            || self.archive_max_age.is_some()
            || self.archive_max_bytes.is_some()
    }
}

/// What a redrive did to a dead letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveOutcome {
    /// Sequences of the events appended.
    pub sequences: Vec<u64>,
    /// Whether the dead letter is now resolved.
    pub resolved: bool,
}

/// A new seal for a stored raw-archive entry or a dead letter's raw item (a key rotation
/// re-encrypts them onto the current key): only the key id, nonce and ciphertext change; the
/// id, the clear metadata, the links between webhooks and items, and retention stay as they
/// are.
///
/// `from_key_id` and `from_nonce` are the seal the caller opened: the log rewrites the entry
/// only while it is still sealed that way, so two rotations racing (or a retried call) never
/// replace a newer seal with an older one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reseal {
    /// The entry's (or the dead letter's) id.
    pub id: u64,
    pub from_key_id: String,
    pub from_nonce: Vec<u8>,
    /// The new seal; none of the three may be empty.
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// What [`EventLog::reseal_archive_entry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResealOutcome {
    /// The entry now holds the new seal.
    Rewritten,
    /// No entry has this id (never stored, or removed by retention): nothing written.
    Missing,
    /// The entry is no longer sealed with `from_key_id`/`from_nonce` (rewritten meanwhile):
    /// left as it is.
    Changed,
}

/// The durable, ordered, deduplicated log of canonical events.
///
/// Sequences start at 1, increase, and are never reused, not even after retention removed
/// every event. Items are deduplicated on (source, provider event id); a replayed event on
/// [`rules::dedup_key`], apart from its original. The `conformance` module (feature
/// `conformance`) checks the promises below with exact values.
///
/// # What is atomic where
///
/// - **redb** (`tributary-event-log-redb`): each write (`append`, `redrive`, a consumer
///   change) is applied inside one write transaction of a group commit, so it is stored whole
///   or not at all, and a failed commit fails every operation of its batch. One append's
///   events get consecutive sequences. Events and dead letters share dedup keys. A retry
///   finds its archive entry through a stored item of the webhook (whose `raw_id` names it)
///   with the same content key, or, for a webhook that stored no item, by (source, content
///   key). When retention has removed every item of a webhook, its retry archives it as a
///   new entry (still storing no item twice).
/// - **NATS JetStream** (`tributary-event-log-nats`): there is no multi-message transaction.
///   `append` publishes each event in order and then each dead letter, one message apiece,
///   and succeeds only when JetStream acknowledged all of them. If it fails part-way, what was
///   acknowledged stays stored (subscribers may see part of a webhook) and the error is
///   returned; retrying the same request stores only the rest, the stored items coming back
///   as duplicates. Concurrent appends may interleave: one append's sequences increase but
///   need not be consecutive. Events and dead letters are deduplicated separately (two
///   streams, two key spaces). `redrive` publishes the events first, then writes the dead
///   letter's state with compare-and-set: if that write fails, the events stay and the letter
///   stays unresolved, and redriving it again stores no event twice. Each consumer change is
///   one compare-and-set write. docs/deployment.md has the details.
///   With an archive entry, `append` publishes the entry **first** (its id is needed as the
///   items' `raw_id`), then the items, then writes the entry's links (sequences, dead-letter
///   ids) with compare-and-set. A failure after the entry leaves it stored with fewer (or no)
///   links; the provider's retry finds it again and links what it newly stores, but items a
///   failed attempt already stored come back as duplicates and stay unlisted (their `raw_id`
///   still names the entry). A retry finds its entry by (source, content key) while the entry
///   is stored, within the duplicate window even when its links were never written; past the
///   window and without links it archives the webhook as a new entry.
///
/// # How long dedup lasts
///
/// Every backend: a (source, provider event id) is a duplicate for at least
/// [`Retention::dedup_horizon`] after its item was first stored, **whether or not retention
/// removed the item meanwhile** (the keys are ids only, small). Removing dead letters
/// (`dead_letter_max_age`, `dead_letter_max_count`) keeps their keys the same way.
///
/// - **redb**: a key lasts as long as its item is stored, and after retention removes the
///   item it stays (as a tombstone) for `dedup_horizon` counted from the removal; a
///   retention pass prunes it after that. Exactly once within that time, any number of
///   concurrent appends included (one writer).
/// - **NATS JetStream**: two layers. The `Nats-Msg-Id` header dedups within the stream's
///   duplicate window (4 days by default), which also covers two instances racing on the
///   same item. Beyond it, a KV bucket `<stream>_DEDUP` holds one key per stored item with
///   the bucket's `max_age` = `dedup_horizon` (counted from the key's last write): `append`
///   checks it before publishing and writes it after JetStream acknowledged the message
///   (a duplicate acknowledgement writes it too). A key does **not** outlive the horizon
///   while its event is still in the stream. If the key write fails the append still
///   succeeds (the item is stored) and a background task writes the key once the bucket
///   answers; meanwhile, and after a process crash between the publish and the key write,
///   the window alone dedups that item until a retry repairs it. With a zero horizon there
///   is no bucket and only the window applies.
///
/// # Riding through failures (NATS)
///
/// While JetStream has no leader or cannot be reached (an election, a node lost, a
/// reconnect), `append` retries with backoff within its budget (the request's deadline less a
/// margin) before failing; retries reuse the message ids, so nothing is stored twice.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores a webhook's events and dead letters, skipping items whose (source, provider
    /// event id) is already stored (also within the request). Returns once they are durable:
    /// committed with fsync (redb), acknowledged by the stream (JetStream). An invalid request
    /// ([`rules::validate_append`]) is refused before anything is stored.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, LogError>;

    /// Up to `max` events with a sequence greater than `after`, in order, skipping sequences
    /// retention removed: a reader notices a gap when the first event returned is past
    /// `after + 1` (the service answers OUT_OF_RANGE then).
    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<Event>, LogError>;

    /// [`read_after`](Self::read_after), as stored: each event's encoding, shared. Delivery
    /// reads this, so a subscriber costs a reference-count bump per event, not a decode and
    /// an encode. The default encodes what `read_after` returns; backends that hold events
    /// encoded answer without decoding them.
    async fn read_stored_after(
        &self,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let events = self.read_after(after, max).await?;
        Ok(events.iter().map(StoredEvent::encode).collect())
    }

    /// The sequence just before the first event stored at or after `time` (so that
    /// `read_after` of it starts there); when no stored event is that recent, the newest
    /// sequence, so reading starts with the next append. (Known deviation: redb answers 0
    /// once retention removed every event; reading from 0 then also starts with the next
    /// append.)
    async fn sequence_before_time(&self, time: Timestamp) -> Result<u64, LogError>;

    /// The sequence of the oldest event still stored (retention removes older ones);
    /// `last + 1` when no event is stored. A position `p` was removed when `p + 1` is below it.
    async fn first_sequence(&self) -> Result<u64, LogError>;

    /// Dead letters with an id greater than `after`, up to `max`, by id. Ids start at 1, are
    /// separate from event sequences and are never reused, not even after retention removed
    /// dead letters (`Retention::dead_letter_max_age`, `dead_letter_max_count`).
    async fn dead_letters(&self, after: u64, max: usize) -> Result<Vec<DeadLetter>, LogError>;

    /// Appends the events a redrive produced for dead letter `id` (under the letter's source,
    /// deduplicated like an append) and marks it resolved with their sequences, or, with
    /// `still_failing`, records the new reason and keeps it (and its dedup key). Either way
    /// counts an attempt. An unknown `id` is [`LogError::UnknownDeadLetter`], checked before
    /// the events. Atomic with redb only (see above).
    async fn redrive(
        &self,
        id: u64,
        events: Vec<PendingEvent>,
        still_failing: Option<String>,
    ) -> Result<RedriveOutcome, LogError>;

    /// The durable consumer `name`, creating it positioned after `start_after` (at most the
    /// newest sequence) when absent; an existing one keeps its position. Either way it records
    /// `filter` (an existing one's is replaced, [`rules::refilter_consumer`]): [`filtered`]
    /// moves it over the events the filter does not select. Names follow
    /// [`rules::check_consumer_name`].
    async fn open_consumer(
        &self,
        name: &str,
        start_after: u64,
        filter: &Filter,
    ) -> Result<Consumer, LogError>;

    /// Moves `name`'s acknowledged sequence forward to `sequence` (an older ack changes
    /// nothing). Durable on return. A sequence past the newest is [`LogError::Invalid`]
    /// (checked first), a missing consumer [`LogError::UnknownConsumer`].
    async fn ack(&self, name: &str, sequence: u64) -> Result<Consumer, LogError>;

    /// Sets `name`'s acknowledged sequence to `after`, backwards or forwards (not past the
    /// newest sequence). Errors as for `ack`.
    async fn reset_consumer(&self, name: &str, after: u64) -> Result<Consumer, LogError>;

    /// Deletes `name`; false when there was none (or the name is invalid).
    async fn delete_consumer(&self, name: &str) -> Result<bool, LogError>;

    /// Every durable consumer, by name, with its lag (newest sequence minus acknowledged;
    /// [`filtered::consumers`] counts only what each consumer's filter selects).
    async fn consumers(&self) -> Result<Vec<Consumer>, LogError>;

    /// The newest sequence ever assigned (0 when none); changes are announced on the
    /// receiver, which subscribers await to tail the log live. An append's sequences are
    /// announced before it returns.
    fn last_sequence(&self) -> watch::Receiver<u64>;

    /// The raw-archive entry `id`, while retention keeps it.
    async fn archive_entry(&self, id: u64) -> Result<Option<ArchiveEntry>, LogError>;

    /// Raw-archive entries with an id greater than `after`, up to `max`, by id (replay walks
    /// them). Ids start at 1 and are never reused.
    async fn archive_entries(&self, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError>;

    /// Replaces the seal of raw-archive entry `reseal.id` in place ([`Reseal`]): the same id,
    /// so every event's and dead letter's `raw_id` keeps naming it. Durable on return. An empty
    /// new key id, nonce or ciphertext is [`LogError::Invalid`]. Appending the re-sealed
    /// entry instead would be deduplicated on (source, content key) as already stored.
    ///
    /// - **redb**, **fjall**: the block holding the entry is rewritten in one commit.
    /// - **NATS JetStream**: messages are immutable, so the new seal is written into the
    ///   entry's link record (compare-and-set) and read in place of the message's own; the
    ///   message, still sealed with the old key, stays until the archive's retention removes
    ///   it (see `tributary-event-log-nats`'s `archive` module). An entry whose link record a
    ///   newer entry of the same webhook took over (its own links were never written) is
    ///   refused with [`LogError::Invalid`]: it keeps its old seal.
    async fn reseal_archive_entry(&self, reseal: Reseal) -> Result<ResealOutcome, LogError>;

    /// Replaces the seal of dead letter `reseal.id`'s raw item (`raw_key_id`, `raw_nonce`,
    /// `raw`) in place, like [`reseal_archive_entry`](Self::reseal_archive_entry): the same
    /// id, state and dedup key. An item stored in clear is `Changed` (nothing to re-seal).
    /// NATS: the letter's message is immutable, so the new seal goes into its redrive state
    /// record (compare-and-set), read in place of the message's; the message keeps the old
    /// ciphertext until retention removes the letter.
    async fn reseal_dead_letter(&self, reseal: Reseal) -> Result<ResealOutcome, LogError>;

    /// The sequence of the stored event of (`source`, provider event id); `None` when there is
    /// none (never stored, a dead letter, or removed by retention). NATS looks it up in the
    /// `<stream>_DEDUP` bucket, so it also answers `None` with a zero dedup horizon (no bucket)
    /// and once the key expired (an event stored longer than the horizon ago).
    async fn sequence_of(
        &self,
        source: &str,
        provider_event_id: &str,
    ) -> Result<Option<u64>, LogError>;

    /// `Ok` while the log can write; the last storage error otherwise.
    fn health(&self) -> Result<(), String>;
}
