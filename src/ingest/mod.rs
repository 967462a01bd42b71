//! The ingest stage: receive ([`http`]) -> verify -> normalize -> complete the canonical
//! envelopes -> append to the log. A caller may acknowledge the provider only after [`ingest`]
//! returns `Ok`: by then the events are durable.

pub mod complete;
pub mod http;
pub mod media_type;
pub mod placement;
pub mod rejections;
mod taps;
pub use crate::rate_limit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use tributary_event_log::{AppendOutcome, AppendRequest, LogError};
use tributary_model::plugin_wire::{EncodedAdapterResult, EncodedNormalized, EncodedOutcome};
use tributary_model::v1::{
    DeadLetter, Event, Normalized, RejectionKind, UnmappedItem, WebhookRequest,
};
use tributary_plugin_host::HandleError;

use crate::app::App;
use crate::error::{ErrorCode, ServiceError};
use crate::ops::metrics::{SourceLabels, metrics};
use crate::ops::telemetry::{self, Stage};
use crate::sources::Source;
use complete::{Completed, Producer};

/// Why a webhook was not stored. Each is one [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    /// Verification failed. The reason is for logs only.
    #[error("verification failed: {0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Adapter(#[from] HandleError),
    #[error("adapter returned no outcome")]
    EmptyResult,
    #[error("the adapter took longer than its time budget")]
    AdapterTimeout,
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Archive(crate::archive::ArchiveError),
}

/// What was stored for an accepted webhook.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Accepted {
    /// Events newly stored.
    pub accepted: usize,
    /// Items already stored by an earlier delivery.
    pub duplicates: usize,
    /// Items stored as dead letters.
    pub dead_lettered: usize,
    /// Items acknowledged without storing anything (e.g. pings).
    pub ignored: usize,
    /// Sequences of the newly stored events.
    pub sequences: Vec<u64>,
}

/// Verifies, normalizes and durably appends one webhook to `source` (looked up once, by the
/// receiver), tracing each stage as a child of `parent` (the receive span). Every stored
/// event carries the append span's trace context (`traceparent`/`tracestate`), so consumers
/// continue the webhook's trace.
///
/// The adapter call and the envelopes run within the adapter's time budget: on the request's
/// worker while the source's calls are short ([`placement`]), else on a blocking-pool thread.
/// The request's task then seals the archive entry and appends. Past the budget the request
/// answers 503 and the webhook is never stored (`Gate`), even if the adapter returns later.
pub async fn ingest(
    app: &App,
    source: Arc<Source>,
    request: WebhookRequest,
    parent: &Context,
) -> Result<Accepted, IngestError> {
    let budget = adapter_budget(&request, app.limits.adapter_timeout);
    let gate = Arc::new(Gate::default());
    let tap = crate::sources::shadow::Tap::new(&app.sources, &source, &request);
    let webhook = Webhook {
        source: Arc::clone(&source),
        request,
        parent: parent.clone(),
        gate: Arc::clone(&gate),
    };
    let result = if source.placement.inline() {
        webhook.verify_and_normalize_inline(budget)
    } else {
        let call = tokio::task::spawn_blocking(move || webhook.verify_and_normalize());
        within_budget(call, &gate, budget).await
    };
    tap.offer(|| taps::shadow_outcome(&result));
    taps::report_health(&source.name, &result);
    let (request, completed) = result?;
    let mut pending = PendingAppend::prepare(app, &source, &request, completed, parent)?;
    let ignored = pending.ignored;
    let started = Instant::now();
    let request = pending.take_request();
    let outcome = pending.finish(app.log.append(request).await, started)?;
    count_stored(&source, &outcome, ignored);
    crate::health::tracker().stored(&source.name, outcome.sequences.len(), outcome.dead_lettered);
    Ok(Accepted {
        accepted: outcome.sequences.len(),
        duplicates: outcome.duplicates,
        dead_lettered: outcome.dead_lettered,
        ignored,
        sequences: outcome.sequences,
    })
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
        let cpu = placement::thread_cpu_time();
        let completed = run_stages(&self.source, &self.request, verify, &self.parent);
        (self.source.placement).observe(placement::thread_cpu_time().saturating_sub(cpu));
        if !self.gate.store() {
            return Err(IngestError::AdapterTimeout);
        }
        Ok((self.request, completed?))
    }

    /// The same on the request's worker, watched: a call that overran `budget` is answered as
    /// a time-out and stores nothing, as on the pool.
    fn verify_and_normalize_inline(
        self,
        budget: Duration,
    ) -> Result<(WebhookRequest, Completed), IngestError> {
        let verify = !self.request.skip_verification;
        let started = Instant::now();
        let completed = placement::run_watched(&self.source.placement, &self.source.name, || {
            run_stages(&self.source, &self.request, verify, &self.parent)
        });
        if started.elapsed() > budget {
            return Err(IngestError::AdapterTimeout);
        }
        Ok((self.request, completed?))
    }
}

/// A webhook's append, prepared: its items, its archive entry and its span.
struct PendingAppend {
    request: Option<AppendRequest>,
    span: Stage,
    items: usize,
    ignored: usize,
}

