//! The Finicity Connect envelope: `{"customerId", "consumerId", "eventType", "eventId",
//! "payload", "webhookData"}`, one event per request.

use serde_json::{Map, Value};
use tributary_plugin_sdk::convert;
use tributary_plugin_sdk::model::v1::Rejection;
use tributary_plugin_sdk::model::well_known::{Struct, Timestamp};
use tributary_plugin_sdk::reject;

/// The envelope fields every event carries. Only `eventType` is required to parse.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// `eventType` as received ("started", "ping").
    pub event_type: &'a str,
    /// `eventId` ("<epoch ms>-<24 hex>"); empty when absent (ping).
    pub event_id: String,
    /// `customerId`; empty when absent.
    pub customer_id: String,
    /// `consumerId`; empty when absent.
    pub consumer_id: String,
    /// `payload`; `Value::Null` when absent.
    pub payload: &'a Value,
    /// `webhookData`; `Value::Null` when absent.
    pub webhook_data: &'a Value,
}

/// What `payload` is.
pub enum PayloadShape<'a> {
    /// An object (absent or null payloads count as an empty object).
    Object(&'a Map<String, Value>),
    /// An array (Finicity `done` with report info for several reports).
    Array(&'a [Value]),
    /// Anything else: a string, number or boolean.
    Other,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope of a JSON body. Not an object, or no string `eventType`: malformed.
    pub fn parse(body: &'a Value) -> Result<Self, Rejection> {
        let object = body.as_object().ok_or_else(|| {
            reject::malformed("body is not a JSON object (a Finicity Connect event envelope)")
        })?;
        let event_type = object
            .get("eventType")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| reject::malformed("envelope has no eventType string"))?;
        Ok(Envelope {
            event_type,
            event_id: convert::str_at(body, "eventId").trim().to_owned(),
            customer_id: convert::str_at(body, "customerId"),
            consumer_id: convert::str_at(body, "consumerId"),
            payload: object.get("payload").unwrap_or(&Value::Null),
            webhook_data: object.get("webhookData").unwrap_or(&Value::Null),
        })
    }

    /// The payload's shape.
    pub fn payload_shape(&self) -> PayloadShape<'a> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.payload {
            Value::Null => PayloadShape::Object(EMPTY.get_or_init(Map::new)),
            Value::Object(map) => PayloadShape::Object(map),
            Value::Array(items) => PayloadShape::Array(items),
            _ => PayloadShape::Other,
        }
    }

    /// When Finicity created the event: the epoch-millisecond prefix of `eventId`.
    pub fn time(&self) -> Option<Timestamp> {
        event_time(&self.event_id)
    }

    /// `webhookData` as partner metadata: an object as is; any other non-null value wrapped as
    /// `{"value": ...}` so nothing is lost.
    pub fn partner_metadata(&self) -> Option<Struct> {
        match self.webhook_data {
            Value::Null => None,
            Value::Object(_) => convert::to_struct(self.webhook_data),
            other => {
                let mut wrapped = Map::new();
                wrapped.insert("value".to_owned(), other.clone());
                convert::to_struct(&Value::Object(wrapped))
            }
        }
    }

    /// The event's subject: the customer (else the consumer) the Connect session belongs to.
    pub fn subject(&self) -> String {
        if self.customer_id.is_empty() {
            self.consumer_id.clone()
        } else {
            self.customer_id.clone()
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

    #[test]
    fn envelope_requires_object_and_event_type() {
        assert!(Envelope::parse(&json!([])).is_err());
        assert!(Envelope::parse(&json!({"payload": {}})).is_err());
        assert!(Envelope::parse(&json!({"eventType": 3})).is_err());
        assert!(Envelope::parse(&json!({"eventType": " "})).is_err());
        let body = json!({"eventType": "ping"});
        let envelope = Envelope::parse(&body).expect("parses");
        assert!(envelope.event_id.is_empty());
        assert!(matches!(envelope.payload_shape(), PayloadShape::Object(m) if m.is_empty()));
        assert!(envelope.partner_metadata().is_none());
    }
}
