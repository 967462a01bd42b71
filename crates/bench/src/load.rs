//! The load generator: N HTTP connections POST webhooks at maximum rate or on an open-loop
//! schedule while M gRPC subscribers read the stream.
//!
//! Each connection is one hyper HTTP/1.1 client connection (keep-alive), over TCP or, in the
//! `--tls` scenarios, over rustls: the same client code either way, so the difference between
//! a plain and a TLS scenario is TLS.
//!
//! Latency is measured from each request's *intended* send time (`t0 + n / rate` at a fixed
//! rate), not from when a connection got round to sending it, so a stalled server shows up in
//! the percentiles instead of silently slowing the load (no coordinated omission). At maximum
//! rate the intended time is the moment the request is handed to its connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::http::{Request, header};
use hdrhistogram::Histogram;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tributary_model::v1::SubscribeRequest;
use tributary_model::v1::subscribe_request::Start;

use crate::latency_trace::Sample;
use crate::payloads::{Template, request_number};

/// Highest latency the histograms track, in microseconds (one minute).
const MAX_LATENCY_US: u64 = 60_000_000;

/// Longest wait for one answer (what the previous client, reqwest, was given).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer body read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Where the webhooks go.
#[derive(Clone)]
pub struct Endpoint {
    /// The server's HTTP address.
    pub address: SocketAddr,
    /// Speak HTTPS with this client configuration.
    pub tls: Option<TlsConnector>,
}

/// What load to apply.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent HTTP connections (each a keep-alive HTTP/1.1 connection).
    pub connections: usize,
    /// Webhooks to send.
    pub requests: usize,
    /// Webhooks per second on an open-loop schedule; `None`: as fast as the connections go.
    pub rate: Option<f64>,
    /// gRPC subscribers reading the whole stream (0 for the baseline).
    pub subscribers: usize,
    /// How long subscribers wait for missing events after the last response.
    pub drain_timeout: Duration,
    /// Webhooks per connection before the client closes it and opens a new one (a TLS
    /// handshake each time in `--tls` mode); `None`: keep-alive for the whole run.
    pub requests_per_connection: Option<usize>,
    /// Tags this run's provider event ids, so that runs sharing one log never collide.
    pub run: String,
    /// Subscribers start with the next append instead of the earliest event (a log that
    /// already holds other runs' events).
    pub from_latest: bool,
}

/// What one subscriber received, checked against what was accepted.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// Events received.
    pub received: u64,
    /// Accepted webhooks whose event never arrived.
    pub missing: u64,
    /// Extra copies of events already received.
    pub duplicates: u64,
    /// Events for webhooks that were not acknowledged as accepted (or not ours).
    pub unexpected: u64,
    /// The stream ended with an error.
    pub error: Option<String>,
}

/// The outcome of one load run.
pub struct LoadResult {
    /// Requests sent.
    pub sent: usize,
    /// Requests answered 200 with one accepted event.
    pub accepted: usize,
    /// Requests answered otherwise or failed in transport.
    pub errors: usize,
    /// First error seen, for the report.
    pub first_error: Option<String>,
    /// Seconds from the start to the last response.
    pub send_secs: f64,
    /// POST start -> response, microseconds.
    pub http: Histogram<u64>,
    /// POST start -> subscriber receipt, microseconds, over all subscribers.
    pub e2e: Histogram<u64>,
    /// The same, per fifth of the run (by request number: in send order), to see whether the
    /// tail drifts over a soak.
    pub e2e_fifths: Vec<Histogram<u64>>,
    /// Events received over all subscribers.
    pub deliveries: u64,
    /// Seconds from the start to the last receipt.
    pub deliver_secs: f64,
    /// Per subscriber.
    pub delivery: Vec<Delivery>,
    /// Body bytes of the accepted webhooks.
    pub body_bytes: u64,
    /// The start (request 0's intended send time), microseconds since the Unix epoch.
    pub start_unix_us: u64,
    /// Per request number: its intended send time after the start and its HTTP latency
    /// (0: no answer), for `--latency-dir`.
    pub requests: Vec<Sample>,
}

