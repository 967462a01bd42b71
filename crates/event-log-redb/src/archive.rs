//! The raw archive: one entry per webhook (sealed by the service; stored as given), written in
//! the same transaction as the webhook's events and dead letters, found by id, by a stored
//! item of its webhook or (for a webhook that stored none) by (source, content key), and
//! expired by its own age and size limits.

use std::borrow::Cow;

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use tributary_event_log::{LogError, Retention, rules};
use tributary_model::v1::ArchiveEntry;

use super::tables::AppendTables;
use super::writer::Cursor;
use super::{ARCHIVE, ARCHIVE_KEYS, DEAD_LETTER_TAG, META, RETIRED, storage};

const STORING: &str = "storing a raw-archive entry";
const READING: &str = "reading the raw archive";
const EXPIRING: &str = "expiring raw-archive entries";

/// Most entries removed per retention pass.
const MAX_REMOVED_PER_PASS: usize = 10_000;

/// The id for `entry`: the stored entry of the same webhook (same source and content key),
/// else a new one. Returns the id and whether it is new.
///
/// A retry of a webhook that stored items finds its entry through an item's dedup key (the
/// first of `items`, the request's dedup keys, that is stored points at its entry), so only
/// entries that stored no item are indexed by content key ([`ARCHIVE_KEYS`]). Indexing every
/// entry cost a B-tree leaf rewritten per webhook: content keys are random, so each insert
/// lands on a page of its own.
pub(crate) fn reserve<'a>(
    tables: &AppendTables<'_>,
    cursor: &Cursor,
    source: &str,
    entry: &ArchiveEntry,
    items: impl Iterator<Item = Cow<'a, str>>,
) -> Result<(u64, bool), LogError> {
    for item in items {
        if let Some(id) = entry_of_item(tables, source, &item)? {
            if stored_content_key(tables, id)?.as_deref() == Some(entry.content_key.as_str()) {
                return Ok((id, false));
            }
            break;
        }
    }
    Ok(
        match tables
            .archive_keys
            .get((source, entry.content_key.as_str()))
            .map_err(storage(STORING))?
        {
            Some(id) => (id.value(), false),
            None => (cursor.last_archive + 1, true),
        },
    )
}

/// Just the `raw_id` of an encoded `Event` (field 15): prost skips the rest.
#[derive(Clone, PartialEq, prost::Message)]
struct EventRawId {
    #[prost(uint64, tag = "15")]
    raw_id: u64,
}

/// Just the `raw_id` of an encoded `DeadLetter` (field 13).
#[derive(Clone, PartialEq, prost::Message)]
struct DeadLetterRawId {
    #[prost(uint64, tag = "13")]
    raw_id: u64,
}

/// The archive entry of the item stored under (`source`, `item`), if one is.
fn entry_of_item(
    tables: &AppendTables<'_>,
    source: &str,
    item: &str,
) -> Result<Option<u64>, LogError> {
    let Some(owner) = tables
        .dedup
        .get((source, item))
        .map_err(storage(STORING))?
        .map(|v| v.value())
    else {
        return Ok(None);
    };
    let corrupt = |key| move |source| LogError::Corrupt { key, source };
    let raw_id = if owner == RETIRED {
        0
    } else if owner & DEAD_LETTER_TAG != 0 {
        let id = owner & !DEAD_LETTER_TAG;
        match tables.dead_letters.get(id).map_err(storage(STORING))? {
            Some(stored) => {
                DeadLetterRawId::decode(stored.value())
                    .map_err(corrupt(id))?
                    .raw_id
            }
            None => 0,
        }
    } else {
        match tables.events.get(owner).map_err(storage(STORING))? {
            Some(stored) => {
                EventRawId::decode(stored.value())
                    .map_err(corrupt(owner))?
                    .raw_id
            }
            None => 0,
        }
    };
    Ok((raw_id != 0).then_some(raw_id))
}

/// The content key of stored entry `id`, if it is stored.
fn stored_content_key(tables: &AppendTables<'_>, id: u64) -> Result<Option<String>, LogError> {
    tables
        .archive
        .get(id)
        .map_err(storage(STORING))?
        .map(|stored| {
            ArchiveEntry::decode(stored.value())
                .map(|entry| entry.content_key)
                .map_err(|source| LogError::Corrupt { key: id, source })
        })
        .transpose()
}

/// Stores `entry` under `id` with what its append stored, or, for an entry already stored,
/// adds what this append stored to it.
pub(crate) fn store(
    tables: &mut AppendTables<'_>,
    cursor: &mut Cursor,
    id: u64,
    new: bool,
    mut entry: ArchiveEntry,
    sequences: &[u64],
    dead_letter_ids: &[u64],
) -> Result<(), LogError> {
    if !new {
        if sequences.is_empty() && dead_letter_ids.is_empty() {
            return Ok(());
        }
        let Some(stored) = tables.archive.get(id).map_err(storage(STORING))? else {
            return Ok(());
        };
        let stored_len = stored.value().len() as u64;
        entry = ArchiveEntry::decode(stored.value())
            .map_err(|source| LogError::Corrupt { key: id, source })?;
        drop(stored);
        tables.archive_bytes = tables.archive_bytes.saturating_sub(stored_len);
    } else {
        entry.id = id;
        if sequences.is_empty() && dead_letter_ids.is_empty() {
            // No item leads a retry here: index the entry by its content.
            tables
                .archive_keys
                .insert((entry.source.as_str(), entry.content_key.as_str()), id)
                .map_err(storage(STORING))?;
        }
        // The newest id is the table's last key; retention records it before removing that.
        cursor.last_archive = id;
    }
    entry.sequences.extend_from_slice(sequences);
    entry.dead_letter_ids.extend_from_slice(dead_letter_ids);
    let encoded = entry.encode_to_vec();
    tables.archive_bytes += encoded.len() as u64;
    tables
        .archive
        .insert(id, encoded.as_slice())
        .map_err(storage(STORING))?;
    Ok(())
}

