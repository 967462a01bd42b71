//! The single writer: drains queued operations, applies them in one write transaction and
//! commits once (group commit), then answers every waiting request.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, RwLock};

use prost::Message;
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, watch};
use tributary_model::v1::{DeadLetter, Filter};
use tributary_model::well_known::Timestamp;

use super::cursor::{Cursor, now_millis};
use super::handle::DbHandle;
use super::queue::{Job, Op, Reply};
use super::tables::AppendTables;
use super::{
    CONSUMERS, DEAD_LETTER_TAG, DEAD_LETTERS, EVENTS, EmbeddedConfig, META, RESOLVED, RETIRED,
    TIME_INDEX, retention, storage,
};
use tributary_event_log::recent::Recent;
use tributary_event_log::rules;
use tributary_event_log::{
    AppendOutcome, AppendRequest, LogError, PendingEvent, RedriveOutcome, StoredEvent,
};

// What the log was doing, named in its storage errors.
const LOADING: &str = "loading the newest sequence";
const COMMITTING: &str = "committing";
const DELETING_CONSUMER: &str = "deleting a consumer";
const STORING_EVENTS: &str = "storing events";
const STORING_DEAD_LETTERS: &str = "storing dead letters";
const REDRIVING: &str = "redriving a dead letter";
const STORING_CONSUMER: &str = "storing a consumer";
const MOVING_CONSUMER: &str = "moving a consumer";
const RESEALING_DEAD_LETTER: &str = "resealing a dead letter";

