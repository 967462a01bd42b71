//! Consumers authenticate with a bearer token when `grpc.tokens` is configured; health checks
//! stay open for load balancers.

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tributary_model::v1::SubscribeRequest;

use crate::support::Server;

#[tokio::test]
async fn consumers_need_a_valid_token_when_tokens_are_configured() {
    let server = Server::start("[grpc]\ntokens = [\"consumer-secret-1\", \"consumer-secret-2\"]\n");
    let mut client = server.client().await;

    let error = client
        .subscribe(SubscribeRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(error.code(), Code::Unauthenticated);

    let mut request = tonic::Request::new(SubscribeRequest::default());
    let wrong: MetadataValue<_> = "Bearer consumer-secret-3".parse().expect("header");
    request.metadata_mut().insert("authorization", wrong);
    let error = client.subscribe(request).await.expect_err("wrong token");
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(error.message(), "missing or invalid bearer token");

    let mut request = tonic::Request::new(SubscribeRequest::default());
    let right: MetadataValue<_> = "Bearer consumer-secret-2".parse().expect("header");
    request.metadata_mut().insert("authorization", right);
    client
        .subscribe(request)
        .await
        .expect("valid token accepted");

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: "tributary.v1.EventStream".into(),
        })
        .await
        .expect("health is open")
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
    assert!(
        !server.logs().contains("consumer-secret"),
        "tokens never logged"
    );
}
