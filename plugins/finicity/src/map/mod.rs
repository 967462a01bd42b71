//! Maps one verified Finicity Connect event onto one canonical event.
//!
//! Every Connect event type except `ping` (handled before mapping) becomes exactly one event,
//! so the provider's `eventId` stays a unique deduplication key.

mod account;
mod connection;
mod session;

use serde_json::{Map, Value};
use tributary_plugin_sdk::model::v1::event::Payload;
use tributary_plugin_sdk::model::v1::{Event, Institution, Provenance, References};
use tributary_plugin_sdk::personal_data::PersonalDataGuard;

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
    payload: Payload,
    /// institutionLoginId, when known.
    connection_id: String,
    institution: Option<Institution>,
    account_ids: Vec<String>,
}

/// Maps the event, or says why it cannot be mapped (the item is then dead-lettered).
pub fn event(envelope: &Envelope<'_>, guard: &PersonalDataGuard) -> Result<Event, String> {
    let event_type = envelope.event_type;
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
    let mapped = match (family, envelope.payload_shape()) {
        (Family::Session, PayloadShape::Array(items)) if event_type == "done" => {
            session::map(event_type, &Map::new(), items)
        }
        (_, PayloadShape::Object(payload)) => match family {
            Family::Session => session::map(event_type, payload, &[]),
            Family::Connection => connection::map(event_type, payload),
            Family::Mfa => connection::map_mfa(event_type, payload),
            Family::Account => account::map(event_type, payload, &envelope.customer_id, guard),
        },
        _ => return Err(format!("{event_type} event payload is not a JSON object")),
    };
    let time = envelope.time();
    Ok(Event {
        r#type: mapped.kind.to_owned(),
        subject: envelope.subject(),
        time,
        provenance: Some(Provenance {
            provider_event_id: envelope.event_id.clone(),
            provider_event_type: event_type.to_owned(),
            provider_created_at: time,
            ..Default::default()
        }),
        references: Some(References {
            customer_id: envelope.customer_id.clone(),
            consumer_id: envelope.consumer_id.clone(),
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

/// An id the provider sends as a string or a number; empty when absent.
fn id_at(object: &Map<String, Value>, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The institution named by `institutionId`, when present.
fn institution_at(object: &Map<String, Value>) -> Option<Institution> {
    let id = id_at(object, "institutionId");
    (!id.is_empty()).then(|| Institution {
        id,
        ..Default::default()
    })
}

/// The string at `key` of an object (numbers and booleans rendered as text); empty when absent.
fn str_of(object: &Map<String, Value>, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The boolean at `key`; false when absent or not a boolean.
fn bool_of(object: &Map<String, Value>, key: &str) -> bool {
    object.get(key).and_then(Value::as_bool).unwrap_or(false)
}
