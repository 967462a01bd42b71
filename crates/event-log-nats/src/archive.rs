//! The raw archive: one message per webhook in stream `<stream>_ARCHIVE` (the stream sequence
//! is the entry id), and what its appends stored (sequences, dead-letter ids) in KV bucket
//! `<stream>_ARCHIVE_LINKS`, keyed by (source, content key). Messages are immutable, so the
//! links live apart; keying them by content lets a retry find its entry beyond JetStream's
//! duplicate window too. JetStream applies the archive's retention itself (`max_age`,
//! `max_bytes`); link records expire with the same age, counted from their last write, so they
//! outlive their entry, and a retention sweep removes those whose entry the size limit removed.
//!
//! A key rotation re-seals entries ([`reseal`]). A message cannot be changed, and the entry id
//! is its stream sequence, which every event's and dead letter's `raw_id` names, so the entry
//! cannot move to a new message either: republishing would give it a new id, and deleting the
//! old message would lose the entry's metadata, its place in the id order and its retention
//! (JetStream's `max_age`/`max_bytes` act on the messages). So the new seal (key id, nonce,
//! ciphertext) is written into the entry's link record, with compare-and-set like the links,
//! and reads take it in place of the message's own. Nothing is ever deleted, so a crash at any
//! point loses nothing: before the record write the entry reads with its old seal, after it
//! with the new one. The message keeps the ciphertext under the old key until the archive's
//! retention removes it: the old key is no longer needed to read anything (it can leave the
//! key file), but that ciphertext stays in the stream until then, and a re-sealed entry's
//! bytes are stored twice meanwhile (the link bucket is not counted by `archive_max_bytes`).

use std::sync::atomic::Ordering;

use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt;
use prost::Message as _;
use tributary_event_log::{LogError, Reseal, ResealOutcome, rules};
use tributary_model::v1::ArchiveEntry;

use crate::read::{get, messages_after};
use crate::{Inner, dedup};

/// KV reads in flight while listing.
const PARALLEL_READS: usize = 32;
/// Link records examined per retention pass (the sweep continues there next pass).
const LINKS_PER_PASS: usize = 2048;
/// Compare-and-set attempts on a link record before giving up (instances racing on one
/// webhook: a handful at most).
const MAX_LINK_ATTEMPTS: usize = 16;
/// Publishes of one entry before giving up: each further one follows an entry of the same
/// webhook that retention removed within the duplicate window.
const MAX_PUBLISHES: usize = 16;

/// The link record's key, also the entry's `Nats-Msg-Id`: (source, content key) as KV-safe
/// tokens, so no byte of either can break a subject or a header.
fn key(source: &str, content_key: &str) -> String {
    format!("{}.{}", dedup::token(source), dedup::token(content_key))
}

fn entry_key(entry: &ArchiveEntry) -> String {
    key(&entry.source, &entry.content_key)
}

/// A link record (an `ArchiveEntry` holding only `id`, `sequences` and `dead_letter_ids`, plus
/// `key_id`, `nonce` and `ciphertext` once the entry was re-sealed) and
/// the revision to update it at; 0 when the key has no value (creates it).
struct Links {
    record: Option<ArchiveEntry>,
    revision: u64,
}

/// Reads the link record at `key`; `id` names it in a `Corrupt` error (0 when unknown).
async fn links(inner: &Inner, key: &str, id: u64) -> Result<Links, LogError> {
    let entry = inner.archive_links.entry(key).await.map_err(|e| {
        LogError::storage(
            format!(
                "cannot read KV bucket {}",
                inner.config.archive_links_bucket()
            ),
            e,
        )
    })?;
    let Some(entry) = entry else {
        return Ok(Links {
            record: None,
            revision: 0,
        });
    };
    let record = match entry.operation {
        Operation::Put => Some(
            ArchiveEntry::decode(entry.value.as_ref())
                .map_err(|source| LogError::Corrupt { key: id, source })?,
        ),
        Operation::Delete | Operation::Purge => None,
    };
    Ok(Links {
        record,
        revision: entry.revision,
    })
}

/// The id of `entry`'s webhook: the stored entry of the same (source, content key) while
/// retention keeps it, else a newly published one. A retry within the duplicate window gets
/// the original's sequence back from JetStream even before its link record was written.
pub(crate) async fn reserve(
    inner: &Inner,
    source: &str,
    entry: &ArchiveEntry,
) -> Result<u64, LogError> {
    let key = entry_key(entry);
    let mut message_id = key.clone();
    if let Some(record) = links(inner, &key, 0).await?.record {
        if get(&inner.archive, record.id).await?.is_some() {
            return Ok(record.id);
        }
        message_id = format!("{key}@{}", record.id);
    }
    let payload: bytes::Bytes = ArchiveEntry {
        id: 0,
        sequences: Vec::new(),
        dead_letter_ids: Vec::new(),
        ..entry.clone()
    }
    .encode_to_vec()
    .into();
    let stream = inner.config.archive_stream();
    for _ in 0..MAX_PUBLISHES {
        let message = PublishMessage::build()
            .payload(payload.clone())
            .message_id(message_id.as_str());
        let ack = inner
            .js
            .send_publish(inner.archive_subject(source), message)
            .await
            .map_err(|e| LogError::storage(format!("cannot publish to {stream}"), e))?
            .await
            .map_err(|e| {
                LogError::storage(
                    format!("JetStream did not acknowledge an archive entry ({stream})"),
                    e,
                )
            })?;
        if !ack.duplicate || get(&inner.archive, ack.sequence).await?.is_some() {
            return Ok(ack.sequence);
        }
        // A removed entry's id, still in the duplicate window: archive the webhook anew under
        // a message id of its own rather than point the items at nothing.
        message_id = format!("{key}@{}", ack.sequence);
    }
    Err(LogError::unavailable(format!(
        "cannot archive a webhook of {source}: retention keeps removing its entry"
    )))
}

