//! `[shadow]`: the limits every shadowed candidate runs within.

use serde::Deserialize;

/// `[shadow]`: how much a candidate may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    /// Budget of one candidate call, ms; past it the webhook counts as a `timeout`.
    pub call_timeout_ms: u64,
    /// Candidate calls running at once per source, timed-out ones included until they return.
    pub max_calls_in_flight: usize,
    /// Webhooks waiting for the candidate per source; a copy past it is dropped and counted as
    /// an `overload`.
    pub queue: usize,
    /// Differing webhooks kept per source (newest first).
    pub keep: usize,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            call_timeout_ms: 1000,
            max_calls_in_flight: 4,
            queue: 1024,
            keep: 50,
        }
    }
}
