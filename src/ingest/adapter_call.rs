//! The verify and normalize stages: one adapter call (`STAGE_ALL`) within the adapter's time
//! budget, on the request's worker or the blocking pool ([`super::placement`]), then the
//! events' envelopes, and a span and histogram per stage from the timings the adapter reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::{Context, KeyValue};
use tributary_model::plugin_wire::{EncodedAdapterResult, EncodedNormalized, EncodedOutcome};
use tributary_model::v1::{Event, Normalized, RejectionKind, UnmappedItem, WebhookRequest};
use tributary_plugin_host::HandleError;

use super::complete::{self, Completed, Producer};
use super::{IngestError, placement};
use crate::error::ServiceError;
use crate::ops::metrics::metrics;
use crate::ops::telemetry::Stage;
use crate::sources::Source;

/// The adapter's answer with the request back, as ingest has it.
pub(super) type Answered = Result<(WebhookRequest, Completed), IngestError>;

/// Verifies and normalizes `request` in one adapter call within its budget (`budget` per
/// stage): on the request's worker while the source's calls are short, else on the blocking
/// pool, where a call past its budget is abandoned ([`Gate`]).
pub(super) async fn run(
    source: &Arc<Source>,
    request: WebhookRequest,
    parent: &Context,
    budget: Duration,
) -> Answered {
    let budget = adapter_budget(&request, budget);
    if let Some(slot) = source.placement.claim() {
        // On this worker, watched: a call that overran the budget is answered as a time-out
        // and stores nothing, as on the pool.
        let verify = !request.skip_verification;
        let completed = placement::run_within(slot, &source.placement, budget, || {
            run_stages(source, &request, verify, parent)
        });
        let completed = completed.ok_or(IngestError::AdapterTimeout)?;
        return Ok((request, completed?));
    }
    let gate = Arc::new(Gate::default());
    let webhook = Webhook {
        source: Arc::clone(source),
        request,
        parent: parent.clone(),
        gate: Arc::clone(&gate),
    };
    let call = tokio::task::spawn_blocking(move || webhook.verify_and_normalize());
    within_budget(call, &gate, budget).await
}

/// Both stages share one adapter call: twice the budget of one; a request that skips
/// verification (dry runs, redrives) has one stage.
fn adapter_budget(request: &WebhookRequest, budget: Duration) -> Duration {
    if request.skip_verification {
        budget
    } else {
        budget * 2
    }
}

/// Who owns a webhook once its adapter returns: the blocking thread, to prepare it for the log,
/// or the request, which stopped waiting when the adapter's budget ran out. Exactly one of them
/// wins, so a webhook is never stored after its provider was answered 503.
#[derive(Default)]
struct Gate(AtomicU8);

impl Gate {
    const RUNNING: u8 = 0;
    const STORING: u8 = 1;
    const ABANDONED: u8 = 2;

    /// The blocking thread may go on: the request still waits.
    fn store(&self) -> bool {
        self.swap_from_running(Self::STORING)
    }

    /// The request gives up: the webhook will not be stored.
    fn abandon(&self) -> bool {
        self.swap_from_running(Self::ABANDONED)
    }

