use super::*;
use crate::v1::{AdapterResult, Event, Provenance, adapter_result::Outcome};
use crate::well_known::{Struct, Value, value::Kind as ValueKind};
use prost::Message as _;

/// Every event of the bundled plugins' golden fixtures (every payload kind), encoded.
fn fixture_events() -> Vec<Vec<u8>> {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
    let mut events = Vec::new();
    for adapter in ["arcadia", "finicity", "klavi", "standard-webhooks"] {
        let dir = plugins.join(adapter).join("fixtures");
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if !path.to_string_lossy().ends_with(".expected.json") {
                continue;
            }
            let result: AdapterResult =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            if let Some(Outcome::Normalized(normalized)) = result.outcome {
                events.extend(normalized.events.iter().map(|e| e.encode_to_vec()));
            }
        }
    }
    assert!(events.len() > 50, "{} fixture events", events.len());
    events
}

/// The verdicts agree: `check_event` accepts exactly what `Event::decode` accepts.
fn assert_agrees(bytes: &[u8]) {
    let checked = check_event(bytes);
    let decoded = Event::decode(bytes);
    assert_eq!(
        checked.is_ok(),
        decoded.is_ok(),
        "check says {checked:?}, decode says {:?} for {bytes:02x?}",
        decoded.err()
    );
}

#[test]
fn every_fixture_event_passes() {
    for event in fixture_events() {
        assert_eq!(check_event(&event), Ok(()));
    }
}

