//! One commit in the making: the staged writes and the working copy of the counters,
//! segments and archive block that the operations of a group commit change in order. The
//! operations themselves are in [`crate::writer`] (events, consumers, dead letters) and
//! [`crate::archive`] (raw-archive entries).

use std::collections::BTreeMap;
use std::sync::Arc;

use fjall::Keyspace;
use tributary_event_log::StoredEvent;
use tributary_model::v1::ArchiveEntry;

use crate::segments::Segment;
use crate::staged::Staged;
use crate::state::Counters;
use crate::store::Store;

/// One commit in the making.
pub(crate) struct Tx<'a> {
    pub store: &'a Arc<Store>,
    pub segment_events: u64,
    pub staged: Staged,
    /// Counters as this commit leaves them.
    pub next: Counters,
    /// Segments as this commit leaves them (records changed, new ones added).
    pub segments: BTreeMap<u64, Segment>,
    /// `keys.<n>` keyspaces this commit writes.
    pub keys: BTreeMap<u64, Keyspace>,
    /// Segments whose record changed.
    pub dirty: Vec<u64>,
    /// Events stored by this commit, in order (kept for caught-up readers).
    pub fresh: Vec<StoredEvent>,
    /// The raw-archive entries this commit adds (one block).
    pub pending_archive: PendingBlock,
}

/// The entries a commit adds, stored as one block when it finishes.
#[derive(Default)]
pub(crate) struct PendingBlock {
    pub entries: Vec<ArchiveEntry>,
    pub content_keys: Vec<Vec<u8>>,
}

/// What a commit changes in memory once its batch is durable.
pub(crate) struct Finished {
    pub next: Counters,
    pub segments: BTreeMap<u64, Segment>,
    pub keys: BTreeMap<u64, Keyspace>,
    pub fresh: Vec<StoredEvent>,
}
