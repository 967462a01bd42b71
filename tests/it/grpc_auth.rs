//! Consumers authenticate with a bearer token when `[[grpc.credentials]]` are configured (each
//! token in the config as is, or as the `sha256:` digest of it); health checks stay open for
//! load balancers.

use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tributary_model::v1::SubscribeRequest;

use crate::support::Server;

/// A team's token, configured as is.
const PLAIN: &str = "consumer-secret-1-plain";

/// Another team's token, configured only as its SHA-256 digest.
const HASHED: &str = "consumer-secret-2-hashed";

/// A Subscribe request carrying `authorization: <value>`.
fn with_authorization(value: &str) -> tonic::Request<SubscribeRequest> {
    let mut request = tonic::Request::new(SubscribeRequest::default());
    let value: MetadataValue<_> = value.parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn consumers_need_a_valid_token_when_credentials_are_configured() {
    let digest = hex::encode(Sha256::digest(HASHED.as_bytes()));
    let server = Server::start(&format!(
        r#"
[[grpc.credentials]]
name = "billing"
token = "{PLAIN}"

[[grpc.credentials]]
name = "operators"
token = "sha256:{digest}"
admin = true
"#
    ));
    let mut client = server.client().await;

    let error = client
        .subscribe(SubscribeRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(error.message(), "missing or invalid bearer token");

    for wrong in [
        "Bearer consumer-secret-3-unknown".to_owned(),
        // The digest in the config is not a token.
        format!("Bearer sha256:{digest}"),
        format!("Bearer {digest}"),
        // Not a bearer token.
        format!("Basic {PLAIN}"),
    ] {
        let error = client
            .subscribe(with_authorization(&wrong))
            .await
            .expect_err("wrong token");
        assert_eq!(error.code(), Code::Unauthenticated, "{wrong}");
        assert_eq!(error.message(), "missing or invalid bearer token");
    }

    for right in [PLAIN, HASHED] {
        client
            .subscribe(with_authorization(&format!("Bearer {right}")))
            .await
            .unwrap_or_else(|status| panic!("{right} refused: {status:?}"));
    }

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
    let logs = server.logs();
    assert!(!logs.contains("consumer-secret"), "tokens never logged");
    assert!(!logs.contains(&digest), "token digests never logged");
}
