//! Group commit of the in-memory work without a writer thread: the caller that finds no
//! commit in progress becomes the leader and commits on its own thread; callers that arrive
//! meanwhile queue their operations and wait. When a commit ends, the leader hands the lead
//! to the first waiting caller, which commits everything queued since in one batch. A commit
//! writes its batch to the journal without waiting for the disk; the answers go out from
//! [`crate::sync`] once the journal is synced (or at once when the log is not durable). So no
//! caller blocks on I/O, and a lone caller pays no thread hop to commit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc as tokio_mpsc;
use tributary_event_log::LogError;

use crate::Inner;
use crate::writer::{Op, Reply};

/// What a waiting caller is told.
pub(crate) enum Signal {
    /// Commit the queue now (the caller's own operation is in it).
    Lead,
    /// The answer to the caller's operation.
    Done(Result<Reply, LogError>),
}

/// How to reach a waiting caller: a blocked thread or an awaiting task.
enum Notify {
    Thread(std_mpsc::Sender<Signal>),
    Task(tokio_mpsc::UnboundedSender<Signal>),
}

impl Notify {
    /// Whether the caller is still there to receive it.
    fn send(&self, signal: Signal) -> bool {
        match self {
            Self::Thread(tx) => tx.send(signal).is_ok(),
            Self::Task(tx) => tx.send(signal).is_ok(),
        }
    }
}

struct Waiting {
    op: Op,
    notify: Notify,
}

/// The answer to one caller, sent once its commit is durable.
pub(crate) struct Answer {
    notify: Notify,
    reply: Result<Reply, LogError>,
}

impl Answer {
    pub fn send(self) {
        self.notify.send(Signal::Done(self.reply));
    }

    /// Sends `error` instead: the commit did not become durable.
    pub fn fail(self, error: LogError) {
        self.notify.send(Signal::Done(Err(error)));
    }
}

/// Operations waiting for a commit; `leading` while one is in progress (or handed over).
/// Invariant: when nobody leads, nothing waits.
#[derive(Default)]
pub(crate) struct Queue {
    pending: VecDeque<Waiting>,
    leading: bool,
}

impl Inner {
    /// Queues `op`; returns whether the caller leads (no commit was in progress).
    fn enqueue(&self, op: Op, notify: Notify) -> bool {
        let Ok(mut queue) = self.queue.lock() else {
            // A panic while the queue was held: refuse rather than wait forever.
            let _ = notify.send(Signal::Done(Err(LogError::unavailable(
                "event log commit queue poisoned",
            ))));
            return false;
        };
        queue.pending.push_back(Waiting { op, notify });
        !std::mem::replace(&mut queue.leading, true)
    }

    /// Commits the queued operations (up to `max_batch`), then hands the lead to the next
    /// waiting caller (or commits again itself when none is left to take it).
    pub(crate) fn lead(self: &Arc<Self>) {
        // A panic while committing must not leave the queue with a leader that is gone.
        let _unwinding = PassOnPanic(self);
        loop {
            let mut batch: Vec<Waiting> = match self.queue.lock() {
                Ok(mut queue) => {
                    let take = queue.pending.len().min(self.config.max_batch.max(1));
                    queue.pending.drain(..take).collect()
                }
                Err(_) => return,
            };
            let mut ops: Vec<Op> = Vec::with_capacity(batch.len());
            let mut notifies = Vec::with_capacity(batch.len());
            for waiting in batch.drain(..) {
                ops.push(waiting.op);
                notifies.push(waiting.notify);
            }
            let answer = |replies: Vec<Result<Reply, LogError>>| {
                notifies
                    .drain(..)
                    .zip(replies)
                    .map(|(notify, reply)| Answer { notify, reply })
                    .collect()
            };
            if let Err(error) = self.commit(&mut ops, answer) {
                for notify in notifies.drain(..) {
                    notify.send(Signal::Done(Err(error.clone())));
                }
            }
            if !self.hand_over() {
                return;
            }
        }
    }

    /// Gives the lead to the first waiting caller still there. Returns true when the queue
    /// holds operations but no caller can take the lead (all gone): the current leader
    /// commits them.
    fn hand_over(&self) -> bool {
        let Ok(mut queue) = self.queue.lock() else {
            return false;
        };
        if queue.pending.is_empty() {
            queue.leading = false;
            return false;
        }
        let handed = queue
            .pending
            .iter()
            .any(|waiting| waiting.notify.send(Signal::Lead));
        !handed
    }

    /// Runs `op` through a group commit on this thread, blocking until it is durable.
    pub(crate) fn submit_blocking(self: &Arc<Self>, op: Op) -> Result<Reply, LogError> {
        let (tx, rx) = std_mpsc::channel();
        if self.enqueue(op, Notify::Thread(tx)) {
            self.lead();
        }
        loop {
            match rx.recv() {
                Ok(Signal::Done(reply)) => return reply,
                Ok(Signal::Lead) => self.lead(),
                Err(_) => return Err(LogError::Closed),
            }
        }
    }

    /// Runs `op` through a group commit. When this task leads, it commits inline on the
    /// async worker (a write to the journal, no wait for the disk); then it awaits its answer
    /// without blocking.
    pub(crate) async fn submit(self: &Arc<Self>, op: Op) -> Result<Reply, LogError> {
        let (tx, rx) = tokio_mpsc::unbounded_channel();
        let mut waiter = Waiter {
            inner: Arc::clone(self),
            rx,
            done: false,
        };
        if self.enqueue(op, Notify::Task(tx)) {
            self.lead();
        }
        loop {
            match waiter.rx.recv().await {
                Some(Signal::Done(reply)) => {
                    waiter.done = true;
                    return reply;
                }
                Some(Signal::Lead) => self.lead(),
                None => {
                    waiter.done = true;
                    return Err(LogError::Closed);
                }
            }
        }
    }
}

/// Hands the lead on when the leader unwinds (its callers' channels close with it, so they
/// answer [`LogError::Closed`]); the next leader reopens the database (see
/// `Inner::commit`).
struct PassOnPanic<'a>(&'a Arc<Inner>);

impl Drop for PassOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && self.0.hand_over() {
            let inner = Arc::clone(self.0);
            let _ = std::thread::Builder::new()
                .name("event-log-commit".into())
                .spawn(move || inner.lead());
        }
    }
}

/// An awaiting caller. Dropped before its answer (the task was cancelled) it may have been
/// handed the lead: it passes it on, so queued callers are not left without a leader. Its
/// operation stays queued and is committed (as a cancelled redb append would be).
struct Waiter {
    inner: Arc<Inner>,
    rx: tokio_mpsc::UnboundedReceiver<Signal>,
    done: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.rx.close();
        let mut handed_lead = false;
        while let Ok(signal) = self.rx.try_recv() {
            handed_lead |= matches!(signal, Signal::Lead);
        }
        if handed_lead && self.inner.hand_over() {
            // Nobody else can lead: commit the rest on a thread of its own.
            let inner = Arc::clone(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("event-log-commit".into())
                .spawn(move || inner.lead());
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a thread to commit cancelled appends");
            }
        }
    }
}
