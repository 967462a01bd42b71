//! Retention by segments: whole segments go as keyspaces, the boundary one is trimmed, the
//! time index stays right when a millisecond's events are partly removed, and the dedup keys
//! of removed events go after the horizon with their `keys.<n>` keyspaces.

use std::time::{Duration, SystemTime};

use crate::common::{append, open, request, sequences};
use prost::Message;
use tributary_event_log::{EventLog, Retention, rules};
use tributary_model::v1::Event;
use tributary_test_kit::eventually;

fn segment(kind: &str, number: u64) -> String {
    format!("{kind}.{number:016x}")
}

/// Removes every event a consumer acknowledged, often.
fn eager(horizon: Duration) -> Retention {
    Retention {
        max_age: Some(Duration::ZERO),
        interval: Duration::from_millis(20),
        dedup_horizon: horizon,
        ..Retention::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_segments_are_dropped_and_the_boundary_is_trimmed() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path(), 4, eager(Duration::from_secs(3600)));
    log.open_consumer("keeper", 0, &Default::default())
        .await
        .expect("consumer");
    for i in 1..=10 {
        let id = format!("e{i}");
        assert_eq!(
            append(&log, request(&[id.as_str()])).await.sequences,
            vec![i]
        );
    }
    let names = log.keyspace_names().expect("names");
    for n in 0..3 {
        assert!(names.contains(&segment("events", n)), "{names:?}");
    }
    log.ack("keeper", 9).await.expect("ack");
    eventually("events 1 to 9 removed", || async {
        log.first_sequence().await.ok() == Some(10)
    })
    .await;
    assert_eq!(sequences(&log).await, vec![10]);
    let names = log.keyspace_names().expect("names");
    for n in 0..2 {
        assert!(
            !names.contains(&segment("events", n)),
            "{names:?} {:?}",
            log.health()
        );
        assert!(
            !names.contains(&segment("times", n)),
            "{names:?} {:?}",
            log.health()
        );
        // Dedup keys outlive their events by the horizon.
        assert!(names.contains(&segment("keys", n)), "{names:?}");
    }
    assert!(names.contains(&segment("events", 2)), "{names:?}");
    assert_eq!(
        append(&log, request(&["e1", "e9", "e11"])).await.sequences,
        vec![11],
        "removed events are still duplicates"
    );
    assert_eq!(
        log.sequence_of(crate::common::SOURCE, "e9")
            .await
            .expect("of"),
        None
    );
    assert_eq!(
        log.sequence_of(crate::common::SOURCE, "e10")
            .await
            .expect("of"),
        Some(10)
    );
    drop(log);
    let log = open(dir.path(), 4, Retention::default());
    assert_eq!(log.first_sequence().await.expect("first"), 10);
    assert_eq!(sequences(&log).await, vec![10, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_removed_events_go_after_the_horizon_with_their_keyspaces() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open(dir.path(), 2, eager(Duration::from_secs(2)));
    for i in 1..=5 {
        let id = format!("e{i}");
        append(&log, request(&[id.as_str()])).await;
    }
    eventually("every event removed", || async {
        log.first_sequence().await.ok() == Some(6)
    })
    .await;
    // Within the horizon of its removal (just now), e5 is a duplicate.
    assert_eq!(
        append(&log, request(&["e5"])).await.sequences,
        Vec::<u64>::new()
    );
    eventually("keys.0 and keys.1 dropped", || async {
        let names = log.keyspace_names().expect("names");
        !names.contains(&segment("keys", 0)) && !names.contains(&segment("keys", 1))
    })
    .await;
    let names = log.keyspace_names().expect("names");
    assert!(!names.contains(&segment("events", 0)), "{names:?}");
    // Pruned: the ids are new again.
    let again = append(&log, request(&["e1", "e4"])).await;
    assert_eq!(again.sequences, vec![6, 7]);
}

/// Size retention cuts one commit's millisecond in the middle: a subscriber starting at that
/// time still gets every kept event (its time entry names a removed sequence otherwise).
async fn cut_in_the_middle(segment_events: u64) {
    let dir = tempfile::tempdir().expect("dir");
    let one = Event {
        sequence: 1,
        ..crate::common::event("e0")
    }
    .encoded_len() as u64;
    let log = open(
        dir.path(),
        segment_events,
        Retention {
            max_bytes: Some(4 * one),
            interval: Duration::from_millis(20),
            ..Retention::default()
        },
    );
    let before = rules::timestamp(SystemTime::now() - Duration::from_millis(1));
    let ids: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        append(&log, request(&ids)).await.sequences,
        (1..=10).collect::<Vec<_>>()
    );
    eventually("the oldest six removed", || async {
        log.first_sequence().await.ok() == Some(7)
    })
    .await;
    assert_eq!(log.sequence_before_time(before).await.expect("time"), 6);
    assert_eq!(sequences(&log).await, vec![7, 8, 9, 10]);
    drop(log);
    let log = open(dir.path(), segment_events, Retention::default());
    assert_eq!(log.sequence_before_time(before).await.expect("time"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_millisecond_cut_in_the_middle_stays_findable_within_a_segment() {
    cut_in_the_middle(1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_millisecond_cut_in_the_middle_stays_findable_across_segments() {
    cut_in_the_middle(4).await;
}
