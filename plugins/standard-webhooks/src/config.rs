//! The source's `config` table: verification keys, timestamp tolerance and the type mapping.

use std::collections::BTreeMap;

use serde::Deserialize;
use tributary_plugin_sdk::secrets::Verification;

/// Adapter configuration. Unknown keys are refused so typos surface at start-up.
///
/// ```json
/// {
///   "verification": {"secrets": [
///     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
///     {"secret": "whpk_...", "label": "2026-12", "not_after": "2026-12-31T00:00:00Z"}
///   ]},
///   "tolerance_seconds": 300,
///   "type_prefix": "acme.",
///   "types": {"invoice.paid": "payment.received"}
/// }
/// ```
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deprecated spelling of `verification.secrets` (still read, with a start-up warning).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Largest accepted distance, either way, between `webhook-timestamp` and the receive
    /// time.
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u64,
    /// Put before the payload's `type` to make the canonical type (types in `types` excepted).
    #[serde(default)]
    pub type_prefix: String,
    /// Payload `type` -> canonical type, used as is.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
    /// `{"secrets": [...]}`: `whsec_<base64>` (HMAC-SHA256, `v1` signatures) and
    /// `whpk_<base64>` (Ed25519 public keys, `v1a` signatures), each with an optional label and
    /// `not_after`. Any one valid signature by any key still valid verifies a webhook, so an old
    /// and a new secret can be listed together while a provider rotates. None = every webhook
    /// is rejected (401), with a start-up warning. `{"disabled": true}` accepts webhooks
    /// without any check (local testing only; a start-up warning says so).
    #[serde(default)]
    pub verification: Verification,
}

/// The specification's recommended tolerance: five minutes.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECONDS
}

/// Longest accepted type, payload or canonical.
pub const MAX_TYPE_LEN: usize = 128;

/// Whether `text` can be an event type: 1 to [`MAX_TYPE_LEN`] characters of
/// `A-Z a-z 0-9 _ - . :` (the specification recommends full-stop delimited `[a-zA-Z0-9_]`).
pub fn is_type(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_TYPE_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

impl Config {
    /// Checks what serde cannot: the tolerance, and that the prefix and the mapped types make
    /// valid types.
    pub fn validate(&self) -> Result<(), String> {
        if self.tolerance_seconds == 0 {
            return Err("tolerance_seconds must be at least 1".into());
        }
        if !self.type_prefix.is_empty() && !is_type(&self.type_prefix) {
            return Err(format!(
                "type_prefix {:?} must be characters of A-Z a-z 0-9 _ - . : (at most \
                 {MAX_TYPE_LEN})",
                self.type_prefix
            ));
        }
        for (from, to) in &self.types {
            if !is_type(from) || !is_type(to) {
                return Err(format!(
                    "types: {from:?} = {to:?}: both must be 1 to {MAX_TYPE_LEN} characters of \
                     A-Z a-z 0-9 _ - . :"
                ));
            }
        }
        Ok(())
    }
}
