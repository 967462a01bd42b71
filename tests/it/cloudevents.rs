//! `CloudEventStream.Subscribe`: the events of `EventStream.Subscribe` as CloudEvents 1.0 in the
//! CloudEvents Protobuf Format, read by clients that know only that format: a Python client
//! whose classes are generated from `proto/io/cloudevents/v1/cloudevents.proto` alone, and Rust
//! decoding with the types generated from that same schema. Scopes, filters and durable
//! consumers are `EventStream`'s.

use std::process::Command;
use std::time::Duration;

use prost::Message;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tributary::config::CloudEventsConfig;
use tributary::proto::cloud_event_stream_client::CloudEventStreamClient;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary::stream::cloudevents::to_cloud_event;
use tributary_model::cloudevents::v1::CloudEvent;
use tributary_model::cloudevents::v1::cloud_event::Data;
use tributary_model::cloudevents::v1::cloud_event::cloud_event_attribute_value::Attr;
use tributary_model::v1::{AckRequest, Event, Filter, SubscribeRequest, subscribe_request::Start};
use tributary_model::well_known::Timestamp;

use crate::clients::python::python;
use crate::support::{
    ARCADIA_AUTH, Server, arcadia_source, delivered_json, expected_delivery, fixtures, repo,
};

const SOURCE_PREFIX: &str = "tributary://it-installation/";
const TYPE_PREFIX: &str = "com.example.tributary.";

/// Team tokens: `billing` reads Arcadia (and its `billing-*` consumers), `lending` only Klavi.
const BILLING: &str = "billing-team-token-0123456789";
const LENDING: &str = "lending-team-token-0123456789";

/// `[cloudevents]` with both prefixes, then `extra` (credentials), then Arcadia as a source
/// whose personal-data hashes match the fixtures'.
fn config(extra: &str) -> String {
    format!(
        "[cloudevents]\nsource_prefix = \"{SOURCE_PREFIX}\"\ntype_prefix = \"{TYPE_PREFIX}\"\n\
         {extra}{}",
        arcadia_source(r#"personal_data = { hash_key = "fixture-installation-key" }"#)
    )
}

fn credentials() -> String {
    format!(
        r#"
[[grpc.credentials]]
name = "billing"
token = "{BILLING}"
sources = ["arcadia"]
consumers = ["billing-*"]

[[grpc.credentials]]
name = "lending"
token = "{LENDING}"
sources = ["klavi"]
"#
    )
}

/// Posts every Arcadia seed example; returns their expected events (the fixtures' canonical
/// JSON with the host's envelope), in sequence order.
async fn post_seeds(server: &Server) -> Vec<Value> {
    let mut expected = Vec::new();
    for example in fixtures("arcadia", &["seed-"]) {
        let (status, body) = server.post("arcadia", &example.raw, &ARCADIA_AUTH).await;
        assert_eq!(status, 200, "{}: {body}", example.name);
        for event in example.expected["normalized"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let sequence = expected.len() as u64 + 1;
            expected.push(expected_delivery(event, "arcadia", sequence, "arcadia"));
        }
        assert_eq!(body["sequences"], json!([expected.len()]), "{body}");
    }
    assert!(expected.len() >= 13, "{} seed events", expected.len());
    expected
}

/// `message` with `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

fn from_earliest(filter: Filter, consumer: &str) -> SubscribeRequest {
    SubscribeRequest {
        filter: Some(filter),
        consumer: consumer.into(),
        start: Some(Start::FromEarliest(true)),
    }
}

fn arcadia() -> Filter {
    Filter {
        sources: vec!["arcadia".into()],
        types: Vec::new(),
    }
}

/// The next `count` items of `stream` (panics after 20 s without one).
async fn take<T: std::fmt::Debug>(stream: &mut Streaming<T>, count: usize) -> Vec<T> {
    let mut items = Vec::with_capacity(count);
    while items.len() < count {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(item))) => items.push(item),
            other => panic!("after {} of {count}: {other:?}", items.len()),
        }
    }
    items
}

/// "<seconds>.<nanos>", as the Python client prints timestamps.
fn seconds(timestamp: Option<Timestamp>) -> String {
    let timestamp = timestamp.expect("a timestamp");
    format!("{}.{:09}", timestamp.seconds, timestamp.nanos)
}

/// The line the Python client must print for the fixture event `fixture` delivered as `event`
/// by `EventStream`: names and values from the fixture, written out here rather than taken
/// from the server's mapping; only the times, sequence and archive id come from the delivery.
fn expected_line(fixture: &Value, event: &Event) -> Value {
    let text = |value: &Value| value.as_str().expect("a string").to_owned();
    let provider_event_id = text(&fixture["provenance"]["providerEventId"]);
    json!({
        "id": format!("arcadia:{provider_event_id}"),
        "source": "tributary://it-installation/arcadia",
        "spec_version": "1.0",
        "type": format!("com.example.tributary.{}", text(&fixture["type"])),
        "attributes": {
            "datacontenttype": ["ce_string", "application/protobuf"],
            "dataschema": ["ce_uri_ref", "type.googleapis.com/tributary.v1.Event"],
            "subject": ["ce_string", text(&fixture["subject"])],
            "time": ["ce_timestamp", seconds(event.time)],
            "receivedat": ["ce_timestamp", seconds(event.received_at)],
            "tributarysource": ["ce_string", "arcadia"],
            "tributarysequence": ["ce_string", event.sequence.to_string()],
            "rawid": ["ce_string", event.raw_id.to_string()],
            "adapter": ["ce_string", "arcadia"],
            "adapterversion": ["ce_string", env!("CARGO_PKG_VERSION")],
            "providereventid": ["ce_string", provider_event_id],
            "providereventtype": ["ce_string", text(&fixture["provenance"]["providerEventType"])],
        },
        "proto_data": {
            "type_url": "type.googleapis.com/tributary.v1.Event",
            "value_hex": hex::encode(event.encode_to_vec()),
        },
    })
}