fn histogram() -> Histogram<u64> {
    // Valid bounds and precision: construction cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!())
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// State shared by senders and subscribers.
struct Shared {
    t0: Instant,
    /// Intended send time of request n, nanoseconds after `t0`.
    sent_at: Vec<AtomicU64>,
    accepted: Vec<AtomicBool>,
    /// HTTP latency of request n, microseconds (0: not answered).
    answered_us: Vec<AtomicU32>,
    /// Body bytes of the accepted webhooks.
    body_bytes: AtomicU64,
    /// Number of accepted webhooks, known once sending is over.
    expected: AtomicUsize,
}

/// What a subscriber reads of each delivered `tributary.v1.Event`: what the exactly-once check
/// needs. prost steps over the other fields without building them, so the load generator's
/// share of the machine's cores stays small next to the server's (with 100 subscribers, fully
/// decoding every event took most of both cores).
#[derive(Clone, PartialEq, prost::Message)]
struct Receipt {
    #[prost(message, optional, tag = "12")]
    provenance: Option<ReceiptProvenance>,
}

/// `Event.provenance`, as far as [`Receipt`] reads it.
#[derive(Clone, PartialEq, prost::Message)]
struct ReceiptProvenance {
    #[prost(string, tag = "3")]
    provider_event_id: String,
}

/// Connects `count` subscribers and opens their streams (from the start of the log).
async fn subscribe(
    grpc: SocketAddr,
    count: usize,
    from_latest: bool,
) -> anyhow::Result<Vec<tonic::Streaming<Receipt>>> {
    let request = SubscribeRequest {
        start: from_latest.then_some(Start::FromLatest(true)),
        ..SubscribeRequest::default()
    };
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = Channel::from_shared(format!("http://{grpc}"))?
            .connect()
            .await
            .context("gRPC connect")?;
        // `EventStream.Subscribe` as the generated client calls it, decoding `Receipt`s.
        let mut client =
            tonic::client::Grpc::new(channel).max_decoding_message_size(16 * 1024 * 1024);
        client.ready().await.context("gRPC channel ready")?;
        let codec = tonic_prost::ProstCodec::<SubscribeRequest, Receipt>::default();
        let path = http::uri::PathAndQuery::from_static("/tributary.v1.EventStream/Subscribe");
        let stream = client
            .server_streaming(tonic::Request::new(request.clone()), path, codec)
            .await
            .context("Subscribe")?
            .into_inner();
        streams.push(stream);
    }
    Ok(streams)
}

/// Runs `spec` against the server at `http` (and `grpc` for subscribers).
pub async fn run(
    http: Endpoint,
    grpc: Option<SocketAddr>,
    templates: Arc<Vec<Template>>,
    spec: &LoadSpec,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!templates.is_empty(), "no payload templates");
    let streams = match (grpc, spec.subscribers) {
        (_, 0) => Vec::new(),
        (Some(grpc), count) => subscribe(grpc, count, spec.from_latest).await?,
        (None, _) => anyhow::bail!("subscribers need a gRPC address"),
    };
    // Every connection is open (and through its TLS handshake) before the clock starts, like
    // the keep-alive connections of a provider that is already sending.
    let connecting: Vec<_> = (0..spec.connections.max(1))
        .map(|_| {
            let endpoint = http.clone();
            tokio::spawn(async move { connect(&endpoint).await })
        })
        .collect();
    let mut connections = Vec::with_capacity(connecting.len());
    for connection in connecting {
        connections.push(connection.await.context("connect task")??);
    }
    let lead = Duration::from_millis(50);
    let start_unix_us = (std::time::SystemTime::now() + lead)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let shared = Arc::new(Shared {
        // A short lead so every task is parked before the first intended send time.
        t0: Instant::now() + lead,
        sent_at: (0..spec.requests).map(|_| AtomicU64::new(0)).collect(),
        accepted: (0..spec.requests).map(|_| AtomicBool::new(false)).collect(),
        answered_us: (0..spec.requests).map(|_| AtomicU32::new(0)).collect(),
        body_bytes: AtomicU64::new(0),
        expected: AtomicUsize::new(usize::MAX),
    });

    let readers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let run = spec.run.clone();
            tokio::spawn(read(stream, Arc::clone(&shared), spec.drain_timeout, run))
        })
        .collect();

    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            tokio::spawn(send(
                http.clone(),
                connection,
                Arc::clone(&templates),
                Arc::clone(&shared),
                Arc::clone(&next),
                spec.clone(),
            ))
        })
        .collect();

    let mut http_hist = histogram();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_response = shared.t0;
    for sender in senders {
        let outcome = sender.await.context("sender task")??;
        http_hist.add(&outcome.latency).context("merge histogram")?;
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
        last_response = last_response.max(outcome.last_response);
    }
    let accepted = shared
        .accepted
        .iter()
        .filter(|a| a.load(Ordering::Relaxed))
        .count();
    shared.expected.store(accepted, Ordering::Release);

    let mut e2e = histogram();
    let mut e2e_fifths: Vec<_> = (0..FIFTHS).map(|_| histogram()).collect();
    let mut deliveries = 0;
    let mut last_receipt = shared.t0;
    let mut delivery = Vec::new();
    for reader in readers {
        let outcome = reader.await.context("subscriber task")?;
        e2e.add(&outcome.latency).context("merge histogram")?;
        for (all, fifth) in e2e_fifths.iter_mut().zip(&outcome.fifths) {
            all.add(fifth).context("merge histogram")?;
        }
        deliveries += outcome.received;
        last_receipt = last_receipt.max(outcome.last_receipt);
        delivery.push(check(&outcome, &shared));
    }
    Ok(LoadResult {
        sent: spec.requests,
        accepted,
        errors,
        first_error,
        send_secs: last_response
            .saturating_duration_since(shared.t0)
            .as_secs_f64(),
        http: http_hist,
        e2e,
        e2e_fifths,
        deliveries,
        deliver_secs: last_receipt
            .saturating_duration_since(shared.t0)
            .as_secs_f64(),
        delivery,
        body_bytes: shared.body_bytes.load(Ordering::Relaxed),
        start_unix_us,
        requests: shared
            .sent_at
            .iter()
            .zip(&shared.answered_us)
            .map(|(sent, latency)| Sample {
                intended_us: sent.load(Ordering::Relaxed) / 1_000,
                latency_us: latency.load(Ordering::Relaxed),
            })
            .collect(),
    })
}

