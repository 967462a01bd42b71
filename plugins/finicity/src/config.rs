//! The source's `config` table for the Finicity adapter.

use serde::Deserialize;
use tributary_plugin_sdk::personal_data::PersonalDataPolicy;
use tributary_plugin_sdk::verify::VerificationSwitch;

/// The header Finicity (US) puts the body signature in.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Finicity-Signature";

/// Adapter configuration, e.g. (TOML):
///
/// ```toml
/// [sources.finicity.config]
/// secret = "partner-secret"
/// signature_header = "X-Finicity-Signature"   # "X-Signature" for Mastercard AU
/// # verification = { disabled = true }         # local testing only: accept unsigned webhooks
/// personal_data = { default = "hash" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The partner secret the signature is keyed with.
    #[serde(default)]
    pub secret: Option<String>,
    /// The header holding the signature.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// `{"disabled": true}` accepts unsigned requests (with a start-up warning); it cannot be
    /// combined with a `secret`. Otherwise requests must carry the HMAC, and without a secret
    /// every request is rejected.
    #[serde(default)]
    pub verification: VerificationSwitch,
    /// Treatment of personal data (field `account_number`).
    #[serde(default)]
    pub personal_data: PersonalDataPolicy,
}

fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}
