//! The raw archive: one entry per webhook (sealed by the service; stored as given), written in
//! the same batch as the webhook's events and dead letters, found by id, by a stored item of
//! its webhook or (for a webhook that stored none) by (source, content key), and expired by
//! its own age and size limits.
//!
//! The entries of one commit are one value (a block keyed by its first id; ids in a block are
//! consecutive) in the key-value separated `archive` keyspace: written once, into a blob file,
//! so compaction moves pointers, not ciphertext. `archive_index` holds a small summary per
//! block (last id, size, newest `received_at`, the content keys it indexed), so retention
//! decides and removes without reading blocks: it costs one summary read and a few tombstones
//! per block removed (a block per commit, not per webhook).

use prost::Message;
use tributary_event_log::varint_field;
use tributary_event_log::{LogError, Reseal, ResealOutcome, Retention, rules};
use tributary_model::fields;
use tributary_model::v1::ArchiveEntry;

use crate::keys;
use crate::segments;
use crate::staged::{Space, Staged};
use crate::state::Counters;
use crate::store::{DEAD_LETTER_TAG, RETIRED, Store, storage};
use crate::tx::{PendingBlock, Tx};

const READING: &str = "reading the raw archive";
const EXPIRING: &str = "expiring raw-archive entries";

/// Most blocks removed per retention pass.
const MAX_BLOCKS_PER_PASS: usize = 10_000;

/// The entries of one commit, in id order: the value of `archive` under the first id.
#[derive(Clone, PartialEq, prost::Message)]
struct ArchiveBlock {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<ArchiveEntry>,
}

/// What retention needs of a block, in `archive_index` under its first id.
#[derive(Clone, PartialEq, prost::Message)]
struct BlockSummary {
    #[prost(uint64, tag = "1")]
    last_id: u64,
    #[prost(uint64, tag = "2")]
    stored_len: u64,
    /// Newest `received_at` of its entries (unix ms).
    #[prost(uint64, tag = "3")]
    newest_ms: u64,
    /// The `archive_keys` keys its entries wrote.
    #[prost(bytes = "vec", repeated, tag = "4")]
    content_keys: Vec<Vec<u8>>,
}

impl PendingBlock {
    /// Where entry `id` is in the block (ids in a block are consecutive).
    fn index(&self, id: u64) -> Option<usize> {
        let first = self.entries.first()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        (index < self.entries.len()).then_some(index)
    }
}

fn summary_of(
    entries: &[ArchiveEntry],
    stored_len: u64,
    content_keys: Vec<Vec<u8>>,
) -> BlockSummary {
    BlockSummary {
        last_id: entries.last().map_or(0, |entry| entry.id),
        stored_len,
        newest_ms: entries
            .iter()
            .filter_map(|entry| entry.received_at.as_ref())
            .map(rules::unix_millis)
            .max()
            .unwrap_or(0),
        content_keys,
    }
}

/// Stages the commit's block, if it holds any entry, and counts its bytes.
pub(crate) fn flush(tx: &mut Tx<'_>) -> Result<(), LogError> {
    let pending = std::mem::take(&mut tx.pending_archive);
    let Some(first) = pending.entries.first().map(|entry| entry.id) else {
        return Ok(());
    };
    let mut summary = summary_of(&pending.entries, 0, pending.content_keys);
    let encoded = ArchiveBlock {
        entries: pending.entries,
    }
    .encode_to_vec();
    let len = encoded.len() as u64;
    summary.stored_len = len;
    tx.staged.put(Space::Archive, keys::u64_key(first), encoded);
    tx.staged.put(
        Space::ArchiveIndex,
        keys::u64_key(first),
        summary.encode_to_vec(),
    );
    tx.next.archive_bytes += len;
    Ok(())
}

/// The block that holds an entry.
struct Found {
    first: u64,
    summary: BlockSummary,
    entries: Vec<ArchiveEntry>,
    index: usize,
}

/// The committed block summary whose range may hold `id`.
fn block_of(store: &Store, id: u64) -> Result<Option<(u64, BlockSummary)>, LogError> {
    let Some(item) = store.archive_index.range(..=keys::u64_key(id)).next_back() else {
        return Ok(None);
    };
    let (key, value) = item.into_inner().map_err(storage(READING))?;
    let first = keys::read_u64(&key).unwrap_or(0);
    let summary = BlockSummary::decode(value.as_ref())
        .map_err(|source| LogError::Corrupt { key: first, source })?;
    Ok((id <= summary.last_id).then_some((first, summary)))
}

fn decode_block(first: u64, value: &[u8]) -> Result<Vec<ArchiveEntry>, LogError> {
    Ok(ArchiveBlock::decode(value)
        .map_err(|source| LogError::Corrupt { key: first, source })?
        .entries)
}

