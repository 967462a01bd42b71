//! Retention: removes the oldest events by age and by size, never past what a durable consumer
//! still has to acknowledge (unless configured to); removes resolved dead letters by age and
//! the oldest dead letters beyond a count; expires raw-archive blocks; and prunes the dedup
//! keys of removed items once they are older than the dedup horizon.
//!
//! Events go a segment at a time: a segment whose every event may go is dropped whole
//! (`delete_keyspace`, after the batch that forgets its record is durable), and only the one
//! segment at the boundary is trimmed key by key. Deciding reads segment records and at most
//! one time-index lookup; nothing is read per event of a dropped segment.
//!
//! Dedup keys: a removed event keeps its sequence as its key's owner; a sequence below the
//! first stored one means "retired", still a duplicate. Each pass that removes events records
//! the removed run (removal time, first and last sequence) in `retired_events`; once the run is
//! older than the horizon, its keys are found in the segments' `keys.<n>` keyspaces and
//! removed from `dedup` (a tombstone per key, the one per-item cost left, paid a horizon
//! later), and `keys.<n>` is dropped whole once every key in it is pruned. Removed dead
//! letters retire their keys explicitly (value [`RETIRED`], indexed in `retired` by time).

use std::time::Duration;

use prost::Message;
use tributary_event_log::{LogError, Retention, rules};
use tributary_model::v1::Consumer;

use crate::keys;
use crate::segments::{self, Segment};
use crate::staged::Space;
use crate::store::{DEAD_LETTER_TAG, RETIRED, storage};
use crate::tx::Tx;
use crate::writer::now_millis;

const RETENTION: &str = "applying retention";

/// Most events removed key by key per pass (whole segments are not counted).
const MAX_TRIMMED_PER_PASS: u64 = 50_000;
/// Most whole segments dropped per pass.
const MAX_SEGMENTS_PER_PASS: usize = 64;
/// Most dead letters removed per pass (they carry raw bodies).
const MAX_DEAD_LETTERS_PER_PASS: u64 = 10_000;
/// Most retired dedup keys pruned per pass.
const MAX_KEYS_PER_PASS: u64 = 100_000;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a pass staged besides its writes.
#[derive(Default)]
pub(crate) struct Pass {
    /// Segments dropped whole: their keyspaces go once the batch is durable.
    pub dropped: Vec<u64>,
    /// `keys.<n>` keyspaces whose every key is pruned.
    pub dropped_keys: Vec<u64>,
    /// The newest sequence removed, if any.
    pub removed_through: Option<u64>,
}

/// Stages one retention pass in `tx`.
pub(crate) fn apply(tx: &mut Tx<'_>, retention: &Retention) -> Result<Pass, LogError> {
    let now = now_millis();
    let horizon = millis(retention.dedup_horizon);
    let mut pass = Pass::default();
    let first_before = tx.segments.values().next().map(|s| s.meta.first);
    if let Some(cut) = events_cut(tx, retention, now)? {
        remove_events(tx, cut, &mut pass)?;
        if let (Some(from), Some(through)) = (first_before, pass.removed_through)
            && through >= from
        {
            tx.staged.put(
                Space::RetiredEvents,
                keys::pair_key(now, from).to_vec(),
                keys::u64_key(through).to_vec(),
            );
        }
    }
    let letters = remove_dead_letters(tx, retention, now)?;
    let pruned = prune_letter_keys(tx, now, horizon)? + prune_event_keys(tx, now, horizon)?;
    let old_keys_from = tx.next.keys_from;
    let keys_from = segments::number_of(tx.next.keys_pruned_through + 1, tx.segment_events);
    if keys_from > old_keys_from {
        tx.next.keys_from = keys_from;
        pass.dropped_keys = (old_keys_from..keys_from).collect();
    }
    let raw = crate::archive::expire(tx.store, retention, now, &mut tx.next, &mut tx.staged)?;
    if let Some(through) = pass.removed_through {
        tracing::info!(
            first_kept = through + 1,
            segments_dropped = pass.dropped.len(),
            "retention removed old events"
        );
    }
    if letters > 0 || pruned > 0 || raw > 0 {
        tracing::info!(
            dead_letters = letters,
            dedup_keys = pruned,
            raw_archive_entries = raw,
            "retention removed dead letters, expired dedup keys and raw-archive entries"
        );
    }
    Ok(pass)
}

