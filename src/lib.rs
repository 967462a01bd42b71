//! Tributary: turns third-party webhooks into one canonical, typed event stream.
//!
//! The data path is one straight line, one folder per stage:
//! [`ingest`] receives (`ingest::http`), verifies and normalizes through the source's adapter
//! ([`sources`]) and appends to the event log; [`stream`] delivers from the log. Around it:
//! [`admin`] (consumers, dead letters, redrive, adapters), [`console`] (the operators' web
//! console over the same calls), [`ops`] (metrics, traces, health),
//! [`auth`], [`config`], [`server`] (wiring) and [`cli`]. [`App`](app::App) is the state they
//! share; [`error`] is the one error taxonomy.

pub mod admin;
pub mod app;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod diff;
pub mod error;
mod files;
pub mod health;
pub mod ingest;
pub mod ops;
pub mod rate_limit;
pub mod server;
pub mod sources;
pub mod stream;

/// The generated gRPC services and clients of `tributary.v1`.
pub use tributary_model::grpc as proto;
