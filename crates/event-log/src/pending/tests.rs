use super::*;
use tributary_model::v1::{Provenance, References, ReplayOf, StatementEvent, event::Payload};

fn ts(seconds: i64, nanos: i32) -> Timestamp {
    Timestamp { seconds, nanos }
}

/// What an adapter returns: payload and provider fields, no host envelope.
fn from_adapter() -> Event {
    Event {
        r#type: "statement.available".into(),
        subject: "stm_1".into(),
        provenance: Some(Provenance {
            provider_event_id: "whk_1".into(),
            provider_event_type: "STATEMENT".into(),
            provider_created_at: Some(ts(5, 6)),
            ..Provenance::default()
        }),
        references: Some(References {
            customer_id: "c".into(),
            ..References::default()
        }),
        payload: Some(Payload::Statement(StatementEvent::default())),
        ..Event::default()
    }
}

fn pending(event: &Event) -> PendingEvent {
    PendingEvent::decode(Bytes::from(event.encode_to_vec())).expect("decodes")
}

#[test]
fn appended_fields_decode_as_if_set_on_the_event() {
    let mut expected = from_adapter();
    let mut event = pending(&expected);
    assert_eq!(event.event_type(), "statement.available");
    assert_eq!(event.provider_event_id(), "whk_1");
    assert!(!event.has_time());

    event.set_adapter("arcadia".into(), "0.1.0".into());
    event.set_id("s:whk_1".into());
    event.set_source("s".into());
    event.set_received_at(ts(100, 0));
    event.set_time(ts(100, 0));
    event.set_datacontenttype("application/protobuf".into());
    event.set_specversion("1.0".into());
    event.set_trace("00-a-b-01".into(), String::new());
    event.set_raw_id(9);
    event.set_sequence(3);

    let provenance = expected.provenance.as_mut().expect("set");
    provenance.adapter = "arcadia".into();
    provenance.adapter_version = "0.1.0".into();
    expected.id = "s:whk_1".into();
    expected.source = "s".into();
    expected.received_at = Some(ts(100, 0));
    expected.time = Some(ts(100, 0));
    expected.datacontenttype = "application/protobuf".into();
    expected.specversion = "1.0".into();
    expected.traceparent = "00-a-b-01".into();
    expected.raw_id = 9;
    expected.sequence = 3;
    assert_eq!(event.event().expect("decodes"), expected);
    assert_eq!(
        event.encode().len(),
        event.appended.encoded_len() + event.encoded.len()
    );

    let stored = event.to_stored();
    assert_eq!(stored.event().expect("decodes"), expected);
    assert_eq!(stored.sequence(), 3);
    assert_eq!(stored.source(), "s");
    assert_eq!(stored.event_type(), "statement.available");
    assert_eq!(stored.traceparent(), "00-a-b-01");
}

#[test]
fn appended_values_replace_whatever_the_adapter_set() {
    // An adapter that set host fields itself, with values the host replaces by defaults.
    let mut expected = Event {
        id: "theirs".into(),
        source: "theirs".into(),
        datacontenttype: "text/plain".into(),
        traceparent: "theirs".into(),
        tracestate: "theirs".into(),
        sequence: 77,
        raw_id: 5,
        time: Some(ts(1, 999)),
        received_at: Some(ts(2, 999)),
        provenance: Some(Provenance {
            adapter: "theirs".into(),
            adapter_version: "9".into(),
            provider_event_id: "p".into(),
            provider_event_type: "kept".into(),
            ..Provenance::default()
        }),
        ..from_adapter()
    };
    let mut event = pending(&expected);
    event.set_id(String::new());
    event.set_source(String::new());
    event.set_datacontenttype(String::new());
    event.set_trace(String::new(), String::new());
    event.set_sequence(0);
    event.set_raw_id(0);
    event.set_time(ts(3, 0));
    event.set_received_at(ts(0, 0));
    event.set_adapter(String::new(), String::new());
    event.set_provider_event_id("q".into());
    expected.id.clear();
    expected.source.clear();
    expected.datacontenttype.clear();
    expected.traceparent.clear();
    expected.tracestate.clear();
    expected.sequence = 0;
    expected.raw_id = 0;
    expected.time = Some(ts(3, 0));
    expected.received_at = Some(ts(0, 0));
    let provenance = expected.provenance.as_mut().expect("set");
    provenance.adapter.clear();
    provenance.adapter_version.clear();
    provenance.provider_event_id = "q".into();
    assert_eq!(event.event().expect("decodes"), expected);
    assert_eq!(event.provider_event_id(), "q");
    assert_eq!(event.sequence(), 0);
    assert_eq!(event.source(), "");
}