struct SendOutcome {
    latency: Histogram<u64>,
    errors: usize,
    first_error: Option<String>,
    last_response: Instant,
}

#[derive(serde::Deserialize)]
struct Answer {
    accepted: usize,
}

type Connection = SendRequest<Body>;

/// Opens one keep-alive HTTP/1.1 connection (TLS handshake included in `--tls` mode).
async fn connect(endpoint: &Endpoint) -> anyhow::Result<Connection> {
    let tcp = TcpStream::connect(endpoint.address)
        .await
        .context("connect")?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    match &endpoint.tls {
        None => handshake(tcp).await,
        Some(connector) => {
            let name = rustls::pki_types::ServerName::IpAddress(endpoint.address.ip().into());
            let tls = connector
                .connect(name, tcp)
                .await
                .context("TLS handshake")?;
            handshake(tls).await
        }
    }
}

async fn handshake<T>(io: T) -> anyhow::Result<Connection>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors surface on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

/// POSTs one request on `connection` (reconnecting first if it is closed) and reads the
/// answer: the number of accepted events, or why not.
async fn post(
    endpoint: &Endpoint,
    connection: &mut Option<Connection>,
    request: Request<Body>,
) -> Result<usize, String> {
    let sender = match connection {
        Some(sender) if !sender.is_closed() => sender,
        _ => connection.insert(connect(endpoint).await.map_err(|e| format!("{e:#}"))?),
    };
    let exchange = async {
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice::<Answer>(&body)
            .map(|answer| answer.accepted)
            .map_err(|e| e.to_string())
    };
    let result = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    };
    if result.is_err() {
        // The connection's state is unknown after a failure: start a fresh one.
        *connection = None;
    }
    result
}

