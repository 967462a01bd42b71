//! Segments: events are partitioned by sequence into keyspaces of `segment_events` sequences
//! each, so retention drops whole keyspaces ([`fjall::Database::delete_keyspace`]: its files
//! go, no tombstone per event) and only trims the one segment at the boundary key by key.
//!
//! Segment `n` holds sequences `n * segment_events + 1 ..= (n + 1) * segment_events` in three
//! keyspaces:
//! - `events.<n>`: sequence -> the stored event (its encoding, sequence appended);
//! - `times.<n>`: log millisecond -> the first sequence of this segment stored in it, for
//!   `sequence_before_time` (per segment, so it goes with its events);
//! - `keys.<n>`: sequence -> the event's dedup key, so that once the event is removed and the
//!   dedup horizon passed, its key in `dedup` can be found and pruned without the event. It
//!   outlives `events.<n>` by the horizon and is dropped whole once every key is pruned.
//!
//! A [`SegmentMeta`] per live segment is kept in `meta` (written in the same batch as the
//! events) and in memory, so retention by age and by size decides without reading events and
//! opening the log reads no event.

use fjall::{Database, Keyspace};
use tributary_event_log::LogError;

use crate::keys;
use crate::store::{Layout, keyspace};

/// Key prefix of segment records in `meta`.
pub(crate) const META_PREFIX: &[u8] = b"seg:";

/// What the log knows about a live segment without reading it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// Oldest stored sequence (retention trims the boundary segment from the front).
    pub first: u64,
    /// Newest stored sequence.
    pub last: u64,
    /// Stored event bytes.
    pub bytes: u64,
    /// Log millisecond of the newest event.
    pub newest_ms: u64,
}

impl SegmentMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for value in [self.first, self.last, self.bytes, self.newest_ms] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let at = |i: usize| keys::read_u64(bytes.get(i * 8..)?);
        Some(Self {
            first: at(0)?,
            last: at(1)?,
            bytes: at(2)?,
            newest_ms: at(3)?,
        })
    }
}

/// A live segment: its record and its open keyspaces.
#[derive(Clone)]
pub(crate) struct Segment {
    pub number: u64,
    pub meta: SegmentMeta,
    pub events: Keyspace,
    pub times: Keyspace,
}

/// The `meta` key of segment `number`'s record.
pub(crate) fn meta_key(number: u64) -> Vec<u8> {
    let mut key = META_PREFIX.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

pub(crate) fn events_name(number: u64) -> String {
    format!("events.{number:016x}")
}

pub(crate) fn times_name(number: u64) -> String {
    format!("times.{number:016x}")
}

pub(crate) fn keys_name(number: u64) -> String {
    format!("keys.{number:016x}")
}

/// The segment number of a sequence (sequences start at 1).
pub(crate) fn number_of(sequence: u64, segment_events: u64) -> u64 {
    sequence.saturating_sub(1) / segment_events.max(1)
}

/// Opens (creating when missing) the events and time-index keyspaces of segment `number`.
pub(crate) fn open(db: &Database, number: u64, meta: SegmentMeta) -> Result<Segment, LogError> {
    Ok(Segment {
        number,
        meta,
        events: keyspace(db, &events_name(number), Layout::Packed)?,
        times: keyspace(db, &times_name(number), Layout::Plain)?,
    })
}

/// Opens (creating when missing) the dedup-key keyspace of segment `number`.
pub(crate) fn open_keys(db: &Database, number: u64) -> Result<Keyspace, LogError> {
    keyspace(db, &keys_name(number), Layout::Plain)
}

/// Creates the keyspaces of segment `number` ahead of its first event: creating a keyspace
/// costs several `fsync`s (tens of ms on a busy disk), which the commit that reaches the
/// segment would otherwise wait for.
pub(crate) fn prepare(db: &Database, number: u64) -> Result<(), LogError> {
    open(db, number, SegmentMeta::default())?;
    open_keys(db, number)?;
    Ok(())
}

/// Deletes keyspace `name` if it exists.
pub(crate) fn delete(db: &Database, name: &str) -> Result<(), LogError> {
    if !db.keyspace_exists(name) {
        return Ok(());
    }
    let handle = keyspace(db, name, Layout::Plain)?;
    db.delete_keyspace(handle)
        .map_err(|e| LogError::storage(format!("deleting keyspace {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_sequences_map_to_segments() {
        let meta = SegmentMeta {
            first: 5,
            last: 8,
            bytes: 400,
            newest_ms: 1_700_000_000_000,
        };
        assert_eq!(SegmentMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(SegmentMeta::decode(b"short"), None);
        assert_eq!([1, 4, 5, 8, 9].map(|s| number_of(s, 4)), [0, 0, 1, 1, 2]);
        assert!(meta_key(1) < meta_key(256));
    }
}
