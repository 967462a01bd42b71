//! What only the JetStream backend does: dedup beyond the stream's duplicate window (the
//! `<stream>_DEDUP` bucket) until the horizon, and dead-letter retention cleaning the redrive
//! state bucket.

use std::time::{Duration, Instant};

use tributary_event_log::{AppendOutcome, AppendRequest, EventLog, Retention};
use tributary_event_log_nats::{NatsConfig, NatsLog};
use tributary_model::v1::{DeadLetter, Event, Provenance};

use crate::support;

const SOURCE: &str = "s";

fn event(id: &str) -> Event {
    Event {
        source: SOURCE.into(),
        r#type: "t.checked".into(),
        provenance: Some(Provenance {
            provider_event_id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn letter(id: &str) -> DeadLetter {
    DeadLetter {
        source: SOURCE.into(),
        provider_event_id: id.into(),
        ..Default::default()
    }
}

fn request(events: &[&str], letters: &[&str]) -> AppendRequest {
    AppendRequest {
        source: SOURCE.into(),
        events: events.iter().map(|id| event(id).into()).collect(),
        dead_letters: letters.iter().map(|id| letter(id)).collect(),
        archive: None,
    }
}

fn outcome(sequences: &[u64], duplicates: usize, dead_lettered: usize) -> AppendOutcome {
    AppendOutcome {
        sequences: sequences.to_vec(),
        duplicates,
        dead_lettered,
        archive_id: 0,
    }
}

fn config(url: &str, stream: &str, window: Duration, retention: Retention) -> NatsConfig {
    NatsConfig {
        stream: stream.into(),
        subject_prefix: stream.to_lowercase(),
        duplicate_window: window,
        retention,
        connect_timeout: Duration::from_secs(20),
        ..NatsConfig::new(vec![url.to_owned()])
    }
}

async fn append(log: &NatsLog, request: AppendRequest) -> AppendOutcome {
    log.append(request).await.expect("append")
}

/// With a one-second duplicate window: a retry two seconds later is still a duplicate thanks
/// to the dedup bucket (without it, the same retry is stored again), until the horizon
/// passes, after which the id is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_reaches_past_the_duplicate_window_until_the_horizon() {
    let nats = support::fresh();
    let window = Duration::from_secs(1);
    let horizon = Duration::from_secs(4);
    let with_bucket = support::connect(config(
        &nats.url(),
        "KEPT",
        window,
        Retention {
            dedup_horizon: horizon,
            ..Retention::default()
        },
    ))
    .await
    .expect("connect");
    let window_only = support::connect(config(
        &nats.url(),
        "WINDOW",
        window,
        Retention {
            dedup_horizon: Duration::ZERO,
            ..Retention::default()
        },
    ))
    .await
    .expect("connect");

    let first = Instant::now();
    assert_eq!(
        append(&with_bucket, request(&["a"], &["x"])).await,
        outcome(&[1], 0, 1)
    );
    assert_eq!(
        append(&window_only, request(&["a"], &["x"])).await,
        outcome(&[1], 0, 1)
    );
    tokio::time::sleep(window * 2).await;
    assert_eq!(
        append(&with_bucket, request(&["a"], &["x"])).await,
        outcome(&[], 2, 0),
        "past the window, the bucket still knows them"
    );
    assert_eq!(
        append(&window_only, request(&["a"], &["x"])).await,
        outcome(&[2], 0, 1),
        "past the window, without the bucket, they are stored again"
    );

    // The bucket's keys expire with the horizon (counted from their last write, the
    // duplicate's repair above included): then the ids are new again.
    let mut stored_again = None;
    while stored_again.is_none() {
        let got = append(&with_bucket, request(&["a"], &[])).await;
        if got.sequences.is_empty() {
            assert!(
                first.elapsed() < Duration::from_secs(30),
                "keys never expired"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            stored_again = Some(got);
        }
    }
    assert!(
        first.elapsed() >= horizon,
        "expired after {:?}",
        first.elapsed()
    );
    assert_eq!(stored_again, Some(outcome(&[2], 0, 0)));
}

/// The redrive-state keys left in the bucket.
async fn state_keys(nats: &support::Nats, stream: &str) -> Vec<String> {
    support::bucket_keys(nats, &format!("{stream}_DEAD_LETTER_STATE")).await
}

/// Dead letters purged by the count limit lose their redrive state too; a resolved letter
/// past the age limit goes with its state; unresolved letters stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_retention_removes_their_redrive_state() {
    let nats = support::fresh();
    let stream = "LETTERS";
    let log = support::connect(config(
        &nats.url(),
        stream,
        Duration::from_secs(120),
        Retention {
            interval: Duration::from_millis(100),
            dead_letter_max_count: Some(3),
            dead_letter_max_age: Some(Duration::from_millis(500)),
            ..Retention::default()
        },
    ))
    .await
    .expect("connect");
    assert_eq!(
        append(&log, request(&[], &["w", "x", "y"])).await,
        outcome(&[], 0, 3)
    );
    for id in [1, 2] {
        log.redrive(id, Vec::new(), Some("still".into()))
            .await
            .expect("redrive");
    }
    let resolved = log
        .redrive(3, vec![event("y").into()], None)
        .await
        .expect("redrive");
    assert!(resolved.resolved);
    assert_eq!(state_keys(&nats, stream).await, ["1", "2", "3"]);

    // One more letter: letter 1 goes by count, letter 3 by age (resolved 500 ms ago).
    assert_eq!(append(&log, request(&[], &["z"])).await, outcome(&[], 0, 1));
    let started = Instant::now();
    loop {
        let ids: Vec<u64> = log
            .dead_letters(0, 10)
            .await
            .expect("list")
            .iter()
            .map(|l| l.id)
            .collect();
        if ids == [2, 4] && state_keys(&nats, stream).await == ["2"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "letters {ids:?}, states {:?}",
            state_keys(&nats, stream).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        append(&log, request(&["y"], &["w", "x", "y"])).await,
        outcome(&[], 4, 0),
        "the removed letters' keys stay"
    );
}