/// The highest archive id ever assigned: the table's last key, or what retention recorded
/// before it removed the newest entries.
pub(crate) fn last_id(txn: &WriteTransaction) -> Result<u64, LogError> {
    let table = txn.open_table(ARCHIVE).map_err(storage(READING))?;
    let meta = txn.open_table(META).map_err(storage(READING))?;
    let stored = table
        .last()
        .map_err(storage(READING))?
        .map_or(0, |(k, _)| k.value());
    let recorded = meta
        .get("last_archive")
        .map_err(storage(READING))?
        .map_or(0, |v| v.value());
    Ok(stored.max(recorded))
}

/// Entry `id`, if stored.
pub(crate) fn get(db: &Database, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
    let txn = db.begin_read().map_err(storage(READING))?;
    let table = txn.open_table(ARCHIVE).map_err(storage(READING))?;
    table
        .get(id)
        .map_err(storage(READING))?
        .map(|value| {
            ArchiveEntry::decode(value.value())
                .map_err(|source| LogError::Corrupt { key: id, source })
        })
        .transpose()
}

/// Up to `max` entries with an id greater than `after`.
pub(crate) fn list(db: &Database, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError> {
    let txn = db.begin_read().map_err(storage(READING))?;
    let table = txn.open_table(ARCHIVE).map_err(storage(READING))?;
    let mut out = Vec::new();
    for item in table
        .range(after.saturating_add(1)..)
        .map_err(storage(READING))?
        .take(max)
    {
        let (key, value) = item.map_err(storage(READING))?;
        out.push(
            ArchiveEntry::decode(value.value()).map_err(|source| LogError::Corrupt {
                key: key.value(),
                source,
            })?,
        );
    }
    Ok(out)
}

/// Removes the oldest entries received before `now - archive_max_age` and while their bytes
/// exceed `archive_max_bytes`. Returns how many.
pub(crate) fn expire(
    txn: &WriteTransaction,
    retention: &Retention,
    now_millis: u64,
) -> Result<usize, LogError> {
    if retention.archive_max_age.is_none() && retention.archive_max_bytes.is_none() {
        return Ok(0);
    }
    let cutoff = retention
        .archive_max_age
        .map(|age| now_millis.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)));
    let mut table = txn.open_table(ARCHIVE).map_err(storage(EXPIRING))?;
    let mut keys = txn.open_table(ARCHIVE_KEYS).map_err(storage(EXPIRING))?;
    let mut meta = txn.open_table(META).map_err(storage(EXPIRING))?;
    let mut bytes = meta
        .get("archive_bytes")
        .map_err(storage(EXPIRING))?
        .map_or(0, |v| v.value());
    let mut doomed = Vec::new();
    let mut freed = 0u64;
    for item in table.iter().map_err(storage(EXPIRING))? {
        if doomed.len() >= MAX_REMOVED_PER_PASS {
            break;
        }
        let (key, value) = item.map_err(storage(EXPIRING))?;
        let over_size = retention
            .archive_max_bytes
            .is_some_and(|max| bytes.saturating_sub(freed) > max);
        let entry = ArchiveEntry::decode(value.value()).map_err(|source| LogError::Corrupt {
            key: key.value(),
            source,
        })?;
        let received = entry.received_at.as_ref().map_or(0, rules::unix_millis);
        let too_old = cutoff.is_some_and(|cutoff| received < cutoff);
        if !too_old && !over_size {
            break;
        }
        freed += value.value().len() as u64;
        doomed.push((key.value(), entry.source, entry.content_key));
    }
    if let Some((newest, _, _)) = doomed.last() {
        // Ids are never reused: keep the highest one assigned before its entry may go.
        let stored_last = table
            .last()
            .map_err(storage(EXPIRING))?
            .map_or(0, |(k, _)| k.value());
        let recorded = meta
            .get("last_archive")
            .map_err(storage(EXPIRING))?
            .map_or(0, |v| v.value());
        let last = stored_last.max(recorded).max(*newest);
        meta.insert("last_archive", last)
            .map_err(storage(EXPIRING))?;
    }
    for (id, source, content_key) in &doomed {
        table.remove(*id).map_err(storage(EXPIRING))?;
        keys.remove((source.as_str(), content_key.as_str()))
            .map_err(storage(EXPIRING))?;
    }
    if !doomed.is_empty() {
        bytes = bytes.saturating_sub(freed);
        meta.insert("archive_bytes", bytes)
            .map_err(storage(EXPIRING))?;
    }
    Ok(doomed.len())
}
