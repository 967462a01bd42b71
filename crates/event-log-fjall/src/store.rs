//! The open fjall database and its fixed keyspaces. Per-segment keyspaces (events, their time
//! index and their dedup keys) are opened by [`crate::segments`].
//!
//! | keyspace        | key                                   | value                                  |
//! |-----------------|---------------------------------------|----------------------------------------|
//! | `dedup`         | (source, item key) ([`crate::keys::dedup_key`]) | owner: sequence, dead-letter id with [`DEAD_LETTER_TAG`], or [`RETIRED`] |
//! | `retired`       | removal ms, dedup key                 | empty: retired dead-letter keys, pruned after the horizon |
//! | `retired_events`| removal ms, first sequence            | last sequence: a run of removed events whose keys go after the horizon |
//! | `dead_letters`  | id                                    | encoded `DeadLetter`                   |
//! | `resolved`      | (resolved ms, id)                     | empty: dead-letter retention by age    |
//! | `archive`       | first id of a commit's entries        | their block (key-value separated: large, written once) |
//! | `archive_index` | first id of a block                   | block summary: retention without reading blocks |
//! | `archive_keys`  | (source, content key)                 | id of an entry whose webhook stored no item |
//! | `consumers`     | name                                  | encoded `Consumer` (lag derived)       |
//! | `meta`          | counter name or `seg` + segment       | counters; segment records              |

use std::path::{Path, PathBuf};

use fjall::config::{CompressionPolicy, PinningPolicy};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions};
use tributary_event_log::LogError;

/// Marks a dedup owner that is a dead letter rather than an event.
pub(crate) const DEAD_LETTER_TAG: u64 = 1 << 63;
/// A dedup owner whose dead letter retention removed: still a duplicate until the horizon.
/// (A removed *event* keeps its sequence as owner: it is retired when the sequence is below
/// the first stored one, see `retired_events`.)
pub(crate) const RETIRED: u64 = u64::MAX;

/// The fixed keyspaces (see the module table).
pub(crate) struct Store {
    pub db: Database,
    pub dedup: Keyspace,
    pub retired: Keyspace,
    pub retired_events: Keyspace,
    pub dead_letters: Keyspace,
    pub resolved: Keyspace,
    pub archive: Keyspace,
    pub archive_index: Keyspace,
    pub archive_keys: Keyspace,
    pub consumers: Keyspace,
    pub meta: Keyspace,
}

/// The journal size before memtables are flushed (fjall's minimum): the journal is what a
/// restart replays, so a small one keeps start-up short.
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Memtable size at which a keyspace is flushed (fjall's default is 64 MiB). A restart
/// re-inserts every journaled write not yet flushed, and memtables are most of the log's
/// memory, so smaller ones shorten start-up after a crash and bound the RSS; too small, and
/// flushes fall behind under load, when fjall stalls writers (100 ms sleeps once 4 sealed
/// memtables wait). The large keyspaces (events, archive) reach 16 MiB every ~10,000
/// webhooks: 40,000 webhooks from 64 callers in process take 0.86 s with no append slower
/// than 50 ms, and reopening takes 0.29 s.
const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;

/// Wraps a fjall error as a storage failure while doing `context`.
pub(crate) fn storage<E>(context: &'static str) -> impl Fn(E) -> LogError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| LogError::storage(context, source)
}

const OPENING: &str = "opening the keyspaces";

impl Store {
    /// Opens (or creates) the database in `dir`: journal recovery only, no scan of events.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let db = Database::builder(dir)
            // Commits persist themselves (one fdatasync per group commit).
            .manual_journal_persist(true)
            // Journal values over fjall's 4 KiB threshold are archive blocks (ciphertext) or
            // events the log compressed itself: nothing left to gain.
            .journal_compression(CompressionType::None)
            .cache_size(CACHE_BYTES)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            .open()
            .map_err(|e| LogError::storage(format!("cannot open {}", dir.display()), e))?;
        let plain = |name: &str| keyspace(&db, name, Layout::Plain);
        let lookup = |name: &str| keyspace(&db, name, Layout::Lookup);
        Ok(Self {
            dedup: lookup("dedup")?,
            retired: plain("retired")?,
            retired_events: plain("retired_events")?,
            dead_letters: plain("dead_letters")?,
            resolved: plain("resolved")?,
            archive: keyspace(&db, "archive", Layout::Separated)?,
            archive_index: plain("archive_index")?,
            archive_keys: lookup("archive_keys")?,
            consumers: plain("consumers")?,
            meta: plain("meta")?,
            db,
        })
    }
}

impl Store {
    /// The segment size this log was created with; `wanted` (recorded, durably) for a new
    /// log.
    pub fn segment_events(&self, wanted: u64) -> Result<u64, LogError> {
        const KEY: &str = "segment_events";
        const RECORDING: &str = "recording the segment size";
        if let Some(stored) = self.meta.get(KEY).map_err(storage(RECORDING))?
            && let Some(stored) = crate::keys::read_u64(&stored)
        {
            if stored != wanted {
                tracing::warn!(
                    configured = wanted,
                    stored,
                    "segment size differs from the one the log was created with; keeping it"
                );
            }
            return Ok(stored);
        }
        let mut batch = self.db.batch();
        batch.insert(&self.meta, KEY, crate::keys::u64_key(wanted).to_vec());
        batch
            .durability(Some(fjall::PersistMode::SyncData))
            .commit()
            .map_err(storage(RECORDING))?;
        Ok(wanted)
    }
}

/// How a keyspace is read, which decides how it is stored.
#[derive(Clone, Copy)]
pub(crate) enum Layout {
    /// Ranges and occasional point reads. Tables are LZ4-compressed at every level: index
    /// records, dead letters and consumers shrink by about half, and so do the bytes of every
    /// flush and compaction; the block cache holds blocks decompressed.
    Plain,
    /// Values the log compressed itself (events, see `event_value.rs`): tables store them
    /// as they are.
    Packed,
    /// Large values written once: every value goes to a blob file, uncompressed (archive
    /// blocks are ciphertext), and the LSM tree holds pointers, so compaction does not
    /// rewrite the values.
    Separated,
    /// A point read per append of a key that is usually absent (dedup claims): every level's
    /// bloom filter and index blocks stay in memory (about 1.3 bytes per key for the filter).
    /// Left to the 32 MiB block cache, a cold filter block costs a read and a checksum of the
    /// whole filter of a table on the append's path.
    Lookup,
}

/// Opens keyspace `name`, creating it when missing.
pub(crate) fn keyspace(db: &Database, name: &str, layout: Layout) -> Result<Keyspace, LogError> {
    db.keyspace(name, || {
        let options = KeyspaceCreateOptions::default()
            .manual_journal_persist(true)
            .max_memtable_size(MEMTABLE_BYTES);
        match layout {
            Layout::Plain => {
                options.data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
            }
            Layout::Packed => {
                options.data_block_compression_policy(CompressionPolicy::all(CompressionType::None))
            }
            Layout::Separated => options.with_kv_separation(Some(
                KvSeparationOptions::default()
                    .compression(CompressionType::None)
                    .separation_threshold(1),
            )),
            Layout::Lookup => options
                .filter_block_pinning_policy(PinningPolicy::all(true))
                .index_block_pinning_policy(PinningPolicy::all(true)),
        }
    })
    .map_err(storage(OPENING))
}

/// Where the database lives under the data directory.
pub(crate) fn database_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fjall")
}
