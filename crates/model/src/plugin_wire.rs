//! The plugin's answer (`tributary.v1.AdapterResult`) read with each event left encoded.
//!
//! An adapter returns its events encoded; the host stores them as they come back, adding only
//! the envelope fields it owns (appended encoded fields: protobuf keeps the last value of a
//! scalar and merges a repeated message). These mirrors have the same tags and wire types as
//! `AdapterResult` and `Normalized`, but `events` is `repeated bytes` (an embedded message is
//! length-delimited, like bytes): decoding a result from a [`Bytes`](prost::bytes::Bytes) buffer yields each event's
//! encoding as a slice of that buffer, without decoding or copying the events.

use prost::bytes::Bytes;

use crate::v1::{Rejection, SecretInfo, StageTimings, UnmappedItem};

/// `tributary.v1.AdapterResult` with its events left encoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncodedAdapterResult {
    /// The outcome: a normalized result or a rejection.
    #[prost(oneof = "EncodedOutcome", tags = "1, 2")]
    pub outcome: Option<EncodedOutcome>,
    /// How long each stage took inside the adapter (`AdapterResult.timings`).
    #[prost(message, optional, tag = "3")]
    pub timings: Option<StageTimings>,
    /// Which configured secret verified the webhook (`AdapterResult.verified_by`).
    #[prost(message, optional, tag = "4")]
    pub verified_by: Option<SecretInfo>,
}

/// `AdapterResult.outcome`, with the normalized result's events left encoded.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EncodedOutcome {
    /// `AdapterResult.normalized`.
    #[prost(message, tag = "1")]
    Normalized(EncodedNormalized),
    /// `AdapterResult.rejection`.
    #[prost(message, tag = "2")]
    Rejection(Rejection),
}

/// `tributary.v1.Normalized` with each event as its encoding (an encoded `tributary.v1.Event`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncodedNormalized {
    /// Each `Normalized.events` item, still encoded.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub events: Vec<Bytes>,
    /// `Normalized.unmapped`.
    #[prost(message, repeated, tag = "2")]
    pub unmapped: Vec<UnmappedItem>,
    /// `Normalized.ignored`.
    #[prost(string, repeated, tag = "3")]
    pub ignored: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{AdapterResult, Event, Normalized, adapter_result::Outcome};
    use prost::Message as _;

    #[test]
    fn events_come_back_as_their_encodings() {
        let events = vec![
            Event {
                id: "a".into(),
                r#type: "statement.available".into(),
                ..Event::default()
            },
            Event::default(),
        ];
        let result = AdapterResult {
            outcome: Some(Outcome::Normalized(Normalized {
                events: events.clone(),
                unmapped: vec![UnmappedItem {
                    reason: "r".into(),
                    ..UnmappedItem::default()
                }],
                ignored: vec!["ping".into()],
            })),
            timings: Some(StageTimings {
                verify_nanos: 1,
                normalize_nanos: 2,
            }),
            verified_by: Some(SecretInfo {
                index: 1,
                label: "2026-12".into(),
                not_after: None,
            }),
        };
        let bytes = Bytes::from(result.encode_to_vec());
        let encoded = EncodedAdapterResult::decode(bytes.clone()).expect("decodes");
        assert_eq!(encoded.timings, result.timings);
        assert_eq!(encoded.verified_by, result.verified_by);
        let Some(EncodedOutcome::Normalized(normalized)) = encoded.outcome else {
            panic!("not normalized");
        };
        let decoded: Vec<Event> = normalized
            .events
            .iter()
            .map(|e| Event::decode(e.as_ref()).expect("decodes"))
            .collect();
        assert_eq!(decoded, events);
        assert_eq!(normalized.ignored, vec!["ping".to_owned()]);
        assert_eq!(normalized.unmapped.len(), 1);
        // Slices of the one buffer, not copies.
        let range = bytes.as_ptr_range();
        assert!(range.contains(&normalized.events[0].as_ptr()));
        // And back: the mirror encodes to the same bytes.
        let again = EncodedAdapterResult::decode(bytes.clone()).expect("decodes");
        assert_eq!(again.encode_to_vec(), bytes.to_vec());
    }
}
