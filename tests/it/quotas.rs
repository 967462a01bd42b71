//! Per-credential quotas through the real binary: a team over its `max_subscriptions`,
//! `max_consumers` or `max_filter_entries` gets RESOURCE_EXHAUSTED while another team is
//! unaffected, and the consumer cap holds under concurrent subscribes.

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tributary::proto::admin_client::AdminClient;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{Event, Filter, ListConsumersRequest, SubscribeRequest};

use crate::support::Server;

const SUBS: &str = "subscriptions-team-token-01";
const CONS: &str = "consumers-team-token-0002";
const FILT: &str = "filters-team-token-000003";
const OTHER: &str = "other-team-token-00000004";
const OPS: &str = "operators-token-000000005";

const CONFIG: &str = r#"
[[grpc.credentials]]
name = "subs"
token = "subscriptions-team-token-01"
max_subscriptions = 2

[[grpc.credentials]]
name = "cons"
token = "consumers-team-token-0002"
consumers = ["cons-*"]
max_consumers = 1

[[grpc.credentials]]
name = "filt"
token = "filters-team-token-000003"
max_filter_entries = 2

[[grpc.credentials]]
name = "other"
token = "other-team-token-00000004"
consumers = ["other-*"]

[[grpc.credentials]]
name = "ops"
token = "operators-token-000000005"
admin = true
"#;

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

fn subscription(consumer: &str, filter: Filter) -> SubscribeRequest {
    SubscribeRequest {
        consumer: consumer.to_owned(),
        filter: Some(filter),
        ..SubscribeRequest::default()
    }
}

/// Subscribes; the open stream, or the refusal's code and message.
async fn subscribe(
    channel: &Channel,
    token: &str,
    message: SubscribeRequest,
) -> Result<tonic::Streaming<Event>, (Code, String)> {
    EventStreamClient::new(channel.clone())
        .subscribe(request(message, token))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| (status.code(), status.message().to_owned()))
}

#[tokio::test]
async fn a_team_over_its_subscriptions_leaves_the_others_theirs() {
    let server = Server::start(CONFIG);
    let channel = server.channel().await;
    let mut held = Vec::new();
    for n in 0..2 {
        held.push(
            subscribe(&channel, SUBS, subscription("", Filter::default()))
                .await
                .unwrap_or_else(|refusal| panic!("subscription {n}: {refusal:?}")),
        );
    }
    let (code, message) = subscribe(&channel, SUBS, subscription("", Filter::default()))
        .await
        .expect_err("a third");
    assert_eq!(code, Code::ResourceExhausted);
    assert!(
        message.contains("credential `subs` holds its 2 subscriptions"),
        "{message}"
    );
    for n in 0..3 {
        assert!(
            subscribe(&channel, OTHER, subscription("", Filter::default()))
                .await
                .is_ok(),
            "the other team's subscription {n}"
        );
    }
}

#[tokio::test]
async fn a_team_over_its_consumers_leaves_the_others_theirs() {
    let server = Server::start(CONFIG);
    let channel = server.channel().await;
    // Concurrent creations: exactly one passes the cap of 1.
    let attempts = (0..8).map(|n| {
        let channel = channel.clone();
        async move {
            subscribe(
                &channel,
                CONS,
                subscription(&format!("cons-{n}"), Filter::default()),
            )
            .await
            .map_err(|(code, _)| code)
            .map(drop)
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(created, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|result| matches!(result, Ok(()) | Err(Code::ResourceExhausted))),
        "{results:?}"
    );
    let consumers = AdminClient::new(channel.clone())
        .list_consumers(request(ListConsumersRequest::default(), OPS))
        .await
        .expect("list")
        .into_inner()
        .consumers;
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    // The existing one resumes; the other team creates its own.
    let existing = consumers[0].name.clone();
    assert!(
        subscribe(&channel, CONS, subscription(&existing, Filter::default()))
            .await
            .is_ok()
    );
    for n in 0..3 {
        assert!(
            subscribe(
                &channel,
                OTHER,
                subscription(&format!("other-{n}"), Filter::default())
            )
            .await
            .is_ok(),
            "the other team's consumer {n}"
        );
    }
}

#[tokio::test]
async fn a_filter_over_its_entries_is_refused_for_that_team_only() {
    let server = Server::start(CONFIG);
    let channel = server.channel().await;
    let filter = |sources: usize| Filter {
        sources: (0..sources).map(|n| format!("source-{n}")).collect(),
        types: vec!["statement.*".to_owned()],
    };
    assert!(
        subscribe(&channel, FILT, subscription("", filter(1)))
            .await
            .is_ok()
    );
    let (code, message) = subscribe(&channel, FILT, subscription("", filter(2)))
        .await
        .expect_err("3 entries");
    assert_eq!(code, Code::ResourceExhausted);
    assert!(message.contains("the filter has 3 entries"), "{message}");
    assert!(
        subscribe(&channel, OTHER, subscription("", filter(2)))
            .await
            .is_ok()
    );
    let (code, _) = subscribe(&channel, OTHER, subscription("", filter(64)))
        .await
        .expect_err("65 entries: over the default of 64");
    assert_eq!(code, Code::ResourceExhausted);
}
