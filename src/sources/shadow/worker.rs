//! The candidate's side of a shadow: takes webhook copies off the queue and runs each through
//! the candidate, at most `cap` at once, each within `budget`: on the copy's own task while the
//! candidate's calls are short (as the active adapter's run: `crate::ingest::placement`),
//! else on the blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tributary_model::v1::WebhookRequest;

use super::Shadow;
use super::compare::{Failure, Outcome, difference};
use crate::admin::redact::Redactor;
use crate::ingest::complete::Producer;
use crate::ingest::placement;
use crate::sources::Source;

/// One webhook, the source version that ingested it and what its adapter did with it.
pub struct Copy {
    pub request: WebhookRequest,
    pub source: Arc<Source>,
    pub active: Outcome,
}

/// What one candidate may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub budget: Duration,
    pub cap: usize,
}

/// Runs the shadow's worker until the queue's senders are gone (the shadow ended).
pub fn spawn(shadow: Arc<Shadow>, mut queue: mpsc::Receiver<Copy>, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.cap));
    // The worker holds only a weak handle: dropping the shadow (abort, promote) closes the
    // queue and ends this loop.
    let weak = Arc::downgrade(&shadow);
    drop(shadow);
    tokio::spawn(async move {
        while let Some(copy) = queue.recv().await {
            let Some(shadow) = weak.upgrade() else { break };
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            tokio::spawn(async move {
                if let Some(slot) = shadow.placement.claim() {
                    let result =
                        placement::run_within(slot, &shadow.placement, limits.budget, || {
                            run(&shadow, copy, &AtomicBool::new(false))
                        });
                    drop(permit);
                    match result {
                        None => fail(&shadow, "timeout"),
                        Some(Some(result)) => record(&shadow, result),
                        Some(None) => {}
                    }
                    return;
                }
                let abandoned = Arc::new(AtomicBool::new(false));
                let call = {
                    let (shadow, abandoned) = (Arc::clone(&shadow), Arc::clone(&abandoned));
                    // The permit is held until the call returns, even past its budget: a
                    // hanging candidate fills its cap and further copies are dropped.
                    tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        shadow.placement.timed(|| run(&shadow, copy, &abandoned))
                    })
                };
                match tokio::time::timeout(limits.budget, call).await {
                    Ok(Ok(Some(result))) => record(&shadow, result),
                    Ok(Ok(None)) => {}
                    Ok(Err(_)) => fail(&shadow, "panic"),
                    Err(_) => {
                        abandoned.store(true, Ordering::Release);
                        fail(&shadow, "timeout");
                    }
                }
            });
        }
    });
}

/// What one run of the candidate gave.
type Compared = Result<Option<tributary_model::v1::ShadowDifference>, Failure>;

/// The candidate's call and the comparison; `None` when the worker stopped waiting meanwhile.
fn run(shadow: &Shadow, copy: Copy, abandoned: &AtomicBool) -> Option<Compared> {
    let result = shadow.candidate.handle_events_encoded(&copy.request);
    if abandoned.load(Ordering::Acquire) {
        return None;
    }
    let info = copy.source.adapter.plugin().info();
    let producer = Producer {
        adapter: &info.name,
        version: &info.version,
    };
    let candidate = match Outcome::of_candidate(&shadow.source, producer, &copy.request, result) {
        Ok(candidate) => candidate,
        Err(failure) => return Some(Err(failure)),
    };
    let candidate_info = shadow.candidate.plugin().info();
    let mut personal = info.personal_data_fields.clone();
    personal.extend(candidate_info.personal_data_fields.iter().cloned());
    // Shown only where both versions declare a field safe.
    let display: Vec<String> = info
        .display_fields
        .iter()
        .filter(|field| candidate_info.display_fields.contains(field))
        .cloned()
        .collect();
    let redactor = crate::diff::event_redactor(&personal, &display);
    Some(Ok(difference(&copy.active, &candidate, &redactor).map(
        |mut diff| {
            diff.received_at = copy.request.received_at;
            diff.body = kept_body(&redactor, &copy.request.body);
            diff
        },
    )))
}

/// The largest body kept with a difference: kept differences stay small in memory whatever
/// the body limit.
const MAX_KEPT_BODY: usize = 16 * 1024;

/// `body` redacted, or a note saying how large it was when it is too large to keep.
fn kept_body(redactor: &Redactor, body: &[u8]) -> Vec<u8> {
    let redacted = redactor.redact_json(body);
    if redacted.len() <= MAX_KEPT_BODY {
        return redacted;
    }
    format!(
        "\"[not kept: {} bytes, more than {MAX_KEPT_BODY}]\"",
        redacted.len()
    )
    .into_bytes()
}

fn record(shadow: &Shadow, compared: Compared) {
    let mut stats = shadow.stats.lock().unwrap_or_else(|p| p.into_inner());
    match compared {
        Ok(None) => stats.compared += 1,
        Ok(Some(diff)) => {
            stats.compared += 1;
            stats.differed += 1;
            for kind in &diff.kinds {
                let kind = known_kind(kind);
                *stats.differences.entry(kind).or_default() += 1;
                super::counters::difference(&shadow.source, kind);
            }
            stats.recent.push_front(diff);
            let keep = stats.keep;
            stats.recent.truncate(keep);
        }
        Err(failure) => stats.fail(&shadow.source, failure.kind()),
    }
}

fn fail(shadow: &Shadow, kind: &'static str) {
    let mut stats = shadow.stats.lock().unwrap_or_else(|p| p.into_inner());
    stats.fail(&shadow.source, kind);
}

/// A difference kind as a static label (the comparison only makes these).
fn known_kind(kind: &str) -> &'static str {
    match kind {
        "event" => "event",
        "dead_letter" => "dead_letter",
        "rejection" => "rejection",
        _ => "ignored",
    }
}
