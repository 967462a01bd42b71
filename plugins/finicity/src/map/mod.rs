//! Maps one verified Finicity Connect event onto one canonical event.
//!
//! Every Connect event type except `ping` (handled before mapping) becomes exactly one event,
//! so the provider's `eventId` stays a unique deduplication key.

mod account;
mod connection;
pub(crate) mod payload;
mod session;

use tributary_plugin_sdk::lenient::Id;
use tributary_plugin_sdk::model::v1::event::Payload as EventPayload;
use tributary_plugin_sdk::model::v1::{Event, Institution, Provenance, References};
use tributary_plugin_sdk::personal_data::PersonalDataGuard;

pub use payload::Payload;

use crate::envelope::{Envelope, PayloadShape};

/// The families of Connect events, by `eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Session,
    Connection,
    Mfa,
    Account,
}

fn family(event_type: &str) -> Option<Family> {
    Some(match event_type {
        "started"
        | "done"
        | "institutionSupported"
        | "institutionNotSupported"
        | "institutionNotFound" => Family::Session,
        "adding" | "processing" | "invalidCredentials" | "unableToConnect"
        | "credentialsUpdated" => Family::Connection,
        "mfa" | "mfaUpdated" => Family::Mfa,
        "discovered" | "added" | "accountsDeleted" => Family::Account,
        _ => return None,
    })
}

/// What a family mapper produces besides the envelope-level fields.
struct Mapped {
    /// Canonical type.
    kind: &'static str,
    payload: EventPayload,
    /// institutionLoginId, when known.
    connection_id: String,
    institution: Option<Institution>,
    account_ids: Vec<String>,
}

/// Maps the event, or says why it cannot be mapped (the item is then dead-lettered).
pub fn event(envelope: &Envelope<'_>, guard: &PersonalDataGuard) -> Result<Event, String> {
    let event_type: &str = &envelope.event_type;
    let family = family(event_type).ok_or_else(|| {
        format!(
            "unknown Finicity Connect eventType \"{}\"",
            event_type.chars().take(100).collect::<String>()
        )
    })?;
    if envelope.event_id.is_empty() {
        return Err(format!(
            "{event_type} event has no eventId, so it cannot be deduplicated"
        ));
    }
    let empty = Payload::default();
    let mapped = match (family, envelope.payload_shape(&empty)) {
        (Family::Session, PayloadShape::Array(items)) if event_type == "done" => {
            session::map(event_type, &empty, items)
        }
        (_, PayloadShape::Object(payload)) => match family {
            Family::Session => session::map(event_type, payload, &[]),
            Family::Connection => connection::map(event_type, payload),
            Family::Mfa => connection::map_mfa(event_type, payload),
            Family::Account => {
                account::map(event_type, payload, envelope.customer_id.as_str(), guard)?
            }
        },
        _ => return Err(format!("{event_type} event payload is not a JSON object")),
    };
    let time = envelope.time();
    Ok(Event {
        r#type: mapped.kind.to_owned(),
        subject: envelope.subject(),
        time,
        provenance: Some(Provenance {
            provider_event_id: envelope.event_id.clone().into_owned(),
            provider_event_type: event_type.to_owned(),
            provider_created_at: time,
            ..Default::default()
        }),
        references: Some(References {
            customer_id: envelope.customer_id.to_string_owned(),
            consumer_id: envelope.consumer_id.to_string_owned(),
            connection_id: mapped.connection_id,
            account_ids: mapped.account_ids,
            institution: mapped.institution,
            ..Default::default()
        }),
        partner_metadata: envelope.partner_metadata(),
        payload: Some(mapped.payload),
        ..Default::default()
    })
}

/// An id the provider sends as a string or a number (`Id`), trimmed; empty when absent.
fn id(id: &Id<'_>) -> String {
    id.as_str().trim().to_owned()
}

/// The institution named by an `institutionId`, when present.
fn institution(institution_id: &Id<'_>) -> Option<Institution> {
    let id = id(institution_id);
    (!id.is_empty()).then(|| Institution {
        id,
        ..Default::default()
    })
}