/// The block holding `id` as commit `tx` sees it (a block rewritten earlier in the commit).
fn find_in(tx: &Tx<'_>, id: u64) -> Result<Option<Found>, LogError> {
    let Some((first, summary)) = block_of(tx.store, id)? else {
        return Ok(None);
    };
    let summary = match tx.staged.staged(Space::ArchiveIndex, &keys::u64_key(first)) {
        Some(Some(staged)) => BlockSummary::decode(staged.as_ref())
            .map_err(|source| LogError::Corrupt { key: first, source })?,
        _ => summary,
    };
    let Some(value) = tx.read(Space::Archive, &keys::u64_key(first))? else {
        return Ok(None);
    };
    let entries = decode_block(first, &value)?;
    Ok(entries
        .iter()
        .position(|entry| entry.id == id)
        .map(|index| Found {
            first,
            summary,
            entries,
            index,
        }))
}

/// The id for `entry`: the stored entry of the same webhook (same source and content key),
/// else a new one. Returns the id and whether it is new.
///
/// A retry of a webhook that stored items finds its entry through them: `owners` are the
/// dedup owners of the request's items stored before it (the first whose entry is known
/// decides), so only entries that stored no item are indexed by content key.
pub(crate) fn reserve(
    tx: &Tx<'_>,
    source: &str,
    entry: &ArchiveEntry,
    owners: &[u64],
) -> Result<(u64, bool), LogError> {
    for &owner in owners {
        if let Some(id) = entry_of_owner(tx, owner)? {
            if stored_content_key(tx, id)?.as_deref() == Some(entry.content_key.as_str()) {
                return Ok((id, false));
            }
            break;
        }
    }
    let key = keys::dedup_key(source, &entry.content_key);
    Ok(match tx.read(Space::ArchiveKeys, &key)? {
        Some(id) => (keys::read_u64(&id).unwrap_or(0), false),
        None => (tx.next.last_archive + 1, true),
    })
}

/// The archive entry of the stored item `owner` (its dedup owner), if it has one.
fn entry_of_owner(tx: &Tx<'_>, owner: u64) -> Result<Option<u64>, LogError> {
    let raw_id = if owner == RETIRED {
        0
    } else if owner & DEAD_LETTER_TAG != 0 {
        tx.dead_letter(owner & !DEAD_LETTER_TAG)?
            .map_or(0, |letter| letter.raw_id)
    } else {
        let fresh = tx
            .fresh
            .first()
            .and_then(|first| owner.checked_sub(first.sequence()))
            .and_then(|at| tx.fresh.get(usize::try_from(at).ok()?));
        let corrupt = |source| LogError::Corrupt { key: owner, source };
        match fresh {
            Some(event) => {
                varint_field(event.encoded().as_ref(), fields::event::RAW_ID).map_err(corrupt)?
            }
            None => {
                let number = segments::number_of(owner, tx.segment_events);
                match tx.read(Space::Events(number), &keys::u64_key(owner))? {
                    Some(value) => {
                        let encoded = crate::event_value::unpack(&value)
                            .map_err(|e| LogError::storage(format!("reading event {owner}"), e))?;
                        varint_field(&encoded, fields::event::RAW_ID).map_err(corrupt)?
                    }
                    None => 0,
                }
            }
        }
    };
    Ok((raw_id != 0).then_some(raw_id))
}

/// The content key of entry `id`, if it is stored or added by this commit.
fn stored_content_key(tx: &Tx<'_>, id: u64) -> Result<Option<String>, LogError> {
    let pending = &tx.pending_archive;
    if let Some(index) = pending.index(id) {
        return Ok(Some(pending.entries[index].content_key.clone()));
    }
    Ok(find_in(tx, id)?.map(|mut found| found.entries.swap_remove(found.index).content_key))
}

/// Adds `entry` under `id` with what its append stored to this commit's block, or, for an
/// entry already stored, adds what this append stored to it.
pub(crate) fn store(
    tx: &mut Tx<'_>,
    id: u64,
    new: bool,
    mut entry: ArchiveEntry,
    sequences: &[u64],
    dead_letter_ids: &[u64],
) -> Result<(), LogError> {
    if new {
        entry.id = id;
        entry.sequences.extend_from_slice(sequences);
        entry.dead_letter_ids.extend_from_slice(dead_letter_ids);
        if sequences.is_empty() && dead_letter_ids.is_empty() {
            // No item leads a retry here: index the entry by its content.
            let key = keys::dedup_key(&entry.source, &entry.content_key);
            tx.staged
                .put(Space::ArchiveKeys, key.clone(), keys::u64_key(id).to_vec());
            tx.pending_archive.content_keys.push(key);
        }
        tx.next.last_archive = id;
        tx.pending_archive.entries.push(entry);
        return Ok(());
    }
    if sequences.is_empty() && dead_letter_ids.is_empty() {
        return Ok(());
    }
    let extend = |entry: &mut ArchiveEntry| {
        entry.sequences.extend_from_slice(sequences);
        entry.dead_letter_ids.extend_from_slice(dead_letter_ids);
    };
    if let Some(index) = tx.pending_archive.index(id) {
        extend(&mut tx.pending_archive.entries[index]);
        return Ok(());
    }
    // A retry of a webhook archived by an earlier commit: rewrite the block that holds it.
    let Some(mut found) = find_in(tx, id)? else {
        return Ok(());
    };
    extend(&mut found.entries[found.index]);
    rewrite(tx, found);
    Ok(())
}

