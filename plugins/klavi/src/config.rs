//! The source's `config` table for the Klavi adapter.

use serde::Deserialize;
use tributary_plugin_sdk::personal_data::PersonalDataPolicy;

/// Default header carrying the hex HMAC-SHA256 of the body.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Klavi-Signature";
/// Default header carrying the unix-seconds send time.
pub const DEFAULT_TIMESTAMP_HEADER: &str = "X-Klavi-Timestamp";
/// Default freshness window for the timestamp header, in seconds.
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 300;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMode {
    /// `X-Klavi-Signature` must be the hex HMAC-SHA256 of the raw body under `secret_key`.
    #[default]
    Hmac,
    /// No verification at all (explicit opt-out; a start-up warning says so).
    None,
}

/// Configuration of one Klavi source.
///
/// ```json
/// {"secret_key": "...", "signature_header": "X-Klavi-Signature",
///  "timestamp_header": "X-Klavi-Timestamp", "max_age_seconds": 300,
///  "verification": "hmac", "personal_data": {"default": "hash"}}
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The partner's Klavi secretKey. Without it (and `verification = "hmac"`) every request
    /// is refused.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Header holding the signature.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Header holding the unix-seconds timestamp (checked only when present).
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// Largest accepted distance, in seconds, between the timestamp header and the time the
    /// request was received (either direction). 0 switches the timestamp check off.
    #[serde(default = "default_max_age_seconds")]
    pub max_age_seconds: u64,
    /// `"hmac"` (default) or `"none"`.
    #[serde(default)]
    pub verification: VerificationMode,
    /// Treatment of `personal_tax_id` (CPF) and `business_tax_id` (CNPJ).
    #[serde(default)]
    pub personal_data: PersonalDataPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret_key: None,
            signature_header: default_signature_header(),
            timestamp_header: default_timestamp_header(),
            max_age_seconds: DEFAULT_MAX_AGE_SECONDS,
            verification: VerificationMode::default(),
            personal_data: PersonalDataPolicy::default(),
        }
    }
}

fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}

fn default_timestamp_header() -> String {
    DEFAULT_TIMESTAMP_HEADER.to_owned()
}

fn default_max_age_seconds() -> u64 {
    DEFAULT_MAX_AGE_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_takes_defaults() {
        let config: Config = serde_json::from_str("{}").expect("valid");
        assert_eq!(config.verification, VerificationMode::Hmac);
        assert_eq!(config.signature_header, DEFAULT_SIGNATURE_HEADER);
        assert_eq!(config.max_age_seconds, 300);
        assert!(config.secret_key.is_none());
    }

    #[test]
    fn typos_are_refused() {
        assert!(serde_json::from_str::<Config>(r#"{"secret": "x"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"verification": "off"}"#).is_err());
    }
}
