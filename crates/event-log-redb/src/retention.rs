//! Retention: removes the oldest events by age and by size, never past what a durable consumer
//! still has to acknowledge (unless configured to); removes resolved dead letters by age and
//! the oldest dead letters beyond a count; and prunes the dedup keys of removed items once
//! they are older than the dedup horizon. Until then a removed item's key stays in `dedup` as
//! [`RETIRED`], so a provider retry is still a duplicate.

use std::time::Duration;

use prost::Message;
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};
use tributary_model::v1::{Consumer, DeadLetter, Event};

use super::cursor::now_millis;
use super::queue::{Job, Op};
use super::{
    CONSUMERS, DEAD_LETTER_TAG, DEAD_LETTERS, DEDUP, DEDUP_RETIRED, EVENTS, META, RESOLVED,
    RETIRED, TIME_INDEX, storage,
};
use tributary_event_log::LogError;
use tributary_event_log::Retention;
use tributary_event_log::rules;

// What the log was doing, named in its storage errors.
const RETENTION: &str = "applying retention";

/// Most events removed per pass, so one pass never holds the writer for long.
const MAX_REMOVED_PER_PASS: usize = 50_000;
/// Most dead letters removed per pass (they carry raw bodies).
const MAX_DEAD_LETTERS_PER_PASS: u64 = 10_000;
/// Most retired dedup keys pruned per pass.
const MAX_KEYS_PER_PASS: usize = 100_000;

/// Asks the writer to run retention every `interval`, until the log is dropped (the task holds
/// no sender, so it never keeps the writer, and with it the file, open).
pub(crate) fn schedule(ops: &mpsc::Sender<Job>, interval: Duration) {
    let interval = interval.max(Duration::from_millis(10));
    let ops = ops.downgrade();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(sender) = ops.upgrade() else { return };
            let (reply, answer) = oneshot::channel();
            if sender
                .send(Job {
                    op: Op::Retention,
                    reply,
                })
                .await
                .is_err()
            {
                return;
            }
            drop(sender);
            if let Ok(Err(error)) = answer.await {
                tracing::warn!(%error, "retention pass failed");
            }
        }
    });
}

/// The dedup table and the index of its retired keys, which removals change together.
struct Keys<'txn> {
    dedup: Table<'txn, (&'static str, &'static str), u64>,
    retired: Table<'txn, (u64, &'static str, &'static str), ()>,
    /// Unix ms of this pass: when the keys it retires were retired.
    now: u64,
    /// Zero horizon: keys go with their items.
    keep: bool,
}

impl<'txn> Keys<'txn> {
    fn open(
        txn: &'txn WriteTransaction,
        retention: &Retention,
        now: u64,
    ) -> Result<Self, LogError> {
        Ok(Keys {
            dedup: txn.open_table(DEDUP).map_err(storage(RETENTION))?,
            retired: txn.open_table(DEDUP_RETIRED).map_err(storage(RETENTION))?,
            now,
            keep: !retention.dedup_horizon.is_zero(),
        })
    }

    /// The item `owner` (a sequence, or a dead-letter id with its tag) was removed: its key
    /// stays as a duplicate until the horizon passes. A key that now belongs to another item
    /// (a redrive's event took the dead letter's) is left alone.
    fn retire(&mut self, source: &str, id: &str, owner: u64) -> Result<(), LogError> {
        let current = self
            .dedup
            .get((source, id))
            .map_err(storage(RETENTION))?
            .map(|v| v.value());
        if current != Some(owner) {
            return Ok(());
        }
        if self.keep {
            self.dedup
                .insert((source, id), RETIRED)
                .map_err(storage(RETENTION))?;
            self.retired
                .insert((self.now, source, id), ())
                .map_err(storage(RETENTION))?;
        } else {
            self.dedup
                .remove((source, id))
                .map_err(storage(RETENTION))?;
        }
        Ok(())
    }

