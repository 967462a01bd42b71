//! The counters the writer assigns from (sequences, dead-letter and archive ids, the log's
//! millisecond clock), shared by the modules a commit runs through.

use std::time::{SystemTime, UNIX_EPOCH};

/// Counters the writer owns; reloaded from storage after a failed commit.
pub(crate) struct Cursor {
    pub last_sequence: u64,
    pub last_dead_letter: u64,
    pub last_millis: u64,
    pub last_archive: u64,
}

/// Now, in unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