/// Adds what an append stored to entry `id`'s link record (compare-and-set, so concurrent
/// appends of the same webhook both count), creating the record when absent. A record of an
/// older, removed entry is replaced; one of a newer entry is left alone.
pub(crate) async fn link(
    inner: &Inner,
    entry: &ArchiveEntry,
    id: u64,
    sequences: &[u64],
    dead_letter_ids: &[u64],
) -> Result<(), LogError> {
    let key = entry_key(entry);
    let bucket = inner.config.archive_links_bucket();
    for _ in 0..MAX_LINK_ATTEMPTS {
        let Links { record, revision } = links(inner, &key, id).await?;
        let (mut record, fresh) = match record {
            Some(record) if record.id > id => return Ok(()),
            Some(record) if record.id == id => (record, false),
            _ => (
                ArchiveEntry {
                    id,
                    ..ArchiveEntry::default()
                },
                true,
            ),
        };
        let before = (record.sequences.len(), record.dead_letter_ids.len());
        union(&mut record.sequences, sequences);
        union(&mut record.dead_letter_ids, dead_letter_ids);
        if !fresh && before == (record.sequences.len(), record.dead_letter_ids.len()) {
            return Ok(());
        }
        let written = inner
            .archive_links
            .update(&key, record.encode_to_vec().into(), revision)
            .await;
        match written {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => {
                return Err(LogError::storage(
                    format!("stored, but cannot link archive entry {id} in KV bucket {bucket}"),
                    e,
                ));
            }
        }
    }
    Err(LogError::unavailable(format!(
        "archive entry {id}: too many concurrent updates of its links in KV bucket {bucket}"
    )))
}

/// Puts `reseal`'s seal into its entry's link record (see the module's documentation), when
/// the entry is stored and still sealed as the caller read it.
pub(crate) async fn reseal(inner: &Inner, reseal: &Reseal) -> Result<ResealOutcome, LogError> {
    let id = reseal.id;
    if id == 0 {
        return Ok(ResealOutcome::Missing);
    }
    let Some(message) = get(&inner.archive, id).await? else {
        return Ok(ResealOutcome::Missing);
    };
    let stored = decode(id, message.payload.as_ref())?;
    let key = entry_key(&stored);
    let bucket = inner.config.archive_links_bucket();
    for _ in 0..MAX_LINK_ATTEMPTS {
        let Links { record, revision } = links(inner, &key, id).await?;
        let mut record = match record {
            Some(record) if record.id == id => record,
            Some(record) if record.id > id => {
                // A newer entry of the same webhook owns the record (this one's links were never
                // written, and a retry past the duplicate window archived it anew); its links
                // must stay, so this entry cannot be re-sealed: refused, nothing written.
                return Err(LogError::Invalid(format!(
                    "archive entry {id}: its link record in KV bucket {bucket} belongs to the \
                     newer entry {}; it cannot be re-sealed",
                    record.id
                )));
            }
            _ => ArchiveEntry {
                id,
                ..ArchiveEntry::default()
            },
        };
        let mut current = stored.clone();
        apply_seal(&mut current, &record);
        let outcome = rules::apply_reseal(&mut current, reseal);
        if outcome != ResealOutcome::Rewritten {
            return Ok(outcome);
        }
        record.key_id = current.key_id;
        record.nonce = current.nonce;
        record.ciphertext = current.ciphertext;
        let written = inner
            .archive_links
            .update(&key, record.encode_to_vec().into(), revision)
            .await;
        match written {
            Ok(_) => return Ok(ResealOutcome::Rewritten),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => {
                return Err(LogError::storage(
                    format!("cannot re-seal archive entry {id} in KV bucket {bucket}"),
                    e,
                ));
            }
        }
    }
    Err(LogError::unavailable(format!(
        "archive entry {id}: too many concurrent updates of its link record in KV bucket {bucket}"
    )))
}

/// The seal a link record holds, if the entry was re-sealed, in place of the message's.
fn apply_seal(entry: &mut ArchiveEntry, record: &ArchiveEntry) {
    if !record.key_id.is_empty() {
        entry.key_id.clone_from(&record.key_id);
        entry.nonce.clone_from(&record.nonce);
        entry.ciphertext.clone_from(&record.ciphertext);
    }
}

