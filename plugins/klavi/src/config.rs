//! The source's `config` table for the Klavi adapter.

use serde::Deserialize;
use tributary_plugin_sdk::personal_data::PersonalDataPolicy;
use tributary_plugin_sdk::secrets::Verification;

/// Default header carrying the hex HMAC-SHA256 of the body.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Klavi-Signature";
/// Default header carrying the unix-seconds send time.
pub const DEFAULT_TIMESTAMP_HEADER: &str = "X-Klavi-Timestamp";
/// Default freshness window for the timestamp header, in seconds.
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 300;

/// Configuration of one Klavi source.
///
/// ```json
/// {"verification": {"secrets": [{"secret": "...", "label": "2026-12"}]},
///  "signature_header": "X-Klavi-Signature",
///  "timestamp_header": "X-Klavi-Timestamp", "max_age_seconds": 300,
///  "require_timestamp": true, "personal_data": {"default": "hash"}}
/// ```
///
/// Local testing only: `{"verification": {"disabled": true}}` (without `secret_key`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deprecated spelling of one `verification.secrets` entry (still read, with a start-up
    /// warning).
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Header holding the signature.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Header holding the unix-seconds timestamp.
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// Largest accepted distance, in seconds, between the timestamp header and the time the
    /// request was received (either direction). 0 switches the timestamp check off.
    #[serde(default = "default_max_age_seconds")]
    pub max_age_seconds: u64,
    /// Whether a request without the timestamp header is refused (401). Default: yes whenever
    /// the timestamp is checked (`max_age_seconds` > 0); `false` accepts such requests (signed,
    /// but with no freshness check, so a captured webhook can be replayed), with a warning.
    #[serde(default)]
    pub require_timestamp: Option<bool>,
    /// `{"secrets": [...]}`: the partner's Klavi secretKeys, each with an optional label and
    /// `not_after` (rotation). Without one every request is refused, unless switched off with
    /// `{"disabled": true}` (accepts unsigned requests, with a start-up warning).
    #[serde(default)]
    pub verification: Verification,
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
            require_timestamp: None,
            verification: Verification::default(),
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
        assert!(!config.verification.disabled);
        assert_eq!(config.require_timestamp, None);
        assert_eq!(config.signature_header, DEFAULT_SIGNATURE_HEADER);
        assert_eq!(config.max_age_seconds, 300);
        assert!(config.secret_key.is_none());
    }

    #[test]
    fn typos_are_refused() {
        assert!(serde_json::from_str::<Config>(r#"{"secret": "x"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"verification": "off"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"verification": "none"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"require_timestamps": true}"#).is_err());
    }
}
