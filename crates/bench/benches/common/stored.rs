//! The stored form of an event, made both ways (session 6): what the service appends is an
//! event's encoding with the host's envelope fields, so a fair in-process vs library
//! comparison ends at those bytes. In-process: the adapter's decoded events completed and
//! encoded (as the host did before). Library: the plugin's encoded events read for their head
//! and the host's fields appended (`PendingEvent`, as ingest does now). The envelope values
//! are the service's (src/ingest/complete.rs) with fixed ids and times.

use prost::Message;
use prost::bytes::Bytes;
use tributary_event_log::PendingEvent;
use tributary_plugin_sdk::model::plugin_wire::{EncodedAdapterResult, EncodedOutcome};
use tributary_plugin_sdk::model::v1::adapter_result::Outcome;
use tributary_plugin_sdk::model::v1::{Event, Provenance};
use tributary_plugin_sdk::model::well_known::Timestamp;

const RECEIVED: Timestamp = Timestamp {
    seconds: tributary_plugin_host::fixtures::FIXTURE_RECEIVED_AT,
    nanos: 0,
};
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The in-process result's events, completed and encoded as the log stores them.
pub fn encode_decoded(outcome: Outcome) -> Vec<Vec<u8>> {
    let Outcome::Normalized(normalized) = outcome else {
        return Vec::new();
    };
    normalized
        .events
        .into_iter()
        .map(|mut event| {
            complete_decoded(&mut event);
            event.encode_to_vec()
        })
        .collect()
}

/// The library's result, its events completed still encoded, as the log stores them.
pub fn encode_pending(result: EncodedAdapterResult) -> Vec<Bytes> {
    let Some(EncodedOutcome::Normalized(normalized)) = result.outcome else {
        return Vec::new();
    };
    normalized
        .events
        .into_iter()
        .filter_map(|encoded| {
            let mut event = PendingEvent::decode(encoded).ok()?;
            complete_pending(&mut event);
            Some(event.encode())
        })
        .collect()
}

fn complete_decoded(event: &mut Event) {
    let provenance = event.provenance.get_or_insert_with(Provenance::default);
    provenance.adapter = "arcadia".to_owned();
    provenance.adapter_version = "0.1.0".to_owned();
    event.id = format!("bench:{}", provenance.provider_event_id);
    event.source = "bench".to_owned();
    event.received_at = Some(RECEIVED);
    if event.time.is_none() {
        event.time = Some(RECEIVED);
    }
    event.datacontenttype = "application/protobuf".to_owned();
    event.specversion = "1.0".to_owned();
    event.traceparent = TRACEPARENT.to_owned();
    event.tracestate = String::new();
    event.sequence = 1;
}

fn complete_pending(event: &mut PendingEvent) {
    event.set_adapter("arcadia".to_owned(), "0.1.0".to_owned());
    event.set_id(format!("bench:{}", event.provider_event_id()));
    event.set_source("bench".to_owned());
    event.set_received_at(RECEIVED);
    if !event.has_time() {
        event.set_time(RECEIVED);
    }
    event.set_datacontenttype("application/protobuf".to_owned());
    event.set_specversion("1.0".to_owned());
    event.set_trace(TRACEPARENT.to_owned(), String::new());
    event.set_sequence(1);
}

/// Both ways make the same event (checked before timing them).
pub fn assert_same(decoded: &[Vec<u8>], pending: &[Bytes], name: &str) {
    assert_eq!(decoded.len(), pending.len(), "{name}");
    for (a, b) in decoded.iter().zip(pending) {
        assert_eq!(
            Event::decode(a.as_slice()).ok(),
            Event::decode(b.as_ref()).ok(),
            "{name}: the two stored forms differ"
        );
    }
}
