//! The raw archive: one entry per webhook (sealed by the service; stored as given), written in
//! the same transaction as the webhook's events and dead letters, found by id, by a stored
//! item of its webhook or (for a webhook that stored none) by (source, content key), and
//! expired by its own age and size limits.
//!
//! The entries of one commit are stored as one value, a block keyed by its first id (ids in a
//! block are consecutive): one B-tree insert per commit instead of one ~1.5 KB insert per
//! webhook, which made the writer copy and split leaves for every webhook. A value written
//! before blocks holds one entry; both are read (see [`decode_value`], `block.rs`).

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use tributary_event_log::varint_field;
use tributary_event_log::{LogError, Reseal, ResealOutcome, Retention, rules};
use tributary_model::fields::{dead_letter, event};
use tributary_model::v1::ArchiveEntry;

use super::block::{ArchiveBlock, decode_value};
use super::cursor::Cursor;
use super::tables::AppendTables;
use super::{ARCHIVE, ARCHIVE_KEYS, DEAD_LETTER_TAG, META, RETIRED, storage};

const STORING: &str = "storing a raw-archive entry";
const READING: &str = "reading the raw archive";
const EXPIRING: &str = "expiring raw-archive entries";
const RESEALING: &str = "resealing a raw-archive entry";

/// Most entries removed per retention pass.
const MAX_REMOVED_PER_PASS: usize = 10_000;

/// The stored value that holds an entry.
struct Found {
    /// The value's key (its first entry's id).
    key: u64,
    /// Its size as stored.
    stored_len: u64,
    entries: Vec<ArchiveEntry>,
    /// Where the entry is in `entries`.
    index: usize,
}

/// The stored value that holds entry `id`, if one does.
fn find<T: ReadableTable<u64, &'static [u8]>>(
    table: &T,
    id: u64,
    context: &'static str,
) -> Result<Option<Found>, LogError> {
    let Some((key, value)) = table
        .range(..=id)
        .map_err(storage(context))?
        .next_back()
        .transpose()
        .map_err(storage(context))?
    else {
        return Ok(None);
    };
    let key = key.value();
    let entries = decode_value(key, value.value())?;
    Ok(entries
        .iter()
        .position(|entry| entry.id == id)
        .map(|index| Found {
            key,
            stored_len: value.value().len() as u64,
            entries,
            index,
        }))
}

