//! A durable consumer in ten lines: every statement event, typed, acknowledged in batches,
//! resumed after restarts. The README's "Consume the stream" shows this file; CI runs it
//! against the real server (tests/it/clients.rs).
//!
//! ```text
//! TRIBUTARY_ADDRESS=http://127.0.0.1:50051 TRIBUTARY_TOKEN=... \
//!   cargo run -p tributary-client --example consume
//! ```

use tributary_client::prelude::*;

#[tokio::main]
async fn main() -> Result<(), tributary_client::Error> {
    let address = std::env::var("TRIBUTARY_ADDRESS").unwrap_or("http://127.0.0.1:50051".into());
    let token = std::env::var("TRIBUTARY_TOKEN").unwrap_or_default();
    let client = Client::builder(address).token(token).connect().await?;
    let mut events = client.consumer("billing", Filter::types(["statement.*"]), Start::Earliest);
    while let Some(event) = events.next().await {
        let event = event?;
        if let Some(Payload::Statement(statement)) = &event.payload {
            println!("{} {} {}", event.sequence, event.r#type, statement.id);
        }
        events.ack(&event);
    }
    Ok(())
}