    /// Forgets retired keys retired before `cutoff` (unix ms). Returns how many.
    fn prune(&mut self, cutoff: u64) -> Result<usize, LogError> {
        let stale: Vec<(u64, String, String)> = self
            .retired
            .iter()
            .map_err(storage(RETENTION))?
            .map_while(|entry| entry.ok())
            .map(|(key, _)| {
                let (at, source, id) = key.value();
                (at, source.to_owned(), id.to_owned())
            })
            .take_while(|(at, _, _)| *at < cutoff)
            .take(MAX_KEYS_PER_PASS)
            .collect();
        for (at, source, id) in &stale {
            let key = (source.as_str(), id.as_str());
            self.retired
                .remove((*at, key.0, key.1))
                .map_err(storage(RETENTION))?;
            let current = self.dedup.get(key).map_err(storage(RETENTION))?;
            if current.map(|v| v.value()) == Some(RETIRED) {
                self.dedup.remove(key).map_err(storage(RETENTION))?;
            }
        }
        Ok(stale.len())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One retention pass inside the writer's transaction. Returns the newest sequence it removed,
/// if any.
pub(crate) fn apply(
    txn: &WriteTransaction,
    retention: &Retention,
) -> Result<Option<u64>, LogError> {
    let now = now_millis();
    let mut keys = Keys::open(txn, retention, now)?;
    let removed_through = remove_events(txn, retention, &mut keys)?;
    let letters = remove_dead_letters(txn, retention, &mut keys)?;
    let pruned = keys.prune(now.saturating_sub(millis(retention.dedup_horizon)))?;
    let raw = super::archive::expire(txn, retention, now)?;
    if letters > 0 || pruned > 0 || raw > 0 {
        tracing::info!(
            dead_letters = letters,
            dedup_keys = pruned,
            raw_archive_entries = raw,
            "retention removed dead letters, expired dedup keys and raw-archive entries"
        );
    }
    Ok(removed_through)
}

/// Removes events by age and size. Returns the newest sequence it removed, if any.
fn remove_events(
    txn: &WriteTransaction,
    retention: &Retention,
    keys: &mut Keys<'_>,
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
        let cutoff = keys.now.saturating_sub(millis(max_age));
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
                keys.retire(&event.source, &rules::dedup_key(&event), sequence)?;
            }
            removed += 1;
        }
        sequence += 1;
    }
    if removed > 0 {
        // Time-index entries (millisecond -> its first sequence) that point at removed events
        // go, except the newest one when its millisecond still has kept events (a batch cut
        // in the middle): it then points at the first kept event.
        let mut stale = Vec::new();
        let mut next_first = last + 1;
        for entry in times.iter().map_err(storage(RETENTION))? {
            let (millis, first) = entry.map_err(storage(RETENTION))?;
            if first.value() >= sequence {
                next_first = first.value();
                break;
            }
            stale.push(millis.value());
        }
        let partly_kept = stale.last().copied().filter(|_| sequence < next_first);
        for millis in stale {
            times.remove(millis).map_err(storage(RETENTION))?;
        }
        if let Some(millis) = partly_kept {
            times.insert(millis, sequence).map_err(storage(RETENTION))?;
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

/// Removes resolved dead letters resolved before the age limit, then the oldest beyond the
/// count limit. Returns how many went.
fn remove_dead_letters(
    txn: &WriteTransaction,
    retention: &Retention,
    keys: &mut Keys<'_>,
) -> Result<u64, LogError> {
    let mut dead = txn.open_table(DEAD_LETTERS).map_err(storage(RETENTION))?;
    let mut resolved = txn.open_table(RESOLVED).map_err(storage(RETENTION))?;
    let mut removed = 0u64;
    if let Some(max_age) = retention.dead_letter_max_age {
        let cutoff = keys.now.saturating_sub(millis(max_age));
        let expired: Vec<(u64, u64)> = resolved
            .iter()
            .map_err(storage(RETENTION))?
            .map_while(|entry| entry.ok())
            .map(|(key, _)| key.value())
            .take_while(|(at, _)| *at < cutoff)
            .take(MAX_DEAD_LETTERS_PER_PASS as usize)
            .collect();
        for (at, id) in expired {
            // The entry goes even when its letter no longer decodes.
            resolved.remove((at, id)).map_err(storage(RETENTION))?;
            if remove_dead_letter(&mut dead, &mut resolved, keys, id)? {
                removed += 1;
            }
        }
    }
    if let Some(max_count) = retention.dead_letter_max_count {
        let stored = dead.len().map_err(storage(RETENTION))?;
        let excess = stored
            .saturating_sub(max_count)
            .min(MAX_DEAD_LETTERS_PER_PASS.saturating_sub(removed));
        for _ in 0..excess {
            let oldest = dead
                .first()
                .map_err(storage(RETENTION))?
                .map(|(id, _)| id.value());
            let Some(id) = oldest else { break };
            remove_dead_letter(&mut dead, &mut resolved, keys, id)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes dead letter `id` and its index entry, and retires its dedup key. Returns whether
/// there was such a letter.
fn remove_dead_letter(
    dead: &mut Table<'_, u64, &'static [u8]>,
    resolved: &mut Table<'_, (u64, u64), ()>,
    keys: &mut Keys<'_>,
    id: u64,
) -> Result<bool, LogError> {
    // Undecodable (inner `None`): removed all the same, its key cannot be found.
    let letter = dead
        .remove(id)
        .map_err(storage(RETENTION))?
        .map(|value| DeadLetter::decode(value.value()).ok());
    let Some(letter) = letter else {
        return Ok(false);
    };
    let Some(letter) = letter else {
        return Ok(true);
    };
    if let Some(at) = &letter.resolved_at {
        resolved
            .remove((rules::unix_millis(at), id))
            .map_err(storage(RETENTION))?;
    }
    keys.retire(
        &letter.source,
        &letter.provider_event_id,
        id | DEAD_LETTER_TAG,
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use redb::ReadableDatabase;
    use tributary_event_log::{AppendOutcome, AppendRequest, EventLog};
    use tributary_model::v1::Provenance;
    use tributary_test_kit::eventually;

    use super::*;
    use crate::{EmbeddedConfig, EmbeddedLog};

    const SOURCE: &str = "s";

    fn event(id: &str) -> Event {
        Event {
            source: SOURCE.into(),
            provenance: Some(Provenance {
                provider_event_id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn letter(id: &str) -> DeadLetter {
        DeadLetter {
            source: SOURCE.into(),
            provider_event_id: id.into(),
            ..Default::default()
        }
    }

    fn request(events: &[&str], letters: &[&str]) -> AppendRequest {
        AppendRequest {
            source: SOURCE.into(),
            events: events.iter().map(|id| event(id).into()).collect(),
            dead_letters: letters.iter().map(|id| letter(id)).collect(),
            archive: None,
        }
    }

    fn outcome(sequences: &[u64], duplicates: usize, dead_lettered: usize) -> AppendOutcome {
        AppendOutcome {
            sequences: sequences.to_vec(),
            duplicates,
            dead_lettered,
            archive_id: 0,
        }
    }

    fn open(dir: &std::path::Path, retention: Retention) -> EmbeddedLog {
        let started = Instant::now();
        loop {
            let config = EmbeddedConfig {
                retention: retention.clone(),
                ..EmbeddedConfig::new(dir)
            };
            match EmbeddedLog::open(config) {
                Ok(log) => return log,
                Err(error) if started.elapsed() > Duration::from_secs(10) => {
                    panic!("cannot open: {error}")
                }
                // The previous log's writer is still letting go of the file.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    async fn append(log: &EmbeddedLog, request: AppendRequest) -> AppendOutcome {
        log.append(request).await.expect("append")
    }

    /// The dedup entries (value per key) and the retired index, as stored.
    fn stored_keys(log: &EmbeddedLog) -> (Vec<(String, u64)>, usize) {
        let db = log.db.get().expect("db");
        let txn = db.begin_read().expect("read");
        let dedup = txn.open_table(DEDUP).expect("dedup");
        let keys = dedup
            .iter()
            .expect("iter")
            .map(|entry| {
                let (key, value) = entry.expect("entry");
                (key.value().1.to_owned(), value.value())
            })
            .collect();
        let retired = txn.open_table(DEDUP_RETIRED).expect("retired");
        (keys, retired.len().expect("len") as usize)
    }

    fn eager_events(horizon: Duration) -> Retention {
        Retention {
            max_age: Some(Duration::ZERO),
            interval: Duration::from_millis(20),
            dedup_horizon: horizon,
            ..Retention::default()
        }
    }

    /// Size-based retention can cut a batch stored in one millisecond in the middle: a
    /// subscriber starting at that time must still get the batch's kept events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_cut_in_the_middle_stays_findable_by_time() {
        let dir = tempfile::tempdir().expect("dir");
        let ids: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
        // Every stored event is this long: the ids have one length, the sequences one byte.
        let one = Event {
            sequence: 1,
            ..event("e0")
        }
        .encoded_len() as u64;
        let log = open(
            dir.path(),
            Retention {
                max_bytes: Some(4 * one),
                interval: Duration::from_millis(20),
                ..Retention::default()
            },
        );
        let before = tributary_event_log::rules::timestamp(
            std::time::SystemTime::now() - Duration::from_millis(1),
        );
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let stored = append(&log, request(&ids, &[])).await;
        assert_eq!(stored.sequences, (1..=10).collect::<Vec<_>>());
        eventually("the oldest six removed", || async {
            log.first_sequence().await.ok() == Some(7)
        })
        .await;
        assert_eq!(log.sequence_before_time(before).await.ok(), Some(6));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retired_keys_stay_for_the_horizon_then_go() {
        let dir = tempfile::tempdir().expect("dir");
        let horizon = Duration::from_millis(600);
        let log = open(dir.path(), eager_events(horizon));
        assert_eq!(
            append(&log, request(&["a"], &[])).await,
            outcome(&[1], 0, 0)
        );
        eventually("event 1 removed", || async {
            log.first_sequence().await.ok() == Some(2)
        })
        .await;
        let removed = Instant::now();
        assert_eq!(stored_keys(&log), (vec![("a".into(), RETIRED)], 1));
        // When the key was retired, in the log's millisecond clock: the horizon counts from it.
        let retired_at = {
            let db = log.db.get().expect("db");
            let txn = db.begin_read().expect("read");
            let retired = txn.open_table(DEDUP_RETIRED).expect("retired");
            let (key, _) = retired.first().expect("first").expect("one retired key");
            key.value().0
        };
        assert_eq!(append(&log, request(&["a"], &[])).await, outcome(&[], 1, 0));

        // Once the horizon passed, a pass forgets the key: the same id is new again.
        let mut stored_again = None;
        while stored_again.is_none() {
            let got = append(&log, request(&["a"], &[])).await;
            if got.sequences.is_empty() {
                assert!(
                    removed.elapsed() < Duration::from_secs(20),
                    "key never pruned"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            } else {
                stored_again = Some(got);
            }
        }
        // Not before the horizon, counted from the key's retirement (`removed` was observed up
        // to a retention interval and a poll later than that).
        let noticed = now_millis();
        assert!(
            noticed >= retired_at + millis(horizon),
            "pruned {} ms after its retirement",
            noticed - retired_at
        );
        assert_eq!(stored_again, Some(outcome(&[2], 0, 0)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zero_horizon_forgets_keys_with_their_items() {
        let dir = tempfile::tempdir().expect("dir");
        let log = open(dir.path(), eager_events(Duration::ZERO));
        assert_eq!(
            append(&log, request(&["a"], &[])).await,
            outcome(&[1], 0, 0)
        );
        eventually("event 1 removed", || async {
            log.first_sequence().await.ok() == Some(2)
        })
        .await;
        assert_eq!(stored_keys(&log), (vec![], 0));
        assert_eq!(
            append(&log, request(&["a"], &[])).await,
            outcome(&[2], 0, 0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn removed_dead_letters_leave_retired_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let retention = Retention {
            interval: Duration::from_millis(20),
            dead_letter_max_count: Some(1),
            ..Retention::default()
        };
        let log = open(dir.path(), retention);
        assert_eq!(
            append(&log, request(&[], &["x", "y"])).await,
            outcome(&[], 0, 2)
        );
        eventually("dead letter 1 removed", || async {
            log.dead_letters(0, 10).await.map(|l| l.len()).ok() == Some(1)
        })
        .await;
        assert_eq!(
            stored_keys(&log),
            (
                vec![("x".into(), RETIRED), ("y".into(), 2 | DEAD_LETTER_TAG)],
                1
            )
        );
    }

    /// A file written before the resolved index existed: its resolved dead letters are indexed
    /// when it is opened, so retention by age finds them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resolved_dead_letters_of_older_files_are_indexed() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let log = open(dir.path(), Retention::default());
            append(&log, request(&[], &["x", "y"])).await;
            let redriven = log
                .redrive(1, vec![event("x").into()], None)
                .await
                .expect("redrive");
            assert!(redriven.resolved);
            // Undo the index, as in a file of the previous version.
            let db = log.db.get().expect("db");
            let txn = db.begin_write().expect("write");
            {
                let mut index = txn.open_table(RESOLVED).expect("index");
                index.retain(|_, _| false).expect("clear");
                txn.open_table(META)
                    .expect("meta")
                    .remove("resolved_index")
                    .expect("flag");
            }
            txn.commit().expect("commit");
        }
        let retention = Retention {
            interval: Duration::from_millis(20),
            dead_letter_max_age: Some(Duration::ZERO),
            ..Retention::default()
        };
        let log = open(dir.path(), retention);
        eventually("resolved dead letter 1 removed", || async {
            let ids: Option<Vec<u64>> = log
                .dead_letters(0, 10)
                .await
                .ok()
                .map(|letters| letters.iter().map(|l| l.id).collect());
            ids == Some(vec![2])
        })
        .await;
        // The redriven event holds x's key; y's letter still holds its own.
        assert_eq!(
            stored_keys(&log),
            (vec![("x".into(), 1), ("y".into(), 2 | DEAD_LETTER_TAG)], 0)
        );
    }
}