/// The id for `entry`: the stored entry of the same webhook (same source and content key),
/// else a new one. Returns the id and whether it is new.
///
/// A retry of a webhook that stored items finds its entry through them: `owners` are the dedup
/// values of the request's items stored before it (the first whose entry is known decides),
/// so only entries that stored no item are indexed by content key ([`ARCHIVE_KEYS`]). Indexing
/// every entry cost a B-tree leaf rewritten per webhook: content keys are random, so each
/// insert lands on a page of its own.
pub(crate) fn reserve(
    tables: &AppendTables<'_>,
    cursor: &Cursor,
    source: &str,
    entry: &ArchiveEntry,
    owners: impl Iterator<Item = u64>,
) -> Result<(u64, bool), LogError> {
    for owner in owners {
        if let Some(id) = entry_of_owner(tables, owner)? {
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

/// The archive entry of the stored item `owner` (its dedup value), if it has one.
fn entry_of_owner(tables: &AppendTables<'_>, owner: u64) -> Result<Option<u64>, LogError> {
    let corrupt = |key| move |source| LogError::Corrupt { key, source };
    let raw_id = if owner == RETIRED {
        0
    } else if owner & DEAD_LETTER_TAG != 0 {
        let id = owner & !DEAD_LETTER_TAG;
        match tables.dead_letters.get(id).map_err(storage(STORING))? {
            Some(stored) => {
                varint_field(stored.value(), dead_letter::RAW_ID).map_err(corrupt(id))?
            }
            None => 0,
        }
    } else {
        match tables.events.get(owner).map_err(storage(STORING))? {
            Some(stored) => varint_field(stored.value(), event::RAW_ID).map_err(corrupt(owner))?,
            None => 0,
        }
    };
    Ok((raw_id != 0).then_some(raw_id))
}

/// The content key of entry `id`, if it is stored or added by this commit.
fn stored_content_key(tables: &AppendTables<'_>, id: u64) -> Result<Option<String>, LogError> {
    let pending = &tables.pending_archive;
    if let Some(index) = pending.index(id) {
        return Ok(Some(pending.entries[index].content_key.clone()));
    }
    Ok(find(&tables.archive, id, STORING)?
        .map(|mut found| found.entries.swap_remove(found.index).content_key))
}

/// Adds `entry` under `id` with what its append stored to this commit's block, or, for an
/// entry already stored, adds what this append stored to it.
pub(crate) fn store(
    tables: &mut AppendTables<'_>,
    cursor: &mut Cursor,
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
            tables
                .archive_keys
                .insert((entry.source.as_str(), entry.content_key.as_str()), id)
                .map_err(storage(STORING))?;
        }
        // The newest id is the table's last; retention records it before removing that.
        cursor.last_archive = id;
        tables.pending_archive.entries.push(entry);
        return Ok(());
    }
    if sequences.is_empty() && dead_letter_ids.is_empty() {
        return Ok(());
    }
    let extend = |entry: &mut ArchiveEntry| {
        entry.sequences.extend_from_slice(sequences);
        entry.dead_letter_ids.extend_from_slice(dead_letter_ids);
    };
    if let Some(index) = tables.pending_archive.index(id) {
        extend(&mut tables.pending_archive.entries[index]);
        return Ok(());
    }
    // A retry of a webhook archived by an earlier commit: rewrite the value that holds it.
    let Some(mut found) = find(&tables.archive, id, STORING)? else {
        return Ok(());
    };
    extend(&mut found.entries[found.index]);
    rewrite(tables, found, STORING)
}

/// Writes `found`'s value, changed, back under its key; the archive's byte count follows.
fn rewrite(
    tables: &mut AppendTables<'_>,
    found: Found,
    context: &'static str,
) -> Result<(), LogError> {
    let encoded = ArchiveBlock {
        entries: found.entries,
    }
    .encode_to_vec();
    tables.archive_bytes =
        tables.archive_bytes.saturating_sub(found.stored_len) + encoded.len() as u64;
    tables
        .archive
        .insert(found.key, encoded.as_slice())
        .map_err(storage(context))?;
    Ok(())
}

/// Puts `reseal`'s seal on its entry, rewriting the value that holds it (in this commit's
/// block when the entry is new in it). The value keeps its key and the other entries, so ids,
/// order, links and retention (by the entries' `received_at`) are unchanged; the archive's
/// byte count follows the new size.
pub(crate) fn reseal(
    tables: &mut AppendTables<'_>,
    reseal: &Reseal,
) -> Result<ResealOutcome, LogError> {
    if let Some(index) = tables.pending_archive.index(reseal.id) {
        return Ok(rules::apply_reseal(
            &mut tables.pending_archive.entries[index],
            reseal,
        ));
    }
    let Some(mut found) = find(&tables.archive, reseal.id, RESEALING)? else {
        return Ok(ResealOutcome::Missing);
    };
    let outcome = rules::apply_reseal(&mut found.entries[found.index], reseal);
    if outcome == ResealOutcome::Rewritten {
        rewrite(tables, found, RESEALING)?;
    }
    Ok(outcome)
}

/// The highest archive id ever assigned: the table's last key, or what retention recorded
/// before it removed the newest entries.
pub(crate) fn last_id(txn: &WriteTransaction) -> Result<u64, LogError> {
    let table = txn.open_table(ARCHIVE).map_err(storage(READING))?;
    let meta = txn.open_table(META).map_err(storage(READING))?;
    let stored = newest_id(&table, READING)?;
    let recorded = meta
        .get("last_archive")
        .map_err(storage(READING))?
        .map_or(0, |v| v.value());
    Ok(stored.max(recorded))
}

/// The id of the newest stored entry (the last of the last value), or 0.
fn newest_id<T: ReadableTable<u64, &'static [u8]>>(
    table: &T,
    context: &'static str,
) -> Result<u64, LogError> {
    let Some((key, value)) = table.last().map_err(storage(context))? else {
        return Ok(0);
    };
    let key = key.value();
    Ok(decode_value(key, value.value())?
        .last()
        .map_or(key, |entry| entry.id))
}

/// Entry `id`, if stored.
pub(crate) fn get(db: &Database, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
    let txn = db.begin_read().map_err(storage(READING))?;
    let table = txn.open_table(ARCHIVE).map_err(storage(READING))?;
    Ok(find(&table, id, READING)?.map(|mut found| found.entries.swap_remove(found.index)))
}

