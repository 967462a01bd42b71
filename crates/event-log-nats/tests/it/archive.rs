//! What only the JetStream backend does with the raw archive: a retry past the duplicate
//! window finds its entry through the link record, retention set in `[log.retention]` is
//! applied to existing streams, the size limit removes entries and then their link records,
//! and instances racing on one webhook share one entry.

use std::time::{Duration, Instant};

use tributary_event_log::{AppendRequest, EventLog, Retention};
use tributary_event_log_nats::{NatsConfig, NatsLog};
use tributary_model::v1::{ArchiveEntry, DeadLetter, Event, Provenance};

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

fn archived(events: &[&str], letters: &[&str], content_key: &str) -> AppendRequest {
    AppendRequest {
        source: SOURCE.into(),
        events: events.iter().map(|id| event(id).into()).collect(),
        dead_letters: letters
            .iter()
            .map(|id| DeadLetter {
                source: SOURCE.into(),
                provider_event_id: (*id).into(),
                ..Default::default()
            })
            .collect(),
        archive: Some(ArchiveEntry {
            source: SOURCE.into(),
            content_key: content_key.into(),
            ciphertext: vec![0xA5; 200],
            ..Default::default()
        }),
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

async fn open(nats: &support::Nats, stream: &str, retention: Retention) -> NatsLog {
    support::connect(config(
        &nats.url(),
        stream,
        Duration::from_secs(120),
        retention,
    ))
    .await
    .expect("connect")
}

async fn links(log: &NatsLog, id: u64) -> (Vec<u64>, Vec<u64>) {
    let entry = log
        .archive_entry(id)
        .await
        .expect("archive_entry")
        .unwrap_or_else(|| panic!("entry {id} missing"));
    (entry.sequences, entry.dead_letter_ids)
}

async fn entry_ids(log: &NatsLog) -> Vec<u64> {
    let entries = log.archive_entries(0, 100).await.expect("archive_entries");
    entries.iter().map(|e| e.id).collect()
}

fn jetstream(nats: &support::Nats) -> impl Future<Output = async_nats::jetstream::Context> {
    let url = nats.url();
    async move {
        let client = async_nats::connect(url.as_str()).await.expect("client");
        async_nats::jetstream::new(client)
    }
}

/// (max_age, max_bytes, duplicate window) of stream `name`.
async fn limits(nats: &support::Nats, name: &str) -> (Duration, i64, Duration) {
    let js = jetstream(nats).await;
    let mut stream = js.get_stream(name).await.expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    (config.max_age, config.max_bytes, config.duplicate_window)
}

/// The keys of the archive's link bucket.
async fn link_keys(nats: &support::Nats, stream: &str) -> Vec<String> {
    support::bucket_keys(nats, &format!("{stream}_ARCHIVE_LINKS")).await
}

/// With a one-second duplicate window, a retry two seconds later still finds its entry (the
/// link record is keyed by source and content key) and extends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_past_the_duplicate_window_finds_its_entry() {
    let nats = support::fresh();
    let window = Duration::from_secs(1);
    let log = support::connect(config(&nats.url(), "LATE", window, Retention::default()))
        .await
        .expect("connect");
    assert_eq!(
        log.append(archived(&["a"], &[], "sha256:late"))
            .await
            .expect("append")
            .archive_id,
        1
    );
    tokio::time::sleep(window * 2).await;
    let retry = log
        .append(archived(&["a", "b"], &["x"], "sha256:late"))
        .await
        .expect("retry");
    assert_eq!((retry.archive_id, retry.sequences), (1, vec![2]));
    assert_eq!(links(&log, 1).await, (vec![1, 2], vec![1]));
    assert_eq!(entry_ids(&log).await, [1]);
}

/// The archive's limits come from `[log.retention]` and follow it on every start: an
/// existing stream and link bucket are updated (a shorter age for personal data must take
/// effect). Zero becomes JetStream's minimum age, 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_applies_the_archive_retention() {
    let nats = support::fresh();
    let stream = "KEPT";
    let (archive, links_stream) = ("KEPT_ARCHIVE", "KV_KEPT_ARCHIVE_LINKS");
    let hour = Duration::from_secs(3600);
    let log = open(
        &nats,
        stream,
        Retention {
            archive_max_age: Some(hour),
            archive_max_bytes: Some(1 << 20),
            ..Retention::default()
        },
    )
    .await;
    drop(log);
    let window = Duration::from_secs(120);
    assert_eq!(limits(&nats, archive).await, (hour, 1 << 20, window));
    assert_eq!(limits(&nats, links_stream).await.0, hour);

    drop(open(&nats, stream, Retention::default()).await);
    assert_eq!(limits(&nats, archive).await, (Duration::ZERO, -1, window));
    assert_eq!(limits(&nats, links_stream).await.0, Duration::ZERO);

    let log = open(
        &nats,
        stream,
        Retention {
            archive_max_age: Some(Duration::ZERO),
            ..Retention::default()
        },
    )
    .await;
    let tiny = Duration::from_millis(100);
    assert_eq!(limits(&nats, archive).await, (tiny, -1, tiny));
    assert_eq!(limits(&nats, links_stream).await.0, tiny);
    let stored = log
        .append(archived(&["a"], &[], "sha256:brief"))
        .await
        .expect("append");
    assert_eq!(stored.archive_id, 1);
}

