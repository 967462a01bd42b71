//! Background work of each instance: follow the stream (live tail across instances), probe
//! JetStream for `/readyz`, and apply retention.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures_util::StreamExt;
use tributary_event_log::{LogError, rules};
use tributary_model::well_known::Timestamp;

use crate::{Inner, consumers, read, unreachable_reason};

/// How often the probe asks the stream for its state.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Pause before following the stream again after the follower failed.
const FOLLOW_RETRY: Duration = Duration::from_secs(1);

pub(crate) fn spawn(inner: &Arc<Inner>) {
    tokio::spawn(follow(Arc::downgrade(inner)));
    tokio::spawn(probe(Arc::downgrade(inner)));
    let retention = &inner.config.retention;
    if retention.max_age.is_some() || retention.max_bytes.is_some() {
        tokio::spawn(retention_loop(
            Arc::downgrade(inner),
            retention.interval.max(Duration::from_millis(100)),
        ));
    }
}

/// Follows the events stream with an ordered consumer (headers only) and announces every new
/// stream sequence on the `last_sequence` watch: an event appended through another instance
/// wakes this instance's subscribers. Recreated after any failure.
async fn follow(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let config = push::OrderedConfig {
            deliver_subject: inner.client.new_inbox(),
            description: Some("tributary live tail".into()),
            filter_subject: inner.config.events_filter(),
            headers_only: true,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: inner.known_last() + 1,
            },
            ..Default::default()
        };
        let messages = match inner.events.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        drop(inner);
        match messages {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    let Some(inner) = weak.upgrade() else { return };
                    match message {
                        Ok(message) => {
                            if let Ok(info) = message.info() {
                                inner.saw(info.stream_sequence);
                            }
                        }
                        Err(error) => {
                            tracing::debug!(%error, "live tail interrupted; following again");
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "cannot follow the events stream yet"),
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
    }
}

/// Asks the stream for its state every second: keeps `last_sequence` current even when the
/// follower is being recreated, and reports on `/readyz` whether JetStream answers.
async fn probe(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(inner) = weak.upgrade() else { return };
        let state = inner.client.connection_state();
        if state != async_nats::connection::State::Connected {
            inner.set_health(Err(unreachable_reason(&inner.config, &state)));
            continue;
        }
        match inner.events.get_info().await {
            Ok(info) => {
                inner.saw(info.state.last_sequence);
                inner.set_health(Ok(()));
            }
            Err(error) => inner.set_health(Err(format!(
                "JetStream stream {} does not answer: {error}",
                inner.config.stream
            ))),
        }
    }
}

async fn retention_loop(weak: Weak<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        if let Err(error) = retention_pass(&inner).await {
            tracing::warn!(%error, "retention pass failed");
        }
    }
}

fn timestamp_before(age: Duration) -> Timestamp {
    rules::timestamp(SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH))
}

/// One retention pass: purges the oldest events by age and by size, never past the lowest
/// acknowledged sequence of the durable consumers unless `override_consumers`. Every instance
/// runs it; purging up to a sequence is idempotent. Returns how many events went.
pub(crate) async fn retention_pass(inner: &Inner) -> Result<u64, LogError> {
    let retention = &inner.config.retention;
    let info =
        inner.events.get_info().await.map_err(|e| {
            LogError::storage(format!("cannot read stream {}", inner.config.stream), e)
        })?;
    let state = info.state;
    if state.messages == 0 {
        return Ok(0);
    }
    let (first, last) = (state.first_sequence, state.last_sequence);
    // Highest sequence that may go.
    let mut cut = 0;
    if let Some(max_age) = retention.max_age {
        cut = cut.max(read::sequence_before_time(inner, timestamp_before(max_age)).await?);
    }
    if let Some(max_bytes) = retention.max_bytes
        && state.bytes > max_bytes
    {
        // JetStream reports only totals: remove the average message size's worth.
        let average = (state.bytes / state.messages).max(1);
        let excess = (state.bytes - max_bytes).div_ceil(average);
        cut = cut.max(first.saturating_sub(1) + excess);
    }
    if !retention.override_consumers
        && let Some(lowest) = consumers::lowest_ack(inner).await?
    {
        cut = cut.min(lowest);
    }
    let cut = cut.min(last);
    if cut < first {
        return Ok(0);
    }
    let purged = inner
        .events
        .purge()
        .sequence(cut + 1)
        .await
        .map_err(|e| LogError::storage(format!("cannot purge {}", inner.config.stream), e))?;
    tracing::info!(
        removed = purged.purged,
        first_kept = cut + 1,
        "retention removed old events"
    );
    Ok(purged.purged)
}