/// Up to `max` entries with an id greater than `after`.
pub(crate) fn list(db: &Database, after: u64, max: usize) -> Result<Vec<ArchiveEntry>, LogError> {
    let txn = db.begin_read().map_err(storage(READING))?;
    let table = txn.open_table(ARCHIVE).map_err(storage(READING))?;
    let first = after.saturating_add(1);
    // The value holding `first` starts at or before it.
    let start = table
        .range(..=first)
        .map_err(storage(READING))?
        .next_back()
        .transpose()
        .map_err(storage(READING))?
        .map_or(first, |(key, _)| key.value());
    let mut out = Vec::new();
    for item in table.range(start..).map_err(storage(READING))? {
        if out.len() >= max {
            break;
        }
        let (key, value) = item.map_err(storage(READING))?;
        let entries = decode_value(key.value(), value.value())?;
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
    // Whole values go: a block when its newest entry is too old, or while over size.
    let mut doomed: Vec<(u64, Vec<ArchiveEntry>)> = Vec::new();
    let mut removed = 0;
    let mut freed = 0u64;
    for item in table.iter().map_err(storage(EXPIRING))? {
        if removed >= MAX_REMOVED_PER_PASS {
            break;
        }
        let (key, value) = item.map_err(storage(EXPIRING))?;
        let over_size = retention
            .archive_max_bytes
            .is_some_and(|max| bytes.saturating_sub(freed) > max);
        let entries = decode_value(key.value(), value.value())?;
        let newest = entries
            .iter()
            .filter_map(|entry| entry.received_at.as_ref())
            .map(rules::unix_millis)
            .max()
            .unwrap_or(0);
        let too_old = cutoff.is_some_and(|cutoff| newest < cutoff);
        if !too_old && !over_size {
            break;
        }
        freed += value.value().len() as u64;
        removed += entries.len();
        doomed.push((key.value(), entries));
    }
    if let Some(newest) = doomed
        .last()
        .and_then(|(_, entries)| entries.last())
        .map(|entry| entry.id)
    {
        // Ids are never reused: keep the highest one assigned before its entry may go.
        let stored_last = newest_id(&table, EXPIRING)?;
        let recorded = meta
            .get("last_archive")
            .map_err(storage(EXPIRING))?
            .map_or(0, |v| v.value());
        let last = stored_last.max(recorded).max(newest);
        meta.insert("last_archive", last)
            .map_err(storage(EXPIRING))?;
    }
    for (key, entries) in &doomed {
        table.remove(*key).map_err(storage(EXPIRING))?;
        for entry in entries {
            keys.remove((entry.source.as_str(), entry.content_key.as_str()))
                .map_err(storage(EXPIRING))?;
        }
    }
    if !doomed.is_empty() {
        bytes = bytes.saturating_sub(freed);
        meta.insert("archive_bytes", bytes)
            .map_err(storage(EXPIRING))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tributary_model::well_known::Timestamp;

    use super::*;

    type Failure = Box<dyn std::error::Error>;

    fn entry(content: u64, seconds: i64) -> ArchiveEntry {
        ArchiveEntry {
            source: "s".to_owned(),
            content_key: format!("sha256:{content}"),
            received_at: Some(Timestamp { seconds, nanos: 0 }),
            ciphertext: vec![7; 100],
            ..ArchiveEntry::default()
        }
    }

    fn open() -> Result<(tempfile::TempDir, Database, Cursor), Failure> {
        let dir = tempfile::tempdir()?;
        let db = Database::create(dir.path().join("events.redb"))?;
        crate::init_tables(&db)?;
        let cursor = Cursor {
            last_sequence: 0,
            last_dead_letter: 0,
            last_millis: 0,
            last_archive: 0,
        };
        Ok((dir, db, cursor))
    }

    /// Archives `entries` (each with the sequences its append stored) in one commit, as the
    /// writer does; returns their ids.
    fn commit(
        db: &Database,
        cursor: &mut Cursor,
        entries: Vec<(ArchiveEntry, &[u64])>,
    ) -> Result<Vec<u64>, Failure> {
        let txn = db.begin_write()?;
        let mut ids = Vec::new();
        {
            cursor.last_archive = last_id(&txn)?;
            let mut tables = AppendTables::open(&txn)?;
            for (entry, sequences) in entries {
                let (id, new) = reserve(&tables, cursor, "s", &entry, std::iter::empty())?;
                store(&mut tables, cursor, id, new, entry, sequences, &[])?;
                ids.push(id);
            }
            tables.close(cursor)?;
        }
        txn.commit()?;
        Ok(ids)
    }

    fn ids(entries: &[ArchiveEntry]) -> Vec<u64> {
        entries.iter().map(|entry| entry.id).collect()
    }

    fn stored_values(db: &Database) -> Result<Vec<u64>, Failure> {
        let txn = db.begin_read()?;
        let table = txn.open_table(ARCHIVE)?;
        let keys = table.iter()?.map(|item| item.map(|(key, _)| key.value()));
        Ok(keys.collect::<Result<_, _>>()?)
    }

    #[test]
    fn the_entries_of_one_commit_are_one_value_and_each_is_found() -> Result<(), Failure> {
        let (_dir, db, mut cursor) = open()?;
        let first = commit(
            &db,
            &mut cursor,
            vec![(entry(1, 0), &[]), (entry(2, 0), &[]), (entry(3, 0), &[])],
        )?;
        let second = commit(
            &db,
            &mut cursor,
            vec![(entry(4, 0), &[]), (entry(5, 0), &[])],
        )?;
        assert_eq!((first, second), (vec![1, 2, 3], vec![4, 5]));
        assert_eq!(stored_values(&db)?, vec![1, 4]);
        let found = get(&db, 2)?.ok_or("entry 2")?;
        assert_eq!((found.id, found.content_key.as_str()), (2, "sha256:2"));
        assert_eq!(get(&db, 6)?, None);
        assert_eq!(ids(&list(&db, 0, 2)?), vec![1, 2]);
        assert_eq!(ids(&list(&db, 2, 10)?), vec![3, 4, 5]);
        assert_eq!(ids(&list(&db, 4, 10)?), vec![5]);
        assert_eq!(ids(&list(&db, 5, 10)?), Vec::<u64>::new());
        Ok(())
    }

    #[test]
    fn a_retry_extends_its_entry_in_the_same_commit_and_in_a_later_one() -> Result<(), Failure> {
        let (_dir, db, mut cursor) = open()?;
        let ids = commit(
            &db,
            &mut cursor,
            vec![(entry(1, 0), &[]), (entry(2, 0), &[]), (entry(1, 0), &[7])],
        )?;
        assert_eq!(ids, vec![1, 2, 1]);
        assert_eq!(get(&db, 1)?.ok_or("entry 1")?.sequences, vec![7]);
        assert_eq!(
            commit(&db, &mut cursor, vec![(entry(1, 0), &[9])])?,
            vec![1]
        );
        assert_eq!(get(&db, 1)?.ok_or("entry 1")?.sequences, vec![7, 9]);
        assert_eq!(get(&db, 2)?.ok_or("entry 2")?.content_key, "sha256:2");
        assert_eq!(stored_values(&db)?, vec![1]);
        Ok(())
    }

    #[test]
    fn entries_stored_one_per_value_before_blocks_are_still_read() -> Result<(), Failure> {
        let (_dir, db, mut cursor) = open()?;
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(ARCHIVE)?;
            let mut keys = txn.open_table(ARCHIVE_KEYS)?;
            for id in [1, 2] {
                let old = ArchiveEntry { id, ..entry(id, 0) };
                table.insert(id, old.encode_to_vec().as_slice())?;
                keys.insert(("s", old.content_key.as_str()), id)?;
            }
        }
        txn.commit()?;
        assert_eq!(commit(&db, &mut cursor, vec![(entry(3, 0), &[])])?, vec![3]);
        assert_eq!(get(&db, 2)?.ok_or("entry 2")?.content_key, "sha256:2");
        assert_eq!(ids(&list(&db, 0, 10)?), vec![1, 2, 3]);
        assert_eq!(
            commit(&db, &mut cursor, vec![(entry(2, 0), &[5])])?,
            vec![2]
        );
        assert_eq!(get(&db, 2)?.ok_or("entry 2")?.sequences, vec![5]);
        Ok(())
    }

    #[test]
    fn retention_removes_a_value_once_its_newest_entry_is_too_old() -> Result<(), Failure> {
        let (_dir, db, mut cursor) = open()?;
        commit(
            &db,
            &mut cursor,
            vec![(entry(1, 0), &[]), (entry(2, 100), &[])],
        )?;
        commit(
            &db,
            &mut cursor,
            vec![(entry(3, 50), &[]), (entry(4, 5_000), &[])],
        )?;
        let retention = Retention {
            archive_max_age: Some(Duration::from_secs(3_600)),
            ..Retention::default()
        };
        let expire_at = |now_secs: u64| -> Result<usize, Failure> {
            let txn = db.begin_write()?;
            let removed = expire(&txn, &retention, now_secs * 1_000)?;
            txn.commit()?;
            Ok(removed)
        };
        // Entry 1 is past the age, but entry 2 of its commit is not yet.
        assert_eq!(expire_at(3_700)?, 0);
        assert_eq!(expire_at(3_701)?, 2);
        assert_eq!(ids(&list(&db, 0, 10)?), vec![3, 4]);
        // Ids are never reused, even once every entry is gone.
        assert_eq!(expire_at(9_000)?, 2);
        assert_eq!(
            commit(&db, &mut cursor, vec![(entry(5, 9_000), &[])])?,
            vec![5]
        );
        Ok(())
    }
}
