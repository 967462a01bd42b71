//! The payload `{"type", "timestamp", "data"}` as one generic canonical event. `data` stays
//! its JSON text, byte for byte, so no number goes through a float.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use tributary_plugin_sdk::prelude::*;

use crate::config::is_type;

/// The members of a payload this adapter reads; each the raw JSON text of its value (`null`
/// included: `None` only when the member is absent).
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

/// A present member, whatever its value (an `Option` alone reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// A payload, read: what its members are, or why an authentic one cannot be mapped.
pub struct Payload<'a> {
    /// The payload's `type` when it is a string (for provenance and dead letters).
    pub kind: String,
    fields: Result<Fields<'a>, String>,
}

struct Fields<'a> {
    time: Option<Timestamp>,
    data: &'a RawValue,
}

impl<'a> Payload<'a> {
    /// Reads `body`: not a JSON object is `malformed` (not a Standard Webhooks payload at
    /// all); an object with a missing or invalid member is kept for a dead letter.
    pub fn read(body: &'a [u8]) -> Result<Self, Rejection> {
        let text =
            std::str::from_utf8(body).map_err(|_| reject::malformed("body is not UTF-8 JSON"))?;
        // A derived struct would also read a JSON array (its members by position).
        if !text.trim_start().starts_with('{') {
            return Err(reject::malformed("body is not a JSON object"));
        }
        let members: Members<'a> = serde_json::from_str(text).map_err(|e| {
            reject::malformed(format!("body is not a Standard Webhooks JSON object: {e}"))
        })?;
        let kind = members
            .kind
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        let fields = Self::fields(kind.as_deref(), &members);
        Ok(Self {
            kind: kind.unwrap_or_default(),
            fields,
        })
    }

    fn fields(kind: Option<&str>, members: &Members<'a>) -> Result<Fields<'a>, String> {
        match kind {
            None => return Err("the payload has no string `type`".into()),
            Some(kind) if !is_type(kind) => {
                return Err(format!(
                    "the payload's `type` is not 1 to {} characters of A-Z a-z 0-9 _ - . :",
                    crate::config::MAX_TYPE_LEN
                ));
            }
            Some(_) => {}
        }
        let time = match members.timestamp {
            None => None,
            Some(raw) => Some(
                serde_json::from_str::<String>(raw.get())
                    .ok()
                    .and_then(|text| convert::timestamp(&text))
                    .ok_or("the payload's `timestamp` is not an RFC 3339 date-time")?,
            ),
        };
        let data = members.data.ok_or("the payload has no `data`")?;
        Ok(Fields { time, data })
    }
}

/// How payload types become canonical types.
pub struct TypeMap {
    prefix: String,
    types: BTreeMap<String, String>,
}

impl TypeMap {
    pub fn new(prefix: String, types: BTreeMap<String, String>) -> Self {
        Self { prefix, types }
    }

    /// The canonical type of a payload type: its `types` entry, else the prefix + the type.
    fn canonical(&self, kind: &str) -> String {
        match self.types.get(kind) {
            Some(mapped) => mapped.clone(),
            None => format!("{}{kind}", self.prefix),
        }
    }

    /// The event of a payload received with `webhook-id` `id`, or why it cannot be mapped.
    pub fn event(&self, id: &str, payload: &Payload<'_>) -> Result<Event, String> {
        let fields = payload.fields.as_ref().map_err(Clone::clone)?;
        Ok(Event {
            r#type: self.canonical(&payload.kind),
            subject: subject(fields.data),
            time: fields.time,
            provenance: Some(Provenance {
                provider_event_id: id.to_owned(),
                provider_event_type: payload.kind.clone(),
                provider_created_at: fields.time,
                ..Default::default()
            }),
            payload: Some(event::Payload::Generic(GenericEvent {
                data_json: fields.data.get().to_owned(),
            })),
            ..Default::default()
        })
    }
}

/// `data.id` when `data` is an object whose `id` is a string or an integer (kept as written).
fn subject(data: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Id<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    if !data.get().starts_with('{') {
        return String::new();
    }
    let Ok(Id { id: Some(id) }) = serde_json::from_str::<Id<'_>>(data.get()) else {
        return String::new();
    };
    let text = id.get();
    if text.starts_with('"') {
        serde_json::from_str(text).unwrap_or_default()
    } else if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        text.to_owned()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(body: &str) -> Result<Result<Event, String>, Rejection> {
        let types = TypeMap::new(String::new(), BTreeMap::new());
        let payload = Payload::read(body.as_bytes())?;
        Ok(types.event("msg_1", &payload))
    }

    fn data_json(event: &Event) -> &str {
        match &event.payload {
            Some(event::Payload::Generic(generic)) => &generic.data_json,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_is_kept_as_its_json_text() {
        let body = r#"{"type": "invoice.paid", "timestamp": "2024-01-01T00:00:00.5Z",
            "data": {"id": "inv_1", "amount": 123456789012345678901234567890.123456789,
                     "n": 18446744073709551616, "e": 1e400,  "s": "\u00e9"}}"#;
        let event = map(body).expect("a payload").expect("mapped");
        assert_eq!(
            data_json(&event),
            r#"{"id": "inv_1", "amount": 123456789012345678901234567890.123456789,
                     "n": 18446744073709551616, "e": 1e400,  "s": "\u00e9"}"#
        );
        assert_eq!(event.r#type, "invoice.paid");
        assert_eq!(event.subject, "inv_1");
        assert_eq!(
            event.time,
            Some(Timestamp {
                seconds: 1_704_067_200,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn subjects_come_from_string_or_integer_ids() {
        for (data, subject) in [
            (r#"{"id": "c_1"}"#, "c_1"),
            (r#"{"id": 98765432109876543210}"#, "98765432109876543210"),
            (r#"{"id": 1.5}"#, ""),
            (r#"{"id": null}"#, ""),
            (r#"{"other": 1}"#, ""),
            ("[1]", ""),
            ("\"x\"", ""),
            ("null", ""),
        ] {
            let body = format!(r#"{{"type": "a.b", "data": {data}}}"#);
            let event = map(&body).expect("payload").expect("mapped");
            assert_eq!(event.subject, subject, "{data}");
            assert_eq!(data_json(&event), data);
            assert_eq!(event.time, None);
        }
    }

    #[test]
    fn invalid_members_are_dead_letters_and_non_objects_malformed() {
        for (body, reason) in [
            (r#"{"data": {}}"#, "no string `type`"),
            (r#"{"type": 5, "data": {}}"#, "no string `type`"),
            (r#"{"type": "", "data": {}}"#, "`type` is not"),
            (r#"{"type": "a b", "data": {}}"#, "`type` is not"),
            (
                r#"{"type": "a.b", "timestamp": "yesterday", "data": {}}"#,
                "RFC 3339",
            ),
            (r#"{"type": "a.b", "timestamp": 5, "data": {}}"#, "RFC 3339"),
            (r#"{"type": "a.b"}"#, "no `data`"),
            (r#"{"type": null, "data": {}}"#, "no string `type`"),
            (
                r#"{"type": "a.b", "timestamp": null, "data": {}}"#,
                "RFC 3339",
            ),
        ] {
            let error = map(body).expect("a payload").expect_err("dead letter");
            assert!(error.contains(reason), "{body}: {error}");
        }
        for body in ["[]", "5", "{", "", "{\"type\": \"a\"} x", "\u{0}"] {
            assert!(map(body).is_err(), "{body:?}");
        }
    }
}
