//! The adapter's events are stored as it returned them, with the host's envelope fields
//! appended (`tributary::ingest::complete`): for every golden fixture of every bundled plugin,
//! through the real libraries, that decodes to exactly the `Event` the host made before by
//! decoding each event, setting the fields and encoding it again (written out below).

use tributary::ingest::complete::{self, Producer};
use tributary_model::plugin_wire::EncodedOutcome;
use tributary_model::v1::{Event, Provenance, WebhookRequest, adapter_result::Outcome};
use tributary_plugin_host::fixtures;

use crate::support::repo;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The host's completion before events stayed encoded (ingest's `complete_event`, then the
/// trace context, the archive id and the sequence the log set).
fn complete_decoded(
    source: &str,
    producer: Producer<'_>,
    request: &WebhookRequest,
    event: &mut Event,
    index: usize,
    count: usize,
) {
    let provenance = event.provenance.get_or_insert_with(Provenance::default);
    provenance.adapter = producer.adapter.to_owned();
    provenance.adapter_version = producer.version.to_owned();
    if provenance.provider_event_id.is_empty() {
        let key = tributary::archive::content_key(&request.body);
        provenance.provider_event_id = if count > 1 {
            format!("{key}:{index}")
        } else {
            key
        };
    }
    event.id = format!("{source}:{}", provenance.provider_event_id);
    event.source = source.to_owned();
    event.received_at = request.received_at;
    if event.time.is_none() {
        event.time = request.received_at;
    }
    event.datacontenttype = "application/protobuf".to_owned();
    event.specversion = "1.0".to_owned();
    event.traceparent = TRACEPARENT.to_owned();
    event.tracestate = String::new();
    event.raw_id = 7;
    event.sequence = 42 + index as u64;
}

#[test]
fn every_fixture_stores_the_event_the_decoding_host_made() {
    let mut compared = 0;
    for adapter in ["arcadia", "finicity", "klavi", "standard-webhooks"] {
        let plugin = fixtures::load_built(&format!("tributary-adapter-{adapter}"));
        let info = plugin.info();
        let producer = Producer {
            adapter: &info.name,
            version: &info.version,
        };
        let dir = repo().join("plugins").join(adapter).join("fixtures");
        let default_config = fixtures::default_config(&dir).expect("adapter config");
        for name in fixtures::case_names(&dir).expect("fixtures") {
            let (received, config) =
                fixtures::case(&dir, &name, adapter, &default_config).expect("case");
            let instance = fixtures::create_instance(
                &plugin,
                adapter,
                fixtures::FIXTURE_INSTALLATION_KEY,
                &config,
            )
            .expect("instance");
            // As received, and without a receive time (dry runs may have none).
            let unreceived = WebhookRequest {
                received_at: None,
                ..received.clone()
            };
            for request in [&received, &unreceived] {
                let case = format!("{adapter}/{name} (received_at {:?})", request.received_at);
                let decoded = instance.handle(request).expect("handle");
                let encoded = instance.handle_events_encoded(request).expect("handle");
                let (decoded, encoded) = match (decoded.outcome, encoded.outcome) {
                    (
                        Some(Outcome::Normalized(decoded)),
                        Some(EncodedOutcome::Normalized(encoded)),
                    ) => (decoded, encoded),
                    (Some(Outcome::Rejection(a)), Some(EncodedOutcome::Rejection(b))) => {
                        assert_eq!(a, b, "{case}");
                        continue;
                    }
                    _ => panic!("{case}: the two calls answered differently"),
                };
                let count = decoded.events.len();
                let expected: Vec<Event> = decoded
                    .events
                    .into_iter()
                    .enumerate()
                    .map(|(index, mut event)| {
                        complete_decoded(adapter, producer, request, &mut event, index, count);
                        event
                    })
                    .collect();
                let completed =
                    complete::complete(adapter, producer, request, encoded).expect("complete");
                assert_eq!(completed.unmapped, decoded.unmapped, "{case}");
                assert_eq!(completed.ignored, decoded.ignored, "{case}");
                assert_eq!(completed.events.len(), expected.len(), "{case}");
                for (index, (mut pending, expected)) in
                    completed.events.into_iter().zip(&expected).enumerate()
                {
                    pending.set_trace(TRACEPARENT.to_owned(), String::new());
                    pending.set_raw_id(7);
                    pending.set_sequence(42 + index as u64);
                    assert_eq!(pending.event().as_ref(), Ok(expected), "{case} #{index}");
                    let stored = pending.to_stored();
                    assert_eq!(stored.event().as_ref(), Ok(expected), "{case} #{index}");
                    assert_eq!(stored.source(), expected.source);
                    assert_eq!(stored.event_type(), expected.r#type);
                    assert_eq!(stored.sequence(), expected.sequence);
                    assert_eq!(stored.traceparent(), expected.traceparent);
                    assert_eq!(
                        pending.dedup_key(),
                        tributary_event_log::rules::dedup_key(expected)
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 50, "only {compared} events compared");
}
