//! Batched acknowledgements of a durable consumer: one `Ack` RPC per batch, never one per
//! event, and a last one when the consumer is closed or dropped.
//!
//! The consumer records "handled up to sequence S" in a watch channel (only the newest value
//! is kept, so nothing queues up); a task sends `Ack(S)` when N events were handled since the
//! last ack, when the oldest unacknowledged one is T old, and when the channel closes.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tributary_model::v1::AckRequest;

use crate::call::Raw;

/// When a durable consumer sends its acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckBatch {
    /// Send an ack once this many events were handled since the last one.
    pub events: u32,
    /// Send an ack once the oldest unacknowledged handled event is this old.
    pub interval: Duration,
}

impl Default for AckBatch {
    /// 100 events or 1 s: one fsync on the server per batch, at most a second to redo.
    fn default() -> Self {
        AckBatch {
            events: 100,
            interval: Duration::from_secs(1),
        }
    }
}

/// Handled so far: the highest sequence and how many events.
#[derive(Debug, Clone, Copy, Default)]
struct Handled {
    sequence: u64,
    count: u64,
}

/// The consumer's side: records handled events.
pub(crate) struct Acks {
    handled: watch::Sender<Handled>,
    task: JoinHandle<()>,
}

impl Acks {
    /// Starts the ack task of consumer `name` on the current tokio runtime.
    pub(crate) fn start(raw: Raw, name: String, batch: AckBatch) -> Acks {
        let (handled, rx) = watch::channel(Handled::default());
        let task = tokio::spawn(run(raw, name, batch, rx));
        Acks { handled, task }
    }

    /// Records that every event up to `sequence` is handled (cumulative, never backwards).
    pub(crate) fn record(&self, sequence: u64) {
        self.handled.send_modify(|handled| {
            handled.sequence = handled.sequence.max(sequence);
            handled.count += 1;
        });
    }

    /// Sends what is left and waits for the task to finish.
    pub(crate) async fn close(self) {
        let Acks { handled, task } = self;
        drop(handled);
        let _ = task.await;
    }
}

async fn run(mut raw: Raw, name: String, batch: AckBatch, mut rx: watch::Receiver<Handled>) {
    let mut acked = Handled::default();
    // When the oldest unacknowledged event must be acked at the latest.
    let mut due: Option<Instant> = None;
    loop {
        let closed = tokio::select! {
            changed = rx.changed() => changed.is_err(),
            () = async { sleep_until(due.unwrap_or_else(Instant::now)).await },
                if due.is_some() => false,
        };
        let handled = *rx.borrow_and_update();
        if handled.sequence > acked.sequence {
            let now = Instant::now();
            let deadline = *due.get_or_insert(now + batch.interval);
            let full = handled.count - acked.count >= u64::from(batch.events);
            if closed || full || deadline <= now {
                let request = AckRequest {
                    consumer: name.clone(),
                    sequence: handled.sequence,
                };
                match raw.ack(request).await {
                    Ok(_) => {
                        acked = handled;
                        due = None;
                    }
                    Err(status) => {
                        // Kept for the next try: what is not acked is delivered again.
                        tracing::warn!(consumer = %name, code = ?status.code(), "ack failed; retrying");
                        due = Some(Instant::now() + batch.interval);
                    }
                }
            }
        } else {
            due = None;
        }
        if closed {
            return;
        }
    }
}
