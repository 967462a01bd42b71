use super::*;
use crate::v1::{AdapterResult, Event, adapter_result::Outcome};
use crate::well_known::{Struct, Value, value::Kind as ValueKind};
use prost::Message as _;

/// Every event of the bundled plugins' golden fixtures (every payload kind), encoded.
fn fixture_events() -> Vec<Vec<u8>> {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
    let mut events = Vec::new();
    for adapter in ["arcadia", "finicity", "klavi"] {
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
