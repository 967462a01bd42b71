//! Redrive: a dead letter runs again through the adapter currently loaded for its source
//! (after an adapter fix); the events it now maps to are appended and the letter is resolved,
//! or it stays dead with the new reason.

use tributary_event_log::PendingEvent;
use tributary_model::v1::{DeadLetter, WebhookRequest};

use crate::app::App;
use crate::ingest::{IngestError, normalize};

/// What a redrive did.
#[derive(Debug, Clone, Default)]
pub struct Redriven {
    pub resolved: bool,
    pub sequences: Vec<u64>,
    /// Why it is still dead, when not resolved.
    pub reason: String,
}

/// Redrives one dead letter. Only storage failures are errors; an adapter that still cannot
/// map it is an unresolved outcome.
pub async fn redrive(app: &App, mut letter: DeadLetter) -> Result<Redriven, IngestError> {
    if let Some(archive) = &app.archive {
        archive
            .open_dead_letter(&mut letter)
            .map_err(IngestError::Archive)?;
    }
    let (events, failure) = match app.sources.get(&letter.source) {
        None => (
            Vec::new(),
            Some(format!(
                "source `{}` is no longer configured",
                letter.source
            )),
        ),
        Some(source) => {
            // The letter was verified when it arrived; its raw item may be only a part of
            // the signed body, so verification cannot run again.
            let request = WebhookRequest {
                source: letter.source.clone(),
                method: "POST".to_owned(),
                path: format!("/webhooks/{}", letter.source),
                query: String::new(),
                headers: Vec::new(),
                body: letter.raw.clone(),
                received_at: letter.received_at,
                skip_verification: true,
                ..WebhookRequest::default()
            };
            match normalize(&source, &request, app.limits.adapter_timeout).await {
                Ok(normalized) => {
                    let failure = match normalized.unmapped.first() {
                        Some(item) => Some(item.reason.clone()),
                        None if normalized.events.is_empty() => {
                            Some("the adapter produced no event".to_owned())
                        }
                        None => None,
                    };
                    (normalized.events, failure)
                }
                Err(IngestError::Log(error)) => return Err(IngestError::Log(error)),
                Err(error) => (Vec::new(), Some(error.to_string())),
            }
        }
    };
    let events = events
        .into_iter()
        .map(|mut event| {
            event.raw_id = letter.raw_id;
            PendingEvent::from(event)
        })
        .collect();
    let outcome = app.log.redrive(letter.id, events, failure.clone()).await?;
    Ok(Redriven {
        resolved: outcome.resolved,
        sequences: outcome.sequences,
        reason: failure.unwrap_or_default(),
    })
}
