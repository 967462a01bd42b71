//! The Klavi envelope: a JSON array of events, each `{partnerAppId, eventId, eventType,
//! eventName, eventTime, payload, externalInfo}`.

use serde_json::Value;
use serde_json::value::RawValue;
use tributary_plugin_sdk::convert::str_at;
use tributary_plugin_sdk::prelude::*;

/// One element of the body: its parsed JSON and its bytes exactly as received.
pub struct Element<'a> {
    /// The parsed element.
    pub value: Value,
    /// The element's raw JSON bytes (stored with dead letters).
    pub raw: &'a [u8],
}

/// Splits the body into its elements, in array order. A lone object is taken as a one-element
/// array; anything else that is not an array is refused as malformed.
pub fn elements<'a>(request: &Request<'a>) -> Result<Vec<Element<'a>>, Rejection> {
    let body = request.json()?;
    let raw = request.body();
    match body {
        Value::Array(items) => {
            let slices: Vec<&'a RawValue> = serde_json::from_slice(raw)
                .map_err(|e| reject::malformed(format!("body is not a JSON array: {e}")))?;
            Ok(items
                .into_iter()
                .zip(slices)
                .map(|(value, slice)| Element {
                    value,
                    raw: slice.get().as_bytes(),
                })
                .collect())
        }
        Value::Object(_) => Ok(vec![Element { value: body, raw }]),
        other => Err(reject::malformed(format!(
            "body is not a JSON array of Klavi events (got {})",
            json_kind(&other)
        ))),
    }
}

/// The envelope fields every element must have.
pub struct Envelope {
    /// `eventId` (or `eventID`): the dedup key.
    pub event_id: String,
    /// `eventType` as received ("api"); may be empty.
    pub event_type: String,
    /// `eventName` as received ("consent_authorised", "consent authorised").
    pub event_name: String,
}

/// Reads the envelope of element `index`, or says why the element is not a Klavi event. The
/// reason names the element's position (and its eventId, when it has one), never its content.
pub fn envelope(index: usize, element: &Value) -> Result<Envelope, String> {
    if !element.is_object() {
        return Err(format!(
            "element {index} is not a JSON object (got {})",
            json_kind(element)
        ));
    }
    let mut event_id = str_at(element, "eventId");
    if event_id.is_empty() {
        event_id = str_at(element, "eventID");
    }
    if event_id.is_empty() {
        return Err(format!("element {index} has no eventId"));
    }
    let event_name = str_at(element, "eventName");
    if event_name.trim().is_empty() {
        return Err(format!(
            "element {index} (eventId {:?}) has no eventName",
            event_id.chars().take(100).collect::<String>()
        ));
    }
    Ok(Envelope {
        event_id,
        event_type: str_at(element, "eventType"),
        event_name,
    })
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
pub fn classify(envelope: &Envelope) -> Option<Kind> {
    let event_type = envelope.event_type.trim();
    if !event_type.is_empty() && !event_type.eq_ignore_ascii_case("api") {
        return None;
    }
    let name = normalized_name(&envelope.event_name);
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

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(event_type: &str, name: &str) -> Option<Kind> {
        classify(&Envelope {
            event_id: "e".into(),
            event_type: event_type.into(),
            event_name: name.into(),
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
