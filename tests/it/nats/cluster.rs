//! A 3-node JetStream cluster (three nats-server processes on loopback, R3 streams on disk)
//! through each failure, under load, through the real binary: the stream leader killed, a
//! follower killed, the leader frozen for 10 s, all three nodes restarted, and one of two
//! Tributary instances killed. Each test reads everything back over gRPC and compares it with
//! what was acknowledged (nothing lost, nothing twice), follows the stream with a live
//! subscriber that must see every event once, in order, without an error, and counts the 5xx
//! answers (none for an election shorter than the request budget). Each prints a `FAILOVER`
//! line with its figures (`crates/bench/failover-figures.sh` collects them for docs/deployment.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tributary_model::v1::{Event, SubscribeRequest};

use crate::support::{
    self, NatsCluster, Server, ack, arcadia_source, nats_config, post_arcadia, provider_ids,
};

const STREAM: &str = "TRIBUTARY_EVENTS";
/// Load workers (providers sending at once).
const WORKERS: usize = 4;
/// Webhooks a worker sends at most: the load is bounded in count as well as in time.
const PER_WORKER: usize = 1500;
/// Pause between a worker's webhooks (at most 200 webhooks/s in all; the machine has 2 cores
/// for three nats-servers, Tributary and the test).
const PACE: Duration = Duration::from_millis(20);

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// Ids answered 2xx.
    acknowledged: Vec<String>,
    /// Statuses of 5xx answers.
    server_errors: Vec<u16>,
    /// Requests that got no answer (an instance killed): retried on another instance.
    unanswered: usize,
    /// (sent at, latency) of each answered request.
    latencies: Vec<(Instant, Duration)>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.acknowledged.extend(other.acknowledged);
        self.server_errors.extend(other.server_errors);
        self.unanswered += other.unanswered;
        self.latencies.extend(other.latencies);
    }
}

/// `WORKERS` providers POSTing distinct webhooks to `targets` (each worker starts on its own
/// and moves to the next when one does not answer) until `stop` or `PER_WORKER`; a refused
/// webhook is sent again, as a provider would, until accepted or stopped.
fn load(targets: Vec<String>, stop: Arc<AtomicBool>, timeout: Duration) -> Vec<JoinHandle<Tally>> {
    (0..WORKERS)
        .map(|worker| {
            let (targets, stop) = (targets.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .expect("client");
                let mut tally = Tally::default();
                let mut target = worker % targets.len();
                'next: for i in 0..PER_WORKER {
                    let id = format!("whk_failover-{worker}-{i}");
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        match post_arcadia(&client, &targets[target], &id).await {
                            Ok(response) if response.status().is_success() => {
                                tally.latencies.push((sent, sent.elapsed()));
                                tally.acknowledged.push(id);
                                tokio::time::sleep(PACE).await;
                                continue 'next;
                            }
                            Ok(response) => {
                                tally.latencies.push((sent, sent.elapsed()));
                                let status = response.status().as_u16();
                                if status >= 500 {
                                    tally.server_errors.push(status);
                                }
                            }
                            Err(_) => {
                                tally.unanswered += 1;
                                target = (target + 1) % targets.len();
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    break;
                }
                tally
            })
        })
        .collect()
}

async fn finish(stop: &AtomicBool, workers: Vec<JoinHandle<Tally>>) -> Tally {
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.expect("worker"));
    }
    tally
}

/// What a [`Follower`] saw: each event with its arrival, and the error that ended it.
type Followed = (Vec<(Event, Instant)>, Option<tonic::Status>);

/// A live subscriber: every event with its arrival time, and the error that ended the
/// stream, if one did.
struct Follower {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
    task: JoinHandle<Followed>,
}

impl Follower {
    async fn start(server: &Server, request: SubscribeRequest) -> Follower {
        let mut client = server.client().await;
        let mut stream = client
            .subscribe(request)
            .await
            .expect("subscribe")
            .into_inner();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), received.clone());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                    Ok(Some(Ok(event))) => {
                        seen.push((event, Instant::now()));
                        count.store(seen.len(), Ordering::Relaxed);
                    }
                    Ok(Some(Err(status))) => return (seen, Some(status)),
                    Ok(None) => return (seen, Some(tonic::Status::aborted("stream ended"))),
                    Err(_) => {}
                }
            }
            (seen, None)
        });
        Follower {
            stop,
            received,
            task,
        }
    }

    /// Waits until it has `count` events (at most `within`), then stops it.
    async fn stop_after(self, count: usize, within: Duration) -> Followed {
        let started = Instant::now();
        while self.received.load(Ordering::Relaxed) < count
            && !self.task.is_finished()
            && started.elapsed() < within
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Anything beyond `count` would arrive within this pause.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("follower")
    }
}

/// Every event, read from the start until the stream has been idle for a second; an error
/// while the cluster settles is returned for the caller to retry.
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

