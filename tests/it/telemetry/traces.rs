//! OpenTelemetry traces through the real binary: an OTLP collector inside the test (gRPC and
//! HTTP/protobuf) receives the spans of webhooks; the delivered events carry the trace.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tributary_model::v1::{Event, SubscribeRequest, subscribe_request::Start};

use crate::support::collector::{grpc_collector, http_collector, otel_env};
use crate::support::{
    self, ARCADIA_AUTH, ARCADIA_TOKEN, Server, arcadia_source, arcadia_webhook, fixtures, hmac_hex,
    next_event, unix_now,
};

/// Arcadia verifying the shared header, with the fixtures' personal-data hash key.
fn config() -> String {
    arcadia_source(r#"personal_data = { hash_key = "fixture-installation-key" }"#)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string_attribute<'a>(span: &'a Span, key: &str) -> &'a str {
    match attribute(span, key) {
        Some(AnyValue::StringValue(value)) => value,
        other => panic!("{}: {key} = {other:?}", span.name),
    }
}

fn int_attribute(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(AnyValue::IntValue(value)) => *value,
        other => panic!("{}: {key} = {other:?}", span.name),
    }
}

fn by_name(spans: &[Span]) -> HashMap<&str, &Span> {
    spans.iter().map(|s| (s.name.as_str(), s)).collect()
}

/// (trace id, span id) of an event's `traceparent`.
fn trace_of(event: &Event) -> (String, String) {
    let parts: Vec<&str> = event.traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {:?}", event.traceparent);
    (parts[1].to_owned(), parts[2].to_owned())
}

