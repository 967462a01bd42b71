//! Background work of each instance: follow the stream (live tail across instances), probe
//! JetStream for `/readyz`, and apply retention (events, dead letters, archive links).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::stream::RawMessageErrorKind;
use futures_util::StreamExt;
use prost::Message as _;
use tributary_event_log::{LogError, rules};
use tributary_model::v1::DeadLetter;
use tributary_model::well_known::Timestamp;

use crate::{Inner, archive, consumers, dedup, read, unreachable_reason};

/// How often the probe asks the stream for its state.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How often dedup keys an append could not record are written again.
const REPAIR_INTERVAL: Duration = Duration::from_secs(1);
/// Pause before following the stream again after the follower failed.
const FOLLOW_RETRY: Duration = Duration::from_secs(1);
/// Dead-letter states examined per retention pass (the sweep continues there next pass).
const STATES_PER_PASS: usize = 2048;

pub(crate) fn spawn(inner: &Arc<Inner>) {
    tokio::spawn(follow(Arc::downgrade(inner)));
    tokio::spawn(probe(Arc::downgrade(inner)));
    if inner.dedup.is_some() {
        tokio::spawn(repair_dedup(Arc::downgrade(inner)));
    }
    let retention = &inner.config.retention;
    if retention.removes_anything() {
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

/// Writes the dedup keys an append could not record (a KV write failed during an election),
/// every second until they are all written.
async fn repair_dedup(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(REPAIR_INTERVAL).await;
        let Some(inner) = weak.upgrade() else { return };
        dedup::repair(&inner).await;
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
            inner.set_health(Err(unreachable_reason(&state)));
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

/// One retention pass: events, dead letters, then the links of archive entries JetStream
/// removed (it applies the archive's limits itself). Every instance runs it; each step is
/// idempotent. Returns how many events went.
pub(crate) async fn retention_pass(inner: &Inner) -> Result<u64, LogError> {
    let events = purge_events(inner).await?;
    remove_dead_letters(inner).await?;
    let links = archive::sweep_links(inner).await?;
    if links > 0 {
        tracing::info!(
            links,
            "retention removed links of removed raw-archive entries"
        );
    }
    Ok(events)
}

/// Purges the oldest events by age and by size, never past the lowest acknowledged sequence
/// of the durable consumers unless `override_consumers`. Their dedup keys stay in the
/// `<stream>_DEDUP` bucket for the horizon. Returns how many events went.
async fn purge_events(inner: &Inner) -> Result<u64, LogError> {
    let retention = &inner.config.retention;
    if retention.max_age.is_none() && retention.max_bytes.is_none() {
        return Ok(0);
    }
    let state = crate::read::stream_info(&inner.events).await?.state;
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

/// Dead-letter retention: the oldest letters beyond `dead_letter_max_count` are purged (one
/// request), then a sweep of the redrive-state bucket removes resolved letters resolved before
/// `dead_letter_max_age` (letter and state) and the states of purged letters. The dedup keys
/// (`d.` keys in `<stream>_DEDUP`) stay for the horizon. Returns how many letters went.
async fn remove_dead_letters(inner: &Inner) -> Result<u64, LogError> {
    let retention = &inner.config.retention;
    if retention.dead_letter_max_age.is_none() && retention.dead_letter_max_count.is_none() {
        return Ok(0);
    }
    let stream = inner.config.dead_letter_stream();
    let mut removed = 0;
    if let Some(max_count) = retention.dead_letter_max_count {
        let info = crate::read::stream_info(&inner.dead).await?;
        if info.state.messages > max_count {
            let purged = inner
                .dead
                .purge()
                .keep(max_count)
                .await
                .map_err(|e| LogError::storage(format!("cannot purge {stream}"), e))?;
            removed += purged.purged;
        }
    }
    removed += sweep_dead_letter_states(inner).await?;
    if removed > 0 {
        tracing::info!(removed, "retention removed dead letters");
    }
    Ok(removed)
}

/// Examines up to [`STATES_PER_PASS`] redrive states, continuing where the last pass stopped:
/// a state whose letter was purged goes; a letter resolved before the age limit goes with its
/// state. Returns how many letters went by age.
async fn sweep_dead_letter_states(inner: &Inner) -> Result<u64, LogError> {
    let info = crate::read::stream_info(&inner.dead).await?;
    let first_letter = crate::read::first_stored(&info.state);
    let states = &inner.dead_state_stream;
    let state_info = crate::read::stream_info(states).await?;
    let (first, last) = (
        state_info.state.first_sequence,
        state_info.state.last_sequence,
    );
    let cutoff = inner
        .config
        .retention
        .dead_letter_max_age
        .map(|age| rules::unix_millis(&timestamp_before(age)));
    let prefix = format!("$KV.{}.", inner.config.dead_letter_bucket());
    let filter = format!("{prefix}>");
    let mut after = inner
        .sweep_after
        .load(Ordering::Relaxed)
        .max(first.saturating_sub(1));
    let mut examined = 0;
    let mut removed = 0;
    loop {
        let messages = read::messages_after(states, &filter, after, last, 256).await?;
        if messages.is_empty() {
            after = 0;
            break;
        }
        for message in &messages {
            after = message.sequence;
            examined += 1;
            let Some(id) = message
                .subject
                .as_str()
                .strip_prefix(prefix.as_str())
                .and_then(|id| id.parse::<u64>().ok())
            else {
                continue;
            };
            let expired = cutoff.is_some_and(|cutoff| {
                DeadLetter::decode(message.payload.as_ref())
                    .ok()
                    .and_then(|state| state.resolved_at)
                    .is_some_and(|at| rules::unix_millis(&at) < cutoff)
            });
            if expired {
                delete_dead_letter(inner, id).await?;
                removed += 1;
            } else if id >= first_letter {
                continue;
            }
            // Its letter is gone: so goes its state (all of the subject, no marker left).
            states
                .purge()
                .filter(message.subject.as_str())
                .await
                .map_err(|e| {
                    LogError::storage(format!("cannot remove dead letter {id} state"), e)
                })?;
        }
        if after >= last {
            after = 0;
            break;
        }
        if examined >= STATES_PER_PASS {
            break;
        }
    }
    inner.sweep_after.store(after, Ordering::Relaxed);
    Ok(removed)
}

/// Deletes dead letter `id` from its stream; already gone is fine.
async fn delete_dead_letter(inner: &Inner, id: u64) -> Result<(), LogError> {
    let Err(error) = inner.dead.delete_message(id).await else {
        return Ok(());
    };
    match inner.dead.get_raw_message(id).await {
        Err(gone) if gone.kind() == RawMessageErrorKind::NoMessageFound => Ok(()),
        _ => Err(LogError::storage(
            format!("cannot remove dead letter {id}"),
            error,
        )),
    }
}