pub(crate) fn spawn(
    handle: Arc<DbHandle>,
    config: EmbeddedConfig,
    mut jobs: mpsc::Receiver<Job>,
    last_tx: watch::Sender<u64>,
    health: Arc<Mutex<Result<(), String>>>,
    recent: Arc<RwLock<Recent>>,
) -> Result<(), LogError> {
    let mut cursor = load_cursor(&*handle.get()?)?;
    std::thread::Builder::new()
        .name("event-log-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(config.max_batch);
            // After a storage fault, reopen before the next batch.
            let mut faulted = false;
            while let Some(first) = jobs.blocking_recv() {
                batch.push(first);
                while batch.len() < config.max_batch {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let db = if faulted {
                    handle.reopen().and_then(|db| {
                        cursor = load_cursor(&db)?;
                        Ok(db)
                    })
                } else {
                    handle.get()
                };
                let result =
                    db.and_then(|db| commit_batch(&db, &config, &mut cursor, &mut batch, &recent));
                // Health and the announced sequence change before anyone is answered, so a
                // caller that sees its reply also sees their effect.
                match result {
                    Ok(replies) => {
                        set_health(&health, Ok(()));
                        last_tx.send_if_modified(|last| {
                            let changed = *last != cursor.last_sequence;
                            *last = cursor.last_sequence;
                            changed
                        });
                        if faulted {
                            tracing::info!("event log writes again");
                        }
                        faulted = false;
                        for (job, reply) in batch.drain(..).zip(replies) {
                            let _ = job.reply.send(reply);
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, operations = batch.len(), "event log commit failed");
                        // Nothing of the batch was committed. redb refuses further work after
                        // an I/O error, so the next batch reopens the file and reloads the
                        // cursor from what is stored.
                        faulted = true;
                        set_health(&health, Err(error.detail()));
                        for job in batch.drain(..) {
                            let _ = job.reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        })
        .map_err(|e| LogError::storage("cannot start the writer thread", e))?;
    Ok(())
}

fn set_health(health: &Mutex<Result<(), String>>, status: Result<(), String>) {
    if let Ok(mut h) = health.lock() {
        *h = status;
    }
}

fn load_cursor(db: &Database) -> Result<Cursor, LogError> {
    let txn = db.begin_write().map_err(storage(LOADING))?;
    let cursor = {
        let events = txn.open_table(EVENTS).map_err(storage(LOADING))?;
        let dead = txn.open_table(DEAD_LETTERS).map_err(storage(LOADING))?;
        let times = txn.open_table(TIME_INDEX).map_err(storage(LOADING))?;
        let meta = txn.open_table(META).map_err(storage(LOADING))?;
        // The highest sequence ever assigned survives retention emptying the table.
        let stored_last = events
            .last()
            .map_err(storage(LOADING))?
            .map(|(k, _)| k.value());
        let recorded_last = meta
            .get("last_sequence")
            .map_err(storage(LOADING))?
            .map(|v| v.value());
        // Likewise the highest dead-letter id survives retention removing the newest letters.
        let recorded_letter = meta
            .get("last_dead_letter")
            .map_err(storage(LOADING))?
            .map(|v| v.value());
        Cursor {
            last_sequence: stored_last.unwrap_or(0).max(recorded_last.unwrap_or(0)),
            last_dead_letter: dead
                .last()
                .map_err(storage(LOADING))?
                .map(|(k, _)| k.value())
                .unwrap_or(0)
                .max(recorded_letter.unwrap_or(0)),
            last_millis: times
                .last()
                .map_err(storage(LOADING))?
                .map(|(k, _)| k.value())
                .unwrap_or(0),
            last_archive: 0,
        }
    };
    let cursor = Cursor {
        last_archive: super::archive::last_id(&txn)?,
        ..cursor
    };
    txn.abort().map_err(storage(LOADING))?;
    Ok(cursor)
}

/// Now, in the log's millisecond clock (the time index's), so stored times agree with it.
fn now_timestamp() -> Timestamp {
    rules::timestamp_from_millis(now_millis())
}

/// Applies every job in one transaction. On success returns one answer per job (a job whose
/// request is invalid gets its own error and writes nothing); on failure nothing is stored.
fn commit_batch(
    db: &Database,
    config: &EmbeddedConfig,
    cursor: &mut Cursor,
    batch: &mut [Job],
    recent: &RwLock<Recent>,
) -> Result<Vec<Result<Reply, LogError>>, LogError> {
    let mut txn = db.begin_write().map_err(storage(COMMITTING))?;
    if !config.durable {
        txn.set_durability(Durability::None)
            .map_err(storage(COMMITTING))?;
    }
    let mut next = Cursor {
        last_sequence: cursor.last_sequence,
        last_dead_letter: cursor.last_dead_letter,
        last_millis: cursor.last_millis.max(now_millis()),
        last_archive: cursor.last_archive,
    };
    let mut replies = Vec::with_capacity(batch.len());
    let mut pruned_through = None;
    let mut fresh = Vec::new();
    {
        // Opened by the first append or redrive, closed (counters recorded) before retention,
        // which opens the same tables, and before the commit.
        let mut tables: Option<AppendTables> = None;
        for job in batch.iter_mut() {
            if matches!(job.op, Op::Retention)
                && let Some(open) = tables.take()
            {
                open.close(&next)?;
            }
            replies.push(apply(
                &txn,
                &mut tables,
                config,
                &mut next,
                &mut job.op,
                &mut pruned_through,
                &mut fresh,
            )?);
        }
        if let Some(open) = tables {
            open.close(&next)?;
        }
    }
    txn.commit().map_err(storage(COMMITTING))?;
    // Committed: keep the new events for caught-up subscribers (before `last_sequence`
    // announces them).
    if let Ok(mut recent) = recent.write() {
        if let Some(through) = pruned_through {
            recent.remove_through(through);
        }
        recent.extend(fresh);
    }
    *cursor = next;
    Ok(replies)
}

/// Applies one operation. The outer error is a storage failure (the batch fails); the inner
/// one is this caller's mistake (nothing written for it).
fn apply<'txn>(
    txn: &'txn WriteTransaction,
    tables: &mut Option<AppendTables<'txn>>,
    config: &EmbeddedConfig,
    next: &mut Cursor,
    op: &mut Op,
    pruned_through: &mut Option<u64>,
    fresh: &mut Vec<StoredEvent>,
) -> Result<Result<Reply, LogError>, LogError> {
    Ok(match op {
        // Validated before it was queued (`EmbeddedLog::append`).
        Op::Append(request) => {
            let tables = open_tables(txn, tables)?;
            Ok(Reply::Appended(append(tables, next, request, fresh)?))
        }
        Op::Redrive {
            id,
            events,
            still_failing,
        } => {
            let tables = open_tables(txn, tables)?;
            redrive(txn, tables, next, *id, events, still_failing.take(), fresh)?
        }
        Op::OpenConsumer {
            name,
            after,
            filter,
        } => open_consumer(txn, next, name, *after, filter)?,
        Op::Ack { name, sequence } => ack(txn, next, name, *sequence, false)?,
        Op::ResetConsumer { name, after } => ack(txn, next, name, *after, true)?,
        Op::DeleteConsumer { name } => {
            let removed = txn
                .open_table(CONSUMERS)
                .map_err(storage(DELETING_CONSUMER))?
                .remove(name.as_str())
                .map_err(storage(DELETING_CONSUMER))?
                .is_some();
            Ok(Reply::Deleted(removed))
        }
        Op::Reseal(reseal) => {
            let tables = open_tables(txn, tables)?;
            Ok(Reply::Resealed(super::archive::reseal(tables, reseal)?))
        }
        Op::ResealDeadLetter(reseal) => {
            let tables = open_tables(txn, tables)?;
            Ok(Reply::Resealed(reseal_dead_letter(tables, reseal)?))
        }
        Op::Retention => {
            if let Some(through) = retention::apply(txn, &config.retention)? {
                *pruned_through = Some(through);
            }
            Ok(Reply::Done)
        }
    })
}

/// The batch's append tables, opened on first use.
fn open_tables<'a, 'txn>(
    txn: &'txn WriteTransaction,
    tables: &'a mut Option<AppendTables<'txn>>,
) -> Result<&'a mut AppendTables<'txn>, LogError> {
    Ok(match tables {
        Some(open) => open,
        None => tables.insert(AppendTables::open(txn)?),
    })
}

/// Claims (`source`, `key`) for `value`: one B-tree insert, which returns the item stored
/// under the key, if any (then the key is given back to it). Returns that owner: the item is a
/// duplicate. Cheaper than a lookup before every insert, and it sees the items claimed earlier
/// in the same request.
fn claim(
    tables: &mut AppendTables<'_>,
    source: &str,
    key: &str,
    value: u64,
    context: &'static str,
) -> Result<Option<u64>, LogError> {
    let owner = tables
        .dedup
        .insert((source, key), value)
        .map_err(storage(context))?
        .map(|stored| stored.value());
    if let Some(owner) = owner {
        tables
            .dedup
            .insert((source, key), owner)
            .map_err(storage(context))?;
    }
    Ok(owner)
}

/// Claims each of `keys` for the id it will be stored under: the ids after `last`, in order,
/// one per item not stored yet, marked with `tag`. Returns each item's owner: `None` for an
/// item to store, the stored item's dedup value for a duplicate.
fn claim_all<'a>(
    tables: &mut AppendTables<'_>,
    source: &str,
    keys: impl Iterator<Item = Cow<'a, str>>,
    last: u64,
    tag: u64,
    context: &'static str,
) -> Result<Vec<Option<u64>>, LogError> {
    let mut id = last;
    let mut owners = Vec::with_capacity(keys.size_hint().0);
    for key in keys {
        let owner = claim(tables, source, &key, (id + 1) | tag, context)?;
        if owner.is_none() {
            id += 1;
        }
        owners.push(owner);
    }
    Ok(owners)
}

/// Claims the dedup key of each event under the sequence it will be stored at (see
/// [`claim_all`]).
fn claim_events(
    tables: &mut AppendTables<'_>,
    next: &Cursor,
    source: &str,
    events: &[PendingEvent],
) -> Result<Vec<Option<u64>>, LogError> {
    let keys = events.iter().map(PendingEvent::dedup_key);
    claim_all(tables, source, keys, next.last_sequence, 0, STORING_EVENTS)
}

/// Stores the events [`claim_events`] found new (at the sequences their keys were claimed
/// for), each as it was given (an adapter's bytes) with its sequence appended, and adds them
/// to `fresh` (the table and the subscribers share those bytes).
fn store_events(
    tables: &mut AppendTables<'_>,
    next: &mut Cursor,
    events: &mut [PendingEvent],
    owners: &[Option<u64>],
    outcome: &mut AppendOutcome,
    fresh: &mut Vec<StoredEvent>,
) -> Result<(), LogError> {
    for (event, owner) in events.iter_mut().zip(owners) {
        if owner.is_some() {
            outcome.duplicates += 1;
            continue;
        }
        let sequence = next.last_sequence + 1;
        event.set_sequence(sequence);
        let stored = event.to_stored();
        let encoded = stored.encoded();
        tables
            .events
            .insert(sequence, encoded.as_ref())
            .map_err(storage(STORING_EVENTS))?;
        // The batch shares one millisecond: the first event of the batch indexes it.
        if tables.time_indexed != Some(next.last_millis) {
            if tables
                .times
                .get(next.last_millis)
                .map_err(storage(STORING_EVENTS))?
                .is_none()
            {
                tables
                    .times
                    .insert(next.last_millis, sequence)
                    .map_err(storage(STORING_EVENTS))?;
            }
            tables.time_indexed = Some(next.last_millis);
        }
        tables.event_bytes += encoded.len() as u64;
        next.last_sequence = sequence;
        outcome.sequences.push(sequence);
        fresh.push(stored);
    }
    Ok(())
}

/// Stores events not already stored under (source, provider event id).
fn append_events(
    tables: &mut AppendTables<'_>,
    next: &mut Cursor,
    source: &str,
    events: &mut [PendingEvent],
    outcome: &mut AppendOutcome,
    fresh: &mut Vec<StoredEvent>,
) -> Result<(), LogError> {
    let owners = claim_events(tables, next, source, events)?;
    store_events(tables, next, events, &owners, outcome, fresh)
}

fn append(
    tables: &mut AppendTables<'_>,
    next: &mut Cursor,
    request: &mut AppendRequest,
    fresh: &mut Vec<StoredEvent>,
) -> Result<AppendOutcome, LogError> {
    let mut outcome = AppendOutcome::default();
    let source = request.source.as_str();
    // Every item's key first: the archive entry of a retry is found through an item stored
    // before, and the new items carry that entry's id.
    let event_owners = claim_events(tables, next, source, &request.events)?;
    let letter_keys = request
        .dead_letters
        .iter()
        .map(|letter| letter.provider_event_id.as_str().into());
    let letter_owners = claim_all(
        tables,
        source,
        letter_keys,
        next.last_dead_letter,
        DEAD_LETTER_TAG,
        STORING_DEAD_LETTERS,
    )?;
    let archive = match request.archive.take() {
        Some(entry) => {
            // Owners claimed by this request itself (a key twice in it) were not stored before.
            let (first_sequence, first_letter) = (next.last_sequence, next.last_dead_letter);
            let stored_before = event_owners
                .iter()
                .chain(&letter_owners)
                .flatten()
                .copied()
                .filter(|&owner| {
                    if owner == RETIRED {
                        true
                    } else if owner & DEAD_LETTER_TAG != 0 {
                        owner & !DEAD_LETTER_TAG <= first_letter
                    } else {
                        owner <= first_sequence
                    }
                });
            let (id, new) = super::archive::reserve(tables, next, source, &entry, stored_before)?;
            for event in &mut request.events {
                event.set_raw_id(id);
            }
            for letter in &mut request.dead_letters {
                letter.raw_id = id;
            }
            Some((entry, id, new))
        }
        None => None,
    };
    store_events(
        tables,
        next,
        &mut request.events,
        &event_owners,
        &mut outcome,
        fresh,
    )?;

    let mut letter_ids = Vec::new();
    for (letter, owner) in request.dead_letters.iter_mut().zip(&letter_owners) {
        if owner.is_some() {
            outcome.duplicates += 1;
            continue;
        }
        let letter_id = next.last_dead_letter + 1;
        letter.id = letter_id;
        tables
            .dead_letters
            .insert(letter_id, letter.encode_to_vec().as_slice())
            .map_err(storage(STORING_DEAD_LETTERS))?;
        next.last_dead_letter = letter_id;
        outcome.dead_lettered += 1;
        letter_ids.push(letter_id);
    }
    if let Some((entry, id, new)) = archive {
        super::archive::store(
            tables,
            next,
            id,
            new,
            entry,
            &outcome.sequences,
            &letter_ids,
        )?;
        outcome.archive_id = id;
    }
    Ok(outcome)
}

fn redrive(
    txn: &WriteTransaction,
    tables: &mut AppendTables<'_>,
    next: &mut Cursor,
    id: u64,
    events: &mut [PendingEvent],
    still_failing: Option<String>,
    fresh: &mut Vec<StoredEvent>,
) -> Result<Result<Reply, LogError>, LogError> {
    let mut letter = {
        let Some(stored) = tables.dead_letters.get(id).map_err(storage(REDRIVING))? else {
            return Ok(Err(LogError::UnknownDeadLetter(id)));
        };
        DeadLetter::decode(stored.value())
            .map_err(|source| LogError::Corrupt { key: id, source })?
    };
    if let Err(invalid) = rules::validate_redrive_events(events) {
        return Ok(Err(invalid));
    }
    // The dead letter holds its (source, provider id) key; release it so the events it maps
    // to can take it.
    let key = (letter.source.as_str(), letter.provider_event_id.as_str());
    if tables
        .dedup
        .get(key)
        .map_err(storage(REDRIVING))?
        .map(|v| v.value())
        == Some(id | DEAD_LETTER_TAG)
    {
        tables.dedup.remove(key).map_err(storage(REDRIVING))?;
    }
    let mut outcome = AppendOutcome::default();
    let source = letter.source.clone();
    append_events(tables, next, &source, events, &mut outcome, fresh)?;

    let previously_resolved = letter.resolved_at.as_ref().map(rules::unix_millis);
    let resolved = rules::record_redrive(
        &mut letter,
        still_failing,
        &outcome.sequences,
        now_timestamp(),
    );
    if let (true, Some(at)) = (resolved, letter.resolved_at.as_ref()) {
        // Index the resolution for retention by age (a second resolution moves it).
        let mut index = txn.open_table(RESOLVED).map_err(storage(REDRIVING))?;
        if let Some(before) = previously_resolved {
            index.remove((before, id)).map_err(storage(REDRIVING))?;
        }
        index
            .insert((rules::unix_millis(at), id), ())
            .map_err(storage(REDRIVING))?;
    }
    if !resolved {
        // Still dead: keep its key so provider retries stay deduplicated.
        tables
            .dedup
            .insert(
                (source.as_str(), letter.provider_event_id.as_str()),
                id | DEAD_LETTER_TAG,
            )
            .map_err(storage(REDRIVING))?;
    }
    tables
        .dead_letters
        .insert(id, letter.encode_to_vec().as_slice())
        .map_err(storage(REDRIVING))?;
    Ok(Ok(Reply::Redriven(RedriveOutcome {
        sequences: outcome.sequences,
        resolved,
    })))
}

/// Puts `reseal`'s seal on a dead letter's raw item: the letter is rewritten under its id,
/// nothing else changes.
fn reseal_dead_letter(
    tables: &mut AppendTables<'_>,
    reseal: &tributary_event_log::Reseal,
) -> Result<tributary_event_log::ResealOutcome, LogError> {
    let mut letter = {
        let Some(stored) = tables
            .dead_letters
            .get(reseal.id)
            .map_err(storage(RESEALING_DEAD_LETTER))?
        else {
            return Ok(tributary_event_log::ResealOutcome::Missing);
        };
        DeadLetter::decode(stored.value()).map_err(|source| LogError::Corrupt {
            key: reseal.id,
            source,
        })?
    };
    let outcome = rules::apply_dead_letter_reseal(&mut letter, reseal);
    if outcome == tributary_event_log::ResealOutcome::Rewritten {
        tables
            .dead_letters
            .insert(reseal.id, letter.encode_to_vec().as_slice())
            .map_err(storage(RESEALING_DEAD_LETTER))?;
    }
    Ok(outcome)
}

fn open_consumer(
    txn: &WriteTransaction,
    next: &Cursor,
    name: &str,
    after: u64,
    filter: &Filter,
) -> Result<Result<Reply, LogError>, LogError> {
    let mut table = txn
        .open_table(CONSUMERS)
        .map_err(storage(STORING_CONSUMER))?;
    let existing = table
        .get(name)
        .map_err(storage(STORING_CONSUMER))?
        .map(|stored| rules::decode_consumer(name, stored.value()))
        .transpose()?;
    if let Some(mut consumer) = existing {
        if rules::refilter_consumer(&mut consumer, filter) {
            table
                .insert(name, rules::encode_consumer(&consumer).as_slice())
                .map_err(storage(STORING_CONSUMER))?;
        }
        rules::set_lag(&mut consumer, next.last_sequence);
        return Ok(Ok(Reply::Consumer(consumer)));
    }
    let consumer = rules::new_consumer(name, after, next.last_sequence, now_timestamp(), filter);
    table
        .insert(name, rules::encode_consumer(&consumer).as_slice())
        .map_err(storage(STORING_CONSUMER))?;
    Ok(Ok(Reply::Consumer(consumer)))
}

/// Moves a consumer's acknowledged sequence: forward only for acks, anywhere for a reset.
fn ack(
    txn: &WriteTransaction,
    next: &Cursor,
    name: &str,
    sequence: u64,
    reset: bool,
) -> Result<Result<Reply, LogError>, LogError> {
    if let Err(invalid) = rules::check_ack_target(sequence, next.last_sequence) {
        return Ok(Err(invalid));
    }
    let mut table = txn
        .open_table(CONSUMERS)
        .map_err(storage(MOVING_CONSUMER))?;
    let mut consumer = match table.get(name).map_err(storage(MOVING_CONSUMER))? {
        Some(stored) => rules::decode_consumer(name, stored.value())?,
        None => return Ok(Err(LogError::UnknownConsumer(name.to_owned()))),
    };
    if rules::move_consumer(&mut consumer, sequence, reset, now_timestamp()) {
        table
            .insert(name, rules::encode_consumer(&consumer).as_slice())
            .map_err(storage(MOVING_CONSUMER))?;
    }
    rules::set_lag(&mut consumer, next.last_sequence);
    Ok(Ok(Reply::Consumer(consumer)))
}
