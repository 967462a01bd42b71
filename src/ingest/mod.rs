//! The ingest stage: receive ([`http`]) -> verify -> normalize -> complete the canonical
//! envelopes -> append to the log. A caller may acknowledge the provider only after [`ingest`]
//! returns `Ok`: by then the events are durable.

pub mod http;
pub mod rate_limit;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use tributary_event_log::{AppendOutcome, AppendRequest, LogError};
use tributary_model::v1::{
    AdapterResult, DeadLetter, Event, Normalized, Provenance, RejectionKind, UnmappedItem,
    WebhookRequest, adapter_result::Outcome,
};
use tributary_plugin_host::HandleError;

use crate::app::App;
use crate::error::{ErrorCode, ServiceError};
use crate::ops::metrics::{SourceLabels, metrics};
use crate::ops::telemetry::{self, Stage};
use crate::sources::Source;

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

/// Verifies, normalizes and durably appends one webhook, tracing each stage as a child of
/// `parent` (the receive span). Every stored event carries the append span's trace context
/// (`traceparent`/`tracestate`), so consumers continue the webhook's trace.
pub async fn ingest(
    app: &App,
    request: WebhookRequest,
    parent: &Context,
) -> Result<Accepted, IngestError> {
    let source = app
        .sources
        .get(&request.source)
        .ok_or_else(|| IngestError::UnknownSource(request.source.clone()))?;
    // Shared with the adapter's blocking task, which reads it in place (plugin ABI v2).
    let request = Arc::new(request);
    let mut normalized = verify_and_normalize(
        &source,
        Arc::clone(&request),
        parent,
        app.limits.adapter_timeout,
    )
    .await?;
    let ignored = normalized.ignored.len();
    let count = normalized.events.len();
    for (index, event) in normalized.events.iter_mut().enumerate() {
        complete_event(&source, &request, event, index, count);
    }
    let mut dead_letters = dead_letters(&source, &request, normalized.unmapped);
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
                    .seal(&request, (&info.name, &info.version), &source.secrets)
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
        for event in &mut normalized.events {
            event.traceparent.clone_from(&traceparent);
            event.tracestate.clone_from(&tracestate);
        }
    }
    let append = AppendRequest {
        source: source.name.clone(),
        events: normalized.events,
        dead_letters,
        archive,
    };
    let started = Instant::now();
    let outcome = app.log.append(append).await;
    let m = metrics();
    m.observe_append(started.elapsed(), items);
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
    count_stored(&source, &outcome, ignored);
    Ok(Accepted {
        accepted: outcome.sequences.len(),
        duplicates: outcome.duplicates,
        dead_lettered: outcome.dead_lettered,
        ignored,
        sequences: outcome.sequences,
    })
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
/// twice `budget`. The adapter reports how long each stage took, so each still gets its span and
/// histogram. A request that skips verification (dry runs, redrives) is only normalized.
async fn verify_and_normalize(
    source: &Arc<Source>,
    request: Arc<WebhookRequest>,
    parent: &Context,
    budget: Duration,
) -> Result<Normalized, IngestError> {
    let verify = !request.skip_verification;
    // Both stages share the call: twice the budget of one.
    let budget = if verify { budget * 2 } else { budget };
    let (source, parent) = (Arc::clone(source), parent.clone());
    let call = tokio::task::spawn_blocking(move || run_stages(&source, &request, verify, &parent));
    match tokio::time::timeout(budget, call).await {
        Ok(Ok(normalized)) => normalized,
        Ok(Err(_)) => Err(IngestError::EmptyResult),
        Err(_) => Err(IngestError::AdapterTimeout),
    }
}

/// The blocking part of [`verify_and_normalize`]: the adapter call, then its stages' spans.
fn run_stages(
    source: &Source,
    request: &WebhookRequest,
    verify: bool,
    parent: &Context,
) -> Result<Normalized, IngestError> {
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
    let result = source.adapter.handle(request);
    let took = started.elapsed();
    // Adapters built before the timings existed: the whole call counts as normalize.
    let timings = result.as_ref().ok().and_then(|r| r.timings);
    let (verify_took, normalize_took) = match timings {
        Some(t) => (
            Duration::from_nanos(t.verify_nanos),
            Duration::from_nanos(t.normalize_nanos),
        ),
        None => (Duration::ZERO, took),
    };
    let normalized = result
        .map_err(IngestError::Adapter)
        .and_then(outcome)
        .or_else(|error| match error {
            // A result the host cannot decode (e.g. nested past protobuf's recursion limit)
            // would fail the same way on every retry: keep the authentic webhook as a dead
            // letter.
            IngestError::Adapter(HandleError::Undecodable { .. }) => Ok(Normalized {
                unmapped: vec![UnmappedItem {
                    reason: format!("{error}"),
                    ..UnmappedItem::default()
                }],
                ..Normalized::default()
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
fn outcome(result: AdapterResult) -> Result<Normalized, IngestError> {
    match result {
        AdapterResult {
            outcome: Some(Outcome::Normalized(normalized)),
            ..
        } => Ok(normalized),
        AdapterResult {
            outcome: Some(Outcome::Rejection(rejection)),
            ..
        } => Err(if rejection.kind == RejectionKind::Unauthenticated as i32 {
            IngestError::Unauthenticated(rejection.reason)
        } else {
            IngestError::Malformed(rejection.reason)
        }),
        AdapterResult { outcome: None, .. } => Err(IngestError::EmptyResult),
    }
}

/// Runs the adapter (within `budget`) and completes the envelopes. Stores nothing (the dry run
/// and redrive use it).
pub async fn normalize(
    source: &Arc<Source>,
    request: &WebhookRequest,
    budget: Duration,
) -> Result<Normalized, IngestError> {
    let mut normalized = verify_and_normalize(
        source,
        Arc::new(request.clone()),
        &Context::current(),
        budget,
    )
    .await?;
    let count = normalized.events.len();
    for (index, event) in normalized.events.iter_mut().enumerate() {
        complete_event(source, request, event, index, count);
    }
    Ok(normalized)
}

/// Fills the envelope attributes the host owns: id, source, provenance of the adapter, received
/// time, content type, CloudEvents spec version, and a content-derived id when the provider gave
/// none. The trace context is set by [`ingest`]: the append span's.
fn complete_event(
    source: &Source,
    request: &WebhookRequest,
    event: &mut Event,
    index: usize,
    count: usize,
) {
    let info = source.adapter.plugin().info();
    let provenance = event.provenance.get_or_insert_with(Provenance::default);
    provenance.adapter = info.name.clone();
    provenance.adapter_version = info.version.clone();
    if provenance.provider_event_id.is_empty() {
        provenance.provider_event_id = content_id(&request.body, (count > 1).then_some(index));
    }
    event.id = format!("{}:{}", source.name, provenance.provider_event_id);
    event.source = source.name.clone();
    event.received_at = request.received_at;
    if event.time.is_none() {
        event.time = request.received_at;
    }
    event.datacontenttype = "application/protobuf".to_owned();
    event.specversion = crate::stream::cloudevents::SPEC_VERSION.to_owned();
}

/// "sha256:<hex of the body>[:index]" (the archive's content key, plus the item's index): a
/// stable id for items the provider did not number, so an identical retry still deduplicates.
fn content_id(body: &[u8], index: Option<usize>) -> String {
    let key = crate::archive::content_key(body);
    match index {
        Some(index) => format!("{key}:{index}"),
        None => key,
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
                content_id(&raw, None)
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