/// One connection: takes request numbers from `next` until `spec.requests` and POSTs them.
async fn send(
    endpoint: Endpoint,
    connection: Connection,
    templates: Arc<Vec<Template>>,
    shared: Arc<Shared>,
    next: Arc<AtomicUsize>,
    spec: LoadSpec,
) -> anyhow::Result<SendOutcome> {
    let (total, rate) = (spec.requests, spec.rate);
    let host = endpoint.address.to_string();
    let paths: Vec<String> = templates
        .iter()
        .map(|t| format!("/webhooks/{}", t.source))
        .collect();
    let mut outcome = SendOutcome {
        latency: histogram(),
        errors: 0,
        first_error: None,
        last_response: shared.t0,
    };
    let mut connection = Some(connection);
    let mut on_connection = 0;
    tokio::time::sleep_until(shared.t0.into()).await;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            break;
        }
        let index = n % templates.len();
        let webhook = templates[index].webhook(&spec.run, n as u64);
        let body_len = webhook.body.len() as u64;
        let mut request = Request::post(paths[index].as_str())
            .header(header::HOST, host.as_str())
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in webhook.headers {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(webhook.body))?;
        let intended = match rate {
            Some(rate) => {
                let at = shared.t0 + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        shared.sent_at[n].store(
            u64::try_from(intended.duration_since(shared.t0).as_nanos()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        if spec
            .requests_per_connection
            .is_some_and(|limit| on_connection >= limit)
        {
            // Closed here, reopened (inside the timed request) by `post`.
            connection = None;
            on_connection = 0;
        }
        let answer = post(&endpoint, &mut connection, request).await;
        on_connection += 1;
        let now = Instant::now();
        let latency = micros(now - intended);
        outcome.latency.saturating_record(latency);
        shared.answered_us[n].store(
            u32::try_from(latency).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        outcome.last_response = now;
        match answer {
            Ok(1) => {
                shared.body_bytes.fetch_add(body_len, Ordering::Relaxed);
                shared.accepted[n].store(true, Ordering::Release);
            }
            Ok(accepted) => {
                outcome.errors += 1;
                outcome
                    .first_error
                    .get_or_insert_with(|| format!("{accepted} events accepted, expected 1"));
            }
            Err(error) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(error);
            }
        }
    }
    Ok(outcome)
}

/// Parts of a run the e2e latency is also recorded for.
const FIFTHS: usize = 5;

struct ReadOutcome {
    latency: Histogram<u64>,
    /// `latency` per fifth of the requests.
    fifths: Vec<Histogram<u64>>,
    /// Copies received per request number.
    counts: Vec<u8>,
    received: u64,
    foreign: u64,
    last_receipt: Instant,
    error: Option<String>,
}

/// One subscriber: reads until it has one event per accepted webhook, or nothing came for
/// `drain` after sending ended.
async fn read(
    mut stream: tonic::Streaming<Receipt>,
    shared: Arc<Shared>,
    drain: Duration,
    run: String,
) -> ReadOutcome {
    let mut outcome = ReadOutcome {
        latency: histogram(),
        fifths: (0..FIFTHS).map(|_| histogram()).collect(),
        counts: vec![0; shared.sent_at.len()],
        received: 0,
        foreign: 0,
        last_receipt: shared.t0,
        error: None,
    };
    let mut distinct = 0;
    let mut idle_since: Option<Instant> = None;
    // One timer for the whole stream (a timeout per event cost a timer registration per event
    // per subscriber): a tick with no event in between counts as idle.
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_tick = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            item = stream.next() => {
                since_tick += 1;
                Ok(item)
            }
            _ = ticks.tick() => {
                let idle = since_tick == 0;
                since_tick = 0;
                if idle { Err(()) } else { continue }
            }
        };
        match next {
            Ok(Some(Ok(event))) => {
                let now = Instant::now();
                outcome.received += 1;
                outcome.last_receipt = now;
                idle_since = None;
                let number = event
                    .provenance
                    .as_ref()
                    .and_then(|p| request_number(&p.provider_event_id, &run))
                    .filter(|n| *n < outcome.counts.len());
                let Some(n) = number else {
                    outcome.foreign += 1;
                    continue;
                };
                let sent =
                    shared.t0 + Duration::from_nanos(shared.sent_at[n].load(Ordering::Acquire));
                let latency = micros(now.saturating_duration_since(sent));
                outcome.latency.saturating_record(latency);
                let fifth = n * FIFTHS / outcome.counts.len();
                if let Some(histogram) = outcome.fifths.get_mut(fifth) {
                    histogram.saturating_record(latency);
                }
                if outcome.counts[n] == 0 {
                    distinct += 1;
                }
                outcome.counts[n] = outcome.counts[n].saturating_add(1);
                if distinct >= shared.expected.load(Ordering::Acquire) {
                    break;
                }
            }
            Ok(Some(Err(status))) => {
                outcome.error = Some(status.to_string());
                break;
            }
            Ok(None) => {
                outcome.error = Some("stream ended".to_owned());
                break;
            }
            Err(_) => {
                let expected = shared.expected.load(Ordering::Acquire);
                if expected == usize::MAX {
                    continue;
                }
                if distinct >= expected {
                    break;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= drain {
                    break;
                }
            }
        }
    }
    outcome
}

fn check(outcome: &ReadOutcome, shared: &Shared) -> Delivery {
    let mut delivery = Delivery {
        received: outcome.received,
        unexpected: outcome.foreign,
        error: outcome.error.clone(),
        ..Delivery::default()
    };
    for (count, accepted) in outcome.counts.iter().zip(&shared.accepted) {
        let count = u64::from(*count);
        if accepted.load(Ordering::Acquire) {
            if count == 0 {
                delivery.missing += 1;
            }
            delivery.duplicates += count.saturating_sub(1);
        } else {
            delivery.unexpected += count;
        }
    }
    delivery
}