#[test]
fn mutated_events_are_refused_exactly_when_decoding_fails() {
    // xorshift: reproducible without a dependency.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut refused = 0;
    for event in fixture_events() {
        for _ in 0..200 {
            let mut bytes = event.clone();
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 5 {
                0 if !bytes.is_empty() => bytes[at] = next() as u8,
                1 if !bytes.is_empty() => bytes[at] ^= 0x80,
                2 => bytes.insert(at, next() as u8),
                3 if !bytes.is_empty() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
            assert_agrees(&bytes);
            assert_head_agrees(&bytes);
            refused += usize::from(check_event(&bytes).is_err());
        }
    }
    assert!(refused > 1000, "only {refused} mutations refused");
}

#[test]
fn strings_must_be_utf8_and_wire_types_must_match() {
    // type = "\xff"
    assert_eq!(
        check_event(&[0x1a, 0x01, 0xff]),
        Err(CheckError::NotUtf8 { tag: 3 })
    );
    // sequence (uint64) sent length-delimited.
    assert!(matches!(
        check_event(&[0x52, 0x00]),
        Err(CheckError::WireType { tag: 10, .. })
    ));
    // provenance.provider_event_type = "\xc3" inside the message.
    assert_agrees(&[0x62, 0x03, 0x22, 0x01, 0xc3]);
    // An unknown field is skipped, a truncated one is not.
    assert_eq!(check_event(&[0xf8, 0x07, 0x01]), Ok(()));
    assert_agrees(&[0xfa, 0x07, 0x05, 0x00]);
}

#[test]
fn nesting_is_refused_where_prost_stops() {
    let mut refused = false;
    for depth in 20..40 {
        let mut value = Value {
            kind: Some(ValueKind::StringValue("leaf".into())),
        };
        for _ in 0..depth {
            value = Value {
                kind: Some(ValueKind::StructValue(Struct {
                    fields: [("k".to_owned(), value)].into(),
                })),
            };
        }
        let Some(ValueKind::StructValue(metadata)) = value.kind else {
            unreachable!("built above");
        };
        let bytes = Event {
            partner_metadata: Some(metadata),
            ..Event::default()
        }
        .encode_to_vec();
        assert_agrees(&bytes);
        refused |= check_event(&bytes) == Err(CheckError::TooDeep);
    }
    assert!(refused, "never deep enough");
}

/// The head as prost decodes it (the host's `Head` before the walk read it): the reference
/// [`check_event_head`] must match.
#[derive(Clone, PartialEq, prost::Message)]
struct ProstHead {
    #[prost(string, tag = "2")]
    source: String,
    #[prost(string, tag = "3")]
    r#type: String,
    #[prost(message, optional, tag = "5")]
    time: Option<Present>,
    #[prost(string, tag = "7")]
    traceparent: String,
    #[prost(string, tag = "8")]
    tracestate: String,
    #[prost(uint64, tag = "10")]
    sequence: u64,
    #[prost(message, optional, tag = "11")]
    received_at: Option<Present>,
    #[prost(message, optional, tag = "12")]
    provenance: Option<ProstProvenance>,
    #[prost(message, optional, tag = "16")]
    replay_of: Option<Present>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Present {}

#[derive(Clone, PartialEq, prost::Message)]
struct ProstProvenance {
    #[prost(string, tag = "2")]
    adapter_version: String,
    #[prost(string, tag = "3")]
    provider_event_id: String,
}

impl ProstHead {
    fn borrowed(&self) -> EventHead<'_> {
        EventHead {
            source: &self.source,
            r#type: &self.r#type,
            has_time: self.time.is_some(),
            traceparent: &self.traceparent,
            tracestate: &self.tracestate,
            sequence: self.sequence,
            has_received_at: self.received_at.is_some(),
            provenance: self.provenance.as_ref().map(|p| ProvenanceHead {
                adapter_version: &p.adapter_version,
                provider_event_id: &p.provider_event_id,
            }),
            has_replay_of: self.replay_of.is_some(),
        }
    }
}

/// [`check_event_head`] gives [`check_event`]'s verdict and, on what passes, the head prost
/// decodes.
fn assert_head_agrees(bytes: &[u8]) {
    let head = check_event_head(bytes);
    assert_eq!(
        head.as_ref().err(),
        check_event(bytes).as_ref().err(),
        "for {bytes:02x?}"
    );
    if let Ok(head) = head {
        let expected = ProstHead::decode(bytes).expect("what the check passes decodes");
        assert_eq!(head, expected.borrowed(), "for {bytes:02x?}");
    }
}

#[test]
fn the_head_is_what_prost_decodes() {
    let events = fixture_events();
    let mut provenances = 0;
    for event in &events {
        assert_head_agrees(event);
        provenances += usize::from(
            check_event_head(event)
                .expect("passes")
                .provenance
                .is_some(),
        );
    }
    assert!(
        provenances > 50,
        "only {provenances} fixture events with a provenance"
    );
    // Two encodings one after the other decode as the second merged into the first: every
    // field repeated, provenance and time occurring twice.
    for (first, second) in events.iter().zip(events.iter().rev()) {
        let merged = [first.as_slice(), second.as_slice()].concat();
        assert_agrees(&merged);
        assert_head_agrees(&merged);
    }
}

#[test]
fn repeated_head_fields_keep_the_last_value_and_provenances_merge() {
    let first = Event {
        source: "a".into(),
        r#type: "t1".into(),
        sequence: 7,
        traceparent: "tp".into(),
        time: Some(Default::default()),
        provenance: Some(Provenance {
            adapter_version: "1".into(),
            provider_event_id: "p".into(),
            ..Provenance::default()
        }),
        ..Event::default()
    };
    let second = Event {
        r#type: "t2".into(),
        tracestate: "ts".into(),
        received_at: Some(Default::default()),
        replay_of: Some(Default::default()),
        provenance: Some(Provenance {
            adapter_version: "2".into(),
            ..Provenance::default()
        }),
        ..Event::default()
    };
    let bytes = [first.encode_to_vec(), second.encode_to_vec()].concat();
    assert_head_agrees(&bytes);
    assert_eq!(
        check_event_head(&bytes),
        Ok(EventHead {
            source: "a",
            r#type: "t2",
            has_time: true,
            traceparent: "tp",
            tracestate: "ts",
            sequence: 7,
            has_received_at: true,
            provenance: Some(ProvenanceHead {
                adapter_version: "2",
                provider_event_id: "p",
            }),
            has_replay_of: true,
        })
    );
    // A default value written explicitly (as the host appends them) replaces the one before.
    let mut cleared = bytes.clone();
    encoding::string::encode(3, &String::new(), &mut cleared);
    encoding::uint64::encode(10, &0, &mut cleared);
    assert_head_agrees(&cleared);
    let head = check_event_head(&cleared).expect("passes");
    assert_eq!((head.r#type, head.sequence), ("", 0));
    // A non-UTF-8 head string is refused as any other.
    assert_eq!(
        check_event_head(&[0x12, 0x01, 0xff]),
        Err(CheckError::NotUtf8 { tag: 2 })
    );
    assert_head_agrees(&[0x62, 0x03, 0x1a, 0x01, 0xc3]);
}

#[test]
fn non_ascii_strings_are_checked_as_utf8() {
    // "é" (two bytes), a lone continuation byte, a truncated sequence, an overlong encoding,
    // a surrogate: in the type (read by the head) and in the subject (only checked).
    let strings: [&[u8]; 6] = [
        "é".as_bytes(),
        "a😀b".as_bytes(),
        &[0x80],
        &[0xe2, 0x82],
        &[0xc0, 0xaf],
        &[0xed, 0xa0, 0x80],
    ];
    for string in strings {
        for tag in [3u8, 4] {
            let mut bytes = vec![(tag << 3) | 2, string.len() as u8];
            bytes.extend_from_slice(string);
            assert_agrees(&bytes);
            assert_head_agrees(&bytes);
        }
    }
}
