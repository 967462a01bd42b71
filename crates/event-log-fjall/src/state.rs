//! What the writer keeps in memory between commits: the counters (highest sequence, dead-letter
//! and archive ids ever assigned, the log clock) and the live segments. Loaded from `meta`
//! when the log opens (a few point reads and one prefix scan of segment records), never by
//! scanning events, so opening costs the same however long the log is.

use std::collections::BTreeMap;

use fjall::Keyspace;
use tributary_event_log::LogError;

use crate::keys;
use crate::segments::{self, Segment, SegmentMeta};
use crate::staged::{Space, Staged};
use crate::store::{Store, storage};

const LOADING: &str = "loading the log's counters";

/// The counters kept in `meta`, written by every commit that changes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// The newest sequence ever assigned (outlives its event).
    pub last_sequence: u64,
    /// The newest dead-letter id ever assigned.
    pub last_dead_letter: u64,
    /// The newest raw-archive id ever assigned.
    pub last_archive: u64,
    /// The log clock (unix ms, never decreasing): the time index's.
    pub last_millis: u64,
    /// Dead letters stored (retention by count without counting them).
    pub dead_letters: u64,
    /// Raw-archive bytes stored (retention by size).
    pub archive_bytes: u64,
    /// Lowest segment whose `keys.<n>` keyspace still exists.
    pub keys_from: u64,
    /// Every removed event's dedup key up to this sequence is pruned.
    pub keys_pruned_through: u64,
}

const NAMES: [&str; 8] = [
    "last_sequence",
    "last_dead_letter",
    "last_archive",
    "last_millis",
    "dead_letters",
    "archive_bytes",
    "keys_from",
    "keys_pruned_through",
];

impl Counters {
    fn values(&self) -> [u64; 8] {
        [
            self.last_sequence,
            self.last_dead_letter,
            self.last_archive,
            self.last_millis,
            self.dead_letters,
            self.archive_bytes,
            self.keys_from,
            self.keys_pruned_through,
        ]
    }

    fn from_values(v: [u64; 8]) -> Self {
        Self {
            last_sequence: v[0],
            last_dead_letter: v[1],
            last_archive: v[2],
            last_millis: v[3],
            dead_letters: v[4],
            archive_bytes: v[5],
            keys_from: v[6],
            keys_pruned_through: v[7],
        }
    }

    /// Stages the counters that differ from `before`.
    pub fn stage(&self, before: &Counters, staged: &mut Staged) {
        for ((name, new), old) in NAMES.iter().zip(self.values()).zip(before.values()) {
            if new != old {
                staged.put(Space::Meta, name.as_bytes(), keys::u64_key(new).to_vec());
            }
        }
    }
}

/// The writer's state.
#[derive(Clone)]
pub(crate) struct State {
    pub counters: Counters,
    /// Live segments by number, oldest first.
    pub segments: BTreeMap<u64, Segment>,
    /// Open `keys.<n>` keyspaces.
    pub keys: BTreeMap<u64, Keyspace>,
}

impl State {
    /// Reads the counters and segment records and opens the segments' keyspaces; deletes
    /// segment keyspaces that no record names (left by a crash between retention's commit
    /// and its keyspace deletion).
    pub fn load(store: &Store, segment_events: u64) -> Result<Self, LogError> {
        let mut values = [0u64; 8];
        for (value, name) in values.iter_mut().zip(NAMES) {
            if let Some(stored) = store.meta.get(name).map_err(storage(LOADING))? {
                *value = keys::read_u64(&stored).unwrap_or(0);
            }
        }
        let counters = Counters::from_values(values);
        let mut segments = BTreeMap::new();
        for item in store.meta.prefix(segments::META_PREFIX) {
            let (key, value) = item.into_inner().map_err(storage(LOADING))?;
            let number = keys::read_u64(&key[segments::META_PREFIX.len()..]);
            let meta = SegmentMeta::decode(&value);
            if let (Some(number), Some(meta)) = (number, meta) {
                segments.insert(number, segments::open(&store.db, number, meta)?);
            }
        }
        let active = segments::number_of(counters.last_sequence + 1, segment_events);
        for name in store.db.list_keyspace_names() {
            let name: &str = &name;
            let Some((kind, number)) = name.split_once('.') else {
                continue;
            };
            let Ok(number) = u64::from_str_radix(number, 16) else {
                continue;
            };
            let orphan = match kind {
                "events" | "times" => number < active && !segments.contains_key(&number),
                "keys" => number < counters.keys_from,
                _ => false,
            };
            if orphan {
                tracing::info!(keyspace = name, "deleting a keyspace retention left behind");
                segments::delete(&store.db, name)?;
            }
        }
        Ok(Self {
            counters,
            segments,
            keys: BTreeMap::new(),
        })
    }
}
