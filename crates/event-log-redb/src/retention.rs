//! Retention: removes the oldest events by age and by size, never past what a durable consumer
//! still has to acknowledge (unless configured to).

use std::time::Duration;

use prost::Message;
use redb::{ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};
use tributary_model::v1::{Consumer, Event};

use super::writer::{Job, Op, now_millis};
use super::{CONSUMERS, DEDUP, EVENTS, META, TIME_INDEX, storage};
use tributary_event_log::LogError;
use tributary_event_log::Retention;
use tributary_event_log::rules::provider_event_id;

// What the log was doing, named in its storage errors.
const RETENTION: &str = "applying retention";

/// Most events removed per pass, so one pass never holds the writer for long.
const MAX_REMOVED_PER_PASS: usize = 50_000;

/// Asks the writer to run retention every `interval`.
pub(crate) fn schedule(ops: mpsc::Sender<Job>, interval: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let (reply, answer) = oneshot::channel();
            if ops
                .send(Job {
                    op: Op::Retention,
                    reply,
                })
                .await
                .is_err()
            {
                return;
            }
            if let Ok(Err(error)) = answer.await {
                tracing::warn!(%error, "retention pass failed");
            }
        }
    });
}

/// One retention pass inside the writer's transaction. Returns the newest sequence it removed,
/// if any.
pub(crate) fn apply(
    txn: &WriteTransaction,
    retention: &Retention,
) -> Result<Option<u64>, LogError> {
    let mut events = txn.open_table(EVENTS).map_err(storage(RETENTION))?;
    let Some(first) = events
        .first()
        .map_err(storage(RETENTION))?
        .map(|(k, _)| k.value())
    else {
        return Ok(None);
    };
    let last = events
        .last()
        .map_err(storage(RETENTION))?
        .map(|(k, _)| k.value())
        .unwrap_or(first);
    let mut times = txn.open_table(TIME_INDEX).map_err(storage(RETENTION))?;
    let mut meta = txn.open_table(META).map_err(storage(RETENTION))?;
    let mut bytes = meta
        .get("event_bytes")
        .map_err(storage(RETENTION))?
        .map(|v| v.value())
        .unwrap_or(0);

    // Highest sequence that may go, by age.
    let mut cut = 0;
    if let Some(max_age) = retention.max_age {
        let cutoff = now_millis().saturating_sub(max_age.as_millis() as u64);
        let first_kept = times
            .range(cutoff..)
            .map_err(storage(RETENTION))?
            .next()
            .transpose()
            .map_err(storage(RETENTION))?
            .map(|(_, seq)| seq.value())
            .unwrap_or(last + 1);
        cut = cut.max(first_kept.saturating_sub(1));
    }
    // Never past what a durable consumer still needs.
    let mut limit = last;
    if !retention.override_consumers {
        let consumers = txn.open_table(CONSUMERS).map_err(storage(RETENTION))?;
        for entry in consumers.iter().map_err(storage(RETENTION))? {
            let (_, value) = entry.map_err(storage(RETENTION))?;
            let consumer = Consumer::decode(value.value())
                .map_err(|source| LogError::Corrupt { key: 0, source })?;
            limit = limit.min(consumer.acked_sequence);
        }
    }

    let mut dedup = txn.open_table(DEDUP).map_err(storage(RETENTION))?;
    let mut removed = 0u64;
    let mut sequence = first;
    while sequence <= limit && (removed as usize) < MAX_REMOVED_PER_PASS {
        let over_size = retention.max_bytes.is_some_and(|max| bytes > max);
        if sequence > cut && !over_size {
            break;
        }
        if let Some(value) = events.remove(sequence).map_err(storage(RETENTION))? {
            let encoded = value.value();
            bytes = bytes.saturating_sub(encoded.len() as u64);
            if let Ok(event) = Event::decode(encoded) {
                let id = provider_event_id(&event);
                dedup
                    .remove((event.source.as_str(), id))
                    .map_err(storage(RETENTION))?;
            }
            removed += 1;
        }
        sequence += 1;
    }
    if removed > 0 {
        // Drop time-index entries that point only at removed events.
        let stale: Vec<u64> = times
            .iter()
            .map_err(storage(RETENTION))?
            .map_while(|entry| entry.ok())
            .take_while(|(_, seq)| seq.value() < sequence)
            .map(|(millis, _)| millis.value())
            .collect();
        for millis in stale {
            times.remove(millis).map_err(storage(RETENTION))?;
        }
        meta.insert("event_bytes", bytes)
            .map_err(storage(RETENTION))?;
        tracing::info!(
            removed,
            first_kept = sequence,
            "retention removed old events"
        );
        return Ok(Some(sequence - 1));
    }
    Ok(None)
}
