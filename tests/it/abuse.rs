//! Abuse by an attacker, through the real binary: a forged flood does not spend the real
//! provider's rate limit nor flood the logs, and one client address cannot take every
//! connection slot.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::Server;
use crate::support::fixtures::{ARCADIA_AUTH, arcadia_source, arcadia_webhook};

/// The forger's address and the real provider's (both loopback: Linux routes all of 127/8).
const FORGER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const PROVIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn client_from(address: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address)
        .build()
        .expect("client")
}

async fn post_from(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>) {
    let mut request = client
        .post(server.url("/webhooks/arcadia"))
        .header("content-type", "application/json")
        .body(arcadia_webhook(id));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().expect("ascii").to_owned());
    (response.status().as_u16(), retry_after)
}

/// The value of `tributary_webhooks_rejected_total` for source arcadia and `reason`.
async fn rejected(server: &Server, reason: &str) -> u64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    text.lines()
        .filter(|line| line.starts_with("tributary_webhooks_rejected_total{"))
        .filter(|line| {
            line.contains("source=\"arcadia\"") && line.contains(&format!("reason=\"{reason}\""))
        })
        .map(|line| {
            line.rsplit(' ')
                .next()
                .and_then(|value| value.parse::<f64>().ok())
                .expect("a value") as u64
        })
        .sum()
}

#[tokio::test]
async fn a_forged_flood_leaves_the_provider_its_rate_limit() {
    let config = format!(
        "[http]\nrate_limit_per_second = 5\nrate_limit_burst = 5\n\
         failed_verifications_per_second = 1\nfailed_verifications_burst = 3\n{}",
        arcadia_source("")
    );
    let server = Server::start(&config);
    let forger = client_from(FORGER);
    let mut statuses = Vec::new();
    for n in 0..30 {
        let (status, retry_after) =
            post_from(&forger, &server, &format!("whk_forged_{n}"), &[]).await;
        if status == 429 {
            assert_eq!(retry_after.as_deref(), Some("1"), "request {n}");
        }
        statuses.push(status);
    }
    // The forger's own budget: 3 verifications (burst), then 429 without verifying; at most
    // one token refills while the 30 requests run (1 a second).
    let verified = statuses.iter().filter(|status| **status == 401).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(verified + refused, 30, "{statuses:?}");
    assert!((3..=5).contains(&verified), "{statuses:?}");
    assert_eq!(&statuses[..3], &[401, 401, 401]);

    // The provider, signing correctly, still gets its whole burst of 5.
    let provider = client_from(PROVIDER);
    for n in 0..5 {
        let (status, _) =
            post_from(&provider, &server, &format!("whk_real_{n}"), &ARCADIA_AUTH).await;
        assert_eq!(status, 200, "authentic webhook {n} after the flood");
    }
    assert_eq!(rejected(&server, "unauthenticated").await, verified as u64);
    assert_eq!(rejected(&server, "rate_limited").await, refused as u64);
}

