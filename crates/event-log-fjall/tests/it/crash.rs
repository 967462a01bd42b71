//! Crash safety: a torn write at the journal's tail and plain reopening.

use std::path::{Path, PathBuf};

use crate::common::{append, event, open, request, sequences};
use tributary_event_log::{EventLog, Retention};
use tributary_model::v1::{ArchiveEntry, Event};

/// Every journal file under `dir`, as (id, path).
fn journals(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jnl"))
                .and_then(|n| n.parse().ok())
            {
                found.push((id, path));
            }
        }
    }
    found.sort();
    found
}

fn stored(id: &str, sequence: u64) -> Event {
    Event {
        sequence,
        ..event(id)
    }
}

/// The newest journal's last written bytes are torn (a crash mid-write of the last commit): every
/// earlier commit is there, the torn one is gone whole, and appends continue with its
/// sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_tail_loses_only_the_torn_commit() {
    let dir = tempfile::tempdir().expect("dir");
    let ids: Vec<String> = (1..=10).map(|i| format!("e{i}")).collect();
    {
        let log = open(dir.path(), 4, Retention::default());
        for (i, id) in ids.iter().enumerate() {
            let outcome = append(&log, request(&[id.as_str()])).await;
            assert_eq!(outcome.sequences, vec![i as u64 + 1]);
        }
    }
    // fjall preallocates its journal: the commits end at the last byte that is not zero.
    // Zeroing the last bytes written is a torn write of the newest commit.
    let journals = journals(&dir.path().join("fjall"));
    let (_, newest) = journals.last().expect("a journal file");
    let mut bytes = std::fs::read(newest).expect("read journal");
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .expect("the journal holds the commits")
        + 1;
    assert!(end > 64, "the journal holds the commits ({end} bytes)");
    bytes[end - 7..end].fill(0);
    std::fs::write(newest, &bytes).expect("write journal");

    let log = open(dir.path(), 4, Retention::default());
    let expected: Vec<Event> = ids[..9]
        .iter()
        .enumerate()
        .map(|(i, id)| stored(id, i as u64 + 1))
        .collect();
    assert_eq!(log.read_after(0, 100).await.expect("read"), expected);
    assert_eq!(*log.last_sequence().borrow(), 9);
    assert_eq!(log.first_sequence().await.expect("first"), 1);
    // The torn event is new again; the others are duplicates.
    assert_eq!(
        append(&log, request(&["e1", "e10", "e11"])).await.sequences,
        vec![10, 11]
    );
    assert_eq!(sequences(&log).await, (1..=11).collect::<Vec<_>>());
}

/// Events across several segments, their archive entries, time lookups and counters survive
/// closing and opening again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_every_segment_and_the_archive() {
    let dir = tempfile::tempdir().expect("dir");
    let before = tributary_event_log::rules::timestamp(std::time::SystemTime::now());
    {
        let log = open(dir.path(), 3, Retention::default());
        for i in 0..5 {
            let ids = [format!("a{i}"), format!("b{i}")];
            let mut req = request(&[ids[0].as_str(), ids[1].as_str()]);
            req.archive = Some(ArchiveEntry {
                source: crate::common::SOURCE.into(),
                content_key: format!("sha256:{i}"),
                ciphertext: vec![i as u8; 2000],
                ..Default::default()
            });
            let outcome = append(&log, req).await;
            assert_eq!(outcome.sequences, vec![2 * i + 1, 2 * i + 2]);
            assert_eq!(outcome.archive_id, i + 1);
        }
    }
    let log = open(dir.path(), 3, Retention::default());
    assert_eq!(sequences(&log).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(log.read_after(4, 3).await.expect("read").len(), 3);
    assert_eq!(log.sequence_before_time(before).await.expect("time"), 0);
    let entries = log.archive_entries(0, 10).await.expect("archive");
    let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    assert_eq!(entries[2].sequences, vec![5, 6]);
    assert_eq!(entries[2].ciphertext, vec![2u8; 2000]);
    let names = log.keyspace_names().expect("names");
    for segment in 0..4 {
        assert!(
            names.contains(&format!("events.{segment:016x}")),
            "{names:?}"
        );
    }
    assert_eq!(
        append(&log, request(&["a0", "c"])).await.sequences,
        vec![11]
    );
}

/// A log keeps the segment size it was created with: reopened with another, it still finds
/// its segments and appends where they continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_segment_size_of_a_log_is_kept() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let log = open(dir.path(), 2, Retention::default());
        for id in ["a", "b", "c"] {
            append(&log, request(&[id])).await;
        }
    }
    let log = open(dir.path(), 1000, Retention::default());
    assert_eq!(
        append(&log, request(&["d", "e"])).await.sequences,
        vec![4, 5]
    );
    let names = log.keyspace_names().expect("names");
    assert!(
        names.contains(&"events.0000000000000002".to_owned()),
        "{names:?}"
    );
    assert_eq!(sequences(&log).await, vec![1, 2, 3, 4, 5]);
}
