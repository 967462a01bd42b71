//! The journal syncer: makes commits durable off the callers' threads.
//!
//! A durable commit writes its batch to fjall's journal (a `write` into the page cache, on
//! the committing caller's thread) and queues a [`Synced`] here: the answers to its callers
//! and what readers will see once it is durable. One thread takes everything queued, calls
//! `fdatasync` once on the journal file, then publishes and answers it all in commit order.
//! So no caller thread ever waits for the disk (no async worker is blocked and none is
//! handed off), and under load one `fdatasync` covers every commit written during the one
//! before it: group commit without a leader.
//!
//! fjall syncs its journal only under its journal lock, which would stall every commit for
//! the length of the `fdatasync`. The syncer syncs through a descriptor of its own instead:
//! `fdatasync` applies to the file, whichever descriptor names it. The active journal is the
//! highest-numbered `<n>.jnl` in the database directory; fjall syncs a journal in full before
//! it rotates to the next one, so syncing the newest file covers every commit written
//! before. The `journal_file_is_the_one_fjall_writes` test pins this layout.
//!
//! Nothing is published before it is durable: subscribers, the recent-events window and
//! `last_sequence` move only here. A failed `fdatasync` fails every commit of its round and
//! marks the database faulted, so the next commit reopens it and reloads what is stored.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tributary_event_log::{LogError, StoredEvent};

use crate::Shared;
use crate::commit::Answer;
use crate::segments::Segment;
use crate::store::Store;

/// One commit written to the journal, waiting to be durable.
pub(crate) struct Synced {
    /// What readers see once it is durable.
    pub publication: Publication,
    /// Its callers' answers, sent once it is durable (or an error if the sync fails).
    pub answers: Vec<Answer>,
}

/// The state a commit leaves for readers.
pub(crate) struct Publication {
    pub store: Arc<Store>,
    pub segments: Vec<Segment>,
    pub last_sequence: u64,
    pub fresh: Vec<StoredEvent>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Synced>,
    /// A round (fdatasync, then answers) is in progress.
    busy: bool,
    stopping: bool,
}

/// The queue between committing callers and the syncer thread.
#[derive(Default)]
pub(crate) struct Syncer {
    queue: Mutex<Queue>,
    /// Signalled when commits are queued or the log closes.
    work: Condvar,
    /// Signalled when a round ends with nothing left queued.
    idle: Condvar,
}

impl Syncer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a written commit. Called with the writer held, so rounds publish in commit
    /// order.
    pub fn push(&self, synced: Synced) {
        self.lock().pending.push(synced);
        self.work.notify_one();
    }

    /// Waits until every queued commit is answered. Called with the writer held (so nothing
    /// new is queued) before a commit that publishes by itself or reopens the database.
    pub fn wait_idle(&self) {
        let mut queue = self.lock();
        while queue.busy || !queue.pending.is_empty() {
            queue = self
                .idle
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Ends the thread once what is queued is answered.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.work.notify_one();
    }

    /// The next round's commits; `None` when the log closed.
    fn next_round(&self) -> Option<Vec<Synced>> {
        let mut queue = self.lock();
        loop {
            if !queue.pending.is_empty() {
                queue.busy = true;
                return Some(std::mem::take(&mut queue.pending));
            }
            if queue.stopping {
                return None;
            }
            queue = self
                .work
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn end_round(&self) {
        let mut queue = self.lock();
        queue.busy = false;
        if queue.pending.is_empty() {
            self.idle.notify_all();
        }
    }
}

/// Starts the syncer thread of the log in `dir` (fjall's database directory). It ends after
/// [`Syncer::stop`], once what is queued is answered.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    syncer: Arc<Syncer>,
    dir: PathBuf,
) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new()
        .name("event-log-sync".into())
        .spawn(move || {
            let mut journal = JournalFile::new(dir);
            while let Some(round) = syncer.next_round() {
                let synced = if shared.sync_failed.load(Ordering::Acquire) {
                    Err(LogError::unavailable(
                        "an earlier journal sync failed; the log reopens at the next commit",
                    ))
                } else {
                    journal.sync(shared.generation.load(Ordering::Acquire))
                };
                shared.finish_round(round, synced);
                syncer.end_round();
            }
        })
        .map_err(|e| LogError::storage("cannot start the journal syncer thread", e))
}

