//! The source's `config` table for the Finicity adapter.

use serde::Deserialize;
use tributary_plugin_sdk::personal_data::PersonalDataPolicy;

/// The header Finicity (US) puts the body signature in.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Finicity-Signature";

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// HMAC-SHA256 of the raw body, keyed with `secret`, lowercase hex in `signature_header`.
    #[default]
    Hmac,
    /// No verification at all: every request is accepted. Only for local testing; the adapter
    /// warns at start-up.
    None,
}

/// Adapter configuration, e.g. (TOML):
///
/// ```toml
/// [sources.finicity.config]
/// secret = "partner-secret"
/// signature_header = "X-Finicity-Signature"   # "X-Signature" for Mastercard AU
/// verification = "hmac"                       # or "none", explicitly
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
    /// `hmac` (the default) or `none`.
    #[serde(default)]
    pub verification: Verification,
    /// Treatment of personal data (field `account_number`).
    #[serde(default)]
    pub personal_data: PersonalDataPolicy,
}

fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}
