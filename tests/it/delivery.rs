//! Delivery that loses nothing: durable consumers, retention, slow consumers, crashes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use tonic::Code;
use tributary_model::v1::{
    DeleteConsumerRequest, ListConsumersRequest, ResetConsumerRequest, SubscribeRequest,
    reset_consumer_request::Position, subscribe_request::Start,
};

use crate::support::{
    self, ARCADIA_AUTH, Backend, NO_RATE_LIMIT, Server, ack, arcadia_source, arcadia_webhook,
    load_client, next_event, post_arcadia,
};

/// Runs a case against every event-log backend, as `<case>::redb`, `<case>::fjall` and
/// `<case>::nats` (a JetStream server of the test's own).
macro_rules! on_both_backends {
    ($case:ident $(, $flavor:tt)?) => {
        mod $case {
            #[tokio::test $($flavor)?]
            async fn redb() {
                super::$case(super::Backend::Redb).await
            }

            #[tokio::test $($flavor)?]
            async fn fjall() {
                super::$case(super::Backend::Fjall).await
            }

            #[tokio::test $($flavor)?]
            async fn nats() {
                super::$case(super::Backend::nats()).await
            }
        }
    };
}

async fn post_many(server: &Server, prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        let (status, body) = server
            .post(
                "arcadia",
                &arcadia_webhook(&format!("whk_{prefix}-{i}")),
                &ARCADIA_AUTH,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn consume(server: &Server, consumer: &str, count: usize) -> Vec<u64> {
    let mut stream = server
        .subscribe(SubscribeRequest {
            consumer: consumer.into(),
            ..Default::default()
        })
        .await;
    let mut sequences = Vec::new();
    while sequences.len() < count {
        let event = next_event(&mut stream, Duration::from_secs(20)).await;
        sequences.push(event.sequence);
    }
    sequences
}

on_both_backends!(a_durable_consumer_resumes_after_its_last_ack_across_restarts);
async fn a_durable_consumer_resumes_after_its_last_ack_across_restarts(backend: Backend) {
    let server = Server::start(&backend.config(&arcadia_source("")));
    post_many(&server, "durable", 0..5).await;
    assert_eq!(consume(&server, "billing", 5).await, vec![1, 2, 3, 4, 5]);
    let mut client = server.client().await;
    assert_eq!(ack(&mut client, "billing", 3).await.expect("ack"), 3);
    // Acks never move backwards.
    assert_eq!(ack(&mut client, "billing", 2).await.expect("ack"), 3);
    let error = ack(&mut client, "nobody", 1)
        .await
        .expect_err("unknown consumer");
    assert_eq!(error.code(), Code::NotFound);
    let error = ack(&mut client, "billing", 99)
        .await
        .expect_err("beyond the log");
    assert_eq!(error.code(), Code::InvalidArgument);

    post_many(&server, "durable", 5..7).await;
    let server = server.restart();
    // 4 and 5 were delivered but not acknowledged: delivered again, then 6 and 7.
    assert_eq!(consume(&server, "billing", 4).await, vec![4, 5, 6, 7]);

    let mut admin = server.admin().await;
    let consumers = admin
        .list_consumers(ListConsumersRequest {})
        .await
        .expect("list")
        .into_inner()
        .consumers;
    assert_eq!(consumers.len(), 1);
    assert_eq!(
        (
            consumers[0].name.as_str(),
            consumers[0].acked_sequence,
            consumers[0].lag
        ),
        ("billing", 3, 4)
    );
    let reset = admin
        .reset_consumer(ResetConsumerRequest {
            name: "billing".into(),
            position: Some(Position::AfterSequence(1)),
        })
        .await
        .expect("reset")
        .into_inner();
    assert_eq!((reset.acked_sequence, reset.lag), (1, 6));
    assert_eq!(consume(&server, "billing", 6).await, vec![2, 3, 4, 5, 6, 7]);
    let deleted = admin
        .delete_consumer(DeleteConsumerRequest {
            name: "billing".into(),
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.deleted);
    // A new consumer of the same name starts where its request says.
    let mut stream = server
        .subscribe(SubscribeRequest {
            consumer: "billing".into(),
            start: Some(Start::AfterSequence(6)),
            ..Default::default()
        })
        .await;
    let event = stream.next().await.expect("open").expect("event");
    assert_eq!(event.sequence, 7);
}

on_both_backends!(invalid_consumer_names_are_refused);
async fn invalid_consumer_names_are_refused(backend: Backend) {
    let server = Server::start(&backend.config(""));
    let mut client = server.client().await;
    let error = client
        .subscribe(SubscribeRequest {
            consumer: "has space".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(error.code(), Code::InvalidArgument);
}

on_both_backends!(retention_removes_old_events_but_not_what_a_consumer_still_needs);
async fn retention_removes_old_events_but_not_what_a_consumer_still_needs(backend: Backend) {
    let server = Server::start(&backend.config(&format!(
        "[log.retention]\nmax_age_seconds = 1\ninterval_seconds = 1\n{}",
        arcadia_source("")
    )));
    post_many(&server, "old", 0..3).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    post_many(&server, "new", 0..1).await;

    let mut client = server.client().await;
    let error = client
        .subscribe(SubscribeRequest {
            start: Some(Start::AfterSequence(1)),
            ..Default::default()
        })
        .await
        .expect_err("removed");
    assert_eq!(error.code(), Code::OutOfRange);
    assert_eq!(
        error.message(),
        "sequence 2 was removed by retention; the earliest available is 4"
    );
    let rest = server.collect_all(3, Duration::from_millis(300)).await;
    assert_eq!(rest.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![4]);

    // A consumer that has acknowledged up to 4 keeps 5 and 6 from retention.
    let mut keeper = client
        .subscribe(SubscribeRequest {
            consumer: "keeper".into(),
            start: Some(Start::AfterSequence(4)),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    post_many(&server, "kept", 0..2).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let first = keeper.next().await.expect("open").expect("event");
    assert_eq!(first.sequence, 5);
    let kept = server.collect_all(4, Duration::from_millis(300)).await;
    assert_eq!(
        kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![5, 6]
    );
    let error = client
        .subscribe(SubscribeRequest {
            start: Some(Start::AfterSequence(3)),
            ..Default::default()
        })
        .await
        .expect_err("4 is gone now");
    assert_eq!(
        error.message(),
        "sequence 4 was removed by retention; the earliest available is 5"
    );
}

on_both_backends!(a_retry_after_retention_removed_its_event_is_still_a_duplicate);
/// Retention removes events, not their dedup keys: a provider retrying days later (Finicity
/// retries for 3 days) must not make the event appear again.
async fn a_retry_after_retention_removed_its_event_is_still_a_duplicate(backend: Backend) {
    let server = Server::start(&backend.config(&format!(
        "[log.retention]\nmax_age_seconds = 1\ninterval_seconds = 1\n{}",
        arcadia_source("")
    )));
    post_many(&server, "retried", 0..2).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    post_many(&server, "fresh", 0..1).await;
    let kept = server.collect_all(2, Duration::from_millis(300)).await;
    assert_eq!(kept.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![3]);

    for i in 0..2 {
        let (status, body) = server
            .post(
                "arcadia",
                &arcadia_webhook(&format!("whk_retried-{i}")),
                &ARCADIA_AUTH,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"accepted": 0, "duplicates": 1, "dead_lettered": 0, "ignored": 0,
                "sequences": []})
        );
    }
    let after = server.collect_all(2, Duration::from_millis(300)).await;
    assert_eq!(
        after.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![3]
    );
}

/// Posts `count` distinct webhooks over `connections` concurrent clients.
async fn flood(server: &Server, prefix: &str, count: usize, connections: usize) -> Duration {
    let url = server.url("/webhooks/arcadia");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let url = url.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = load_client();
            for i in (worker..count).step_by(connections) {
                let response = post_arcadia(&client, &url, &format!("whk_{prefix}-{i}"))
                    .await
                    .expect("POST");
                assert_eq!(response.status().as_u16(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    started.elapsed()
}

on_both_backends!(
    a_stalled_subscriber_slows_nothing_and_memory_stays_bounded,
    (flavor = "multi_thread", worker_threads = 2)
);
async fn a_stalled_subscriber_slows_nothing_and_memory_stays_bounded(backend: Backend) {
    const BASELINE: usize = 4_000;
    const TOTAL: usize = 20_000;
    // Each measures its own ingest, which another flood in the same process would distort.
    let _turn = support::heavy_turn().await;
    let server = Server::start(&backend.config(&format!("{}{NO_RATE_LIMIT}", arcadia_source(""))));
    let reader = {
        let mut stream = server.subscribe(SubscribeRequest::default()).await;
        tokio::spawn(async move {
            let mut last = 0;
            while last < (BASELINE + TOTAL) as u64 {
                let event = next_event(&mut stream, Duration::from_secs(60)).await;
                assert_eq!(event.sequence, last + 1, "in order, no gap");
                last = event.sequence;
            }
            last
        })
    };
    let baseline = flood(&server, "base", BASELINE, 8).await;

    // This subscriber never reads.
    let mut stalled_client = server.client().await;
    let _stalled = stalled_client
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    let (rss_before, _) = server.rss_kib();
    let loaded = flood(&server, "load", TOTAL, 8).await;
    assert_eq!(reader.await.expect("reader"), (BASELINE + TOTAL) as u64);

    // Bound: per-webhook ingest time with the stalled subscriber within 3x of the baseline
    // (generous: both phases run on the same noisy machine, the point is "not stuck").
    let base_per = baseline.as_secs_f64() / BASELINE as f64;
    let loaded_per = loaded.as_secs_f64() / TOTAL as f64;
    assert!(
        loaded_per <= base_per * 3.0,
        "ingest slowed: {loaded_per:.6}s vs {base_per:.6}s per webhook"
    );
    // Memory: the stalled subscription holds at most its bounded buffer.
    let (rss_after, peak) = server.rss_kib();
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    assert!(
        rss_after < rss_before + 96 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // The stalled subscriber catches up from storage when it reads again.
    let mut stalled = _stalled;
    let mut count = 0;
    while count < BASELINE + TOTAL {
        let event = stalled.next().await.expect("open").expect("event");
        count += 1;
        assert_eq!(event.sequence, count as u64);
    }
}

on_both_backends!(
    every_acknowledged_webhook_survives_kill_9_exactly_once,
    (flavor = "multi_thread", worker_threads = 2)
);
async fn every_acknowledged_webhook_survives_kill_9_exactly_once(backend: Backend) {
    // Each measures its own ingest, which another flood in the same process would distort.
    let _turn = support::heavy_turn().await;
    let mut server =
        Server::start(&backend.config(&format!("{}{NO_RATE_LIMIT}", arcadia_source(""))));
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..3u64 {
        let url = server.url("/webhooks/arcadia");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let (url, stop, acknowledged) = (url.clone(), stop.clone(), acknowledged.clone());
            tasks.push(tokio::spawn(async move {
                let client = load_client();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("whk_kill-{round}-{worker}-{i}");
                    i += 1;
                    let sent = post_arcadia(&client, &url, &id).await;
                    match sent {
                        Ok(response) if response.status().is_success() => {
                            acknowledged.lock().expect("lock").push(id);
                        }
                        // Refused or cut off by the kill: the provider would retry.
                        _ => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        // Kill at a different moment each round.
        tokio::time::sleep(Duration::from_millis(300 + 370 * round)).await;
        server.kill9();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in tasks {
            task.await.expect("worker");
        }
        server.respawn();
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 100,
        "too little load: {}",
        acknowledged.len()
    );
    let events = server.collect_all(0, Duration::from_secs(2)).await;
    support::assert_exactly_once(&events, &acknowledged);
}

on_both_backends!(sigterm_ends_streams_with_a_reconnect_status_and_exits_cleanly);
async fn sigterm_ends_streams_with_a_reconnect_status_and_exits_cleanly(backend: Backend) {
    let mut server = Server::start(&backend.config(&format!(
        "shutdown_timeout_seconds = 5\n{}",
        arcadia_source("")
    )));
    post_many(&server, "term", 0..2).await;
    let mut stream = server.subscribe(SubscribeRequest::default()).await;
    for expected in 1..=2 {
        let event = stream.next().await.expect("open").expect("event");
        assert_eq!(event.sequence, expected);
    }
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    match stream.next().await {
        Some(Err(status)) => {
            assert_eq!(status.code(), Code::Unavailable);
            assert!(
                status.message().contains("reconnect"),
                "{}",
                status.message()
            );
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    // Nothing was lost: a restarted server has both events.
    server.respawn();
    let events = server.collect_all(0, Duration::from_millis(500)).await;
    assert_eq!(events.len(), 2);
}

on_both_backends!(a_filtered_consumer_moves_over_the_events_it_skips);
/// A durable consumer subscribed to one source of two: its ack moves over the other source's
/// events, an open subscription moves it over those appended later, its lag counts only what
/// it would still receive, and retention is not held back by what it skipped.
async fn a_filtered_consumer_moves_over_the_events_it_skips(backend: Backend) {
    let mirror = arcadia_source("").replace("[sources.arcadia]", "[sources.mirror]");
    let server = Server::start(&backend.config(&format!(
        "[log.retention]\nmax_age_seconds = 1\ninterval_seconds = 1\n{}{mirror}",
        arcadia_source("")
    )));
    let post = |source: &'static str, id: String| {
        let server = &server;
        async move {
            let (status, body) = server
                .post(source, &arcadia_webhook(&id), &ARCADIA_AUTH)
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    post("arcadia", "whk_a1".into()).await;
    post("arcadia", "whk_a2".into()).await;
    for i in 0..3 {
        post("mirror", format!("whk_m{i}")).await;
    }
    let filter = Some(tributary_model::v1::Filter {
        sources: vec!["arcadia".into()],
        types: Vec::new(),
    });
    let mut stream = server
        .subscribe(SubscribeRequest {
            consumer: "arcadia-only".into(),
            filter: filter.clone(),
            ..Default::default()
        })
        .await;
    let delivered = [
        next_event(&mut stream, Duration::from_secs(20))
            .await
            .sequence,
        next_event(&mut stream, Duration::from_secs(20))
            .await
            .sequence,
    ];
    assert_eq!(delivered, [1, 2]);
    let mut client = server.client().await;
    assert_eq!(
        ack(&mut client, "arcadia-only", 2).await.expect("ack"),
        5,
        "moved over the mirror's 3, 4 and 5"
    );
    assert_eq!(
        listed(&server).await,
        vec![("arcadia-only".to_owned(), 5, 0, filter.clone())]
    );

    // Appended while the subscription is open: it passes over them and moves the consumer.
    post("mirror", "whk_m3".into()).await;
    post("mirror", "whk_m4".into()).await;
    let started = Instant::now();
    while listed(&server).await[0].1 != 7 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not moved to 7"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Retention removes everything it skipped; the next event for it is kept.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    post("arcadia", "whk_a3".into()).await;
    assert_eq!(
        next_event(&mut stream, Duration::from_secs(20))
            .await
            .sequence,
        8
    );
    let kept = server.collect_all(0, Duration::from_millis(300)).await;
    assert_eq!(kept.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![8]);
    assert_eq!(
        listed(&server).await,
        vec![("arcadia-only".to_owned(), 7, 1, filter)]
    );
}

/// Every consumer as listed by Admin: name, acknowledged sequence, lag and filter.
async fn listed(server: &Server) -> Vec<(String, u64, u64, Option<tributary_model::v1::Filter>)> {
    let mut admin = server.admin().await;
    admin
        .list_consumers(ListConsumersRequest {})
        .await
        .expect("list")
        .into_inner()
        .consumers
        .into_iter()
        .map(|c| (c.name, c.acked_sequence, c.lag, c.filter))
        .collect()
}
