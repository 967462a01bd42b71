//! The open database, replaceable after a storage fault: redb refuses every transaction after
//! an I/O error until the file is closed and opened again, so the writer reopens it once the
//! fault clears (disk space freed, device back).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use tributary_event_log::LogError;

/// How long a reopen waits for readers to finish with the old instance.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// redb's page cache. Its default (1 GiB) lets resident memory grow with the log; subscribers
/// mostly read the newest pages, so a small cache keeps memory flat at no visible cost.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

fn create(path: &std::path::Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

pub(crate) struct DbHandle {
    path: PathBuf,
    current: RwLock<Option<Arc<Database>>>,
}

impl DbHandle {
    pub fn open(path: PathBuf) -> Result<Self, LogError> {
        let db = create(&path)
            .map_err(|e| LogError::storage(format!("cannot open {}", path.display()), e))?;
        Ok(Self {
            path,
            current: RwLock::new(Some(Arc::new(db))),
        })
    }

    /// The open database, or an error while it is being reopened.
    pub fn get(&self) -> Result<Arc<Database>, LogError> {
        self.current
            .read()
            .ok()
            .and_then(|db| db.clone())
            .ok_or_else(|| LogError::unavailable("event log is recovering from a storage fault"))
    }

    /// Closes the database (after readers let go of it) and opens it again. On failure the
    /// handle stays closed and the next call tries again.
    pub fn reopen(&self) -> Result<Arc<Database>, LogError> {
        let old = self.current.write().ok().and_then(|mut db| db.take());
        if let Some(mut old) = old {
            let started = Instant::now();
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_shared) if started.elapsed() < DRAIN_TIMEOUT => {
                        old = still_shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still_shared) => {
                        if let Ok(mut current) = self.current.write() {
                            *current = Some(still_shared);
                        }
                        return Err(LogError::unavailable(
                            "cannot reopen the event log: readers still hold it",
                        ));
                    }
                }
            }
        }
        let db = create(&self.path)
            .map_err(|e| LogError::storage(format!("cannot reopen {}", self.path.display()), e))?;
        let db = Arc::new(db);
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::clone(&db));
        }
        tracing::info!(path = %self.path.display(), "event log reopened");
        Ok(db)
    }
}
