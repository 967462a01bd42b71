//! The append stage, instrumented: the dead letters and the sealed archive entry a webhook
//! adds to its events, the append span whose trace context every event carries, and the
//! metrics of what was stored.

use std::time::Instant;

use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use tributary_event_log::{AppendOutcome, AppendRequest, LogError};
use tributary_model::v1::{DeadLetter, UnmappedItem, WebhookRequest};

use super::complete::{self, Completed};
use super::{Accepted, IngestError};
use crate::app::App;
use crate::ops::metrics::{SourceLabels, metrics};
use crate::ops::telemetry::{self, Stage};
use crate::sources::Source;

/// Appends what the adapter made of `request` (its events, dead letters for its unmapped
/// items, its sealed archive entry), traced and counted; by the time it returns `Ok` the
/// webhook is durable.
pub(super) async fn store(
    app: &App,
    source: &Source,
    request: &WebhookRequest,
    completed: Completed,
    parent: &Context,
) -> Result<Accepted, IngestError> {
    let mut pending = PendingAppend::prepare(app, source, request, completed, parent)?;
    let ignored = pending.ignored;
    let started = Instant::now();
    let append = pending.take_request();
    let outcome = pending.finish(app.log.append(append).await, started)?;
    count_stored(source, &outcome, ignored);
    crate::health::tracker().stored(&source.name, outcome.sequences.len(), outcome.dead_lettered);
    Ok(Accepted {
        accepted: outcome.sequences.len(),
        duplicates: outcome.duplicates,
        dead_lettered: outcome.dead_lettered,
        ignored,
        sequences: outcome.sequences,
    })
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
