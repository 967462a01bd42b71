//! Operator surfaces are private by default, through the real binary: `/metrics` on the
//! webhook port answers only an admin credential's token, and gRPC reflection (which
//! describes the Admin and Adapters services) only administrators, on the listener that
//! serves those services.

use futures_util::StreamExt as _;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::Server;

const READER: &str = "reader-team-token-000001";
const ADMIN: &str = "operators-token-00000002";

fn credentials() -> String {
    format!(
        "[[grpc.credentials]]\nname = \"reader\"\ntoken = \"{READER}\"\n\
         [[grpc.credentials]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nadmin = true\n"
    )
}

async fn metrics_status(server: &Server, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET").status().as_u16()
}

/// The services reflection lists for `token`, or the refusal's code.
async fn reflected(server: &Server, token: Option<&str>) -> Result<Vec<String>, Code> {
    let mut request = tonic::Request::new(tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }]));
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
        request.metadata_mut().insert("authorization", value);
    }
    let mut answers = ServerReflectionClient::new(server.channel().await)
        .server_reflection_info(request)
        .await
        .map_err(|status| status.code())?
        .into_inner();
    let answer = answers
        .next()
        .await
        .expect("an answer")
        .map_err(|status| status.code())?;
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    Ok(list.service.into_iter().map(|s| s.name).collect())
}

#[tokio::test]
async fn metrics_and_reflection_answer_administrators_only() {
    let server = Server::start(&credentials());
    assert_eq!(metrics_status(&server, None).await, 401);
    assert_eq!(metrics_status(&server, Some(READER)).await, 401);
    assert_eq!(
        metrics_status(&server, Some("not-a-token-at-all-000")).await,
        401
    );
    assert_eq!(metrics_status(&server, Some(ADMIN)).await, 200);

    assert_eq!(reflected(&server, None).await, Err(Code::Unauthenticated));
    assert_eq!(
        reflected(&server, Some(READER)).await,
        Err(Code::PermissionDenied)
    );
    let names = reflected(&server, Some(ADMIN)).await.expect("admin");
    assert!(names.iter().any(|n| n == "tributary.v1.Admin"), "{names:?}");
    // Health stays open for load balancers.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn with_an_ops_listener_the_public_ports_serve_neither() {
    let server = Server::start(&format!(
        "[ops]\nhttp_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n{}",
        credentials()
    ));
    assert_eq!(metrics_status(&server, Some(ADMIN)).await, 404);
    assert_eq!(
        reflected(&server, Some(ADMIN)).await,
        Err(Code::Unimplemented)
    );
    let ops = format!("http://{}/metrics", server.ops_http.expect("ops"));
    assert_eq!(reqwest::get(ops).await.expect("GET").status().as_u16(), 200);
}
