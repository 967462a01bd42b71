//! The disk's own cost of one `fdatasync`, measured on the volume the servers write to: what a
//! durable acknowledgement costs at least, whatever the service does around it. Appends of a
//! journal record's size, each followed by `fdatasync`, on one thread whose CPU time
//! (`/proc/thread-self/schedstat`) and context switches (`/proc/thread-self/status`) are
//! read before and after. Two files: one grown into a hole, as fjall's journal is (created at
//! its full length, then written), and one written in full and synced beforehand, whose
//! appends change no block mapping.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Bytes appended before each `fdatasync`: about what one webhook adds to the journal.
const RECORD: usize = 3_000;
/// Appends per file.
const ROUNDS: usize = 1_000;

/// One `fdatasync` after an append, on average.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SyncCost {
    /// CPU time of the syncing thread, microseconds.
    pub cpu_us: f64,
    /// Context switches of the syncing thread.
    pub switches: f64,
    /// Wall time, microseconds.
    pub wall_us: f64,
}

/// The two files' costs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SyncFloor {
    /// Appending into a hole of a file created at its full length (fjall's journal).
    pub into_hole: SyncCost,
    /// Appending over blocks written and synced beforehand.
    pub prewritten: SyncCost,
    /// Bytes appended before each sync.
    pub record_bytes: usize,
}

/// Measures both files in a new directory inside `dir`, on the calling thread (it blocks for
/// about a second; its counters are the ones read).
pub fn measure(dir: &Path) -> anyhow::Result<SyncFloor> {
    let dir = tempfile::tempdir_in(dir).context("cannot create the sync probe's directory")?;
    Ok(SyncFloor {
        into_hole: appends(&dir.path().join("hole"), false)?,
        prewritten: appends(&dir.path().join("prewritten"), true)?,
        record_bytes: RECORD,
    })
}

/// [`ROUNDS`] appends of [`RECORD`] bytes to a new file at `path`, each followed by
/// `fdatasync`.
fn appends(path: &Path, prewrite: bool) -> anyhow::Result<SyncCost> {
    let length = (RECORD * ROUNDS) as u64;
    let mut file =
        File::create_new(path).with_context(|| format!("cannot create {}", path.display()))?;
    if prewrite {
        file.write_all(&vec![0u8; RECORD * ROUNDS])?;
    } else {
        file.set_len(length)?;
    }
    file.sync_all()?;
    let record = vec![0x5a_u8; RECORD];
    let (cpu, switches, wall) = (thread_cpu_ns()?, thread_switches()?, Instant::now());
    for round in 0..ROUNDS {
        file.write_all_at(&record, (round * RECORD) as u64)?;
        file.sync_data()?;
    }
    let per_round = |total: f64| total / ROUNDS as f64;
    Ok(SyncCost {
        cpu_us: per_round((thread_cpu_ns()? - cpu) as f64 / 1_000.0),
        switches: per_round((thread_switches()? - switches) as f64),
        wall_us: per_round(wall.elapsed().as_secs_f64() * 1e6),
    })
}

/// CPU time this thread has run, nanoseconds (the scheduler's own count).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    schedstat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .context("unreadable /proc/thread-self/schedstat")
}

/// Voluntary and involuntary context switches of this thread.
fn thread_switches() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    crate::process::context_switches(&status)
        .context("no context switches in /proc/thread-self/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_are_measured_and_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let floor = measure(dir.path()).expect("the probe runs");
        assert_eq!(floor.record_bytes, RECORD);
        for cost in [floor.into_hole, floor.prewritten] {
            // Each append and sync takes some time on the thread, and a sync's wall time is
            // never below the CPU it used.
            assert!(cost.wall_us > 0.0 && cost.cpu_us > 0.0, "{cost:?}");
            assert!(cost.wall_us >= cost.cpu_us, "{cost:?}");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
        assert!(left.is_empty(), "the probe's files are removed: {left:?}");
    }
}
