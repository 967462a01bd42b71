//! Completes the adapter's events into the envelopes the log stores, without decoding them:
//! each event stays the bytes the adapter encoded, and the attributes the host owns are set
//! as fields appended to them ([`PendingEvent`]).

use tributary_event_log::{PendingEvent, UnreadableEvent};
use tributary_model::plugin_wire::EncodedNormalized;
use tributary_model::v1::{UnmappedItem, WebhookRequest};

/// An adapter's normalized result with its events completed and still encoded.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    /// The events, in the adapter's order, ready to append.
    pub events: Vec<PendingEvent>,
    /// Items the adapter could not map (dead-lettered).
    pub unmapped: Vec<UnmappedItem>,
    /// Items acknowledged without storing anything, with why.
    pub ignored: Vec<String>,
}

/// The adapter (name, version) that made the events, as provenance names it.
#[derive(Debug, Clone, Copy)]
pub struct Producer<'a> {
    pub adapter: &'a str,
    pub version: &'a str,
}

/// An event the adapter returned that does not decode: the whole result is unusable, as when
/// the result itself does not decode.
#[derive(Debug, thiserror::Error)]
#[error("event {index} is not a tributary.v1.Event: {source}")]
pub struct UndecodableEvent {
    pub index: usize,
    pub source: UnreadableEvent,
}

/// Completes every event of `normalized` (received by `source` in `request`); see
/// [`complete_event`].
pub fn complete(
    source: &str,
    producer: Producer<'_>,
    request: &WebhookRequest,
    normalized: EncodedNormalized,
) -> Result<Completed, UndecodableEvent> {
    let count = normalized.events.len();
    let events = normalized
        .events
        .into_iter()
        .enumerate()
        .map(|(index, encoded)| {
            let mut event = PendingEvent::decode(encoded)
                .map_err(|source| UndecodableEvent { index, source })?;
            complete_event(source, producer, request, &mut event, index, count).map_err(
                |source| UndecodableEvent {
                    index,
                    source: source.into(),
                },
            )?;
            Ok(event)
        })
        .collect::<Result<_, _>>()?;
    Ok(Completed {
        events,
        unmapped: normalized.unmapped,
        ignored: normalized.ignored,
    })
}

/// Fills the envelope attributes the host owns: id, source, provenance of the adapter, received
/// time, content type, CloudEvents spec version, and a content-derived id when the provider gave
/// none. The trace context is set by [`super::ingest`]: the append span's. The error is an
/// event that must be decoded to be changed and does not decode (see
/// [`PendingEvent::clear_received_at`]).
pub fn complete_event(
    source: &str,
    producer: Producer<'_>,
    request: &WebhookRequest,
    event: &mut PendingEvent,
    index: usize,
    count: usize,
) -> Result<(), prost::DecodeError> {
    event.set_adapter(producer.adapter.to_owned(), producer.version.to_owned());
    if event.provider_event_id().is_empty() {
        event.set_provider_event_id(content_id(&request.body, (count > 1).then_some(index)));
    }
    event.set_id(format!("{source}:{}", event.provider_event_id()));
    event.set_source(source.to_owned());
    match request.received_at {
        Some(received) => {
            event.set_received_at(received);
            if !event.has_time() {
                event.set_time(received);
            }
        }
        None => event.clear_received_at()?,
    }
    event.set_datacontenttype("application/protobuf".to_owned());
    event.set_specversion(crate::stream::cloudevents::SPEC_VERSION.to_owned());
    Ok(())
}

/// "sha256:<hex of the body>[:index]" (the archive's content key, plus the item's index): a
/// stable id for items the provider did not number, so an identical retry still deduplicates.
pub(super) fn content_id(body: &[u8], index: Option<usize>) -> String {
    let key = crate::archive::content_key(body);
    match index {
        Some(index) => format!("{key}:{index}"),
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use prost::bytes::Bytes;
    use tributary_model::v1::{Event, Provenance};
    use tributary_model::well_known::Timestamp;

    const PRODUCER: Producer<'static> = Producer {
        adapter: "probe",
        version: "1.0.0",
    };

    fn request() -> WebhookRequest {
        WebhookRequest {
            source: "s".into(),
            body: b"{}".to_vec(),
            received_at: Some(Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            ..WebhookRequest::default()
        }
    }

    #[test]
    fn events_are_completed_still_encoded() {
        let from_adapter = Event {
            r#type: "statement.available".into(),
            provenance: Some(Provenance {
                provider_event_id: "e1".into(),
                ..Provenance::default()
            }),
            ..Event::default()
        };
        let normalized = EncodedNormalized {
            events: vec![
                Bytes::from(from_adapter.encode_to_vec()),
                Bytes::from(Event::default().encode_to_vec()),
            ],
            unmapped: Vec::new(),
            ignored: vec!["ping".into()],
        };
        let completed = complete("s", PRODUCER, &request(), normalized).expect("completes");
        assert_eq!(completed.ignored, vec!["ping".to_owned()]);
        let first = completed.events[0].event().expect("decodes");
        assert_eq!(first.id, "s:e1");
        assert_eq!(first.source, "s");
        assert_eq!(first.time, request().received_at);
        assert_eq!(first.specversion, "1.0");
        let provenance = first.provenance.expect("set");
        assert_eq!(
            (
                provenance.adapter.as_str(),
                provenance.adapter_version.as_str()
            ),
            ("probe", "1.0.0")
        );
        // No provider id: the body's content key, with the item's index (two events).
        let second = completed.events[1].event().expect("decodes");
        let key = crate::archive::content_key(b"{}");
        assert_eq!(second.id, format!("s:{key}:1"));
    }

    #[test]
    fn an_event_no_reader_could_decode_refuses_the_result() {
        // provenance.provider_event_type is not UTF-8: the head alone would not notice.
        let bad = Bytes::from_static(&[0x62, 0x03, 0x22, 0x01, 0xc3]);
        let normalized = EncodedNormalized {
            events: vec![Bytes::from(Event::default().encode_to_vec()), bad],
            ..EncodedNormalized::default()
        };
        let error = complete("s", PRODUCER, &request(), normalized).expect_err("refused");
        assert_eq!(error.index, 1);
        assert!(
            error
                .to_string()
                .starts_with("event 1 is not a tributary.v1.Event: "),
            "{error}"
        );
    }
}