async fn live_subscription(server: &Server) -> tonic::Streaming<Event> {
    server
        .subscribe(SubscribeRequest {
            start: Some(Start::FromLatest(true)),
            ..Default::default()
        })
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_webhook_is_one_trace_from_receive_to_delivery() {
    let (collector, endpoint) = grpc_collector().await;
    let server = Server::start_with_env(&config(), &otel_env(&endpoint, "grpc"));
    let mut stream = live_subscription(&server).await;

    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_trace-1"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
    let event = next_event(&mut stream, Duration::from_secs(20)).await;
    let (trace_id, event_span) = trace_of(&event);

    let spans = collector.wait_for(&trace_id, 5).await;
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let spans = by_name(&spans);
    let receive = spans["POST /webhooks/{source}"];
    let verify = spans["verify"];
    let normalize = spans["normalize"];
    let append = spans["append"];
    let deliver = spans["tributary.v1.EventStream/Subscribe"];

    // The chain: receive is the root; verify, normalize, append are its children in order.
    assert!(receive.parent_span_id.is_empty(), "a new trace starts");
    for child in [verify, normalize, append] {
        assert_eq!(child.parent_span_id, receive.span_id, "{}", child.name);
        assert_eq!(child.kind, SpanKind::Internal as i32);
        assert!(child.start_time_unix_nano >= receive.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= receive.end_time_unix_nano);
    }
    assert!(verify.end_time_unix_nano <= normalize.start_time_unix_nano);
    assert!(normalize.end_time_unix_nano <= append.start_time_unix_nano);

    // Delivery is the append span's child and links to it; the delivered event carries the
    // delivery's context, so the consumer's span is the delivery's child.
    assert_eq!(event_span, hex::encode(&deliver.span_id));
    assert_eq!(deliver.parent_span_id, append.span_id);
    assert_eq!(deliver.links.len(), 1, "{:?}", deliver.links);
    assert_eq!(deliver.links[0].trace_id, append.trace_id);
    assert_eq!(deliver.links[0].span_id, append.span_id);

    // Semantic-convention attributes.
    assert_eq!(receive.kind, SpanKind::Server as i32);
    assert_eq!(string_attribute(receive, "http.request.method"), "POST");
    assert_eq!(
        string_attribute(receive, "http.route"),
        "/webhooks/{source}"
    );
    assert_eq!(string_attribute(receive, "url.path"), "/webhooks/arcadia");
    assert_eq!(int_attribute(receive, "http.response.status_code"), 200);
    assert_eq!(
        string_attribute(normalize, "tributary.adapter.name"),
        "arcadia"
    );
    assert_eq!(
        string_attribute(normalize, "tributary.adapter.version"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(int_attribute(normalize, "tributary.event.count"), 1);
    assert_eq!(int_attribute(append, "tributary.append.events"), 1);
    match attribute(append, "tributary.event.sequences") {
        Some(AnyValue::ArrayValue(array)) => {
            assert_eq!(array.values.len(), 1);
            assert_eq!(
                array.values[0].value,
                Some(AnyValue::IntValue(event.sequence as i64))
            );
        }
        other => panic!("sequences: {other:?}"),
    }
    assert_eq!(deliver.kind, SpanKind::Server as i32);
    assert_eq!(string_attribute(deliver, "rpc.system"), "grpc");
    assert_eq!(
        string_attribute(deliver, "rpc.service"),
        "tributary.v1.EventStream"
    );
    assert_eq!(string_attribute(deliver, "rpc.method"), "Subscribe");
    assert_eq!(
        int_attribute(deliver, "tributary.event.sequence"),
        event.sequence as i64
    );
    assert!(collector.dump().contains("tributary-e2e"), "service.name");

    // A rejected webhook: its span carries the status, the failing stage its error.
    let (status, _) = server
        .post("arcadia", b"{\"hello\": 1}", &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 400);
    let deadline = Instant::now() + Duration::from_secs(15);
    let failed = loop {
        let spans = collector.spans();
        if let Some(normalize) = spans
            .iter()
            .find(|s| s.name == "normalize" && s.status.as_ref().is_some_and(|st| st.code == 2))
        {
            break (normalize.clone(), spans);
        }
        assert!(Instant::now() < deadline, "no failed normalize span");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (normalize, spans) = failed;
    let status = normalize.status.clone().unwrap_or_default();
    assert_eq!(status.message, "malformed payload");
    let receive = spans
        .iter()
        .find(|s| s.span_id == normalize.parent_span_id)
        .expect("receive span of the rejected webhook");
    assert_eq!(int_attribute(receive, "http.response.status_code"), 400);
    assert_eq!(string_attribute(receive, "error.type"), "400");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_traceparent_is_continued_over_http_protobuf() {
    let (collector, endpoint) = http_collector().await;
    let server = Server::start_with_env(&config(), &otel_env(&endpoint, "http/protobuf"));
    let mut stream = live_subscription(&server).await;

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let (status, _) = server
        .post(
            "arcadia",
            &arcadia_webhook("whk_trace-2"),
            &[
                ("traceparent", &traceparent),
                ("tracestate", "vendor=x"),
                ("X-Arcadia-Token", ARCADIA_TOKEN),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let event = next_event(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(trace_of(&event).0, trace_id);
    assert_eq!(event.tracestate, "vendor=x");

    let spans = collector.wait_for(trace_id, 5).await;
    let spans = by_name(&spans);
    let receive = spans["POST /webhooks/{source}"];
    assert_eq!(hex::encode(&receive.parent_span_id), caller_span);
    assert_eq!(
        spans["append"].parent_span_id, receive.span_id,
        "the chain continues under the caller's span"
    );
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported_and_the_callers_context_is_kept() {
    let server = Server::start(&config());
    let mut stream = live_subscription(&server).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, _) = server
        .post(
            "arcadia",
            &arcadia_webhook("whk_trace-3"),
            &[("traceparent", traceparent), ARCADIA_AUTH[0]],
        )
        .await;
    assert_eq!(status, 200);
    let event = next_event(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(event.traceparent, traceparent);
    assert!(!server.logs().contains("OTLP"), "{}", server.logs());
}

/// Posts 50 distinct webhooks one after another; returns every latency.
async fn latencies(server: &Server, prefix: &str) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in 0..50 {
        let body = arcadia_webhook(&format!("whk_{prefix}-{i}"));
        let started = Instant::now();
        let (status, body) = server.post("arcadia", &body, &ARCADIA_AUTH).await;
        took.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    took.sort();
    took
}

/// The stated bound: with the collector down or hanging, every one of 50 webhooks is answered
/// 2xx within 1 s (in practice a few ms: export runs on its own thread and drops when full).
const BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_or_dead_collector_never_slows_webhooks() {
    // A latency bound: measured while no flood or build shares the cores.
    let _turn = support::heavy_turn().await;
    // Hanging: accepts connections and never answers a byte.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_addr = hanging.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hanging.incoming() {
            held.push(stream);
        }
    });
    // Dead: nothing listens there any more.
    let dead_addr: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };

    for (name, address, protocol) in [
        ("hanging-grpc", hanging_addr, "grpc"),
        ("hanging-http", hanging_addr, "http/protobuf"),
        ("dead-grpc", dead_addr, "grpc"),
    ] {
        let endpoint = format!("http://{address}");
        let mut env = otel_env(&endpoint, protocol);
        env.push(("OTEL_BSP_SCHEDULE_DELAY", "10"));
        env.push(("OTEL_BSP_MAX_QUEUE_SIZE", "64"));
        let server = Server::start_with_env(&config(), &env);
        let took = latencies(&server, name).await;
        let (median, max) = (took[took.len() / 2], took[took.len() - 1]);
        eprintln!("{name}: 50 webhooks, median {median:?}, max {max:?}");
        assert!(max < BOUND, "{name}: slowest webhook took {max:?}");
    }
}

/// Every tax id, username and secret the fixtures and this configuration contain.
const FORBIDDEN: [&str; 10] = [
    "25872252137",
    "258.722.521-37",
    "12345678901",
    "12345678000195",
    "12.345.678/0001-95",
    "example-username",
    "arcadia-header-s3cret",
    "query-s3cret",
    "klavi-fixture-secret",
    "fixture-installation-key",
];

#[tokio::test(flavor = "multi_thread")]
async fn no_personal_data_or_secret_in_spans_or_logs() {
    let (collector, endpoint) = grpc_collector().await;
    let config = r#"
[sources.arcadia]
adapter = "arcadia"
config = { verification = { headers = { "X-Arcadia-Token" = "arcadia-header-s3cret" } }, personal_data = { hash_key = "fixture-installation-key" } }
[sources.klavi]
adapter = "klavi"
config = { secret_key = "klavi-fixture-secret", personal_data = { hash_key = "fixture-installation-key" } }
"#;
    let server = Server::start_with_env(config, &otel_env(&endpoint, "grpc"));
    let client = reqwest::Client::new();
    let mut posted = 0;
    for fixture in fixtures("arcadia", &[""]) {
        let response = client
            .post(server.url("/webhooks/arcadia?access_token=query-s3cret"))
            .header("content-type", "application/json")
            .header("x-arcadia-token", "arcadia-header-s3cret")
            .body(fixture.raw.clone())
            .send()
            .await
            .expect("POST");
        assert!(response.status().as_u16() < 500, "{}", fixture.name);
        posted += 1;
    }
    // Signed and stamped now (Klavi requires its timestamp header), so the bodies with tax ids
    // are verified, normalized and stored, not only rejected.
    let mut klavi_stored = 0;
    for fixture in fixtures("klavi", &[""]) {
        let signature = hmac_hex("klavi-fixture-secret", &fixture.raw);
        let now = unix_now().to_string();
        let (status, _) = server
            .post(
                "klavi",
                &fixture.raw,
                &[
                    ("x-klavi-signature", signature.as_str()),
                    ("x-klavi-timestamp", now.as_str()),
                ],
            )
            .await;
        assert!(status < 500, "{}", fixture.name);
        klavi_stored += usize::from(status == 200);
        posted += 1;
    }
    assert!(
        klavi_stored > 10,
        "only {klavi_stored} Klavi webhooks stored"
    );
    // Wrongly signed too: rejections are traced and logged.
    let (status, _) = server
        .post(
            "klavi",
            &fixtures("klavi", &[""])[0].raw,
            &[("x-klavi-signature", "00")],
        )
        .await;
    assert_eq!(status, 401);
    posted += 1;

    // Every webhook's receive span arrives.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let received = collector
            .spans()
            .iter()
            .filter(|s| s.name == "POST /webhooks/{source}")
            .count();
        if received >= posted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{received} of {posted} receive spans"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spans = collector.dump();
    let logs = server.logs();
    assert!(posted > 60 && !logs.is_empty());
    for needle in FORBIDDEN {
        assert!(!spans.contains(needle), "{needle} in a span");
        assert!(
            !logs.to_lowercase().contains(&needle.to_lowercase()),
            "{needle} in the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloudevents_delivery_is_named_after_its_own_rpc() {
    use tributary::proto::cloud_event_stream_client::CloudEventStreamClient;
    use tributary_model::cloudevents::v1::cloud_event::cloud_event_attribute_value::Attr;

    let (collector, endpoint) = grpc_collector().await;
    let server = Server::start_with_env(&config(), &otel_env(&endpoint, "grpc"));
    let mut cloud_events = CloudEventStreamClient::new(server.channel().await)
        .subscribe(SubscribeRequest {
            start: Some(Start::FromLatest(true)),
            ..Default::default()
        })
        .await
        .expect("subscribe to CloudEvents")
        .into_inner();

    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_trace-ce"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
    let cloud_event = tokio::time::timeout(Duration::from_secs(20), cloud_events.message())
        .await
        .expect("a CloudEvent in time")
        .expect("stream open")
        .expect("a CloudEvent");
    let traceparent = match cloud_event
        .attributes
        .get("traceparent")
        .and_then(|value| value.attr.as_ref())
    {
        Some(Attr::CeString(traceparent)) => traceparent.clone(),
        other => panic!("traceparent: {other:?}"),
    };
    let parts: Vec<&str> = traceparent.split('-').collect();
    let (trace_id, span_id) = (parts[1], parts[2]);

    let spans = collector.wait_for(trace_id, 5).await;
    let deliver = spans
        .iter()
        .find(|s| hex::encode(&s.span_id) == span_id)
        .expect("the deliver span the CloudEvent continues");
    assert_eq!(deliver.name, "tributary.v1.CloudEventStream/Subscribe");
    assert_eq!(deliver.kind, SpanKind::Server as i32);
    assert_eq!(
        string_attribute(deliver, "rpc.service"),
        "tributary.v1.CloudEventStream"
    );
    assert_eq!(string_attribute(deliver, "rpc.method"), "Subscribe");
}
