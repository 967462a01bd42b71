//! Shared helpers of the integration tests.

pub mod adapters;
pub mod server;

pub use server::*;