/// Stages `found`'s block, changed, under its key, and its summary with the new size; the
/// archive's byte count follows.
fn rewrite(tx: &mut Tx<'_>, mut found: Found) {
    let encoded = ArchiveBlock {
        entries: found.entries,
    }
    .encode_to_vec();
    let len = encoded.len() as u64;
    tx.next.archive_bytes = tx
        .next
        .archive_bytes
        .saturating_sub(found.summary.stored_len)
        + len;
    found.summary.stored_len = len;
    tx.staged
        .put(Space::Archive, keys::u64_key(found.first), encoded);
    tx.staged.put(
        Space::ArchiveIndex,
        keys::u64_key(found.first),
        found.summary.encode_to_vec(),
    );
}

/// Puts `reseal`'s seal on its entry, rewriting the block that holds it (this commit's own
/// block when the entry is new in it). The block keeps its key, its other entries and its
/// summary's ids and time, so ids, order, links and retention are unchanged; the archive's
/// byte count follows the new size.
pub(crate) fn reseal(tx: &mut Tx<'_>, reseal: &Reseal) -> Result<ResealOutcome, LogError> {
    if let Some(index) = tx.pending_archive.index(reseal.id) {
        return Ok(rules::apply_reseal(
            &mut tx.pending_archive.entries[index],
            reseal,
        ));
    }
    let Some(mut found) = find_in(tx, reseal.id)? else {
        return Ok(ResealOutcome::Missing);
    };
    let outcome = rules::apply_reseal(&mut found.entries[found.index], reseal);
    if outcome == ResealOutcome::Rewritten {
        rewrite(tx, found);
    }
    Ok(outcome)
}

/// Entry `id`, if stored.
pub(crate) fn get(store: &Store, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
    let Some((first, _)) = block_of(store, id)? else {
        return Ok(None);
    };
    let Some(value) = store
        .archive
        .get(keys::u64_key(first))
        .map_err(storage(READING))?
    else {
        return Ok(None);
    };
    Ok(decode_block(first, &value)?
        .into_iter()
        .find(|entry| entry.id == id))
}

/// Up to `max` entries with an id greater than `after`.
pub(crate) fn list(store: &Store, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError> {
    let first = after.saturating_add(1);
    let start = match block_of(store, first)? {
        Some((start, _)) => start,
        None => first,
    };
    let mut out = Vec::new();
    for item in store.archive.range(keys::u64_key(start)..) {
        if out.len() >= max {
            break;
        }
        let (key, value) = item.into_inner().map_err(storage(READING))?;
        let entries = decode_block(keys::read_u64(&key).unwrap_or(0), &value)?;
        let wanted = max - out.len();
        out.extend(
            entries
                .into_iter()
                .filter(|entry| entry.id > after)
                .take(wanted),
        );
    }
    Ok(out)
}

/// Stages the removal of the oldest blocks whose newest entry was received before
/// `now - archive_max_age`, and of the oldest while the archive exceeds `archive_max_bytes`.
/// Reads summaries only. Returns how many entries go.
pub(crate) fn expire(
    store: &Store,
    retention: &Retention,
    now_millis: u64,
    next: &mut Counters,
    staged: &mut Staged,
) -> Result<u64, LogError> {
    if retention.archive_max_age.is_none() && retention.archive_max_bytes.is_none() {
        return Ok(0);
    }
    let cutoff = retention
        .archive_max_age
        .map(|age| now_millis.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)));
    let mut removed = 0u64;
    for item in store.archive_index.iter().take(MAX_BLOCKS_PER_PASS) {
        let (key, value) = item.into_inner().map_err(storage(EXPIRING))?;
        let first = keys::read_u64(&key).unwrap_or(0);
        let summary = BlockSummary::decode(value.as_ref())
            .map_err(|source| LogError::Corrupt { key: first, source })?;
        let over_size = retention
            .archive_max_bytes
            .is_some_and(|max| next.archive_bytes > max);
        let too_old = cutoff.is_some_and(|cutoff| summary.newest_ms < cutoff);
        if !too_old && !over_size {
            break;
        }
        staged.remove(Space::Archive, key.to_vec());
        staged.remove(Space::ArchiveIndex, key.to_vec());
        for content_key in summary.content_keys {
            staged.remove(Space::ArchiveKeys, content_key);
        }
        next.archive_bytes = next.archive_bytes.saturating_sub(summary.stored_len);
        removed += summary.last_id.saturating_sub(first) + 1;
    }
    Ok(removed)
}
