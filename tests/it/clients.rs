//! The client libraries against the real server: the Rust crate (`crates/client`) in this
//! process, the Python package (`clients/python`) through the venv `.ci/test` prepares, and
//! the README's examples, which are the example files these tests run.
//!
//! What each library must do: stream typed events; survive a server restart mid-stream with
//! no gap and no duplicate handed to the handler; resume a durable consumer after a client
//! restart; authenticate with a token; continue each event's trace so the consumer's span is
//! a child of the delivery, in the provider's trace, as the OTLP collector sees it.

pub(crate) mod python;
mod readme;
mod rust;

use std::time::Duration;

use crate::support::{ARCADIA_AUTH, Server, arcadia_source, arcadia_webhook, plugin_dir};

/// What the seed statement webhook becomes (every `whk_` id maps to this statement).
const STATEMENT_ID: &str = "stm_ccab4b86-30e6-0eb2-08a0-5bb9b1dc1b2b";

/// A team's token and the credentials that admit it (and an operator, for the Admin service).
const TOKEN: &str = "billing-team-token-0123456789";
const ADMIN_TOKEN: &str = "operators-token-0123456789";

fn credentials() -> String {
    format!(
        r#"
[[grpc.credentials]]
name = "billing"
token = "{TOKEN}"
consumers = ["billing*"]

[[grpc.credentials]]
name = "operators"
token = "{ADMIN_TOKEN}"
admin = true
"#
    )
}

/// A server serving Arcadia; returns it with its gRPC address (`host:port`).
fn start_server(config: &str, env: &[(&str, &str)]) -> (Server, String) {
    let server = Server::start_with_env(&format!("{config}{}", arcadia_source("")), env);
    let grpc = server.grpc.to_string();
    (server, grpc)
}

/// Kills `server` (SIGKILL, mid-stream) and starts it again on the same ports and data, so
/// clients find it where they left it.
fn restart(server: Server) -> Server {
    server.restart_on_same_ports(&plugin_dir())
}

/// Posts statement webhooks `whk_{prefix}-{i}` for each i; asserts each is stored.
async fn post_statements(server: &Server, prefix: &str, ids: std::ops::Range<u32>) {
    for i in ids {
        let (status, body) = server
            .post(
                "arcadia",
                &arcadia_webhook(&format!("whk_{prefix}-{i}")),
                &ARCADIA_AUTH,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], 1, "{body}");
    }
}

/// The line both examples print for the statement event at `sequence`.
fn example_line(sequence: u64) -> String {
    format!("{sequence} statement.available {STATEMENT_ID}")
}

/// A durable consumer's acknowledged sequence, as the Admin service reports it, once it
/// reaches `expected` (panics after 15 s with the last value).
async fn wait_acked(server: &Server, consumer: &str, expected: u64) {
    use tonic::metadata::MetadataValue;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut admin = server.admin().await;
    loop {
        let mut request = tonic::Request::new(tributary_model::v1::ListConsumersRequest {});
        let bearer: MetadataValue<_> = format!("Bearer {ADMIN_TOKEN}").parse().expect("header");
        request.metadata_mut().insert("authorization", bearer);
        let acked = admin
            .list_consumers(request)
            .await
            .expect("list consumers")
            .into_inner()
            .consumers
            .into_iter()
            .find(|c| c.name == consumer)
            .map(|c| c.acked_sequence);
        if acked == Some(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{consumer} acked {acked:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
