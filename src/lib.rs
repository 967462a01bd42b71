//! Tributary: turns third-party webhooks into one canonical, typed event stream.
//!
//! The data path is one straight line: [`http`] receives, [`ingest`] runs the source's adapter
//! (verify, normalize) and appends to the event log, and [`grpc`] delivers from the log.

pub mod admin;
pub mod cli;
pub mod config;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod redact;
pub mod redrive;
pub mod server;
pub mod sources;
pub mod telemetry;

/// Generated gRPC services and clients of `tributary.v1` (messages live in `tributary_model`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("tributary.v1");
}