impl PendingAppend {
    /// Dead letters for the unmapped items, the sealed archive entry and the append span,
    /// whose trace context every event carries.
    fn prepare(
        app: &App,
        source: &Source,
        request: &WebhookRequest,
        mut completed: Completed,
        parent: &Context,
    ) -> Result<Self, IngestError> {
        let ignored = completed.ignored.len();
        let count = completed.events.len();
        let mut dead_letters = dead_letters(source, request, completed.unmapped);
        let archive = match &app.archive {
            Some(archive) => {
                // Raw items hold personal data: sealed at rest like the archive.
                for letter in &mut dead_letters {
                    archive
                        .seal_dead_letter(letter)
                        .map_err(IngestError::Archive)?;
                }
                let info = source.adapter.plugin().info();
                Some(
                    archive
                        .seal(request, (&info.name, &info.version), &source.secrets)
                        .map_err(IngestError::Archive)?,
                )
            }
            None => None,
        };
        let items = count + dead_letters.len();
        let span = Stage::start("append", SpanKind::Internal, parent, || {
            vec![
                KeyValue::new("tributary.source", source.name.clone()),
                KeyValue::new("tributary.append.events", count as i64),
                KeyValue::new("tributary.append.dead_letters", dead_letters.len() as i64),
            ]
        });
        if let Some((traceparent, tracestate)) = telemetry::inject(span.context()) {
            for event in &mut completed.events {
                event.set_trace(traceparent.clone(), tracestate.clone());
            }
        }
        Ok(Self {
            request: Some(AppendRequest {
                source: source.name.clone(),
                events: completed.events,
                dead_letters,
                archive,
            }),
            span,
            items,
            ignored,
        })
    }

    /// The request to append (once).
    fn take_request(&mut self) -> AppendRequest {
        self.request.take().unwrap_or_default()
    }

    /// Records the append's outcome (metrics, span) begun at `started`.
    fn finish(
        self,
        outcome: Result<AppendOutcome, LogError>,
        started: Instant,
    ) -> Result<AppendOutcome, IngestError> {
        metrics().observe_append(started.elapsed(), self.items);
        let span = self.span;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                span.fail("the event log could not store the webhook");
                span.end();
                return Err(error.into());
            }
        };
        span.record(|| {
            let sequences: Vec<i64> = outcome.sequences.iter().map(|s| *s as i64).collect();
            vec![
                KeyValue::new("tributary.append.accepted", sequences.len() as i64),
                KeyValue::new("tributary.append.duplicates", outcome.duplicates as i64),
                KeyValue::new(
                    "tributary.append.dead_lettered",
                    outcome.dead_lettered as i64,
                ),
                KeyValue::new(
                    "tributary.event.sequences",
                    opentelemetry::Value::Array(sequences.into()),
                ),
            ]
        });
        span.end();
        Ok(outcome)
    }
}

/// Counts what one webhook stored, per source.
fn count_stored(source: &Source, outcome: &AppendOutcome, ignored: usize) {
    let m = metrics();
    let labels = SourceLabels {
        source: source.name.clone(),
        adapter: source.adapter.plugin().info().name.clone(),
    };
    m.events_accepted
        .get_or_create(&labels)
        .inc_by(outcome.sequences.len() as u64);
    m.duplicates
        .get_or_create(&labels)
        .inc_by(outcome.duplicates as u64);
    m.dead_lettered
        .get_or_create(&labels)
        .inc_by(outcome.dead_lettered as u64);
    m.ignored.get_or_create(&labels).inc_by(ignored as u64);
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

impl ServiceError for IngestError {
    fn error_code(&self) -> ErrorCode {
        match self {
            IngestError::UnknownSource(_) => ErrorCode::UnknownSource,
            IngestError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            IngestError::Malformed(_) => ErrorCode::Malformed,
            // Busy means earlier calls are stuck past their budget: retry later, like a timeout.
            IngestError::Adapter(HandleError::Busy { .. }) | IngestError::AdapterTimeout => {
                ErrorCode::AdapterTimeout
            }
            IngestError::Adapter(_) | IngestError::EmptyResult => ErrorCode::AdapterFailed,
            IngestError::Log(error) => error.error_code(),
            IngestError::Archive(error) => error.error_code(),
        }
    }

    /// Verification reasons stay in the log (telling the caller would help an attacker);
    /// adapter and storage failures are summarised.
    fn public_message(&self) -> String {
        match self {
            IngestError::UnknownSource(name) => format!("no source named `{name}`"),
            IngestError::Unauthenticated(_) => "verification failed".to_owned(),
            IngestError::Malformed(reason) => reason.clone(),
            IngestError::Adapter(HandleError::Busy { .. }) | IngestError::AdapterTimeout => {
                "the adapter timed out; retry later".to_owned()
            }
            IngestError::Adapter(_) | IngestError::EmptyResult => {
                "the adapter failed; retry later".to_owned()
            }
            IngestError::Log(error) => match error.error_code() {
                ErrorCode::StorageUnavailable => "storage unavailable; retry later".to_owned(),
                _ => error.to_string(),
            },
            IngestError::Archive(_) => "the raw archive failed; retry later".to_owned(),
        }
    }
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

fn dead_letters(
    source: &Source,
    request: &WebhookRequest,
    unmapped: Vec<UnmappedItem>,
) -> Vec<DeadLetter> {
    let info = source.adapter.plugin().info();
    unmapped
        .into_iter()
        .map(|item| {
            let raw = if item.raw.is_empty() {
                request.body.clone()
            } else {
                item.raw
            };
            let provider_event_id = if item.provider_event_id.is_empty() {
                complete::content_id(&raw, None)
            } else {
                item.provider_event_id
            };
            DeadLetter {
                id: 0,
                source: source.name.clone(),
                adapter: info.name.clone(),
                adapter_version: info.version.clone(),
                provider_event_id,
                provider_event_type: item.provider_event_type,
                reason: item.reason,
                raw,
                received_at: request.received_at,
                ..DeadLetter::default()
            }
        })
        .collect()
}
