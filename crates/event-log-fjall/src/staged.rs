//! The writes of one group commit, staged before they become one [`fjall::OwnedWriteBatch`].
//!
//! A fjall batch cannot be read back, and two writes of one key in one batch share a sequence
//! number (which one wins is not defined), so every write goes through this overlay first:
//! later operations of the same commit read what earlier ones wrote, and each key is written
//! once, with its last value.

use std::collections::HashMap;

use fjall::{Keyspace, Slice};
use tributary_event_log::LogError;

use crate::store::{Store, storage};

/// Which keyspace a staged write goes to (segment keyspaces by segment number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Space {
    Dedup,
    Retired,
    RetiredEvents,
    DeadLetters,
    Resolved,
    Archive,
    ArchiveIndex,
    ArchiveKeys,
    Consumers,
    Meta,
    Events(u64),
    Times(u64),
    Keys(u64),
}

/// Staged writes: `None` removes the key.
#[derive(Default)]
pub(crate) struct Staged {
    writes: HashMap<Space, HashMap<Vec<u8>, Option<Slice>>>,
}

const READING: &str = "reading for a commit";

impl Staged {
    pub fn put(&mut self, space: Space, key: impl Into<Vec<u8>>, value: impl Into<Slice>) {
        self.writes
            .entry(space)
            .or_default()
            .insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, space: Space, key: impl Into<Vec<u8>>) {
        self.writes
            .entry(space)
            .or_default()
            .insert(key.into(), None);
    }

    /// The staged value of `key`: `Some(None)` when staged for removal, `None` when not
    /// staged (read storage then).
    pub fn staged(&self, space: Space, key: &[u8]) -> Option<Option<&Slice>> {
        self.writes
            .get(&space)
            .and_then(|writes| writes.get(key))
            .map(Option::as_ref)
    }

    /// Every staged write of `space`.
    pub fn staged_keys(&self, space: Space) -> Vec<(Vec<u8>, Option<Slice>)> {
        self.writes.get(&space).map_or_else(Vec::new, |writes| {
            writes
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
    }

    /// `key` as this commit sees it: staged, else stored in `keyspace`.
    pub fn read(
        &self,
        space: Space,
        keyspace: &Keyspace,
        key: &[u8],
    ) -> Result<Option<Slice>, LogError> {
        match self.staged(space, key) {
            Some(value) => Ok(value.cloned()),
            None => keyspace.get(key).map_err(storage(READING)),
        }
    }

    /// The staged writes as one atomic batch; `resolve` names each segment keyspace.
    pub fn into_batch(
        self,
        store: &Store,
        resolve: impl Fn(Space) -> Option<Keyspace>,
    ) -> Result<fjall::OwnedWriteBatch, LogError> {
        let mut batch = store.db.batch();
        for (space, writes) in self.writes {
            let keyspace = match space {
                Space::Dedup => store.dedup.clone(),
                Space::Retired => store.retired.clone(),
                Space::RetiredEvents => store.retired_events.clone(),
                Space::DeadLetters => store.dead_letters.clone(),
                Space::Resolved => store.resolved.clone(),
                Space::Archive => store.archive.clone(),
                Space::ArchiveIndex => store.archive_index.clone(),
                Space::ArchiveKeys => store.archive_keys.clone(),
                Space::Consumers => store.consumers.clone(),
                Space::Meta => store.meta.clone(),
                segment => resolve(segment).ok_or_else(|| {
                    LogError::unavailable(format!("no open keyspace for {segment:?}"))
                })?,
            };
            for (key, value) in writes {
                match value {
                    Some(value) => batch.insert(&keyspace, key, value),
                    None => batch.remove(&keyspace, key),
                }
            }
        }
        Ok(batch)
    }
}
