//! The group commit from blocking threads and from cancelled async callers.

use std::time::Duration;

use crate::common::{append, open, request, sequences};
use tributary_event_log::{EventLog, Retention};

/// Threads calling `append_blocking` at once, several with the same ids: every id is stored
/// once, and each append's events get consecutive sequences.
#[test]
fn blocking_appends_from_many_threads_store_each_item_once() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path(), 16, Retention::default());
    let outcomes: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let log = &log;
                scope.spawn(move || {
                    let mut stored = Vec::new();
                    for round in 0..20 {
                        // Threads 2k and 2k+1 race on the same ids.
                        let ids = [
                            format!("t{}-r{round}-a", thread / 2),
                            format!("t{}-r{round}-b", thread / 2),
                        ];
                        let outcome = log
                            .append_blocking(request(&[ids[0].as_str(), ids[1].as_str()]))
                            .expect("append");
                        if let [first, second] = outcome.sequences[..] {
                            assert_eq!(second, first + 1, "one append's events are consecutive");
                        }
                        stored.extend(outcome.sequences);
                    }
                    stored
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    let mut all: Vec<u64> = outcomes.into_iter().flatten().collect();
    all.sort_unstable();
    // 4 pairs of threads x 20 rounds x 2 ids, each stored once.
    assert_eq!(all, (1..=160).collect::<Vec<_>>());
    assert_eq!(*log.last_sequence().borrow(), 160);
}

/// Async callers cancelled while they wait (one may have been handed the lead) leave no
/// caller without a leader: the others finish, and what was queued is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_callers_do_not_stall_the_others() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path(), 1 << 20, Retention::default());
    let mut tasks = Vec::new();
    for caller in 0..32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                let id = format!("c{caller}-{round}");
                log.append(request(&[id.as_str()])).await.expect("append");
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    for task in tasks.iter().step_by(2) {
        task.abort();
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let finished = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("no caller is left waiting");
        if i % 2 == 1 {
            finished.expect("uncancelled callers finish");
        }
    }
    let stored = sequences(&log).await;
    assert!(stored.len() >= 160, "{} stored", stored.len());
    assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>());
    let next = append(&log, request(&["after"])).await;
    assert_eq!(next.sequences, vec![stored.len() as u64 + 1]);
}
