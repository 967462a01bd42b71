//! The source's `config` table for the Finicity adapter.

use serde::Deserialize;
use tributary_plugin_sdk::personal_data::PersonalDataPolicy;
use tributary_plugin_sdk::secrets::Verification;

/// The header Finicity (US) puts the body signature in.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Finicity-Signature";

/// Adapter configuration, e.g. (TOML):
///
/// ```toml
/// [sources.finicity.config]
/// verification = { secrets = [{ secret = "partner-secret", label = "2026-12" }] }
/// # verification = { disabled = true }         # local testing only: accept unsigned webhooks
/// signature_header = "X-Finicity-Signature"   # "X-Signature" for Mastercard AU
/// personal_data = { default = "hash" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deprecated spelling of one `verification.secrets` entry (still read, with a start-up
    /// warning).
    #[serde(default)]
    pub secret: Option<String>,
    /// The header holding the signature.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// `{"secrets": [...]}`: the partner secrets the signature is keyed with, each with an
    /// optional label and `not_after` (rotation); without one every request is rejected.
    /// `{"disabled": true}` accepts unsigned requests (with a start-up warning).
    #[serde(default)]
    pub verification: Verification,
    /// Treatment of personal data (field `account_number`).
    #[serde(default)]
    pub personal_data: PersonalDataPolicy,
}

fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}
