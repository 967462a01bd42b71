//! How the raw archive's entries are stored: the entries of one commit as one block (an
//! `ARCHIVE` value keyed by its first id), and the block a commit is still filling. Below both
//! the archive's operations and the append tables, which store the block when they close.

use prost::Message;
use redb::Table;
use tributary_event_log::LogError;
use tributary_model::v1::ArchiveEntry;

use super::storage;

const STORING: &str = "storing a raw-archive entry";

/// The entries of one commit, in id order: the value of [`ARCHIVE`](super::ARCHIVE) under the first id.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ArchiveBlock {
    #[prost(message, repeated, tag = "1")]
    pub(crate) entries: Vec<ArchiveEntry>,
}

/// The entries a commit adds, stored as one block when the append tables close.
#[derive(Default)]
pub(crate) struct PendingBlock {
    pub(crate) entries: Vec<ArchiveEntry>,
}

impl PendingBlock {
    /// Where entry `id` is in the block (ids in a block are consecutive).
    pub(crate) fn index(&self, id: u64) -> Option<usize> {
        let first = self.entries.first()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        (index < self.entries.len()).then_some(index)
    }

    /// Stores the block, if it holds any entry, and returns its stored size.
    pub(crate) fn flush(
        self,
        archive: &mut Table<'_, u64, &'static [u8]>,
    ) -> Result<u64, LogError> {
        let Some(first) = self.entries.first().map(|entry| entry.id) else {
            return Ok(0);
        };
        let encoded = ArchiveBlock {
            entries: self.entries,
        }
        .encode_to_vec();
        archive
            .insert(first, encoded.as_slice())
            .map_err(storage(STORING))?;
        Ok(encoded.len() as u64)
    }
}

/// The entries of a stored value: a block, or one entry written before blocks. An entry's
/// encoding starts with its id (field 1 as a varint, tag byte 0x08: ids start at 1, so it is
/// always there and first); a block's with an entry (field 1, length-delimited: 0x0a).
pub(crate) fn decode_value(key: u64, value: &[u8]) -> Result<Vec<ArchiveEntry>, LogError> {
    let corrupt = |source| LogError::Corrupt { key, source };
    if value.first() == Some(&0x08) {
        Ok(vec![ArchiveEntry::decode(value).map_err(corrupt)?])
    } else {
        Ok(ArchiveBlock::decode(value).map_err(corrupt)?.entries)
    }
}
