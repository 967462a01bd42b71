//! A consumer of Tributary's event stream in a few lines.
//!
//! ```no_run
//! use tributary_client::prelude::*;
//!
//! # async fn run() -> Result<(), tributary_client::Error> {
//! let client = Client::builder("http://127.0.0.1:50051").token("team-token").connect().await?;
//! let mut events = client.subscribe(Filter::types(["statement.*"]), Start::Earliest);
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}", event.sequence, event.r#type);
//! }
//! # Ok(()) }
//! ```
//!
//! What it does for the consumer:
//! - **Resume with no gap and no duplicate**: a broken stream (server restart, network) is
//!   reopened with exponential backoff after the last sequence handed out; an event at or
//!   below it is never handed out twice by one stream.
//! - **Durable consumers** ([`Client::consumer`]): the server keeps the position; acks are
//!   batched (after N events or T ms) and flushed when the consumer is closed or dropped.
//! - **Typed events**: [`Event`] is the prost type of `tributary.v1.Event`; its payload is the
//!   [`Payload`] enum.
//! - **Trace continuation** ([`trace`]): each event's `traceparent`/`tracestate` as an
//!   OpenTelemetry context, so the consumer's span is a child of the delivery.
//! - **Backpressure**: nothing is read ahead of the caller beyond gRPC's flow-control window;
//!   a slow consumer slows its own stream, not its memory.

mod ack;
mod backoff;
mod call;
mod connect;
mod error;
mod subscribe;
pub mod trace;

pub use ack::AckBatch;
pub use backoff::Backoff;
pub use connect::{Client, ClientBuilder};
pub use error::Error;
pub use subscribe::{Consumer, Start, Subscription};
/// The canonical model (`tributary.v1`): every message type, with its proto3 JSON mapping.
pub use tributary_model::v1 as model;
pub use tributary_model::v1::event::Payload;
pub use tributary_model::v1::{Event, Filter};

/// What a consumer needs in scope: `use tributary_client::prelude::*;`.
pub mod prelude {
    pub use crate::{Client, Event, Filter, FilterExt, Payload, Start};
    pub use futures_util::StreamExt;
}

/// Shorthands for the [`Filter`] of a subscription.
pub trait FilterExt {
    /// Events of these types: exact (`statement.available`) or a domain prefix (`consent.*`).
    fn types<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Filter;
    /// Events from these sources (exact names).
    fn sources<I: IntoIterator<Item = S>, S: Into<String>>(sources: I) -> Filter;
    /// Every event the credential may read.
    fn all() -> Filter;
}

impl FilterExt for Filter {
    fn types<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Filter {
        Filter {
            sources: Vec::new(),
            types: types.into_iter().map(Into::into).collect(),
        }
    }

    fn sources<I: IntoIterator<Item = S>, S: Into<String>>(sources: I) -> Filter {
        Filter {
            sources: sources.into_iter().map(Into::into).collect(),
            types: Vec::new(),
        }
    }

    fn all() -> Filter {
        Filter::default()
    }
}
