//! The tables appends and redrives write, opened once per batch rather than once per webhook:
//! opening a redb table looks its root up, and closing it stages the new root, so a webhook
//! that opened its eight tables paid that eight times over. The byte counters retention reads
//! are kept here too and written once, when the tables close.

use redb::{ReadableTable, Table, WriteTransaction};
use tributary_event_log::LogError;

use super::block::PendingBlock;
use super::cursor::Cursor;
use super::{ARCHIVE, ARCHIVE_KEYS, DEAD_LETTERS, DEDUP, EVENTS, META, TIME_INDEX, storage};

const OPENING: &str = "opening the tables of an append";
const CLOSING: &str = "recording the log's counters";

/// The open tables of a run of appends in one write transaction.
pub(crate) struct AppendTables<'txn> {
    pub events: Table<'txn, u64, &'static [u8]>,
    pub dedup: Table<'txn, (&'static str, &'static str), u64>,
    pub times: Table<'txn, u64, u64>,
    pub dead_letters: Table<'txn, u64, &'static [u8]>,
    pub archive: Table<'txn, u64, &'static [u8]>,
    pub archive_keys: Table<'txn, (&'static str, &'static str), u64>,
    meta: Table<'txn, &'static str, u64>,
    /// The time-index key already written by this commit (the batch shares one millisecond).
    pub time_indexed: Option<u64>,
    /// The raw-archive entries of this commit, stored as one block when the tables close.
    pub pending_archive: PendingBlock,
    /// Stored event bytes, for size retention ("event_bytes").
    pub event_bytes: u64,
    /// Stored raw-archive bytes, for the archive's size retention ("archive_bytes").
    pub archive_bytes: u64,
}

impl<'txn> AppendTables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, LogError> {
        let meta = txn.open_table(META).map_err(storage(OPENING))?;
        let counter = |name: &str| -> Result<u64, LogError> {
            Ok(meta
                .get(name)
                .map_err(storage(OPENING))?
                .map_or(0, |v| v.value()))
        };
        let event_bytes = counter("event_bytes")?;
        let archive_bytes = counter("archive_bytes")?;
        Ok(Self {
            events: txn.open_table(EVENTS).map_err(storage(OPENING))?,
            dedup: txn.open_table(DEDUP).map_err(storage(OPENING))?,
            times: txn.open_table(TIME_INDEX).map_err(storage(OPENING))?,
            dead_letters: txn.open_table(DEAD_LETTERS).map_err(storage(OPENING))?,
            archive: txn.open_table(ARCHIVE).map_err(storage(OPENING))?,
            archive_keys: txn.open_table(ARCHIVE_KEYS).map_err(storage(OPENING))?,
            meta,
            time_indexed: None,
            pending_archive: PendingBlock::default(),
            event_bytes,
            archive_bytes,
        })
    }

    /// Stores the commit's archive block, records the counters (the byte totals and the
    /// highest sequence and dead-letter id assigned, which outlive their items) and closes the
    /// tables.
    pub fn close(mut self, next: &Cursor) -> Result<(), LogError> {
        self.archive_bytes += std::mem::take(&mut self.pending_archive).flush(&mut self.archive)?;
        for (name, value) in [
            ("event_bytes", self.event_bytes),
            ("archive_bytes", self.archive_bytes),
            ("last_sequence", next.last_sequence),
            ("last_dead_letter", next.last_dead_letter),
        ] {
            self.meta.insert(name, value).map_err(storage(CLOSING))?;
        }
        Ok(())
    }
}