#[tokio::test]
async fn rejection_log_lines_are_sampled_and_all_counted() {
    let config = format!(
        "[http]\nfailed_verifications_per_second = 0\nrejection_log_lines_per_second = 2\n{}",
        arcadia_source("")
    );
    let server = Server::start(&config);
    let forger = client_from(FORGER);
    let started = Instant::now();
    for n in 0..40 {
        let (status, _) = post_from(&forger, &server, &format!("whk_forged_{n}"), &[]).await;
        assert_eq!(status, 401);
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert_eq!(rejected(&server, "unauthenticated").await, 40);
    let lines = server
        .logs()
        .lines()
        .filter(|line| line.contains("webhook rejected: verification failed"))
        .count() as u64;
    assert!(
        lines >= 2 && lines <= 2 * (seconds + 1),
        "{lines} lines in {seconds} s"
    );
}

/// Opens a connection from `from` to `to` and sends half a request head, then holds it.
async fn slow_connection(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the client address");
    let mut stream = socket.connect(to).await.expect("connect");
    let _ = stream
        .write_all(b"POST /webhooks/arcadia HTTP/1.1\r\nHost: x\r\n")
        .await;
    stream
}

/// Whether the server closes `stream` (end of file or a reset) within `within`.
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buffer)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn slow_connections_from_one_address_leave_others_served() {
    let config = format!(
        "[http]\nmax_connections = 8\nmax_connections_per_address = 4\n{}",
        arcadia_source("")
    );
    let server = Server::start(&config);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(slow_connection(FORGER, server.http).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = Vec::new();
    for _ in 0..4 {
        refused.push(slow_connection(FORGER, server.http).await);
    }
    for (n, stream) in refused.iter_mut().enumerate() {
        assert!(
            closed(stream, Duration::from_secs(2)).await,
            "connection {n} over the address's cap is closed"
        );
    }
    for (n, stream) in held.iter_mut().enumerate() {
        assert!(
            !closed(stream, Duration::from_millis(200)).await,
            "connection {n} within the cap is still being served"
        );
    }
    let provider = client_from(PROVIDER);
    let (status, _) = post_from(&provider, &server, "whk_other_address", &ARCADIA_AUTH).await;
    assert_eq!(
        status, 200,
        "another address is served while the first holds its slots"
    );
}

/// A gRPC channel to `server` from the client address `from`.
async fn channel_from(server: &Server, from: IpAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
        .expect("endpoint")
        .local_address(Some(from))
        .connect()
        .await
        .expect("connect")
}

async fn serving(channel: tonic::transport::Channel) -> bool {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .is_ok()
}

#[tokio::test]
async fn grpc_connections_are_capped_per_address_and_silent_ones_time_out() {
    let config = "[grpc]\nmax_connections = 16\nmax_connections_per_address = 3\n\
                  handshake_timeout_seconds = 1\n";
    let server = Server::start(config);
    // 3 silent connections take the forger's slots; a 4th is closed at once.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpSocket::new_v4().expect("socket"));
    }
    let mut held = Vec::new();
    for socket in silent {
        socket.bind(SocketAddr::new(FORGER, 0)).expect("bind");
        held.push(socket.connect(server.grpc).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let over = TcpSocket::new_v4().expect("socket");
    over.bind(SocketAddr::new(FORGER, 0)).expect("bind");
    let mut over = over.connect(server.grpc).await.expect("connect");
    assert!(
        closed(&mut over, Duration::from_millis(500)).await,
        "a 4th connection from the same address is closed"
    );
    // Another address is served meanwhile.
    assert!(serving(channel_from(&server, PROVIDER).await).await);
    // The silent ones are closed after the handshake time-out (1 s), freeing the slots.
    for (n, stream) in held.iter_mut().enumerate() {
        assert!(
            closed(stream, Duration::from_secs(3)).await,
            "silent connection {n} closed after the time-out"
        );
    }
    assert!(serving(channel_from(&server, FORGER).await).await);
}

#[tokio::test]
async fn health_watches_count_as_subscriptions() {
    use tributary::proto::event_stream_client::EventStreamClient;
    use tributary_model::v1::SubscribeRequest;

    let server = Server::start("[grpc]\nmax_subscriptions = 2\n");
    let channel = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut watches = Vec::new();
    for _ in 0..2 {
        let mut watch = health
            .watch(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("watch")
            .into_inner();
        watch
            .message()
            .await
            .expect("first status")
            .expect("a status");
        watches.push(watch);
    }
    let third = health
        .watch(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect_err("a third watch");
    assert_eq!(third.code(), tonic::Code::ResourceExhausted);
    let subscribe = EventStreamClient::new(channel.clone())
        .subscribe(SubscribeRequest::default())
        .await
        .expect_err("the watches hold every subscription");
    assert_eq!(subscribe.code(), tonic::Code::ResourceExhausted);
    drop(watches);
    // The permits come back when the watches end (the server sees the reset).
    let mut freed = false;
    for _ in 0..50 {
        if health
            .watch(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok()
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "a watch is possible again once the others ended");
}