impl Shared {
    /// Publishes and answers a round's commits once `synced` says they are durable, or fails
    /// them all.
    fn finish_round(&self, round: Vec<Synced>, synced: Result<(), LogError>) {
        match synced {
            Ok(()) => {
                for commit in round {
                    self.publish_commit(commit.publication);
                    for answer in commit.answers {
                        answer.send();
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, commits = round.len(), "event log journal sync failed");
                // The next commit reopens the database and reloads what is stored.
                self.sync_failed.store(true, Ordering::Release);
                crate::set_health(&self.health, Err(error.detail()));
                for commit in round {
                    for answer in commit.answers {
                        answer.fail(error.clone());
                    }
                }
            }
        }
    }

    /// Makes the readers' view the one of `segments`.
    pub(crate) fn publish_segments(&self, store: &Arc<Store>, segments: Vec<Segment>) {
        let view = crate::View {
            store: Arc::clone(store),
            segments,
        };
        if let Ok(mut current) = self.view.write() {
            *current = Some(Arc::new(view));
        }
    }

    /// Makes a durable commit visible: the readers' view, the recent events, the sequence.
    pub(crate) fn publish_commit(&self, publication: Publication) {
        self.publish_segments(&publication.store, publication.segments);
        if let Ok(mut recent) = self.recent.write() {
            recent.extend(publication.fresh);
        }
        let last = publication.last_sequence;
        self.last_tx.send_if_modified(|announced| {
            let changed = *announced != last;
            *announced = last;
            changed
        });
    }
}

/// The active journal file, opened by the syncer itself.
struct JournalFile {
    dir: PathBuf,
    open: Option<(u64, File)>,
    /// The database generation it was opened under (a reopen may start a new journal).
    generation: u64,
}

impl JournalFile {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            open: None,
            generation: 0,
        }
    }

    /// `fdatasync` of the newest journal of the database as opened in `generation`:
    /// everything written before this call is durable.
    fn sync(&mut self, generation: u64) -> Result<(), LogError> {
        const SYNCING: &str = "syncing the journal";
        if generation != self.generation {
            self.open = None;
            self.generation = generation;
        }
        let synced = self
            .current()
            .and_then(|file| file.sync_data())
            .map_err(|e| LogError::storage(SYNCING, e));
        if synced.is_err() {
            // Found afresh next time.
            self.open = None;
        }
        synced
    }

    /// The newest journal: the one open unless fjall rotated to the next number (checked
    /// with one `stat`), or a fresh scan of the directory the first time.
    fn current(&mut self) -> std::io::Result<&File> {
        let number = match &self.open {
            Some((number, _)) => {
                let mut newest = *number;
                while journal_path(&self.dir, newest + 1).exists() {
                    newest += 1;
                }
                newest
            }
            None => newest_journal(&self.dir)?,
        };
        if self.open.as_ref().is_none_or(|(open, _)| *open != number) {
            let file = File::open(journal_path(&self.dir, number))?;
            self.open = Some((number, file));
        }
        match &self.open {
            Some((_, file)) => Ok(file),
            None => Err(std::io::Error::other("no journal open")),
        }
    }
}

fn journal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number}.jnl"))
}

/// The highest journal number in `dir`.
pub(crate) fn newest_journal(dir: &Path) -> std::io::Result<u64> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.strip_suffix(".jnl"))
            .and_then(|number| number.parse::<u64>().ok());
        newest = newest.max(number);
    }
    newest.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no journal file in {}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(db: &fjall::Database, keyspace: &fjall::Keyspace, key: &[u8], value: &[u8]) {
        let mut batch = db.batch();
        batch.insert(keyspace, key, value);
        batch
            .durability(Some(fjall::PersistMode::Buffer))
            .commit()
            .expect("commit");
    }

    fn newest_holds(dir: &Path, marker: &[u8]) -> bool {
        let number = newest_journal(dir).expect("a journal");
        let bytes = std::fs::read(journal_path(dir, number)).expect("read journal");
        bytes.windows(marker.len()).any(|window| window == marker)
    }

    /// The syncer's durability rests on fjall's journal layout: a commit written with
    /// `PersistMode::Buffer` is in the newest `<n>.jnl` of the database directory, and the
    /// syncer follows fjall to the next journal when it rotates.
    #[test]
    fn journal_file_is_the_one_fjall_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = fjall::Database::builder(dir.path())
            .manual_journal_persist(true)
            // As the log opens it: the filler below must reach the journal at full size.
            .journal_compression(fjall::CompressionType::None)
            .open()
            .expect("open");
        let keyspace = db
            .keyspace("k", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        let mut journal = JournalFile::new(dir.path().to_path_buf());

        commit(&db, &keyspace, b"first", b"marker-before-rotation");
        journal.sync(0).expect("sync");
        assert!(newest_holds(dir.path(), b"marker-before-rotation"));
        let before = newest_journal(dir.path()).expect("a journal");

        // fjall rotates its journal at a memtable flush once the journal passes 64 MB.
        let filler = vec![7u8; 1 << 20];
        for n in 0..70u32 {
            commit(&db, &keyspace, &n.to_be_bytes(), &filler);
        }
        keyspace.rotate_memtable_and_wait().expect("flush");
        let after = newest_journal(dir.path()).expect("a journal");
        assert!(
            after > before,
            "the journal did not rotate ({before} -> {after})"
        );

        commit(&db, &keyspace, b"second", b"marker-after-rotation");
        journal.sync(0).expect("sync");
        assert!(newest_holds(dir.path(), b"marker-after-rotation"));
        assert_eq!(journal.open.as_ref().map(|(n, _)| *n), Some(after));
    }
}
