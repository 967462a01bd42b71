//! The event log contract: where canonical events become durable, ordered and deduplicated.
//!
//! [`EventLog`] is the one interface the service uses. This crate holds only the contract, so
//! a backend depends on nothing of another: `tributary-event-log-redb` (the embedded default,
//! a redb file in the data directory) and `tributary-event-log-nats` (NATS JetStream) implement
//! it. The trait is shaped so JetStream maps onto it directly: the sequence is the stream
//! sequence, the dedup key is the message id, and readers read by sequence.

pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tributary_model::v1::{Consumer, DeadLetter, Event};
use tributary_model::well_known::Timestamp;

/// Everything one webhook produced, appended atomically: all of it is stored, or none of it.
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    /// The source that received the webhook; with each item's provider event id it forms the
    /// dedup key.
    pub source: String,
    /// Canonical events, in order. `provenance.provider_event_id` must be non-empty.
    pub events: Vec<Event>,
    /// Items the adapter could not map. `provider_event_id` must be non-empty.
    pub dead_letters: Vec<DeadLetter>,
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

/// How much history the log keeps. Events still unacknowledged by a durable consumer are kept
/// unless `override_consumers` is set.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Remove events stored longer ago than this.
    pub max_age: Option<Duration>,
    /// Remove the oldest events while stored event bytes exceed this.
    pub max_bytes: Option<u64>,
    /// Remove events even when a durable consumer has not acknowledged them.
    pub override_consumers: bool,
    /// How often retention runs.
    pub interval: Duration,
}

/// What a redrive did to a dead letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveOutcome {
    /// Sequences of the events appended.
    pub sequences: Vec<u64>,
    /// Whether the dead letter is now resolved.
    pub resolved: bool,
}

/// The durable, ordered, deduplicated log of canonical events.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores a webhook's events and dead letters durably, skipping items whose
    /// (source, provider event id) is already stored. Returns once they are durable.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, LogError>;

    /// Up to `max` events with a sequence greater than `after`, in order.
    async fn read_after(&self, after: u64, max: usize) -> Result<Vec<Event>, LogError>;

    /// The sequence just before the first event stored at or after `time` (so that
    /// `read_after` of it starts there).
    async fn sequence_before_time(&self, time: Timestamp) -> Result<u64, LogError>;

    /// The sequence of the oldest event still stored (retention removes older ones);
    /// `last + 1` when the log is empty.
    async fn first_sequence(&self) -> Result<u64, LogError>;

    /// Dead letters with an id greater than `after`, up to `max`.
    async fn dead_letters(&self, after: u64, max: usize) -> Result<Vec<DeadLetter>, LogError>;

    /// Appends the events a redrive produced for dead letter `id` and marks it resolved, or,
    /// with `still_failing`, records the new reason and keeps it. Atomic.
    async fn redrive(
        &self,
        id: u64,
        events: Vec<Event>,
        still_failing: Option<String>,
    ) -> Result<RedriveOutcome, LogError>;

    /// The durable consumer `name`, creating it positioned after `start_after` when absent.
    async fn open_consumer(&self, name: &str, start_after: u64) -> Result<Consumer, LogError>;

    /// Moves `name`'s acknowledged sequence forward to `sequence` (never backwards). Durable
    /// on return.
    async fn ack(&self, name: &str, sequence: u64) -> Result<Consumer, LogError>;

    /// Sets `name`'s acknowledged sequence to `after`, backwards or forwards.
    async fn reset_consumer(&self, name: &str, after: u64) -> Result<Consumer, LogError>;

    /// Deletes `name`; false when there was none.
    async fn delete_consumer(&self, name: &str) -> Result<bool, LogError>;

    /// Every durable consumer, with its lag.
    async fn consumers(&self) -> Result<Vec<Consumer>, LogError>;

    /// The sequence of the newest event (0 when empty); changes are announced on the receiver,
    /// which subscribers await to tail the log live.
    fn last_sequence(&self) -> watch::Receiver<u64>;

    /// `Ok` while the log can write; the last storage error otherwise.
    fn health(&self) -> Result<(), String>;
}
