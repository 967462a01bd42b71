//! Reading the raw archive: the webhook an event came from, decrypted.

use tributary_event_log::LogError;
use tributary_model::v1::{ArchiveEntry, Event, RawWebhook, get_raw_webhook_request::Target};

use crate::app::App;
use crate::archive::ArchiveError;
use crate::error::{ErrorCode, ServiceError};

/// Why an archived webhook could not be shown (or replayed).
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("the raw archive is off (archive.enabled = false)")]
    ArchiveOff,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl ServiceError for RawError {
    fn error_code(&self) -> ErrorCode {
        match self {
            RawError::ArchiveOff | RawError::NotFound(_) => ErrorCode::NotFound,
            RawError::Invalid(_) => ErrorCode::InvalidArgument,
            RawError::Log(error) => error.error_code(),
            RawError::Archive(error) => error.error_code(),
        }
    }
}

/// The decrypted webhook `target` points at.
pub async fn raw_webhook(app: &App, target: Target) -> Result<RawWebhook, RawError> {
    let archive = app.archive.as_ref().ok_or(RawError::ArchiveOff)?;
    let id = match target {
        Target::ArchiveId(id) => id,
        Target::Sequence(sequence) => raw_id(&event_at(app, sequence).await?)?,
        Target::EventId(event_id) => {
            let (source, provider_event_id) = event_id.split_once(':').ok_or_else(|| {
                RawError::Invalid("event ids are \"<source>:<provider event id>\"".into())
            })?;
            let sequence = app
                .log
                .sequence_of(source, provider_event_id)
                .await?
                .ok_or_else(|| RawError::NotFound(format!("no stored event {event_id}")))?;
            raw_id(&event_at(app, sequence).await?)?
        }
    };
    let entry = entry(app, id).await?;
    Ok(archive.open(&entry)?)
}

/// Archive entry `id`.
pub async fn entry(app: &App, id: u64) -> Result<ArchiveEntry, RawError> {
    app.log.archive_entry(id).await?.ok_or_else(|| {
        RawError::NotFound(format!(
            "no raw-archive entry {id} (never stored, or removed by retention)"
        ))
    })
}

/// The stored event at `sequence`.
pub async fn event_at(app: &App, sequence: u64) -> Result<Event, RawError> {
    app.log
        .read_after(sequence.saturating_sub(1), 1)
        .await?
        .into_iter()
        .find(|event| event.sequence == sequence)
        .ok_or_else(|| {
            RawError::NotFound(format!(
                "no event at sequence {sequence} (never stored, or removed by retention)"
            ))
        })
}

fn raw_id(event: &Event) -> Result<u64, RawError> {
    match event.raw_id {
        0 => Err(RawError::NotFound(format!(
            "event {} has no raw-archive entry (stored while the archive was off)",
            event.sequence
        ))),
        id => Ok(id),
    }
}