#[tokio::test]
async fn a_python_client_generated_from_the_cloudevents_schema_alone_reads_the_stream() {
    let server = Server::start(&config(""));
    let expected = post_seeds(&server).await;
    let native = server
        .collect(Filter::default(), None, expected.len())
        .await;
    for (event, want) in native.iter().zip(&expected) {
        assert_eq!(delivered_json(event), *want);
        assert_eq!(event.specversion, "1.0");
        assert!(event.raw_id > 0, "the archive is on");
    }

    let request = from_earliest(Filter::default(), "").encode_to_vec();
    let (python, grpc, count) = (python(), server.grpc.to_string(), expected.len());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(repo().join("tests/it/cloudevents_client.py"))
            .args(["--address", &grpc, "--count", &count.to_string()])
            .arg("--proto")
            .arg(repo().join("proto/io/cloudevents/v1/cloudevents.proto"))
            .args(["--request-hex", &hex::encode(request)])
            .output()
            .expect("run python")
    })
    .await
    .expect("python thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), count + 1, "{stdout}\n{stderr}");
    assert_eq!(lines[count], "done");
    for ((line, event), fixture) in lines.iter().zip(&native).zip(&expected) {
        let got: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(
            got,
            expected_line(fixture, event),
            "sequence {}",
            event.sequence
        );
    }
}

#[tokio::test]
async fn rust_decodes_the_same_events_as_event_stream_within_the_same_scopes() {
    let server = Server::start(&config(&credentials()));
    let count = post_seeds(&server).await.len();
    let channel: Channel = server.channel().await;
    let mut events = EventStreamClient::new(channel.clone());
    let mut cloud_events = CloudEventStreamClient::new(channel);

    let native = take(
        &mut events
            .subscribe(with_token(from_earliest(arcadia(), ""), BILLING))
            .await
            .expect("subscribe")
            .into_inner(),
        count,
    )
    .await;
    let mapped = take(
        &mut cloud_events
            .subscribe(with_token(from_earliest(arcadia(), ""), BILLING))
            .await
            .expect("subscribe to CloudEvents")
            .into_inner(),
        count,
    )
    .await;
    let config = CloudEventsConfig {
        source_prefix: SOURCE_PREFIX.into(),
        type_prefix: TYPE_PREFIX.into(),
    };
    for (event, cloud_event) in native.iter().zip(&mapped) {
        assert_eq!(*cloud_event, to_cloud_event(event, &config));
        assert_eq!(cloud_event.source, "tributary://it-installation/arcadia");
        assert_eq!(
            cloud_event.r#type,
            format!("com.example.tributary.{}", event.r#type)
        );
        let Some(Data::ProtoData(any)) = &cloud_event.data else {
            panic!("no proto_data: {cloud_event:?}");
        };
        assert_eq!(any.type_url, "type.googleapis.com/tributary.v1.Event");
        let decoded = Event::decode(any.value.as_ref()).expect("a tributary.v1.Event");
        assert_eq!(decoded, *event, "sequence {}", event.sequence);
    }

    // The same scopes: no token, a source outside the token's, or no source named.
    let refused = |request: tonic::Request<SubscribeRequest>| {
        let mut client = cloud_events.clone();
        async move {
            client
                .subscribe(request)
                .await
                .map(|_| ())
                .expect_err("refused")
                .code()
        }
    };
    let anonymous = tonic::Request::new(from_earliest(arcadia(), ""));
    assert_eq!(refused(anonymous).await, Code::Unauthenticated);
    for (filter, token) in [
        (arcadia(), LENDING),
        (Filter::default(), LENDING),
        (Filter::default(), BILLING),
    ] {
        let request = with_token(from_earliest(filter.clone(), ""), token);
        assert_eq!(refused(request).await, Code::PermissionDenied, "{filter:?}");
    }
    let foreign_consumer = with_token(from_earliest(arcadia(), "lending-1"), BILLING);
    assert_eq!(refused(foreign_consumer).await, Code::PermissionDenied);

    // A durable consumer on CloudEvents acknowledges on EventStream.Ack with the sequence the
    // `tributarysequence` attribute carries, and resumes after it.
    let first = take(
        &mut cloud_events
            .subscribe(with_token(from_earliest(arcadia(), "billing-ce"), BILLING))
            .await
            .expect("durable subscribe")
            .into_inner(),
        3,
    )
    .await;
    let sequence_of = |cloud_event: &CloudEvent| -> u64 {
        match &cloud_event.attributes["tributarysequence"].attr {
            Some(Attr::CeString(sequence)) => sequence.parse().expect("a decimal"),
            other => panic!("tributarysequence: {other:?}"),
        }
    };
    assert_eq!(first.iter().map(sequence_of).collect::<Vec<_>>(), [1, 2, 3]);
    let ack = AckRequest {
        consumer: "billing-ce".into(),
        sequence: sequence_of(&first[2]),
    };
    let acked = events.ack(with_token(ack, BILLING)).await.expect("ack");
    assert_eq!(acked.into_inner().acked_sequence, 3);
    let resumed = take(
        &mut cloud_events
            .subscribe(with_token(from_earliest(arcadia(), "billing-ce"), BILLING))
            .await
            .expect("resume")
            .into_inner(),
        1,
    )
    .await;
    assert_eq!(sequence_of(&resumed[0]), 4);
    assert_eq!(resumed[0], mapped[3]);
}