#[test]
fn a_provenance_is_created_when_the_adapter_gave_none() {
    let mut expected = Event {
        provenance: None,
        ..from_adapter()
    };
    let mut event = pending(&expected);
    assert_eq!(event.provider_event_id(), "");
    event.set_adapter("a".into(), "1".into());
    event.set_provider_event_id("sha256:00".into());
    expected.provenance = Some(Provenance {
        adapter: "a".into(),
        adapter_version: "1".into(),
        provider_event_id: "sha256:00".into(),
        ..Provenance::default()
    });
    assert_eq!(event.event().expect("decodes"), expected);
    assert_eq!(event.provider_event_id(), "sha256:00");
}

#[test]
fn clearing_received_at_rewrites_only_when_it_is_there() {
    let mut without = pending(&from_adapter());
    without.clear_received_at().expect("decodes");
    assert_eq!(without.event().expect("decodes"), from_adapter());

    let with = Event {
        received_at: Some(ts(1, 2)),
        ..from_adapter()
    };
    let mut event = pending(&with);
    event.set_source("s".into());
    event.clear_received_at().expect("decodes");
    let expected = Event {
        source: "s".into(),
        ..from_adapter()
    };
    assert_eq!(event.event().expect("decodes"), expected);
    assert_eq!(event.source(), "s");
}

#[test]
fn dedup_keys_are_the_rules() {
    let original = from_adapter();
    let replay = Event {
        replay_of: Some(ReplayOf::default()),
        provenance: Some(Provenance {
            adapter_version: "0.2.0".into(),
            ..original.provenance.clone().expect("set")
        }),
        ..original.clone()
    };
    for event in [&original, &replay] {
        assert_eq!(pending(event).dedup_key(), crate::rules::dedup_key(event));
        assert_eq!(
            PendingEvent::from_event(event).dedup_key(),
            crate::rules::dedup_key(event)
        );
    }
    let mut replayed = pending(&replay);
    replayed.set_adapter("a".into(), "0.3.0".into());
    assert_eq!(replayed.dedup_key(), "whk_1#replay@0.3.0");
}

#[test]
fn nothing_set_shares_the_bytes() {
    let bytes = Bytes::from(from_adapter().encode_to_vec());
    let event = PendingEvent::decode(bytes.clone()).expect("decodes");
    assert_eq!(event.encode().as_ptr(), bytes.as_ptr());
    assert_eq!(PendingEvent::from_event(&from_adapter()), event);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(PendingEvent::decode(Bytes::from_static(&[0x1a, 0xff])).is_err());
    // A field the head skips is still checked: provenance.provider_event_type not UTF-8.
    let nested = Bytes::from_static(&[0x62, 0x03, 0x22, 0x01, 0xc3]);
    assert!(matches!(
        PendingEvent::decode(nested),
        Err(UnreadableEvent::Invalid(_))
    ));
}

#[test]
fn the_head_read_from_an_encoding_is_the_decoded_events() {
    let replay = Event {
        source: "s".into(),
        traceparent: "00-a-b-01".into(),
        tracestate: "k=v".into(),
        sequence: 4,
        time: Some(ts(1, 0)),
        received_at: Some(ts(2, 0)),
        replay_of: Some(ReplayOf::default()),
        ..from_adapter()
    };
    // A second provenance (merged), a second type and sequence (the last kept).
    let again = Event {
        r#type: "statement.updated".into(),
        sequence: 5,
        provenance: Some(Provenance {
            adapter_version: "0.2.0".into(),
            ..Provenance::default()
        }),
        ..Event::default()
    };
    let merged = [replay.encode_to_vec(), again.encode_to_vec()].concat();
    for bytes in [
        from_adapter().encode_to_vec(),
        replay.encode_to_vec(),
        merged,
    ] {
        let event = Event::decode(bytes.as_slice()).expect("decodes");
        let read = PendingEvent::decode(Bytes::from(bytes)).expect("decodes");
        assert_eq!(read.head, PendingEvent::from_event(&event).head);
        assert_eq!(read.dedup_key(), crate::rules::dedup_key(&event));
    }
}

#[test]
fn varint_field_reads_one_field_of_an_encoded_message() {
    use prost::Message as _;
    use tributary_model::fields;
    use tributary_model::v1::DeadLetter;
    let event = Event {
        id: "e".to_owned(),
        raw_id: 42,
        sequence: 7,
        ..Event::default()
    };
    let bytes = event.encode_to_vec();
    assert_eq!(super::varint_field(&bytes, fields::event::RAW_ID), Ok(42));
    assert_eq!(super::varint_field(&bytes, fields::event::SEQUENCE), Ok(7));
    let letter = DeadLetter {
        raw_id: 9,
        ..DeadLetter::default()
    };
    let bytes = letter.encode_to_vec();
    assert_eq!(
        super::varint_field(&bytes, fields::dead_letter::RAW_ID),
        Ok(9)
    );
    assert_eq!(super::varint_field(b"", fields::event::RAW_ID), Ok(0));
    assert!(super::varint_field(&[0xff], fields::event::RAW_ID).is_err());
}
