//! Watches a plugin directory and calls back once a burst of changes has settled.
//!
//! Copying a library into place produces many events (create, several writes, close); the
//! callback runs once, `debounce` after the last of them, so a half-written file is usually not
//! loaded. (If it is, loading fails, the previous version keeps serving, and the final write
//! triggers another round.)

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

/// A running watch. Dropping it stops watching and ends the callback thread.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher").finish_non_exhaustive()
    }
}

/// Whether an event may change what the directory's libraries contain.
fn relevant(event: &Event) -> bool {
    let kind = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    kind && event.paths.iter().any(|p| crate::is_library_path(p))
}

/// Watches `dir` (not recursively) for changes to library files and calls `on_change` on a
/// dedicated thread, `debounce` after the last change of each burst.
pub fn watch_dir(
    dir: &Path,
    debounce: Duration,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<DirWatcher> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if event.is_ok_and(|e| relevant(&e)) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("plugin-watch".to_owned())
        .spawn(move || {
            // Ends when the watcher (the only sender) is dropped.
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(debounce) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                on_change();
            }
        })
        .map_err(notify::Error::io)?;
    Ok(DirWatcher { _watcher: watcher })
}