/// The newest sequence this pass may remove, if any.
fn events_cut(tx: &Tx<'_>, retention: &Retention, now: u64) -> Result<Option<u64>, LogError> {
    let segments: Vec<&Segment> = tx.segments.values().collect();
    let (Some(oldest), Some(newest)) = (segments.first(), segments.last()) else {
        return Ok(None);
    };
    let (first, last) = (oldest.meta.first, newest.meta.last);
    // Never past what a durable consumer still needs.
    let mut limit = last;
    if !retention.override_consumers {
        for item in tx.store.consumers.iter() {
            let (_, value) = item.into_inner().map_err(storage(RETENTION))?;
            let consumer = Consumer::decode(value.as_ref())
                .map_err(|source| LogError::Corrupt { key: 0, source })?;
            limit = limit.min(consumer.acked_sequence);
        }
    }
    let mut cut = 0;
    if let Some(max_age) = retention.max_age {
        let cutoff = now.saturating_sub(millis(max_age));
        cut = match segments.iter().find(|s| s.meta.newest_ms >= cutoff) {
            None => last,
            Some(segment) => first_at_or_after(segment, cutoff)?.saturating_sub(1),
        };
    }
    if let Some(max_bytes) = retention.max_bytes {
        let mut total: u64 = segments.iter().map(|s| s.meta.bytes).sum();
        'segments: for segment in &segments {
            if total <= max_bytes {
                break;
            }
            if total - segment.meta.bytes > max_bytes {
                total -= segment.meta.bytes;
                cut = cut.max(segment.meta.last);
                continue;
            }
            // The boundary: the oldest events of this segment, one by one.
            let start = keys::u64_key(segment.meta.first);
            for item in segment
                .events
                .range(start..)
                .take(MAX_TRIMMED_PER_PASS as usize)
            {
                if total <= max_bytes {
                    break 'segments;
                }
                let (key, value) = item.into_inner().map_err(storage(RETENTION))?;
                total = total.saturating_sub(crate::event_value::encoded_len(&value) as u64);
                cut = cut.max(keys::read_u64(&key).unwrap_or(0));
            }
            break;
        }
    }
    let cut = cut.min(limit);
    Ok((cut >= first).then_some(cut))
}

/// The first sequence of `segment` stored at or after log millisecond `cutoff` (the
/// segment's newest time is at or after it, so there is one).
fn first_at_or_after(segment: &Segment, cutoff: u64) -> Result<u64, LogError> {
    let found = segment
        .times
        .range(keys::u64_key(cutoff)..)
        .next()
        .map(|item| item.into_inner().map_err(storage(RETENTION)))
        .transpose()?
        .and_then(|(_, first)| keys::read_u64(&first));
    Ok(found.map_or(segment.meta.last + 1, |f| f.max(segment.meta.first)))
}

/// Drops the segments wholly at or below `cut` and trims the boundary segment.
fn remove_events(tx: &mut Tx<'_>, cut: u64, pass: &mut Pass) -> Result<(), LogError> {
    // The segment the next append writes to is trimmed, never dropped: dropping it would
    // make the next append create its keyspaces again.
    let active = segments::number_of(tx.next.last_sequence + 1, tx.segment_events);
    let numbers: Vec<u64> = tx.segments.keys().copied().collect();
    for number in numbers {
        let Some(segment) = tx.segments.get(&number).cloned() else {
            continue;
        };
        if segment.meta.first > cut {
            break;
        }
        if segment.meta.last <= cut && number < active {
            if pass.dropped.len() >= MAX_SEGMENTS_PER_PASS {
                break;
            }
            tx.segments.remove(&number);
            tx.staged.remove(Space::Meta, segments::meta_key(number));
            pass.dropped.push(number);
            pass.removed_through = Some(segment.meta.last);
            continue;
        }
        let through = trim(tx, &segment, cut)?;
        pass.removed_through = Some(through);
        break;
    }
    Ok(())
}

