//! `tributary-client` (crates/client) against the real server.

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::Code;
use tributary_client::prelude::*;
use tributary_client::{AckBatch, Backoff, Consumer, Subscription};

use super::{
    ADMIN_TOKEN, STATEMENT_ID, TOKEN, credentials, post_statements, restart, start_server,
    wait_acked,
};
use crate::support::collector::{grpc_collector, otel_env};

/// Reconnects quickly, so a restart costs the tests little time.
fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        max_retries: None,
    }
}

async fn connect(grpc: &str, token: &str) -> Client {
    Client::builder(format!("http://{grpc}"))
        .token(token)
        .backoff(quick())
        .ack_batch(AckBatch {
            events: 3,
            interval: Duration::from_secs(60),
        })
        .connect()
        .await
        .expect("connect")
}

/// The next `count` events' sequences (panics after 30 s).
async fn next_sequences(
    stream: &mut (impl futures_util::Stream<Item = Result<Event, tributary_client::Error>> + Unpin),
    count: usize,
) -> Vec<u64> {
    let mut sequences = Vec::new();
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(event))) => sequences.push(event.sequence),
            other => panic!("after {sequences:?}: {other:?}"),
        }
    }
    sequences
}

async fn assert_quiet(stream: &mut (impl futures_util::Stream + Unpin)) {
    let more = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(more.is_err(), "an event more was handed out");
}

#[tokio::test]
async fn typed_events_and_a_server_restart_mid_stream_with_no_gap_and_no_duplicate() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "rs-stream", 0..3).await;
    let client = connect(&grpc, TOKEN).await;
    let mut events: Subscription =
        client.subscribe(Filter::types(["statement.*"]), Start::Earliest);

    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("in time")
        .expect("an item")
        .expect("an event");
    assert_eq!(first.sequence, 1);
    assert_eq!(first.id, "arcadia:whk_rs-stream-0");
    let Some(Payload::Statement(statement)) = &first.payload else {
        panic!("not a statement: {:?}", first.payload);
    };
    assert_eq!(statement.id, STATEMENT_ID);
    assert_eq!(next_sequences(&mut events, 2).await, [2, 3]);

    let server = restart(server);
    post_statements(&server, "rs-stream", 3..5).await;
    assert_eq!(next_sequences(&mut events, 2).await, [4, 5]);
    assert_quiet(&mut events).await;
}

#[tokio::test]
async fn a_durable_consumer_skips_redeliveries_and_resumes_after_a_client_restart() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "rs-durable", 0..3).await;
    let client = connect(&grpc, TOKEN).await;
    let mut consumer: Consumer = client.consumer("billing-rs", Filter::all(), Start::Earliest);
    let mut handled = Vec::new();
    for _ in 0..3 {
        let event = next_sequences_with(&mut consumer, &mut handled).await;
        consumer.ack(&event);
    }
    // A batch is 3 events: 3 is acked; 4 then waits for the next batch.
    wait_acked(&server, "billing-rs", 3).await;
    post_statements(&server, "rs-durable", 3..4).await;
    let event = next_sequences_with(&mut consumer, &mut handled).await;
    consumer.ack(&event);

    // The server restarts and resumes after the ack (3): event 4 comes again and is skipped.
    let server = restart(server);
    post_statements(&server, "rs-durable", 4..5).await;
    let event = next_sequences_with(&mut consumer, &mut handled).await;
    consumer.ack(&event);
    assert_eq!(handled, [1, 2, 3, 4, 5], "no gap, no duplicate");
    consumer.close().await;
    wait_acked(&server, "billing-rs", 5).await;

    // A new client (a restarted process) resumes after the last ack; dropping it acks.
    post_statements(&server, "rs-durable", 5..7).await;
    let client = connect(&grpc, TOKEN).await;
    let mut consumer = client.consumer("billing-rs", Filter::all(), Start::Earliest);
    let mut handled = Vec::new();
    let event = next_sequences_with(&mut consumer, &mut handled).await;
    consumer.ack(&event);
    assert_eq!(handled, [6]);
    drop(consumer);
    wait_acked(&server, "billing-rs", 6).await;
}

