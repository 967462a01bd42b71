//! The Finicity Connect envelope: `{"customerId", "consumerId", "eventType", "eventId",
//! "payload", "webhookData"}`, one event per request, read straight from the body into
//! borrowing types.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use tributary_plugin_sdk::convert;
use tributary_plugin_sdk::lenient::{Item, Json, Obj, Str, Text};
use tributary_plugin_sdk::lenient_object;
use tributary_plugin_sdk::model::v1::Rejection;
use tributary_plugin_sdk::model::well_known::{Struct, Timestamp};
use tributary_plugin_sdk::reject;

use crate::map::payload::Payload;

lenient_object! {
    /// The envelope's JSON fields, before the checks of [`Envelope::parse`]. `webhookData`
    /// stays JSON text: it is passed on whole, as partner metadata, numbers digit for digit.
    pub struct RawEnvelope<'a> {
        "eventType" => event_type: Str<'a>,
        "eventId" => event_id: Text<'a>,
        "customerId" => customer_id: Text<'a>,
        "consumerId" => consumer_id: Text<'a>,
        "payload" => payload: Item<'a, Box<Payload<'a>>>,
        "webhookData" => webhook_data: Json,
    }
}

/// A body as read: the envelope's fields when it is an object, `None` for any other JSON.
pub type Body<'a> = Obj<RawEnvelope<'a>>;

/// Reads a body from a parsed `Value` (strings borrowed from it): the path for bodies
/// [`lenient::from_body`](tributary_plugin_sdk::lenient::from_body) does not read. Every field
/// type takes any JSON, so this does not fail; if it did, the body would be malformed.
pub fn body_from_value(value: &Value) -> Result<Body<'_>, Rejection> {
    Body::deserialize(value).map_err(|e| reject::malformed(format!("Finicity envelope: {e}")))
}

/// The envelope fields every event carries. Only `eventType` is required to parse.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// `eventType` as received, trimmed ("started", "ping").
    pub event_type: Cow<'a, str>,
    /// `eventId` ("<epoch ms>-<24 hex>"), trimmed; empty when absent (ping).
    pub event_id: Cow<'a, str>,
    /// `customerId`; empty when absent.
    pub customer_id: Text<'a>,
    /// `consumerId`; empty when absent.
    pub consumer_id: Text<'a>,
    /// `payload`; `Absent` when absent.
    pub payload: Item<'a, Box<Payload<'a>>>,
    /// `webhookData` as its JSON text; `None` when absent.
    pub webhook_data: Json,
}

/// What `payload` is.
pub enum PayloadShape<'r, 'a> {
    /// An object (absent or null payloads count as an empty object).
    Object(&'r Payload<'a>),
    /// An array (Finicity `done` with report info for several reports).
    Array(&'r [Item<'a, Box<Payload<'a>>>]),
    /// Anything else: a string, number or boolean.
    Other,
}

/// `text` without surrounding whitespace, still borrowed when it was.
fn trimmed(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

impl<'a> Envelope<'a> {
    /// Checks a body's envelope. Not an object, or no string `eventType`: malformed.
    pub fn parse(body: Body<'a>) -> Result<Self, Rejection> {
        let raw = body.0.ok_or_else(|| {
            reject::malformed("body is not a JSON object (a Finicity Connect event envelope)")
        })?;
        let event_type = raw
            .event_type
            .0
            .map(trimmed)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| reject::malformed("envelope has no eventType string"))?;
        Ok(Envelope {
            event_type,
            event_id: trimmed(raw.event_id.0),
            customer_id: raw.customer_id,
            consumer_id: raw.consumer_id,
            payload: raw.payload,
            webhook_data: raw.webhook_data,
        })
    }

    /// The payload's shape; `empty` stands for an absent or null payload.
    pub fn payload_shape<'r>(&'r self, empty: &'r Payload<'a>) -> PayloadShape<'r, 'a> {
        match &self.payload {
            Item::Absent | Item::Null => PayloadShape::Object(empty),
            Item::Object(payload) => PayloadShape::Object(payload),
            Item::Array(items) => PayloadShape::Array(items),
            _ => PayloadShape::Other,
        }
    }

    /// When Finicity created the event: the epoch-millisecond prefix of `eventId`.
    pub fn time(&self) -> Option<Timestamp> {
        event_time(&self.event_id)
    }

    /// `webhookData` as partner metadata: an object as is; any other non-null value wrapped as
    /// `{"value": ...}` so nothing is lost.
    /// Numbers keep every digit (read from the body text, see `convert::struct_from_json`).
    pub fn partner_metadata(&self) -> Option<Struct> {
        let text = self.webhook_data.get()?;
        match text.as_bytes().first() {
            Some(b'n') => None,
            Some(b'{') => convert::struct_from_json(text),
            _ => {
                let value = convert::value_from_json(text)?;
                Some(Struct {
                    fields: [("value".to_owned(), value)].into_iter().collect(),
                })
            }
        }
    }

    /// The event's subject: the customer (else the consumer) the Connect session belongs to.
    pub fn subject(&self) -> String {
        if self.customer_id.is_empty() {
            self.consumer_id.to_string_owned()
        } else {
            self.customer_id.to_string_owned()
        }
    }
}

/// Parses the `<epoch ms>-...` prefix of an event id into an instant; `None` when it is not one
/// or lies after 9999 (16 digits reach the year 318857, which no Timestamp can hold).
pub fn event_time(event_id: &str) -> Option<Timestamp> {
    let millis = event_id.split('-').next()?;
    if millis.is_empty() || millis.len() > 16 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = millis.parse().ok()?;
    convert::checked_timestamp(
        millis / 1000,
        i32::try_from((millis % 1000) * 1_000_000).ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_time_from_id_prefix() {
        let ts = event_time("1495468585434-0e73d1719173766fe4dfe1a8").expect("time");
        assert_eq!((ts.seconds, ts.nanos), (1_495_468_585, 434_000_000));
        assert!(event_time("").is_none());
        assert!(event_time("abc-123").is_none());
        assert!(event_time("-123").is_none());
        assert!(event_time("99999999999999999999-x").is_none());
        // Found by fuzzing: the year 13401 has no Timestamp (nor proto3 JSON form).
        assert!(event_time("360745050347000-abbca").is_none());
        assert!(
            event_time("253402300799999-x").is_some(),
            "the last millisecond of 9999"
        );
        let ts = event_time("1495468585000").expect("time without suffix");
        assert_eq!((ts.seconds, ts.nanos), (1_495_468_585, 0));
    }

    fn parse(body: &Value) -> Result<Envelope<'_>, Rejection> {
        Envelope::parse(Body::deserialize(body).expect("any JSON reads"))
    }

    #[test]
    fn envelope_requires_object_and_event_type() {
        assert!(parse(&json!([])).is_err());
        assert!(parse(&json!({"payload": {}})).is_err());
        assert!(parse(&json!({"eventType": 3})).is_err());
        assert!(parse(&json!({"eventType": " "})).is_err());
        let body = json!({"eventType": "ping"});
        let envelope = parse(&body).expect("parses");
        assert!(envelope.event_id.is_empty());
        let empty = Payload::default();
        assert!(matches!(
            envelope.payload_shape(&empty),
            PayloadShape::Object(p) if std::ptr::eq(p, &empty)
        ));
        assert!(envelope.partner_metadata().is_none());
    }
}