/// JetStream removes the oldest entries beyond `archive_max_bytes`; the retention sweep then
/// removes their link records. A retry of a removed webhook archives it anew (within the
/// duplicate window, under a message id of its own), and its items point at the new entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_removes_entries_then_their_links() {
    let nats = support::fresh();
    let stream = "SIZED";
    let log = open(
        &nats,
        stream,
        Retention {
            // Each entry takes about 300 bytes of the stream: two fit.
            archive_max_bytes: Some(700),
            interval: Duration::from_millis(100),
            ..Retention::default()
        },
    )
    .await;
    for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
        let stored = log
            .append(archived(&[id], &[], &format!("sha256:{id}")))
            .await
            .expect("append");
        assert_eq!(stored.archive_id, n as u64 + 1);
    }
    let kept = entry_ids(&log).await;
    assert_eq!(kept, [3, 4], "the oldest entries went");
    let started = Instant::now();
    while link_keys(&nats, stream).await.len() > 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "links {:?}",
            link_keys(&nats, stream).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        link_keys(&nats, stream).await,
        ["s.sha256=3Ac", "s.sha256=3Ad"]
    );

    let retry = log
        .append(archived(&["a", "e"], &[], "sha256:a"))
        .await
        .expect("retry");
    assert_eq!((retry.archive_id, retry.sequences), (5, vec![5]));
    assert_eq!(links(&log, 5).await, (vec![5], vec![]));
    let events = log.read_after(0, 10).await.expect("read");
    let raw: Vec<u64> = events.iter().map(|e| e.raw_id).collect();
    assert_eq!(raw, [1, 2, 3, 4, 5]);
}

/// Two instances receiving the same webhook at once (each producing different items, as a
/// retry with a changed adapter would) share one entry, which lists what both stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_racing_on_one_webhook_share_its_entry() {
    let nats = support::fresh();
    let one = open(&nats, "RACE", Retention::default()).await;
    let two = open(&nats, "RACE", Retention::default()).await;
    for round in 0..10 {
        let key = format!("sha256:{round}");
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        let (left, right) = tokio::join!(
            one.append(archived(&[&a], &[&x], &key)),
            two.append(archived(&[&b], &[&y], &key)),
        );
        let (left, right) = (left.expect("append"), right.expect("append"));
        assert_eq!(left.archive_id, right.archive_id, "round {round}");
        let (mut sequences, mut letters) = links(&one, left.archive_id).await;
        sequences.sort_unstable();
        letters.sort_unstable();
        let mut expected: Vec<u64> = left
            .sequences
            .iter()
            .chain(&right.sequences)
            .copied()
            .collect();
        expected.sort_unstable();
        assert_eq!(sequences, expected, "round {round}");
        assert_eq!(letters.len(), 2, "round {round}");
    }
    assert_eq!(entry_ids(&two).await, (1..=10).collect::<Vec<_>>());
}
