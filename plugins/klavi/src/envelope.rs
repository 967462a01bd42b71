//! The Klavi envelope: a JSON array of events, each `{partnerAppId, eventId, eventType,
//! eventName, eventTime, payload, externalInfo}`, read straight from the body into borrowing
//! types in one parse; the elements' raw bytes are found only when one is dead-lettered.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tributary_plugin_sdk::lenient::{Item, Json, Obj, Str, Text};
use tributary_plugin_sdk::lenient_object;
use tributary_plugin_sdk::prelude::*;

use crate::map::typed::Payload as KlaviPayload;

lenient_object! {
    /// One element of the array, as read (checked by [`envelope`]). `externalInfo` stays a
    /// JSON text: it is passed on whole, as partner metadata, numbers digit for digit.
    pub struct RawEvent<'a> {
        "eventId" => event_id: Text<'a>,
        "eventID" => event_id_capital_d: Text<'a>,
        "eventType" => event_type: Text<'a>,
        "eventName" => event_name: Text<'a>,
        "eventTime" => event_time: Str<'a>,
        "partnerAppId" => partner_app_id: Text<'a>,
        "payload" => payload: Obj<KlaviPayload<'a>>,
        "externalInfo" => external_info: Json,
    }
}

/// A body as read: an array of events, a lone event, or any other JSON (refused).
pub type Body<'a> = Item<'a, RawEvent<'a>>;

/// Reads a body from a parsed `Value` (strings borrowed from it): the path for bodies
/// [`lenient::from_body`](tributary_plugin_sdk::lenient::from_body) does not read. Every field
/// type takes any JSON, so this does not fail; if it did, the body would be malformed.
pub fn body_from_value(value: &Value) -> Result<Body<'_>, Rejection> {
    Body::deserialize(value).map_err(|e| reject::malformed(format!("Klavi events: {e}")))
}

/// The body's elements, in array order, and where their bytes are.
pub struct Elements<'r, 'a> {
    /// The elements as read.
    pub items: &'r [Item<'a, RawEvent<'a>>],
    /// The whole body.
    body: &'a [u8],
    /// Whether the body is one lone object (its own raw bytes).
    lone: bool,
    /// Each element's bytes, found the first time one is asked for.
    raw: Option<Vec<&'a RawValue>>,
}

/// Splits the body into its elements. A lone object is taken as a one-element array; anything
/// else that is not an array is refused as malformed.
pub fn elements<'r, 'a>(
    body: &'r Body<'a>,
    bytes: &'a [u8],
) -> Result<Elements<'r, 'a>, Rejection> {
    let (items, lone) = match body {
        Item::Array(items) => (items.as_slice(), false),
        Item::Object(_) => (std::slice::from_ref(body), true),
        other => {
            return Err(reject::malformed(format!(
                "body is not a JSON array of Klavi events (got {})",
                json_kind(other)
            )));
        }
    };
    Ok(Elements {
        items,
        body: bytes,
        lone,
        raw: None,
    })
}

impl<'a> Elements<'_, 'a> {
    /// Element `index`'s bytes exactly as received (stored with its dead letter). The first
    /// call scans the body once more, for the elements' boundaries only (nothing is copied);
    /// the scan accepts whatever the parse accepted, so its error is never seen in practice.
    pub fn raw(&mut self, index: usize) -> Result<&'a [u8], Rejection> {
        if self.lone {
            return Ok(self.body);
        }
        let slices = match &mut self.raw {
            Some(slices) => slices,
            None => self.raw.insert(
                serde_json::from_slice(self.body)
                    .map_err(|e| reject::malformed(format!("body is not a JSON array: {e}")))?,
            ),
        };
        Ok(slices
            .get(index)
            .map(|slice| slice.get().as_bytes())
            .unwrap_or_default())
    }
}

/// The envelope fields every element must have.
pub struct Envelope<'r> {
    /// `eventId` (or `eventID`): the dedup key.
    pub event_id: &'r str,
    /// `eventType` as received ("api"); may be empty.
    pub event_type: &'r str,
    /// `eventName` as received ("consent_authorised", "consent authorised").
    pub event_name: &'r str,
}

