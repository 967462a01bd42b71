//! [`StoredEvent`]: an event as the log holds it, encoded once and shared by every reader.

use std::sync::Arc;

use prost::Message;
use prost::bytes::Bytes;
use tributary_model::v1::Event;

/// An event's protobuf encoding plus the envelope fields delivery reads before sending it
/// (filter, trace spans). Cloning is a reference-count bump: one encoding serves every
/// subscriber, however many there are.
#[derive(Debug, Clone)]
pub struct StoredEvent(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    envelope: Envelope,
    encoded: Bytes,
}

/// The fields of `tributary.v1.Event` that delivery needs, with the same tags: decoding an
/// encoded event into this skips the payload instead of building it.
#[derive(Clone, PartialEq, Message)]
struct Envelope {
    #[prost(string, tag = "2")]
    source: String,
    #[prost(string, tag = "3")]
    r#type: String,
    #[prost(string, tag = "7")]
    traceparent: String,
    #[prost(string, tag = "8")]
    tracestate: String,
    #[prost(uint64, tag = "10")]
    sequence: u64,
}

impl StoredEvent {
    /// `event` with its encoding (made by the caller, who already needed it to store it).
    pub fn new(event: &Event, encoded: Bytes) -> Self {
        Self(Arc::new(Inner {
            envelope: Envelope {
                source: event.source.clone(),
                r#type: event.r#type.clone(),
                traceparent: event.traceparent.clone(),
                tracestate: event.tracestate.clone(),
                sequence: event.sequence,
            },
            encoded,
        }))
    }

    /// An encoding with its envelope fields already known (a [`crate::PendingEvent`]'s).
    pub(crate) fn from_parts(
        source: String,
        r#type: String,
        traceparent: String,
        tracestate: String,
        sequence: u64,
        encoded: Bytes,
    ) -> Self {
        Self(Arc::new(Inner {
            envelope: Envelope {
                source,
                r#type,
                traceparent,
                tracestate,
                sequence,
            },
            encoded,
        }))
    }

    /// Encodes `event`.
    pub fn encode(event: &Event) -> Self {
        Self::new(event, Bytes::from(event.encode_to_vec()))
    }

    /// Reads the envelope of an encoded event (the payload is skipped, not decoded).
    pub fn decode(encoded: Bytes) -> Result<Self, prost::DecodeError> {
        let envelope = Envelope::decode(encoded.as_ref())?;
        Ok(Self(Arc::new(Inner { envelope, encoded })))
    }

    /// The whole event, decoded.
    pub fn event(&self) -> Result<Event, prost::DecodeError> {
        Event::decode(self.0.encoded.as_ref())
    }

    /// The encoding, as stored.
    pub fn encoded(&self) -> &Bytes {
        &self.0.encoded
    }

    /// Its position in the log.
    pub fn sequence(&self) -> u64 {
        self.0.envelope.sequence
    }

    /// The source that received it (subscription filters and scopes read it).
    pub fn source(&self) -> &str {
        &self.0.envelope.source
    }

    /// The canonical type ("statement.available").
    pub fn event_type(&self) -> &str {
        &self.0.envelope.r#type
    }

    /// The ingest trace context stored with the event.
    pub fn traceparent(&self) -> &str {
        &self.0.envelope.traceparent
    }

    /// The ingest trace state that goes with [`traceparent`](Self::traceparent).
    pub fn tracestate(&self) -> &str {
        &self.0.envelope.tracestate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::v1::{Provenance, StatementEvent, event::Payload};

    #[test]
    fn the_envelope_read_from_an_encoding_is_the_events() {
        let event = Event {
            id: "arcadia:evt-1".into(),
            source: "arcadia".into(),
            r#type: "statement.available".into(),
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: "vendor=1".into(),
            sequence: 42,
            provenance: Some(Provenance {
                provider_event_id: "evt-1".into(),
                ..Provenance::default()
            }),
            payload: Some(Payload::Statement(StatementEvent::default())),
            ..Event::default()
        };
        let stored = StoredEvent::decode(Bytes::from(event.encode_to_vec())).expect("decodes");
        assert_eq!(stored.sequence(), 42);
        assert_eq!(stored.source(), "arcadia");
        assert_eq!(stored.event_type(), "statement.available");
        assert_eq!(stored.traceparent(), event.traceparent);
        assert_eq!(stored.tracestate(), "vendor=1");
        assert_eq!(stored.event().expect("decodes"), event);
        let made = StoredEvent::encode(&event);
        assert_eq!(made.encoded(), stored.encoded());
        assert_eq!(made.sequence(), 42);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(StoredEvent::decode(Bytes::from_static(&[0x12, 0xff])).is_err());
    }
}
