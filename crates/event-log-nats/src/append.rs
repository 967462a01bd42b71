//! `append` riding through JetStream elections and node loss: each stage (archive entry,
//! events, dead letters, archive links) is retried with backoff while it fails with a storage
//! error (no leader, no responders, time-outs, a lost connection), within the append budget
//! ([`crate::NatsConfig::append_budget`]). Retries reuse the message ids, so JetStream stores
//! nothing twice; a stage done is not done again, and a message acknowledged by an earlier
//! attempt comes back as a duplicate with its sequence and counts as stored by this append.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tributary_event_log::{AppendOutcome, AppendRequest, LogError, SourceName};

use crate::{Inner, archive};

/// First pause after a failed attempt; doubled after each further one up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between attempts: an election takes seconds, a new leader answers at once.
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// Pauses between attempts, doubling, never past a deadline.
pub(crate) struct Backoff {
    next: Duration,
    deadline: Instant,
}

impl Backoff {
    pub(crate) fn until(deadline: Instant) -> Self {
        Self {
            next: FIRST_BACKOFF,
            deadline,
        }
    }

    /// Sleeps before the next attempt; false (at once) when the deadline leaves no time for
    /// one.
    pub(crate) async fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now + self.next >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        true
    }

    /// Time left before the deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Whether trying again may succeed: storage failures only, never a refused request.
pub(crate) fn is_transient(error: &LogError) -> bool {
    matches!(error, LogError::Storage { .. })
}

/// What earlier attempts of one append achieved.
#[derive(Default)]
pub(crate) struct Progress {
    /// The archive entry's id, once reserved.
    archive_id: Option<u64>,
    /// The events' stage, once complete.
    events: Option<AppendOutcome>,
    /// The dead letters' stage (its outcome and the new ids), once complete.
    letters: Option<(AppendOutcome, Vec<u64>)>,
    /// Message ids published by an earlier attempt (perhaps stored, perhaps not).
    pub(crate) sent: HashSet<String>,
}

/// Appends `request` (already validated: `source` is its checked source name), retrying
/// storage failures until `budget` is spent; then the last failure is returned.
pub(crate) async fn append(
    inner: &Inner,
    source: &SourceName,
    mut request: AppendRequest,
    budget: Duration,
) -> Result<AppendOutcome, LogError> {
    let mut backoff = Backoff::until(Instant::now() + budget);
    let mut progress = Progress::default();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = backoff.remaining();
        let attempt = attempt(inner, source, &mut request, &mut progress);
        let result = if remaining.is_zero() {
            attempt.await
        } else {
            // Bounded, so the budget holds even when JetStream stops answering.
            tokio::time::timeout(remaining, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(LogError::unavailable(format!(
                        "JetStream did not store the webhook within {budget:?} \
                         ({attempts} attempts)"
                    )))
                })
        };
        match result {
            Ok(outcome) => {
                if attempts > 1 {
                    tracing::info!(attempts, "append stored after JetStream recovered");
                }
                return Ok(outcome);
            }
            Err(error) if is_transient(&error) && backoff.wait().await => {
                tracing::debug!(%error, attempts, "append failed; trying again");
            }
            Err(error) => return Err(error),
        }
    }
}

/// One attempt: the stages not yet done, in order.
async fn attempt(
    inner: &Inner,
    source: &SourceName,
    request: &mut AppendRequest,
    progress: &mut Progress,
) -> Result<AppendOutcome, LogError> {
    inner.require_connection()?;
    // The entry first, so the items can point at it; its links last, once known.
    let archive_id = match (&request.archive, progress.archive_id) {
        (_, Some(id)) => id,
        (None, None) => 0,
        (Some(entry), None) => {
            let id = archive::reserve(inner, source.as_str(), entry).await?;
            progress.archive_id = Some(id);
            if id != 0 {
                for event in &mut request.events {
                    event.set_raw_id(id);
                }
                for letter in &mut request.dead_letters {
                    letter.raw_id = id;
                }
            }
            id
        }
    };
    if progress.events.is_none() {
        let mut outcome = AppendOutcome::default();
        inner
            .publish_events(source, &request.events, &mut outcome, &mut progress.sent)
            .await?;
        progress.events = Some(outcome);
    }
    if progress.letters.is_none() {
        let mut outcome = AppendOutcome::default();
        let ids = inner
            .publish_dead_letters(
                source,
                &request.dead_letters,
                &mut outcome,
                &mut progress.sent,
            )
            .await?;
        progress.letters = Some((outcome, ids));
    }
    let events = progress.events.clone().unwrap_or_default();
    let (letters, letter_ids) = progress.letters.clone().unwrap_or_default();
    if let Some(entry) = &request.archive {
        archive::link(inner, entry, archive_id, &events.sequences, &letter_ids).await?;
    }
    Ok(AppendOutcome {
        sequences: events.sequences,
        duplicates: events.duplicates + letters.duplicates,
        dead_lettered: letters.dead_lettered,
        archive_id: if request.archive.is_some() {
            archive_id
        } else {
            0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_and_stops_before_the_deadline() {
        let start = Instant::now();
        let mut backoff = Backoff::until(start + Duration::from_millis(1000));
        let mut pauses = Vec::new();
        let mut before = Instant::now();
        while backoff.wait().await {
            pauses.push((Instant::now() - before).as_millis());
            before = Instant::now();
        }
        assert_eq!(pauses, vec![50, 100, 200, 400]);
        assert!(Instant::now() - start < Duration::from_millis(1000));
        assert!(!is_transient(&LogError::Invalid("x".into())));
        assert!(is_transient(&LogError::unavailable("x")));
    }
}