/// Everything stored, once at least `expected` events are readable (at most 30 s).
async fn read_back(server: &Server, expected: usize) -> Vec<Event> {
    let started = Instant::now();
    loop {
        match try_collect_all(server).await {
            Ok(events) if events.len() >= expected => return events,
            Ok(events) if started.elapsed() > Duration::from_secs(30) => return events,
            Err(status) if started.elapsed() > Duration::from_secs(30) => {
                panic!("the log did not come back: {status:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Asserts the follower saw exactly `all`, in order, and returns its longest pause between
/// two events after `from` (while the load ran).
fn assert_followed(
    scenario: &str,
    followed: &[(Event, Instant)],
    error: Option<tonic::Status>,
    all: &[Event],
    from: Instant,
) -> Duration {
    assert!(
        error.is_none(),
        "{scenario}: the subscription failed: {error:?}"
    );
    let sequences: Vec<u64> = followed.iter().map(|(e, _)| e.sequence).collect();
    let expected: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences, expected,
        "{scenario}: the subscriber saw a gap or a duplicate"
    );
    let events: Vec<Event> = followed.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(
        provider_ids(&events),
        provider_ids(all),
        "{scenario}: the subscriber saw other events"
    );
    followed
        .windows(2)
        .filter(|w| w[1].1 > from)
        .map(|w| w[1].1.saturating_duration_since(w[0].1.max(from)))
        .max()
        .unwrap_or_default()
}

/// The 99th percentile and the maximum of `latencies`.
fn p99_max(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort();
    let Some(max) = latencies.last().copied() else {
        return Default::default();
    };
    let index = (latencies.len() * 99).div_ceil(100).saturating_sub(1);
    (latencies[index], max)
}

/// Prints the scenario's figures on one line (collected by crates/bench/failover-figures.sh).
fn report(scenario: &str, tally: &Tally, failed_at: Instant, pause: Duration) {
    // Before: answered before the failure; during: still open at the failure or sent after.
    let (before, during): (Vec<_>, Vec<_>) = tally
        .latencies
        .iter()
        .partition(|(sent, latency)| *sent + *latency < failed_at);
    let before = before.into_iter().map(|(_, l)| l).collect();
    let during = during.into_iter().map(|(_, l)| l).collect();
    let (p99_before, _) = p99_max(before);
    let (p99_during, max_during) = p99_max(during);
    eprintln!(
        "FAILOVER scenario={scenario} acknowledged={} 5xx={} unanswered={} lost=0 duplicated=0 \
         p99_before_ms={} p99_failover_ms={} max_failover_ms={} subscriber_pause_ms={}",
        tally.acknowledged.len(),
        tally.server_errors.len(),
        tally.unanswered,
        p99_before.as_millis(),
        p99_during.as_millis(),
        max_during.as_millis(),
        pause.as_millis(),
    );
}

/// The Tributary config for `cluster`: R3, short JetStream request time-outs (a retry goes to
/// the new leader sooner), HTTP request deadline `deadline` seconds.
fn config(cluster: &NatsCluster, deadline: u64) -> String {
    nats_config(
        &format!(
            "[log.nats]\nreplicas = 3\nrequest_timeout_seconds = 2\n{}\n[http]\n\
             rate_limit_per_second = 0\nrequest_timeout_seconds = {deadline}\n",
            arcadia_source("")
        ),
        &cluster.urls(),
    )
}

/// Runs `fail` on the cluster while the load runs through one instance, and checks the
/// outcome; returns the load's tally for scenario-specific checks.
async fn through_failure(
    scenario: &str,
    deadline: u64,
    fail: impl AsyncFnOnce(&mut NatsCluster),
) -> (Tally, NatsCluster) {
    let mut cluster = NatsCluster::start();
    let server = Server::start(&config(&cluster, deadline));
    let follower = Follower::start(&server, SubscribeRequest::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(
        vec![server.url("/webhooks/arcadia")],
        stop.clone(),
        Duration::from_secs(deadline + 5),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let failed_at = Instant::now();
    fail(&mut cluster).await;
    // Load after the recovery too: it must be served as before.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = finish(&stop, workers).await;
    assert!(
        tally.acknowledged.len() > 50,
        "{scenario}: too little load: {}",
        tally.acknowledged.len()
    );

    let all = read_back(&server, tally.acknowledged.len()).await;
    support::assert_exactly_once(&all, &tally.acknowledged);
    let (followed, error) = follower
        .stop_after(all.len(), Duration::from_secs(30))
        .await;
    let pause = assert_followed(scenario, &followed, error, &all, failed_at);
    report(scenario, &tally, failed_at, pause);
    if !tally.server_errors.is_empty() {
        // Why, for the scenario's own assertion on 5xx answers.
        let logs = server.logs();
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        eprintln!(
            "{scenario}: warnings of the instance:\n{}",
            warnings[warnings.len().saturating_sub(40)..].join("\n")
        );
    }
    drop(server);
    (tally, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_leader_killed_under_load_costs_no_5xx_and_loses_nothing() {
    let _turn = support::heavy_turn().await;
    let mut victim = 0;
    let (tally, cluster) = through_failure("leader-sigkill", 30, async |cluster| {
        victim = cluster.stream_leader(STREAM).expect("a leader");
        cluster.nodes[victim].kill();
        tokio::time::sleep(Duration::from_secs(6)).await;
    })
    .await;
    assert_eq!(
        tally.server_errors,
        Vec::<u16>::new(),
        "no 5xx for an election"
    );
    // The killed node rejoins and catches up: three replicas, all current.
    let mut cluster = cluster;
    cluster.nodes[victim].restart();
    cluster.nodes[victim].wait_healthy(Duration::from_secs(30));
    cluster.wait_stream_current(STREAM, Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_killed_under_load_costs_no_5xx_and_loses_nothing() {
    let _turn = support::heavy_turn().await;
    let (tally, _cluster) = through_failure("follower-sigkill", 30, async |cluster| {
        let leader = cluster.stream_leader(STREAM).expect("a leader");
        cluster.nodes[(leader + 1) % 3].kill();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    assert_eq!(
        tally.server_errors,
        Vec::<u16>::new(),
        "no 5xx for a lost follower"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_for_10_seconds_costs_no_5xx_and_loses_nothing() {
    let _turn = support::heavy_turn().await;
    // A 45 s deadline (40.5 s of retries): a frozen leader can cost two elections, one when it
    // stops answering and one when it returns with its old term (up to 27 s seen in all).
    let (tally, _cluster) = through_failure("leader-sigstop-10s", 45, async |cluster| {
        let leader = cluster.stream_leader(STREAM).expect("a leader");
        cluster.nodes[leader].freeze();
        tokio::time::sleep(Duration::from_secs(10)).await;
        cluster.nodes[leader].thaw();
        tokio::time::sleep(Duration::from_secs(4)).await;
    })
    .await;
    assert_eq!(
        tally.server_errors,
        Vec::<u16>::new(),
        "no 5xx for a frozen leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_three_nodes_restarted_answer_503_meanwhile_and_service_comes_back() {
    let _turn = support::heavy_turn().await;
    // An 8 s request deadline: 7 s of retries, then 503, while no node is up for 12 s.
    let (tally, _cluster) = through_failure("all-three-restarted", 8, async |cluster| {
        for node in &mut cluster.nodes {
            node.kill();
        }
        tokio::time::sleep(Duration::from_secs(12)).await;
        for node in &mut cluster.nodes {
            node.restart();
        }
        for node in &mut cluster.nodes {
            node.wait_healthy(Duration::from_secs(30));
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
    })
    .await;
    assert!(
        !tally.server_errors.is_empty(),
        "no node was up for longer than the budget: webhooks must have been refused"
    );
    assert!(
        tally.server_errors.iter().all(|status| *status == 503),
        "only 503 while no node is up: {:?}",
        tally.server_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_instances_killed_the_other_serves_and_the_durable_consumer_continues() {
    let _turn = support::heavy_turn().await;
    let cluster = NatsCluster::start();
    let config = config(&cluster, 30);
    let mut a = Server::start(&config);
    let b = Server::start(&config);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(
        vec![a.url("/webhooks/arcadia"), b.url("/webhooks/arcadia")],
        stop.clone(),
        Duration::from_secs(35),
    );
    let follower = Follower::start(&b, SubscribeRequest::default()).await;

    // A durable consumer reads through A and acknowledges every 10th event.
    let mut a_client = a.client().await;
    let mut ledger = a_client
        .subscribe(SubscribeRequest {
            consumer: "ledger".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut acked = 0;
    let mut through_a = Vec::new();
    while through_a.len() < 100 {
        let event = support::next_event(&mut ledger, Duration::from_secs(20)).await;
        through_a.push(event.clone());
        if event.sequence % 10 == 0 {
            acked = ack(&mut a_client, "ledger", event.sequence)
                .await
                .expect("ack");
        }
    }
    assert_eq!(acked, 100);

    let failed_at = Instant::now();
    a.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let tally = finish(&stop, workers).await;
    assert_eq!(
        tally.server_errors,
        Vec::<u16>::new(),
        "B served every webhook"
    );
    assert!(tally.acknowledged.len() > 200, "too little load");

    let all = read_back(&b, tally.acknowledged.len()).await;
    support::assert_exactly_once(&all, &tally.acknowledged);
    let (followed, error) = follower
        .stop_after(all.len(), Duration::from_secs(30))
        .await;
    let pause = assert_followed("instance-sigkill", &followed, error, &all, failed_at);

    // The consumer continues on B right after what it acknowledged through A.
    let mut b_client = b.client().await;
    let mut ledger = b_client
        .subscribe(SubscribeRequest {
            consumer: "ledger".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe on B")
        .into_inner();
    let mut through_b = Vec::new();
    while through_b.len() + (acked as usize) < all.len() {
        through_b.push(support::next_event(&mut ledger, Duration::from_secs(10)).await);
    }
    assert_eq!(through_b[0].sequence, acked + 1, "continues after its ack");
    let mut consumed: Vec<Event> = through_a[..acked as usize].to_vec();
    consumed.extend(through_b);
    assert_eq!(consumed, all, "the consumer saw every event once, in order");
    report("instance-sigkill", &tally, failed_at, pause);
}
