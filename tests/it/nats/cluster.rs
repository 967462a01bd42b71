//! A 3-node JetStream cluster (three nats-server processes on loopback, R3 streams) loses a
//! node under load: every webhook that got a 2xx is delivered exactly once, and the node
//! rejoins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use tributary_model::v1::{Event, SubscribeRequest};

use crate::support::{
    self, NO_RATE_LIMIT, NatsCluster, Server, arcadia_source, nats_config, post_arcadia,
};

const STREAM: &str = "TRIBUTARY_EVENTS";

/// POSTs distinct webhooks from `workers` clients until `stop`; a refused one is retried (as a
/// provider would) until accepted or stopped. Returns the acknowledged ids.
fn load(
    server: &Server,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let url = server.url("/webhooks/arcadia");
    (0..workers)
        .map(|worker| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                let mut acknowledged = Vec::new();
                let mut i = 0;
                'next: while !stop.load(Ordering::Relaxed) {
                    let id = format!("whk_cluster-{worker}-{i}");
                    i += 1;
                    while !stop.load(Ordering::Relaxed) {
                        let sent = post_arcadia(&client, &url, &id).await;
                        if matches!(&sent, Ok(r) if r.status().is_success()) {
                            acknowledged.push(id);
                            continue 'next;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                acknowledged
            })
        })
        .collect()
}

/// Every event, read until the stream has been idle for a second; an error while the cluster
/// elects a leader is returned for the caller to retry.
async fn try_collect_all(server: &Server) -> Result<Vec<Event>, tonic::Status> {
    let mut client = server.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest::default())
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
        events.push(item?);
    }
    Ok(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_under_load_loses_no_acknowledged_webhook_and_the_node_rejoins() {
    let _turn = support::heavy_turn().await;
    let mut cluster = NatsCluster::start();
    let config = nats_config(
        &format!(
            "[log.nats]\nreplicas = 3\nrequest_timeout_seconds = 3\n{}{NO_RATE_LIMIT}",
            arcadia_source("")
        ),
        &cluster.urls(),
    );
    let server = Server::start(&config);

    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&server, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Kill the stream's leader: the hardest node to lose.
    let leader = cluster.nodes[0].jsz_stream(STREAM)["cluster"]["leader"]
        .as_str()
        .unwrap_or("n1")
        .to_owned();
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.name == leader)
        .unwrap_or(0);
    cluster.nodes[victim].kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.expect("worker"));
    }
    assert!(
        acknowledged.len() > 50,
        "too little load: {}",
        acknowledged.len()
    );

    // The surviving two elect a new leader (JetStream's Raft election takes a few seconds)
    // and still form a quorum: everything acknowledged is there, once.
    let started = Instant::now();
    let events = loop {
        match try_collect_all(&server).await {
            Ok(events) if events.len() >= acknowledged.len() => break events,
            Ok(events) if started.elapsed() > Duration::from_secs(30) => break events,
            Err(status) if started.elapsed() > Duration::from_secs(30) => {
                panic!("the log did not come back: {status:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    support::assert_exactly_once(&events, &acknowledged);

    // The killed node rejoins and catches up: three replicas, all current.
    cluster.nodes[victim].restart();
    cluster.nodes[victim].wait_healthy(Duration::from_secs(30));
    let started = Instant::now();
    loop {
        // The leader's view is the authoritative one.
        let view = cluster.nodes[(victim + 1) % 3].jsz_stream(STREAM);
        let leader = view["cluster"]["leader"].as_str().unwrap_or_default();
        let stream = cluster
            .nodes
            .iter()
            .find(|n| n.name == leader)
            .map(|n| n.jsz_stream(STREAM))
            .unwrap_or(view.clone());
        let replicas = stream["cluster"]["replicas"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let current = replicas.iter().filter(|r| r["current"] == true).count();
        if stream["cluster"]["leader"].is_string() && replicas.len() == 2 && current == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the killed node did not catch up: {stream}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
