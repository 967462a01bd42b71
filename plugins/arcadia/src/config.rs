//! The source's `config` table: verification secrets, personal-data policy and currency.

use std::collections::BTreeMap;

use serde::Deserialize;
use tributary_plugin_sdk::personal_data::PersonalDataPolicy;
use tributary_plugin_sdk::secrets::SecretEntry;

/// Adapter configuration. Unknown keys are refused so typos surface at start-up.
///
/// ```json
/// {
///   "verification": {
///     "header": "X-Arcadia-Token",
///     "secrets": [{"secret": "...", "label": "2026-12"},
///                 {"secret": "...", "not_after": "2026-12-31T00:00:00Z"}],
///     "query": {"token": "..."},
///     "legacy_hmac": {"secret": "...", "tolerance_seconds": 300}
///   },
///   // or, for local testing only: "verification": {"disabled": true}
///   "personal_data": {"default": "hash", "fields": {"username": "mask"}},
///   "default_currency": "USD"
/// }
/// ```
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How webhooks are authenticated. Nothing configured = every webhook is rejected (401),
    /// with a start-up warning; `{"disabled": true}` switches verification off explicitly.
    #[serde(default)]
    pub verification: VerificationConfig,
    /// Treatment of usernames, account numbers and meter numbers.
    #[serde(default)]
    pub personal_data: PersonalDataPolicy,
    /// Currency for amounts whose `currencyCode` is null (Arcadia sends null today). Empty (the
    /// default) leaves `Money.currency_code` empty, as the provider sent none.
    #[serde(default)]
    pub default_currency: String,
}

/// Verification modes. Every configured check must pass; they can be combined. With none
/// configured every webhook is rejected, unless `disabled` is set (and then no check may be).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationConfig {
    /// Accept webhooks without any check (local testing only; a start-up warning says so).
    /// The same spelling as every other adapter: `"verification": {"disabled": true}`.
    #[serde(default)]
    pub disabled: bool,
    /// The accepted values of the custom header Arcadia is set up to send (named by
    /// `header`), each with an optional label and `not_after`: any one still valid verifies,
    /// so an old and a new value overlap during a rotation.
    #[serde(default)]
    pub secrets: Vec<SecretEntry>,
    /// The custom header the `secrets` are expected in (default `X-Arcadia-Token`).
    #[serde(default)]
    pub header: Option<String>,
    /// Deprecated: custom headers, name -> expected value, every one required (still read,
    /// with a start-up warning; `header` + `secrets` replace it).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Custom query parameters Arcadia is set up to send, name -> expected value.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The 2022 API's signature (`Arc-Webhook-Timestamp` / `Arc-Webhook-Signature`).
    #[serde(default)]
    pub legacy_hmac: Option<LegacyHmacConfig>,
}

/// The legacy HMAC-SHA256 signature mode.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyHmacConfig {
    /// The webhook signing secret.
    pub secret: String,
    /// Largest accepted distance between the signed timestamp and the receive time.
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u64,
}

fn default_tolerance() -> u64 {
    300
}

impl Config {
    /// Checks values serde cannot: the currency code's shape.
    pub fn validate(&self) -> Result<(), String> {
        let currency = &self.default_currency;
        if !currency.is_empty()
            && (currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!(
                "default_currency must be an ISO 4217 code such as \"USD\", got {currency:?}"
            ));
        }
        Ok(())
    }
}
