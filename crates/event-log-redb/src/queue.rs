//! What callers queue for the single writer: an operation, and where its answer goes.

use tokio::sync::oneshot;
use tributary_event_log::{AppendOutcome, AppendRequest, LogError, PendingEvent, RedriveOutcome};
use tributary_model::v1::{Consumer, Filter};

/// A write the log performs on behalf of a caller.
#[derive(Debug)]
pub(crate) enum Op {
    Append(Box<AppendRequest>),
    Redrive {
        id: u64,
        events: Vec<PendingEvent>,
        still_failing: Option<String>,
    },
    OpenConsumer {
        name: String,
        after: u64,
        filter: Filter,
    },
    Ack {
        name: String,
        sequence: u64,
    },
    ResetConsumer {
        name: String,
        after: u64,
    },
    DeleteConsumer {
        name: String,
    },
    Retention,
    /// A raw-archive entry's new seal (validated before it was queued).
    Reseal(Box<tributary_event_log::Reseal>),
    /// A dead letter's raw item's new seal (validated before it was queued).
    ResealDeadLetter(Box<tributary_event_log::Reseal>),
}

/// The answer to one [`Op`].
#[derive(Debug)]
pub(crate) enum Reply {
    Appended(AppendOutcome),
    Redriven(RedriveOutcome),
    Consumer(Consumer),
    Deleted(bool),
    Done,
    Resealed(tributary_event_log::ResealOutcome),
}

/// One queued operation and where to send its answer.
pub(crate) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply, LogError>>,
}