    fn swap_from_running(&self, to: u8) -> bool {
        self.0
            .compare_exchange(Self::RUNNING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Waits for the blocking part of a webhook within the adapter's `budget`; once the adapter
/// returned in time, for the rest of that part.
async fn within_budget<T>(
    mut call: tokio::task::JoinHandle<Result<T, IngestError>>,
    gate: &Gate,
    budget: Duration,
) -> Result<T, IngestError> {
    let joined = match tokio::time::timeout(budget, &mut call).await {
        Ok(joined) => joined,
        Err(_) if gate.abandon() => return Err(IngestError::AdapterTimeout),
        Err(_) => call.await,
    };
    joined.unwrap_or(Err(IngestError::EmptyResult))
}

/// A webhook on its way through the blocking part of ingest.
struct Webhook {
    source: Arc<Source>,
    request: WebhookRequest,
    parent: Context,
    gate: Arc<Gate>,
}

impl Webhook {
    /// The adapter call and the envelopes on a pool thread; the request back with them unless
    /// the request's task gave up meanwhile.
    fn verify_and_normalize(self) -> Result<(WebhookRequest, Completed), IngestError> {
        let verify = !self.request.skip_verification;
        let completed = self
            .source
            .placement
            .timed(|| run_stages(&self.source, &self.request, verify, &self.parent));
        if !self.gate.store() {
            return Err(IngestError::AdapterTimeout);
        }
        Ok((self.request, completed?))
    }
}

/// Verifies and normalizes in one adapter call (`STAGE_ALL`), on the blocking pool, within
/// twice `budget`, and completes the events' envelopes there (still encoded: they are stored
/// as the adapter returned them). The adapter reports how long each stage took, so each still
/// gets its span and histogram. A request that skips verification (dry runs, redrives) is only
/// normalized.
async fn verify_and_normalize(
    source: &Arc<Source>,
    request: Arc<WebhookRequest>,
    parent: &Context,
    budget: Duration,
) -> Result<Completed, IngestError> {
    let verify = !request.skip_verification;
    let budget = adapter_budget(&request, budget);
    let (source, parent) = (Arc::clone(source), parent.clone());
    let call = tokio::task::spawn_blocking(move || run_stages(&source, &request, verify, &parent));
    match tokio::time::timeout(budget, call).await {
        Ok(Ok(normalized)) => normalized,
        Ok(Err(_)) => Err(IngestError::EmptyResult),
        Err(_) => Err(IngestError::AdapterTimeout),
    }
}

/// The blocking part of [`verify_and_normalize`]: the adapter call, its events' envelopes,
/// then its stages' spans.
fn run_stages(
    source: &Source,
    request: &WebhookRequest,
    verify: bool,
    parent: &Context,
) -> Result<Completed, IngestError> {
    let info = source.adapter.plugin().info();
    let adapter_attributes = || {
        vec![
            KeyValue::new("tributary.source", source.name.clone()),
            KeyValue::new("tributary.adapter.name", info.name.clone()),
            KeyValue::new("tributary.adapter.version", info.version.clone()),
        ]
    };
    let start = SystemTime::now();
    let started = Instant::now();
    let result = source.adapter.handle_events_encoded(request);
    let took = started.elapsed();
    // Adapters built before the timings existed: the whole call counts as normalize.
    let timings = result.as_ref().ok().and_then(|r| r.timings);
    if let Some(secret) = result.as_ref().ok().and_then(|r| r.verified_by.as_ref())
        && verify
    {
        metrics().verified_by(&source.name, secret);
    }
    let (verify_took, normalize_took) = match timings {
        Some(t) => (
            Duration::from_nanos(t.verify_nanos),
            Duration::from_nanos(t.normalize_nanos),
        ),
        None => (Duration::ZERO, took),
    };
    let producer = Producer {
        adapter: &info.name,
        version: &info.version,
    };
    let normalized = result
        .map_err(IngestError::Adapter)
        .and_then(outcome)
        .and_then(|normalized| {
            complete::complete(&source.name, producer, request, normalized).map_err(|error| {
                IngestError::Adapter(HandleError::Undecodable {
                    adapter: info.name.clone(),
                    reason: error.to_string(),
                })
            })
        })
        .or_else(|error| match error {
            // A result the host cannot decode (e.g. nested past protobuf's recursion limit)
            // would fail the same way on every retry: keep the authentic webhook as a dead
            // letter.
            IngestError::Adapter(HandleError::Undecodable { .. }) => Ok(Completed {
                unmapped: vec![UnmappedItem {
                    reason: format!("{error}"),
                    ..UnmappedItem::default()
                }],
                ..Completed::default()
            }),
            error => Err(error),
        });
    let unauthenticated = matches!(normalized, Err(IngestError::Unauthenticated(_)));
    if verify && timings.is_some() {
        metrics().observe_verify(&info.name, verify_took);
        let failure = match &normalized {
            Err(error) if unauthenticated => Some(failure(error)),
            _ => None,
        };
        Stage::record_past(
            "verify",
            parent,
            (start, verify_took),
            adapter_attributes,
            failure,
        );
    }
    if unauthenticated {
        return normalized;
    }
    metrics().observe_normalize(&info.name, normalize_took);
    Stage::record_past(
        "normalize",
        parent,
        (start + verify_took, normalize_took),
        || {
            let mut attributes = adapter_attributes();
            if let Ok(normalized) = &normalized {
                attributes.extend([
                    KeyValue::new("tributary.event.count", normalized.events.len() as i64),
                    KeyValue::new("tributary.unmapped.count", normalized.unmapped.len() as i64),
                    KeyValue::new("tributary.ignored.count", normalized.ignored.len() as i64),
                ]);
            }
            attributes
        },
        normalized.as_ref().err().map(failure),
    );
    normalized
}

/// A fixed span status description: adapters' reasons may quote the payload, so they stay out
/// of traces.
fn failure(error: &IngestError) -> &'static str {
    match error {
        IngestError::Adapter(HandleError::Panicked { .. }) => "adapter panicked",
        IngestError::EmptyResult => "adapter returned no outcome",
        error => error.error_code().description(),
    }
}

/// The adapter's answer as a result.
fn outcome(result: EncodedAdapterResult) -> Result<EncodedNormalized, IngestError> {
    match result {
        EncodedAdapterResult {
            outcome: Some(EncodedOutcome::Normalized(normalized)),
            ..
        } => Ok(normalized),
        EncodedAdapterResult {
            outcome: Some(EncodedOutcome::Rejection(rejection)),
            ..
        } => Err(if rejection.kind == RejectionKind::Unauthenticated as i32 {
            IngestError::Unauthenticated(rejection.reason)
        } else {
            IngestError::Malformed(rejection.reason)
        }),
        EncodedAdapterResult { outcome: None, .. } => Err(IngestError::EmptyResult),
    }
}

/// Runs the adapter (within `budget`) and completes the envelopes, decoded (what ingest
/// would store). Stores nothing (the dry run, redrive and replay use it). An event that does
/// not decode makes the result one unmapped item, as ingest dead-letters it.
pub async fn normalize(
    source: &Arc<Source>,
    request: &WebhookRequest,
    budget: Duration,
) -> Result<Normalized, IngestError> {
    let completed = verify_and_normalize(
        source,
        Arc::new(request.clone()),
        &Context::current(),
        budget,
    )
    .await?;
    let events = completed
        .events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            event.event().map_err(|source| complete::UndecodableEvent {
                index,
                source: source.into(),
            })
        })
        .collect::<Result<Vec<Event>, _>>();
    Ok(match events {
        Ok(events) => Normalized {
            events,
            unmapped: completed.unmapped,
            ignored: completed.ignored,
        },
        Err(error) => undecodable(source, &error),
    })
}

/// The result of an adapter whose events do not decode: one unmapped item saying so (the
/// authentic webhook is kept as a dead letter; retrying would fail the same way).
fn undecodable(source: &Source, error: &complete::UndecodableEvent) -> Normalized {
    let adapter = source.adapter.plugin().info().name.clone();
    let error = HandleError::Undecodable {
        adapter,
        reason: error.to_string(),
    };
    Normalized {
        unmapped: vec![UnmappedItem {
            reason: IngestError::Adapter(error).to_string(),
            ..UnmappedItem::default()
        }],
        ..Normalized::default()
    }
}
