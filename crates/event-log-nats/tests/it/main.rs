//! The NATS JetStream backend's tests, one binary: each test runs against real `nats-server`
//! processes of its own.

mod archive;
mod auth;
mod conformance;
mod retention;
mod support;
