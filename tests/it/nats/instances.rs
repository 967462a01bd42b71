//! Many Tributary instances on one JetStream stream, and JetStream outages. Every test starts
//! its own nats-server on free ports.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_stream::StreamExt;
use tributary_model::v1::SubscribeRequest;

use crate::support::{
    ARCADIA_AUTH, Nats, Server, ack, arcadia_source, arcadia_webhook, nats_config, next_event,
    plugin_dir, provider_ids, serve_command,
};

/// Waits until `/readyz` answers `status` (panics after `within`); returns its body.
async fn wait_ready(server: &Server, status: u16, within: Duration) -> String {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(server.url("/readyz")).send().await {
            let code = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if code == status {
                return body;
            }
            assert!(
                started.elapsed() < within,
                "/readyz still {code} ({body}) after {within:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_stream_and_a_durable_consumer_moves_between_them() {
    let nats = Nats::start();
    let config = nats_config(&arcadia_source(""), &nats.url());
    let mut a = Server::start(&config);
    let b = Server::start(&config);

    // A live subscriber on B sees what arrives through A.
    let mut b_client = b.client().await;
    let mut live = b_client
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();

    // Webhooks alternately to A and B; each also retried through the other instance.
    for i in 0..30 {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let body = arcadia_webhook(&format!("whk_multi-{i}"));
        let (status, answer) = first.post("arcadia", &body, &ARCADIA_AUTH).await;
        assert_eq!(
            (status, answer["accepted"].clone()),
            (200, json!(1)),
            "{answer}"
        );
        let (status, answer) = second.post("arcadia", &body, &ARCADIA_AUTH).await;
        assert_eq!(
            (status, answer["duplicates"].clone()),
            (200, json!(1)),
            "{answer}"
        );
    }
    for expected in 1..=30u64 {
        let event = next_event(&mut live, Duration::from_secs(10)).await;
        assert_eq!(event.sequence, expected);
    }

    // A durable consumer on A reads 20 and acknowledges 15.
    let mut a_client = a.client().await;
    let mut stream = a_client
        .subscribe(SubscribeRequest {
            consumer: "ledger".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    for expected in 1..=20u64 {
        let event = stream.next().await.expect("open").expect("event");
        assert_eq!(event.sequence, expected);
    }
    let acked = ack(&mut a_client, "ledger", 15).await.expect("ack");
    assert_eq!(acked, 15);

    // A dies; the consumer reconnects to B and resumes right after its last ack.
    a.kill9();
    drop(stream);
    let mut stream = b_client
        .subscribe(SubscribeRequest {
            consumer: "ledger".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    for expected in 16..=30u64 {
        let event = next_event(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(event.sequence, expected);
    }
    // Acks through B move the same consumer; they never go backwards.
    let acked = ack(&mut b_client, "ledger", 10).await.expect("ack");
    assert_eq!(acked, 15);

    // Everything exactly once in the stream, in order, no gap.
    let events = b.collect_all(0, Duration::from_millis(500)).await;
    let expected: Vec<String> = (0..30).map(|i| format!("whk_multi-{i}")).collect();
    assert_eq!(provider_ids(&events), expected);
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1);
    }
}

/// A webhook retries within its deadline (4 s here: 3 s of retries), then answers 503.
#[tokio::test]
async fn jetstream_unreachable_gives_503_after_the_budget_and_readyz_says_why_then_recovers() {
    let mut nats = Nats::start();
    let config = nats_config(
        &format!(
            "[log.nats]\nrequest_timeout_seconds = 2\n{}\n[http]\nrequest_timeout_seconds = 4\n",
            arcadia_source("")
        ),
        &nats.url(),
    );
    let server = Server::start(&config);
    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_before"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");

    nats.kill();
    let started = Instant::now();
    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_during"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"], json!("storage unavailable; retry later"));
    let refused_in = started.elapsed();
    assert!(
        refused_in >= Duration::from_secs(2) && refused_in < Duration::from_secs(4),
        "refused in {refused_in:?}, not after 3 s of retries"
    );
    let why = wait_ready(&server, 503, Duration::from_secs(10)).await;
    assert!(why.contains("NATS JetStream"), "{why}");
    assert!(why.contains("unreachable"), "{why}");

    // NATS returns: the service recovers by itself, and the provider's retry is stored.
    nats.restart();
    nats.wait_healthy(Duration::from_secs(20));
    wait_ready(&server, 200, Duration::from_secs(20)).await;
    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_during"), &ARCADIA_AUTH)
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(1)),
        "{body}"
    );

    let events = server.collect_all(0, Duration::from_millis(500)).await;
    assert_eq!(provider_ids(&events), vec!["whk_before", "whk_during"]);
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for event in &events {
        *counts.entry(event.sequence).or_default() += 1;
    }
    assert_eq!(counts.len(), 2);
}

#[tokio::test]
async fn an_incompatible_existing_stream_is_refused_at_start_up() {
    let nats = Nats::start();
    // A stream of that name on other subjects (e.g. another application's).
    let taken = nats_config("[log.nats]\nsubject_prefix = \"orders\"\n", &nats.url());
    drop(Server::start(&taken));
    let config = nats_config("", &nats.url());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tributary.toml");
    std::fs::write(&path, config).expect("write config");
    let output = serve_command(&dir.path().join("data"), Some(&path))
        .arg("--plugin-dir")
        .arg(plugin_dir())
        .output()
        .expect("run tributary");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stream TRIBUTARY_EVENTS exists with subjects [\"orders.events.>\"]"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to start"), "{stderr}");
}