/// Removes the events of `segment` up to `cut` key by key, and their time-index entries; a millisecond that keeps events keeps its entry, moved
/// to its first kept sequence. Returns the newest sequence removed.
fn trim(tx: &mut Tx<'_>, segment: &Segment, cut: u64) -> Result<u64, LogError> {
    let number = segment.number;
    let mut freed = 0u64;
    let mut through = segment.meta.first - 1;
    let range = keys::u64_key(segment.meta.first)..=keys::u64_key(cut);
    for item in segment
        .events
        .range(range)
        .take(MAX_TRIMMED_PER_PASS as usize)
    {
        let (key, value) = item.into_inner().map_err(storage(RETENTION))?;
        freed += crate::event_value::encoded_len(&value) as u64;
        through = keys::read_u64(&key).unwrap_or(through);
        tx.staged.remove(Space::Events(number), key.to_vec());
    }
    if through < segment.meta.first {
        return Ok(through);
    }
    // Time-index entries (millisecond -> its first sequence here) up to the cut.
    let mut covered: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut next_first = None;
    for item in segment.times.iter() {
        let (key, value) = item.into_inner().map_err(storage(RETENTION))?;
        let first = keys::read_u64(&value).unwrap_or(0);
        if first > through {
            next_first = Some(first);
            break;
        }
        covered.push((key.to_vec(), first));
    }
    let keeps_events = match next_first {
        Some(next) => next > through + 1,
        None => segment.meta.last > through,
    };
    if let Some((newest, _)) = covered.pop() {
        if keeps_events {
            tx.staged.put(
                Space::Times(number),
                newest,
                keys::u64_key(through + 1).to_vec(),
            );
        } else {
            tx.staged.remove(Space::Times(number), newest);
        }
    }
    for (key, _) in covered {
        tx.staged.remove(Space::Times(number), key);
    }
    if let Some(live) = tx.segments.get_mut(&number) {
        live.meta.first = through + 1;
        live.meta.bytes = live.meta.bytes.saturating_sub(freed);
    }
    if !tx.dirty.contains(&number) {
        tx.dirty.push(number);
    }
    Ok(through)
}

/// Retires dead letter `id`'s key (or forgets it with a zero horizon) after its removal.
/// A key that now belongs to another item (a redrive's event took it) is left alone.
fn retire(tx: &mut Tx<'_>, key: Vec<u8>, owner: u64, now: u64, keep: bool) -> Result<(), LogError> {
    if tx.owner(&key)? != Some(owner) {
        return Ok(());
    }
    if keep {
        tx.staged
            .put(Space::Retired, keys::prefixed(now, &key), Vec::new());
        tx.staged
            .put(Space::Dedup, key, keys::u64_key(RETIRED).to_vec());
    } else {
        tx.staged.remove(Space::Dedup, key);
    }
    Ok(())
}

/// Removes dead letter `id`, its index entry and retires its key. Returns whether it was
/// stored.
fn remove_dead_letter(tx: &mut Tx<'_>, id: u64, now: u64, keep: bool) -> Result<bool, LogError> {
    let key = keys::u64_key(id);
    if tx.read(Space::DeadLetters, &key)?.is_none() {
        return Ok(false);
    }
    // Undecodable: removed all the same, its key cannot be found.
    let letter = tx.dead_letter(id).ok().flatten();
    tx.staged.remove(Space::DeadLetters, key.to_vec());
    tx.next.dead_letters = tx.next.dead_letters.saturating_sub(1);
    if let Some(letter) = letter {
        if let Some(at) = &letter.resolved_at {
            tx.staged.remove(
                Space::Resolved,
                keys::pair_key(rules::unix_millis(at), id).to_vec(),
            );
        }
        let dedup = keys::dedup_key(&letter.source, &letter.provider_event_id);
        retire(tx, dedup, id | DEAD_LETTER_TAG, now, keep)?;
    }
    Ok(true)
}

