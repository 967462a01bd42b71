//! Reading delivered events and checking them.

use std::time::Duration;

use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{AckRequest, Event};

/// The next event of a subscription; panics when none arrives `within`, the stream ends, or it
/// fails.
pub async fn next_event(
    stream: &mut (impl Stream<Item = Result<Event, tonic::Status>> + Unpin),
    within: Duration,
) -> Event {
    match tokio::time::timeout(within, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("no event within {within:?}: {other:?}"),
    }
}

/// Acknowledges `sequence` for the durable consumer `consumer`; returns the consumer's
/// acknowledged sequence after it.
pub async fn ack(
    client: &mut EventStreamClient<Channel>,
    consumer: &str,
    sequence: u64,
) -> Result<u64, tonic::Status> {
    let request = AckRequest {
        consumer: consumer.into(),
        sequence,
    };
    Ok(client.ack(request).await?.into_inner().acked_sequence)
}

/// The provider's event id of an event (its provenance).
pub fn provider_id(event: &Event) -> String {
    event
        .provenance
        .as_ref()
        .expect("provenance")
        .provider_event_id
        .clone()
}

/// The provider's event ids of `events`, in order.
pub fn provider_ids(events: &[Event]) -> Vec<String> {
    events.iter().map(provider_id).collect()
}

/// Asserts the log holds every acknowledged webhook exactly once, with sequences 1..=n and no
/// gap: what "a 2xx means stored" promises after crashes and failovers.
pub fn assert_exactly_once(events: &[Event], acknowledged: &[String]) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1, "no gap in sequences");
        *seen.entry(provider_id(event)).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a webhook was stored twice");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}