/// Reads the envelope of element `index`, or says why the element is not a Klavi event. The
/// reason names the element's position (and its eventId, when it has one), never its content.
pub fn envelope<'r, 'a>(
    index: usize,
    element: &'r Item<'a, RawEvent<'a>>,
) -> Result<(&'r RawEvent<'a>, Envelope<'r>), String> {
    let Item::Object(event) = element else {
        return Err(format!(
            "element {index} is not a JSON object (got {})",
            json_kind(element)
        ));
    };
    let mut event_id = event.event_id.as_str();
    if event_id.is_empty() {
        event_id = event.event_id_capital_d.as_str();
    }
    if event_id.is_empty() {
        return Err(format!("element {index} has no eventId"));
    }
    let event_name = event.event_name.as_str();
    if event_name.trim().is_empty() {
        return Err(format!(
            "element {index} (eventId {:?}) has no eventName",
            event_id.chars().take(100).collect::<String>()
        ));
    }
    let envelope = Envelope {
        event_id,
        event_type: event.event_type.as_str(),
        event_name,
    };
    Ok((event, envelope))
}

/// An element's `eventName` as received; empty when it is not an object.
pub fn event_name(element: &Item<'_, RawEvent<'_>>) -> String {
    element
        .as_object()
        .map(|event| event.event_name.to_string_owned())
        .unwrap_or_default()
}

/// What a known Klavi API event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// link_created.
    LinkCreated,
    /// consent_* with its canonical status.
    Consent(ConsentStatus),
    /// product_request_received.
    ProductRequestReceived,
    /// product_generated_success / product_generated_failed.
    ProductGenerated(DataProductStatus),
}

/// Maps eventType/eventName to a known event. `eventType` must be "api" (any case) or absent;
/// `eventName` is compared case-insensitively with runs of spaces taken as `_`.
pub fn classify(envelope: &Envelope<'_>) -> Option<Kind> {
    let event_type = envelope.event_type.trim();
    if !event_type.is_empty() && !event_type.eq_ignore_ascii_case("api") {
        return None;
    }
    let name = normalized_name(envelope.event_name);
    Some(match name.as_str() {
        "link_created" => Kind::LinkCreated,
        "consent_authorised" => Kind::Consent(ConsentStatus::Granted),
        "consent_rejected" => Kind::Consent(ConsentStatus::Rejected),
        "consent_revoked" => Kind::Consent(ConsentStatus::Revoked),
        "consent_expired" => Kind::Consent(ConsentStatus::Expired),
        "consent_error" => Kind::Consent(ConsentStatus::Failed),
        "consent_deleted_by_user" => Kind::Consent(ConsentStatus::Deleted),
        "product_request_received" => Kind::ProductRequestReceived,
        "product_generated_success" => Kind::ProductGenerated(DataProductStatus::Ready),
        "product_generated_failed" => Kind::ProductGenerated(DataProductStatus::Failed),
        _ => return None,
    })
}

/// "Consent  Authorised" -> "consent_authorised".
fn normalized_name(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .to_ascii_lowercase()
}

fn json_kind<T>(value: &Item<'_, T>) -> &'static str {
    match value {
        Item::Absent | Item::Null => "null",
        Item::Bool(_) => "a boolean",
        Item::Number(_) => "a number",
        Item::Str(_) => "a string",
        Item::Array(_) => "an array",
        Item::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(event_type: &str, name: &str) -> Option<Kind> {
        classify(&Envelope {
            event_id: "e",
            event_type,
            event_name: name,
        })
    }

    #[test]
    fn names_with_spaces_underscores_and_case() {
        assert_eq!(kind("api", "link_created"), Some(Kind::LinkCreated));
        assert_eq!(kind("API", "Link Created"), Some(Kind::LinkCreated));
        assert_eq!(
            kind("", " consent  deleted by_user "),
            Some(Kind::Consent(ConsentStatus::Deleted))
        );
        assert_eq!(kind("analysis", "analysis_finished"), None);
        assert_eq!(kind("analysis", "link_created"), None);
        assert_eq!(kind("api", "consent_authorized"), None);
    }
}
