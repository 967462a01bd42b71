//! Dead letters: immutable messages of the dead-letter stream (the stream sequence is the id),
//! plus their redrive state (reason, attempts, resolution) in a KV bucket keyed by id. The
//! state is the whole letter without its raw body, written with compare-and-set; once a key
//! rotation re-sealed the raw item ([`reseal`]), with it: the message cannot change, so the
//! state's `raw` (with its `raw_key_id` and `raw_nonce`) is read in place of the message's,
//! and the message keeps the old ciphertext until retention removes the letter.

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use futures_util::StreamExt;
use prost::Message as _;
use tributary_event_log::{
    AppendOutcome, LogError, PendingEvent, RedriveOutcome, Reseal, ResealOutcome, SourceName, rules,
};
use tributary_model::v1::DeadLetter;

use crate::Inner;
use crate::consumers::now;
use crate::read::messages_after;

/// KV reads in flight while listing.
const PARALLEL_READS: usize = 32;

fn decode(sequence: u64, payload: &[u8]) -> Result<DeadLetter, LogError> {
    let mut letter = DeadLetter::decode(payload).map_err(|source| LogError::Corrupt {
        key: sequence,
        source,
    })?;
    letter.id = sequence;
    Ok(letter)
}

/// Compare-and-set attempts of a re-seal before giving up.
const MAX_RESEAL_ATTEMPTS: usize = 16;

/// Applies the stored state to `letter`; returns the state's revision (0 when none). The raw
/// item stays the message's unless the state holds a re-sealed one.
async fn overlay(inner: &Inner, letter: &mut DeadLetter) -> Result<u64, LogError> {
    let id = letter.id;
    let entry = inner
        .dead_state
        .entry(id.to_string())
        .await
        .map_err(|e| LogError::storage(format!("cannot read dead letter {id} state"), e))?;
    let Some(entry) = entry else { return Ok(0) };
    if entry.operation != Operation::Put {
        return Ok(0);
    }
    let state = DeadLetter::decode(entry.value.as_ref())
        .map_err(|source| LogError::Corrupt { key: id, source })?;
    let raw = if state.raw.is_empty() {
        std::mem::take(&mut letter.raw)
    } else {
        state.raw.clone()
    };
    *letter = DeadLetter { id, raw, ..state };
    Ok(entry.revision)
}

pub(crate) async fn list(
    inner: &Inner,
    after: u64,
    max: usize,
) -> Result<Vec<DeadLetter>, LogError> {
    let info = crate::read::stream_info(&inner.dead).await?;
    let filter = inner.config.dead_letters_filter();
    let messages =
        messages_after(&inner.dead, &filter, after, info.state.last_sequence, max).await?;
    let letters = messages
        .iter()
        .map(|m| decode(m.sequence, m.payload.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let results: Vec<_> = futures_util::stream::iter(letters)
        .map(|mut letter| async move {
            overlay(inner, &mut letter).await?;
            Ok::<_, LogError>(letter)
        })
        .buffered(PARALLEL_READS)
        .collect()
        .await;
    results.into_iter().collect()
}

pub(crate) async fn redrive(
    inner: &Inner,
    id: u64,
    events: Vec<PendingEvent>,
    still_failing: Option<String>,
) -> Result<RedriveOutcome, LogError> {
    if id == 0 {
        // Ids start at 1; JetStream refuses sequence 0 as a bad request.
        return Err(LogError::UnknownDeadLetter(id));
    }
    let message = match inner.dead.get_raw_message(id).await {
        Ok(message) => message,
        Err(e)
            if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
        {
            return Err(LogError::UnknownDeadLetter(id));
        }
        Err(e) => {
            return Err(LogError::storage(
                format!("cannot read dead letter {id}"),
                e,
            ));
        }
    };
    let mut letter = decode(id, message.payload.as_ref())?;
    let sealed_in_message = (letter.raw_key_id.clone(), letter.raw_nonce.clone());
    let revision = overlay(inner, &mut letter).await?;
    // A re-sealed raw item lives in the state: it is written again with it.
    let resealed = (letter.raw_key_id.clone(), letter.raw_nonce.clone()) != sealed_in_message;
    rules::validate_redrive_events(&events)?;
    // Events first: if the state write fails, a later redrive appends nothing twice (dedup)
    // and resolves the letter then.
    let mut outcome = AppendOutcome::default();
    // Stored by an append, so valid; checked again rather than trusted.
    let source = SourceName::new(&letter.source)?;
    let mut sent = std::collections::HashSet::new();
    inner
        .publish_events(&source, &events, &mut outcome, &mut sent)
        .await?;

    let resolved = rules::record_redrive(&mut letter, still_failing, &outcome.sequences, now());
    let state: bytes::Bytes = DeadLetter {
        raw: if resealed { letter.raw } else { Vec::new() },
        ..letter
    }
    .encode_to_vec()
    .into();
    let key = id.to_string();
    let written = if revision == 0 {
        inner
            .dead_state
            .create(&key, state)
            .await
            .map_err(|e| match e.kind() {
                CreateErrorKind::AlreadyExists => concurrent(id),
                _ => LogError::storage(format!("cannot store dead letter {id} state"), e),
            })
    } else {
        inner
            .dead_state
            .update(&key, state, revision)
            .await
            .map_err(|e| match e.kind() {
                UpdateErrorKind::WrongLastRevision => concurrent(id),
                _ => LogError::storage(format!("cannot store dead letter {id} state"), e),
            })
    };
    written?;
    Ok(RedriveOutcome {
        sequences: outcome.sequences,
        resolved,
    })
}

/// Puts `reseal`'s seal on dead letter `reseal.id`'s raw item, in its state record (see the
/// module's documentation), when it is stored and still sealed as the caller read it.
pub(crate) async fn reseal(inner: &Inner, reseal: &Reseal) -> Result<ResealOutcome, LogError> {
    let id = reseal.id;
    if id == 0 {
        return Ok(ResealOutcome::Missing);
    }
    let message = match inner.dead.get_raw_message(id).await {
        Ok(message) => message,
        Err(e)
            if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
        {
            return Ok(ResealOutcome::Missing);
        }
        Err(e) => {
            return Err(LogError::storage(
                format!("cannot read dead letter {id}"),
                e,
            ));
        }
    };
    let key = id.to_string();
    for _ in 0..MAX_RESEAL_ATTEMPTS {
        let mut letter = decode(id, message.payload.as_ref())?;
        let revision = overlay(inner, &mut letter).await?;
        let outcome = rules::apply_dead_letter_reseal(&mut letter, reseal);
        if outcome != ResealOutcome::Rewritten {
            return Ok(outcome);
        }
        let state: bytes::Bytes = letter.encode_to_vec().into();
        let storing = || format!("cannot re-seal dead letter {id}");
        // Redriven or re-sealed meanwhile (a conflict): read it again.
        if revision == 0 {
            match inner.dead_state.create(&key, state).await {
                Ok(_) => return Ok(ResealOutcome::Rewritten),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
                Err(e) => return Err(LogError::storage(storing(), e)),
            }
        }
        match inner.dead_state.update(&key, state, revision).await {
            Ok(_) => return Ok(ResealOutcome::Rewritten),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(LogError::storage(storing(), e)),
        }
    }
    Err(concurrent(id))
}

fn concurrent(id: u64) -> LogError {
    LogError::unavailable(format!(
        "dead letter {id} was redriven by another instance at the same time; list it again"
    ))
}
