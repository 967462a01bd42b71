//! The ingest stage: receive ([`http`]) -> verify -> normalize -> complete the canonical
//! envelopes -> append to the log. A caller may acknowledge the provider only after [`ingest`]
//! returns `Ok`: by then the events are durable.

mod adapter_call;
mod append;
pub mod complete;
pub mod http;
pub mod media_type;
pub mod placement;
pub mod rejections;
mod taps;
pub use crate::rate_limit;

use std::sync::Arc;

use opentelemetry::Context;
use tributary_event_log::LogError;
use tributary_model::v1::WebhookRequest;
use tributary_plugin_host::HandleError;

use crate::app::App;
use crate::error::{ErrorCode, ServiceError};
use crate::sources::Source;
pub use adapter_call::normalize;

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
/// The adapter call and the envelopes run within the adapter's time budget
/// (`adapter_call.rs`); then the request's task seals the archive entry and appends
/// (`append.rs`). Past the budget the request answers 503 and the webhook is never stored,
/// even if the adapter returns later.
pub async fn ingest(
    app: &App,
    source: Arc<Source>,
    request: WebhookRequest,
    parent: &Context,
) -> Result<Accepted, IngestError> {
    let tap = crate::sources::shadow::Tap::new(&app.sources, &source, &request);
    let result = adapter_call::run(&source, request, parent, app.limits.adapter_timeout).await;
    tap.offer(|| taps::shadow_outcome(&result));
    taps::report_health(&source.name, &result);
    let (request, completed) = result?;
    append::store(app, &source, &request, completed, parent).await
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