async fn next_sequences_with(consumer: &mut Consumer, handled: &mut Vec<u64>) -> Event {
    match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
        Ok(Some(Ok(event))) => {
            handled.push(event.sequence);
            event
        }
        other => panic!("after {handled:?}: {other:?}"),
    }
}

#[tokio::test]
async fn tokens_are_sent_and_refusals_end_the_stream() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "rs-auth", 0..1).await;

    for (token, code) in [
        ("", Code::Unauthenticated),
        ("wrong-token-0123456789", Code::Unauthenticated),
    ] {
        let mut events = connect(&grpc, token)
            .await
            .subscribe(Filter::all(), Start::Earliest);
        let error = events.next().await.expect("an item").expect_err("refused");
        assert_eq!(error.status().map(|s| s.code()), Some(code), "{error}");
        assert!(events.next().await.is_none(), "a refusal is not retried");
    }
    // A consumer name outside the credential's scope.
    let mut outside =
        connect(&grpc, TOKEN)
            .await
            .consumer("lending", Filter::all(), Start::Earliest);
    let error = outside.next().await.expect("an item").expect_err("refused");
    assert_eq!(
        error.status().map(|s| s.code()),
        Some(Code::PermissionDenied)
    );

    for token in [TOKEN, ADMIN_TOKEN] {
        let mut events = connect(&grpc, token)
            .await
            .subscribe(Filter::all(), Start::Earliest);
        assert_eq!(next_sequences(&mut events, 1).await, [1]);
    }
    drop(server);
}

#[tokio::test]
async fn tls_with_a_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = crate::security::ca_and_server_certificate();
    let path = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write");
        path.display().to_string()
    };
    let (ca_file, cert_file, key_file) = (
        path("ca.pem", &ca),
        path("cert.pem", &cert),
        path("key.pem", &key),
    );
    let config = format!("[grpc.tls]\ncert_file = \"{cert_file}\"\nkey_file = \"{key_file}\"\n");
    let (server, grpc) = start_server(&config, &[]);
    post_statements(&server, "rs-tls", 0..1).await;
    let client = Client::builder(format!("https://{grpc}"))
        .ca_file(&ca_file)
        .domain_name("127.0.0.1")
        .connect()
        .await
        .expect("TLS connect");
    let mut events = client.subscribe(Filter::all(), Start::Earliest);
    assert_eq!(next_sequences(&mut events, 1).await, [1]);

    let untrusted = Client::builder(format!("https://{grpc}")).connect().await;
    assert!(
        untrusted.is_err(),
        "a server certificate from an unknown CA"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumers_span_is_a_child_of_the_delivery_in_the_providers_trace() {
    let (collector, endpoint) = grpc_collector().await;
    let (server, grpc) = start_server("", &otel_env(&endpoint, "grpc"));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .expect("exporter");
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("billing-rs").build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("billing");

    post_statements(&server, "rs-trace", 0..1).await;
    let mut events = connect(&grpc, "")
        .await
        .subscribe(Filter::all(), Start::Earliest);
    let event = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("in time")
        .expect("an item")
        .expect("an event");

    let cx = tributary_client::trace::process_span(&tracer, &event);
    let trace_id = cx.span().span_context().trace_id().to_string();
    cx.span().end();
    let flushed = tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("join");
    flushed.expect("flush");

    let spans = collector.wait_for(&trace_id, 6).await;
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} in {spans:#?}"))
    };
    let receive = named("POST /webhooks/{source}");
    let deliver = named("tributary.v1.EventStream/Subscribe");
    let process = named("process statement.available");
    assert!(
        receive.parent_span_id.is_empty(),
        "the provider's POST starts the trace"
    );
    assert_eq!(process.parent_span_id, deliver.span_id);
    assert_eq!(process.kind, SpanKind::Consumer as i32);
}