/// Appends the ids of `new` that `ids` lacks, keeping the order.
fn union(ids: &mut Vec<u64>, new: &[u64]) {
    for id in new {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
}

fn decode(id: u64, payload: &[u8]) -> Result<ArchiveEntry, LogError> {
    let mut entry =
        ArchiveEntry::decode(payload).map_err(|source| LogError::Corrupt { key: id, source })?;
    entry.id = id;
    Ok(entry)
}

/// Sets the entry's links, and its seal once re-sealed, from its record (none when the record
/// is another entry's).
async fn overlay(inner: &Inner, entry: &mut ArchiveEntry) -> Result<(), LogError> {
    if let Some(record) = links(inner, &entry_key(entry), entry.id).await?.record
        && record.id == entry.id
    {
        apply_seal(entry, &record);
        entry.sequences = record.sequences;
        entry.dead_letter_ids = record.dead_letter_ids;
    }
    Ok(())
}

/// Entry `id` with its links, while retention keeps it.
pub(crate) async fn entry(inner: &Inner, id: u64) -> Result<Option<ArchiveEntry>, LogError> {
    if id == 0 {
        // Ids start at 1; JetStream refuses sequence 0 as a bad request.
        return Ok(None);
    }
    let Some(message) = get(&inner.archive, id).await? else {
        return Ok(None);
    };
    let mut entry = decode(id, message.payload.as_ref())?;
    overlay(inner, &mut entry).await?;
    Ok(Some(entry))
}

/// Up to `max` entries with an id greater than `after`, skipping removed ones.
pub(crate) async fn list(
    inner: &Inner,
    after: u64,
    max: usize,
) -> Result<Vec<ArchiveEntry>, LogError> {
    let info = crate::read::stream_info(&inner.archive).await?;
    let filter = inner.config.archive_filter();
    let messages = messages_after(
        &inner.archive,
        &filter,
        after,
        info.state.last_sequence,
        max,
    )
    .await?;
    let entries = messages
        .iter()
        .map(|m| decode(m.sequence, m.payload.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let results: Vec<_> = futures_util::stream::iter(entries)
        .map(|mut entry| async move {
            overlay(inner, &mut entry).await?;
            Ok::<_, LogError>(entry)
        })
        .buffered(PARALLEL_READS)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Removes link records whose entry is gone, up to [`LINKS_PER_PASS`] per pass, continuing
/// where the last pass stopped. Only the size limit needs it: with an age limit the records
/// expire by themselves. Each purge is bounded by the record's revision, so a record rewritten
/// meanwhile (a retry archiving its webhook anew) stays. Returns how many went.
pub(crate) async fn sweep_links(inner: &Inner) -> Result<u64, LogError> {
    if inner.config.retention.archive_max_bytes.is_none() {
        return Ok(0);
    }
    let info = crate::read::stream_info(&inner.archive).await?;
    let first_entry = crate::read::first_stored(&info.state);
    let links = &inner.archive_links_stream;
    let links_info = crate::read::stream_info(links).await?;
    let links_name = &links_info.config.name;
    let (first, last) = (
        links_info.state.first_sequence,
        links_info.state.last_sequence,
    );
    let filter = format!("$KV.{}.>", inner.config.archive_links_bucket());
    let mut after = inner
        .links_sweep_after
        .load(Ordering::Relaxed)
        .max(first.saturating_sub(1));
    let (mut examined, mut removed) = (0, 0);
    loop {
        let messages = messages_after(links, &filter, after, last, 256).await?;
        if messages.is_empty() {
            after = 0;
            break;
        }
        for message in &messages {
            after = message.sequence;
            examined += 1;
            // Undecodable records are left for `archive_entry` to report.
            let orphan = ArchiveEntry::decode(message.payload.as_ref())
                .is_ok_and(|record| record.id < first_entry);
            if !orphan {
                continue;
            }
            links
                .purge()
                .filter(message.subject.as_str())
                .sequence(message.sequence + 1)
                .await
                .map_err(|e| {
                    LogError::storage(format!("cannot remove a link record of {links_name}"), e)
                })?;
            removed += 1;
        }
        if after >= last {
            after = 0;
            break;
        }
        if examined >= LINKS_PER_PASS {
            break;
        }
    }
    inner.links_sweep_after.store(after, Ordering::Relaxed);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_header_and_kv_safe() {
        assert_eq!(
            key("arcadia", "sha256:ab01"),
            "arcadia.sha256=3Aab01".to_owned()
        );
        assert_ne!(key("a.b", "c"), key("a", "b.c"));
        let odd = key("s\r\n", "x y*>");
        assert!(
            odd.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=.".contains(&b)),
            "{odd}"
        );
        assert_eq!(odd.matches('.').count(), 1, "{odd}");
    }

    #[test]
    fn union_keeps_order_and_skips_known_ids() {
        let mut ids = vec![1, 2];
        union(&mut ids, &[2, 5, 3]);
        assert_eq!(ids, [1, 2, 5, 3]);
    }
}
