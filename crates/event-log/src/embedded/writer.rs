//! The single writer: drains queued appends, applies them in one write transaction and commits
//! once (group commit), then answers every waiting request.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot, watch};

use super::{DEAD_LETTER_TAG, DEAD_LETTERS, DEDUP, EVENTS, EmbeddedConfig, TIME_INDEX, storage};
use crate::{AppendOutcome, AppendRequest, LogError};

/// One queued append and where to send its outcome.
pub(crate) struct Job {
    pub request: AppendRequest,
    pub reply: oneshot::Sender<Result<AppendOutcome, LogError>>,
}

/// Counters the writer owns; reloaded from storage after a failed commit.
struct Cursor {
    last_sequence: u64,
    last_dead_letter: u64,
    last_millis: u64,
}

pub(crate) fn spawn(
    db: Arc<Database>,
    config: EmbeddedConfig,
    mut jobs: mpsc::Receiver<Job>,
    last_tx: watch::Sender<u64>,
    health: Arc<Mutex<Result<(), String>>>,
) -> Result<(), LogError> {
    let mut cursor = load_cursor(&db)?;
    std::thread::Builder::new()
        .name("event-log-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(config.max_batch);
            while let Some(first) = jobs.blocking_recv() {
                batch.push(first);
                while batch.len() < config.max_batch {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let result = commit_batch(&db, config.durable, &mut cursor, &mut batch);
                let status = match result {
                    Ok(outcomes) => {
                        for (job, outcome) in batch.drain(..).zip(outcomes) {
                            let _ = job.reply.send(outcome);
                        }
                        last_tx.send_replace(cursor.last_sequence);
                        Ok(())
                    }
                    Err(error) => {
                        tracing::error!(%error, appends = batch.len(), "event log commit failed");
                        let message = error.to_string();
                        for job in batch.drain(..) {
                            let _ = job.reply.send(Err(LogError::Storage(message.clone())));
                        }
                        // Nothing of the batch was committed: continue from what is stored.
                        if let Ok(reloaded) = load_cursor(&db) {
                            cursor = reloaded;
                        }
                        Err(message)
                    }
                };
                if let Ok(mut h) = health.lock() {
                    *h = status;
                }
            }
        })
        .map_err(|e| LogError::Storage(format!("cannot start writer thread: {e}")))?;
    Ok(())
}

fn load_cursor(db: &Database) -> Result<Cursor, LogError> {
    let txn = db.begin_write().map_err(storage)?;
    let cursor = {
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let dead = txn.open_table(DEAD_LETTERS).map_err(storage)?;
        let times = txn.open_table(TIME_INDEX).map_err(storage)?;
        Cursor {
            last_sequence: events
                .last()
                .map_err(storage)?
                .map(|(k, _)| k.value())
                .unwrap_or(0),
            last_dead_letter: dead
                .last()
                .map_err(storage)?
                .map(|(k, _)| k.value())
                .unwrap_or(0),
            last_millis: times
                .last()
                .map_err(storage)?
                .map(|(k, _)| k.value())
                .unwrap_or(0),
        }
    };
    txn.abort().map_err(storage)?;
    Ok(cursor)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Applies every job in one transaction. On success returns one outcome per job (invalid jobs
/// get their own error and are not applied); on failure nothing is stored.
fn commit_batch(
    db: &Database,
    durable: bool,
    cursor: &mut Cursor,
    batch: &mut [Job],
) -> Result<Vec<Result<AppendOutcome, LogError>>, LogError> {
    let mut txn = db.begin_write().map_err(storage)?;
    if !durable {
        txn.set_durability(Durability::None).map_err(storage)?;
    }
    let mut next = Cursor {
        last_sequence: cursor.last_sequence,
        last_dead_letter: cursor.last_dead_letter,
        last_millis: cursor.last_millis.max(now_millis()),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        outcomes.push(match validate(&job.request) {
            Ok(()) => Ok(apply(&txn, &mut next, &mut job.request)?),
            Err(e) => Err(e),
        });
    }
    txn.commit().map_err(storage)?;
    *cursor = next;
    Ok(outcomes)
}

fn validate(request: &AppendRequest) -> Result<(), LogError> {
    let missing_event_id = request.events.iter().any(|e| {
        e.provenance
            .as_ref()
            .is_none_or(|p| p.provider_event_id.is_empty())
    });
    let missing_dead_letter_id = request
        .dead_letters
        .iter()
        .any(|d| d.provider_event_id.is_empty());
    if missing_event_id || missing_dead_letter_id {
        return Err(LogError::Invalid(
            "every event and dead letter needs a provider event id".into(),
        ));
    }
    Ok(())
}

fn apply(
    txn: &WriteTransaction,
    next: &mut Cursor,
    request: &mut AppendRequest,
) -> Result<AppendOutcome, LogError> {
    let mut events = txn.open_table(EVENTS).map_err(storage)?;
    let mut dedup = txn.open_table(DEDUP).map_err(storage)?;
    let mut dead = txn.open_table(DEAD_LETTERS).map_err(storage)?;
    let mut times = txn.open_table(TIME_INDEX).map_err(storage)?;
    let source = request.source.as_str();
    let mut outcome = AppendOutcome::default();

    for event in &mut request.events {
        let id = event
            .provenance
            .as_ref()
            .map(|p| p.provider_event_id.as_str())
            .unwrap_or_default();
        if dedup.get((source, id)).map_err(storage)?.is_some() {
            outcome.duplicates += 1;
            continue;
        }
        let sequence = next.last_sequence + 1;
        event.sequence = sequence;
        events
            .insert(sequence, event.encode_to_vec().as_slice())
            .map_err(storage)?;
        dedup.insert((source, id), sequence).map_err(storage)?;
        if times.get(next.last_millis).map_err(storage)?.is_none() {
            times.insert(next.last_millis, sequence).map_err(storage)?;
        }
        next.last_sequence = sequence;
        outcome.sequences.push(sequence);
    }

    for letter in &mut request.dead_letters {
        let id = letter.provider_event_id.as_str();
        if dedup.get((source, id)).map_err(storage)?.is_some() {
            outcome.duplicates += 1;
            continue;
        }
        let letter_id = next.last_dead_letter + 1;
        letter.id = letter_id;
        dead.insert(letter_id, letter.encode_to_vec().as_slice())
            .map_err(storage)?;
        dedup
            .insert((source, id), letter_id | DEAD_LETTER_TAG)
            .map_err(storage)?;
        next.last_dead_letter = letter_id;
        outcome.dead_lettered += 1;
    }
    Ok(outcome)
}
