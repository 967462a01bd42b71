//! A full disk: the commit that cannot be written fails (and every operation batched with
//! it), the log reports itself unhealthy, stores nothing of it, and writes again by itself
//! once space is freed (fjall refuses writes after an I/O error; the log reopens it).
//!
//! Needs a small filesystem: `TRIBUTARY_SMALL_FS` names a directory on one, e.g.
//! `mkdir -p /tmp/small && mount -t tmpfs -o size=16m tmpfs /tmp/small &&
//! TRIBUTARY_SMALL_FS=/tmp/small cargo test -p tributary-event-log-fjall --test disk_full --
//! --ignored`.

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::{append, open, request, sequences};
use tributary_event_log::{EventLog, LogError, Retention};
use tributary_model::v1::ArchiveEntry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRIBUTARY_SMALL_FS, a directory on a small filesystem it may fill"]
async fn a_full_disk_fails_the_commit_and_the_log_recovers_once_space_is_freed() {
    let base = PathBuf::from(
        std::env::var("TRIBUTARY_SMALL_FS").expect("TRIBUTARY_SMALL_FS names a small filesystem"),
    );
    let dir = tempfile::tempdir_in(&base).expect("dir");
    let log = open(dir.path(), 1 << 20, Retention::default());
    assert_eq!(append(&log, request(&["e1"])).await.sequences, vec![1]);

    // Fill the filesystem.
    let filler_path = base.join("filler");
    let mut filler = std::fs::File::create(&filler_path).expect("filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
    drop(filler);

    // A webhook larger than any free page left: its commit cannot be written.
    let mut big = request(&["e2"]);
    big.archive = Some(ArchiveEntry {
        source: common::SOURCE.into(),
        content_key: "sha256:big".into(),
        ciphertext: vec![7; 1 << 20],
        ..Default::default()
    });
    let failed = log.append(big.clone()).await;
    assert!(
        matches!(failed, Err(LogError::Storage { .. })),
        "{failed:?}"
    );
    let health = log.health();
    assert!(health.is_err(), "{health:?}");

    std::fs::remove_file(&filler_path).expect("free space");
    let outcome = append(&log, big).await;
    assert_eq!(
        outcome.sequences,
        vec![2],
        "nothing of the failed commit was stored"
    );
    assert_eq!(outcome.archive_id, 1);
    assert_eq!(log.health(), Ok(()));
    assert_eq!(sequences(&log).await, vec![1, 2]);
    assert_eq!(
        append(&log, request(&["e1", "e2", "e3"])).await.sequences,
        vec![3]
    );
}
