//! [`EncodedEvent`](crate::wire::EncodedEvent): a `tributary.v1.Event` sent as the bytes the log already holds.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};

use crate::fields::event::{TRACEPARENT, TRACESTATE};

/// An encoded `tributary.v1.Event` that the server sends without decoding it: the
/// `EventStream` server generated on this type (`encoded::event_stream_server`) writes the
/// stored bytes as they are, so fan-out to many subscribers costs a copy into each stream, not
/// an encode per subscriber. On the wire it is exactly an `Event`: a client decodes it with
/// the generated `Event` type.
///
/// The delivery's own trace context is appended as a second `traceparent`/`tracestate`:
/// protobuf keeps the last value of a repeated scalar field, so the subscriber reads the
/// delivery's context while the stored bytes keep the ingest's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedEvent {
    encoded: Bytes,
    trace: Option<(String, String)>,
}

impl EncodedEvent {
    /// `encoded` must be an encoded `tributary.v1.Event`.
    pub fn new(encoded: Bytes) -> Self {
        Self {
            encoded,
            trace: None,
        }
    }

    /// Overrides the event's trace context for this delivery.
    pub fn with_trace(mut self, traceparent: String, tracestate: String) -> Self {
        self.trace = Some((traceparent, tracestate));
        self
    }
}

impl prost::Message for EncodedEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.encoded);
        if let Some((traceparent, tracestate)) = &self.trace {
            encoding::string::encode(TRACEPARENT, traceparent, buf);
            encoding::string::encode(TRACESTATE, tracestate, buf);
        }
    }

    /// Never decoded (clients decode an `Event`): the fields are skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.encoded.len()
            + self.trace.as_ref().map_or(0, |(traceparent, tracestate)| {
                encoding::string::encoded_len(TRACEPARENT, traceparent)
                    + encoding::string::encoded_len(TRACESTATE, tracestate)
            })
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Event, StatementEvent, event::Payload};
    use prost::Message as _;

    fn event() -> Event {
        Event {
            id: "arcadia:evt-1".into(),
            source: "arcadia".into(),
            r#type: "statement.available".into(),
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: "ingest=1".into(),
            sequence: 7,
            payload: Some(Payload::Statement(StatementEvent::default())),
            ..Event::default()
        }
    }

    #[test]
    fn it_is_the_event_on_the_wire() {
        let stored = Bytes::from(event().encode_to_vec());
        let sent = EncodedEvent::new(stored.clone());
        assert_eq!(sent.encoded_len(), stored.len());
        assert_eq!(sent.encode_to_vec(), stored.to_vec());
        assert_eq!(Event::decode(sent.encode_to_vec().as_slice()), Ok(event()));
    }

    #[test]
    fn the_delivery_trace_context_wins_over_the_stored_one() {
        let stored = Bytes::from(event().encode_to_vec());
        let traceparent = "00-11111111111111111111111111111111-2222222222222222-01".to_owned();
        let sent = EncodedEvent::new(stored).with_trace(traceparent.clone(), String::new());
        let bytes = sent.encode_to_vec();
        assert_eq!(bytes.len(), sent.encoded_len());
        let expected = Event {
            traceparent,
            tracestate: String::new(),
            ..event()
        };
        assert_eq!(Event::decode(bytes.as_slice()), Ok(expected));
    }
}
