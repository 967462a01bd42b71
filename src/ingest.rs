//! The ingest stage: run a webhook through its source's adapter (verify, normalize), complete
//! the canonical envelopes, and append everything to the log. A caller may acknowledge the
//! provider only after [`Ingest::ingest`] returns `Ok`: by then the events are durable.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tributary_event_log::{AppendRequest, EventLog, LogError};
use tributary_model::v1::{
    AdapterResult, DeadLetter, Event, Normalized, Provenance, RejectionKind, UnmappedItem,
    WebhookRequest, adapter_result::Outcome,
};
use tributary_plugin_host::HandleError;

use crate::sources::{Source, Sources};

/// Why a webhook was not stored. Each maps to one HTTP status.
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
    #[error(transparent)]
    Log(#[from] LogError),
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

/// The receive -> verify -> normalize -> append path, shared by every front end.
#[derive(Clone)]
pub struct Ingest {
    sources: Arc<Sources>,
    log: Arc<dyn EventLog>,
}

impl Ingest {
    pub fn new(sources: Arc<Sources>, log: Arc<dyn EventLog>) -> Self {
        Self { sources, log }
    }

    pub fn sources(&self) -> &Arc<Sources> {
        &self.sources
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Verifies, normalizes and durably appends one webhook.
    pub async fn ingest(&self, request: WebhookRequest) -> Result<Accepted, IngestError> {
        let source = self
            .sources
            .get(&request.source)
            .ok_or_else(|| IngestError::UnknownSource(request.source.clone()))?;
        let normalized = normalize(&source, &request)?;
        let ignored = normalized.ignored.len();
        let append = AppendRequest {
            source: source.name.clone(),
            events: normalized.events,
            dead_letters: dead_letters(&source, &request, normalized.unmapped),
        };
        let outcome = self.log.append(append).await?;
        Ok(Accepted {
            accepted: outcome.sequences.len(),
            duplicates: outcome.duplicates,
            dead_lettered: outcome.dead_lettered,
            ignored,
            sequences: outcome.sequences,
        })
    }
}

/// Runs the adapter and completes the envelopes. Stores nothing (the dry run uses it as is).
pub fn normalize(source: &Source, request: &WebhookRequest) -> Result<Normalized, IngestError> {
    let result = source.adapter.handle(request)?;
    let mut normalized = match result {
        AdapterResult {
            outcome: Some(Outcome::Normalized(normalized)),
        } => normalized,
        AdapterResult {
            outcome: Some(Outcome::Rejection(rejection)),
        } => {
            return Err(if rejection.kind == RejectionKind::Unauthenticated as i32 {
                IngestError::Unauthenticated(rejection.reason)
            } else {
                IngestError::Malformed(rejection.reason)
            });
        }
        AdapterResult { outcome: None } => return Err(IngestError::EmptyResult),
    };
    let count = normalized.events.len();
    for (index, event) in normalized.events.iter_mut().enumerate() {
        complete_event(source, request, event, index, count);
    }
    Ok(normalized)
}

/// Fills the envelope attributes the host owns: id, source, provenance of the adapter, received
/// time, content type, trace context, and a content-derived id when the provider gave none.
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
    if let Some(traceparent) = header(request, "traceparent") {
        event.traceparent = traceparent.to_owned();
        event.tracestate = header(request, "tracestate").unwrap_or_default().to_owned();
    }
}

fn header<'a>(request: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_str())
}

/// "sha256:<hex of the body>[:index]": a stable id for items the provider did not number, so
/// an identical retry still deduplicates.
fn content_id(body: &[u8], index: Option<usize>) -> String {
    let digest = hex::encode(Sha256::digest(body));
    match index {
        Some(index) => format!("sha256:{digest}:{index}"),
        None => format!("sha256:{digest}"),
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