/// Removes resolved dead letters resolved before the age limit, then the oldest beyond the
/// count limit. Returns how many went.
fn remove_dead_letters(tx: &mut Tx<'_>, retention: &Retention, now: u64) -> Result<u64, LogError> {
    let keep = !retention.dedup_horizon.is_zero();
    let mut removed = 0u64;
    if let Some(max_age) = retention.dead_letter_max_age {
        let cutoff = now.saturating_sub(millis(max_age));
        let mut expired = Vec::new();
        for item in tx
            .store
            .resolved
            .iter()
            .take(MAX_DEAD_LETTERS_PER_PASS as usize)
        {
            let (key, _) = item.into_inner().map_err(storage(RETENTION))?;
            let Some((at, id)) = keys::read_pair(&key) else {
                continue;
            };
            if at >= cutoff {
                break;
            }
            expired.push((key.to_vec(), id));
        }
        for (key, id) in expired {
            // The entry goes even when its letter no longer decodes.
            tx.staged.remove(Space::Resolved, key);
            if remove_dead_letter(tx, id, now, keep)? {
                removed += 1;
            }
        }
    }
    if let Some(max_count) = retention.dead_letter_max_count {
        let excess = tx
            .next
            .dead_letters
            .saturating_sub(max_count)
            .min(MAX_DEAD_LETTERS_PER_PASS.saturating_sub(removed));
        if excess > 0 {
            let mut oldest = Vec::new();
            for item in tx.store.dead_letters.iter() {
                if oldest.len() as u64 >= excess {
                    break;
                }
                let key = item.key().map_err(storage(RETENTION))?;
                let Some(id) = keys::read_u64(&key) else {
                    continue;
                };
                // Removed by age in this pass already.
                if matches!(tx.staged.staged(Space::DeadLetters, &key), Some(None)) {
                    continue;
                }
                oldest.push(id);
            }
            for id in oldest {
                if remove_dead_letter(tx, id, now, keep)? {
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Forgets retired dead-letter keys retired a horizon ago. Returns how many.
fn prune_letter_keys(tx: &mut Tx<'_>, now: u64, horizon: u64) -> Result<u64, LogError> {
    let mut stale = Vec::new();
    for item in tx.store.retired.iter().take(MAX_KEYS_PER_PASS as usize) {
        let key = item.key().map_err(storage(RETENTION))?;
        let at = keys::read_u64(&key).unwrap_or(0);
        if at.saturating_add(horizon) > now {
            break;
        }
        stale.push(key.to_vec());
    }
    let pruned = stale.len() as u64;
    for key in stale {
        let dedup = key[8..].to_vec();
        tx.staged.remove(Space::Retired, key);
        if tx.owner(&dedup)? == Some(RETIRED) {
            tx.staged.remove(Space::Dedup, dedup);
        }
    }
    Ok(pruned)
}

/// Forgets the dedup keys of events removed a horizon ago, run by run. Returns how many.
fn prune_event_keys(tx: &mut Tx<'_>, now: u64, horizon: u64) -> Result<u64, LogError> {
    // The run this pass recorded is staged, not stored yet: with a zero horizon it is due now.
    let mut runs = Vec::new();
    for item in tx.store.retired_events.iter() {
        let (key, value) = item.into_inner().map_err(storage(RETENTION))?;
        runs.push((key.to_vec(), keys::read_u64(&value).unwrap_or(0)));
    }
    let staged_run = tx
        .staged
        .staged_keys(Space::RetiredEvents)
        .into_iter()
        .filter_map(|(key, value)| Some((key, keys::read_u64(&value?)?)));
    runs.extend(staged_run);
    runs.sort();
    let mut pruned = 0u64;
    for (key, through) in runs {
        let Some((at, _)) = keys::read_pair(&key) else {
            continue;
        };
        if at.saturating_add(horizon) > now || pruned >= MAX_KEYS_PER_PASS {
            break;
        }
        let start = tx.next.keys_pruned_through + 1;
        let mut done = true;
        let mut number = segments::number_of(start, tx.segment_events);
        while start <= through && number <= segments::number_of(through, tx.segment_events) {
            let keyspace = tx.keys_handle(number)?;
            let range = keys::u64_key(start.max(1))..=keys::u64_key(through);
            for item in keyspace.range(range) {
                if pruned >= MAX_KEYS_PER_PASS {
                    done = false;
                    break;
                }
                let (seq_key, dedup) = item.into_inner().map_err(storage(RETENTION))?;
                let sequence = keys::read_u64(&seq_key).unwrap_or(0);
                if tx.owner(&dedup)? == Some(sequence) {
                    tx.staged.remove(Space::Dedup, dedup.to_vec());
                }
                tx.next.keys_pruned_through = sequence;
                pruned += 1;
            }
            if !done {
                break;
            }
            number += 1;
        }
        if !done {
            break;
        }
        tx.next.keys_pruned_through = tx.next.keys_pruned_through.max(through);
        tx.staged.remove(Space::RetiredEvents, key);
    }
    Ok(pruned)
}
