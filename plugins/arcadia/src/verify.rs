//! Webhook authentication: expected custom headers / query parameters (the current API) and the
//! legacy HMAC signature (the 2022 API). Every configured check must pass.

use tributary_plugin_sdk::Request;
use tributary_plugin_sdk::model::v1::{InstanceInfo, Rejection, SecretInfo, VerificationState};
use tributary_plugin_sdk::reject;
use tributary_plugin_sdk::secrets::{self, Secrets};
use tributary_plugin_sdk::verify::{DISABLED_SWITCH, HmacKey, constant_time_eq, disabled_warning};

use crate::config::VerificationConfig;

/// Header carrying the legacy signature's Unix timestamp.
pub const TIMESTAMP_HEADER: &str = "Arc-Webhook-Timestamp";
/// Header carrying the legacy hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "Arc-Webhook-Signature";

/// The header the custom token is expected in when `verification.header` is not set.
pub const DEFAULT_TOKEN_HEADER: &str = "X-Arcadia-Token";

/// The checks configured for a source, ready to run.
pub struct Verifier {
    /// The custom header's accepted values (`verification.secrets`), each with its position,
    /// label and end: any one still valid verifies.
    tokens: Secrets<Vec<u8>>,
    /// The header the tokens are expected in.
    token_header: String,
    /// Deprecated `verification.headers`: every one must match.
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// The legacy HMAC key (prepared once) and the timestamp tolerance in seconds.
    hmac: Option<(HmacKey, u64)>,
    /// Switched off explicitly (`verification.disabled = true`): everything is accepted.
    disabled: bool,
    /// Warnings about the configuration itself (deprecated keys).
    config_warnings: Vec<String>,
}

impl Verifier {
    /// Builds the checks; refuses empty names, values and secrets (they would match too much),
    /// and `disabled` together with a check (which one did the operator mean?).
    pub fn from_config(config: VerificationConfig) -> Result<Self, String> {
        for (kind, map) in [("headers", &config.headers), ("query", &config.query)] {
            for (name, value) in map {
                if name.is_empty() || value.is_empty() {
                    return Err(format!(
                        "verification.{kind}: names and expected values must not be empty"
                    ));
                }
            }
        }
        let hmac = match config.legacy_hmac {
            Some(h) if h.secret.is_empty() => {
                return Err("verification.legacy_hmac.secret must not be empty".into());
            }
            Some(h) => Some((HmacKey::new(h.secret.as_bytes()), h.tolerance_seconds)),
            None => None,
        };
        let mut config_warnings = Vec::new();
        if !config.headers.is_empty() {
            config_warnings.push(secrets::deprecated_key_warning(
                "arcadia",
                "verification.headers",
                "verification.secrets (with verification.header naming the header)",
            ));
        }
        let token_header = config
            .header
            .unwrap_or_else(|| DEFAULT_TOKEN_HEADER.to_owned());
        if token_header.trim().is_empty() {
            return Err("verification.header must not be empty".into());
        }
        // `disabled` together with secrets is refused below with the other checks.
        let tokens = Secrets::new(config.secrets, false, |token| Ok(token.as_bytes().to_vec()))?;
        let verifier = Self {
            tokens,
            token_header,
            config_warnings,
            headers: config.headers.into_iter().collect(),
            query: config.query.into_iter().collect(),
            hmac,
            disabled: config.disabled,
        };
        if verifier.disabled && verifier.has_checks() {
            return Err(format!(
                "{DISABLED_SWITCH} cannot be combined with verification.secrets, \
                 verification.headers, verification.query or verification.legacy_hmac: remove \
                 one of them"
            ));
        }
        Ok(verifier)
    }

    /// Whether any check is configured.
    pub fn has_checks(&self) -> bool {
        !self.tokens.is_empty()
            || !self.headers.is_empty()
            || !self.query.is_empty()
            || self.hmac.is_some()
    }

    /// On (a check is configured), not configured (every webhook refused) or switched off.
    pub fn state(&self) -> VerificationState {
        if self.disabled {
            VerificationState::Disabled
        } else if self.has_checks() {
            VerificationState::On
        } else {
            VerificationState::NotConfigured
        }
    }

    /// How this source verifies, for the host: the state and the header tokens.
    pub fn instance_info(&self) -> InstanceInfo {
        InstanceInfo {
            verification: self.state() as i32,
            secrets: self.tokens.infos(),
        }
    }

    /// Start-up warnings about the configured checks.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.config_warnings.clone();
        warnings.extend(self.tokens.expired_warnings("arcadia", &secrets::now()));
        if self.disabled {
            warnings.push(disabled_warning("arcadia"));
        } else if !self.has_checks() {
            warnings.push(format!(
                "arcadia: webhook verification is not configured: every webhook is rejected \
                 (401) until verification.secrets (the custom header's values agreed with \
                 Arcadia), verification.query or verification.legacy_hmac is set, or \
                 verification is switched off with {DISABLED_SWITCH}"
            ));
        } else if self.tokens.is_empty() && self.headers.is_empty() && self.hmac.is_none() {
            warnings.push(
                "arcadia: verification relies on query parameters only; they may appear in \
                 proxy access logs, prefer a custom header"
                    .to_owned(),
            );
        }
        warnings
    }

    /// Runs every configured check; says which header token verified (when tokens are
    /// configured). Reasons name the failing check, never a value. Without any check every
    /// request is rejected, unless verification is switched off.
    pub fn verify(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        if self.disabled {
            return Ok(None);
        }
        if !self.has_checks() {
            return Err(reject::unauthenticated(
                "verification is not configured for this source",
            ));
        }
        let mut verified_by = None;
        if !self.tokens.is_empty() {
            let name = &self.token_header;
            let actual = request
                .header(name)
                .ok_or_else(|| reject::unauthenticated(format!("missing header `{name}`")))?;
            let at = secrets::request_time(request);
            let token = self
                .tokens
                .find(&at, |token| constant_time_eq(actual.as_bytes(), token))
                .ok_or_else(|| {
                    reject::unauthenticated(format!(
                        "header `{name}` does not match any secret valid at the receive time"
                    ))
                })?;
            verified_by = Some(token);
        }
        for (name, expected) in &self.headers {
            let actual = request
                .header(name)
                .ok_or_else(|| reject::unauthenticated(format!("missing header `{name}`")))?;
            if !constant_time_eq(actual.as_bytes(), expected.as_bytes()) {
                return Err(reject::unauthenticated(format!(
                    "header `{name}` does not match"
                )));
            }
        }
        for (name, expected) in &self.query {
            let actual = request.query_param(name).ok_or_else(|| {
                reject::unauthenticated(format!("missing query parameter `{name}`"))
            })?;
            if !constant_time_eq(&percent_decode(actual), expected.as_bytes()) {
                return Err(reject::unauthenticated(format!(
                    "query parameter `{name}` does not match"
                )));
            }
        }
        if let Some((secret, tolerance)) = &self.hmac {
            verify_legacy_hmac(request, secret, *tolerance)?;
        }
        Ok(verified_by)
    }
}

fn verify_legacy_hmac(
    request: &Request<'_>,
    secret: &HmacKey,
    tolerance: u64,
) -> Result<(), Rejection> {
    let timestamp_text = request
        .header(TIMESTAMP_HEADER)
        .ok_or_else(|| reject::unauthenticated(format!("missing header `{TIMESTAMP_HEADER}`")))?;
    let signature = request
        .header(SIGNATURE_HEADER)
        .ok_or_else(|| reject::unauthenticated(format!("missing header `{SIGNATURE_HEADER}`")))?;
    let timestamp: i64 = timestamp_text.trim().parse().map_err(|_| {
        reject::unauthenticated(format!("`{TIMESTAMP_HEADER}` is not Unix seconds"))
    })?;
    let received = request
        .received_at()
        .map(|t| t.seconds)
        .ok_or_else(|| reject::unauthenticated("request has no receive time"))?;
    if received.abs_diff(timestamp) > tolerance {
        return Err(reject::unauthenticated(format!(
            "`{TIMESTAMP_HEADER}` is more than {tolerance} s from the receive time"
        )));
    }
    let parts: [&[u8]; 3] = [timestamp_text.as_bytes(), b".", request.body()];
    if !secret.matches_hex(&parts, signature) {
        return Err(reject::unauthenticated(format!(
            "`{SIGNATURE_HEADER}` does not match the body"
        )));
    }
    Ok(())
}

/// Decodes `%XX` escapes (an HTTP client may encode `/` or `,`); other bytes are kept as is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes.get(i) == Some(&b'%'))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.extend(bytes.get(i).copied());
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LegacyHmacConfig;
    use std::collections::BTreeMap;
    use tributary_plugin_sdk::model::v1::WebhookRequest;
    use tributary_plugin_sdk::secrets::SecretEntry;
    use tributary_plugin_sdk::testing::{sign_hex, webhook};

    const NOW: i64 = 1_704_067_200;
    const BODY: &[u8] = br#"{"id":"whk_1","eventType":"STATUS_CHANGE"}"#;

    fn request(headers: &[(&str, &str)], query: &str) -> WebhookRequest {
        webhook(BODY)
            .headers(headers)
            .query(query)
            .received_at(NOW)
            .build()
    }

    fn verifier(headers: &[(&str, &str)], query: &[(&str, &str)], hmac: bool) -> Verifier {
        let own = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        // One header: the current spelling (`header` + `secrets`).
        assert!(headers.len() <= 1);
        Verifier::from_config(VerificationConfig {
            disabled: false,
            header: headers.first().map(|(name, _)| (*name).to_owned()),
            secrets: headers
                .iter()
                .map(|(_, value)| SecretEntry::bare(*value))
                .collect(),
            headers: BTreeMap::new(),
            query: own(query),
            legacy_hmac: hmac.then(|| LegacyHmacConfig {
                secret: "s3cret".into(),
                tolerance_seconds: 300,
            }),
        })
        .expect("valid config")
    }

    #[test]
    fn the_old_headers_table_still_verifies_with_a_deprecation_warning() {
        let v = Verifier::from_config(VerificationConfig {
            headers: [("X-Token".to_owned(), "h".to_owned())].into(),
            ..Default::default()
        })
        .expect("valid");
        assert!(check(&v, &request(&[("X-Token", "h")], "")));
        assert!(!check(&v, &request(&[("X-Token", "x")], "")));
        assert_eq!(
            v.warnings(),
            vec![secrets::deprecated_key_warning(
                "arcadia",
                "verification.headers",
                "verification.secrets (with verification.header naming the header)"
            )]
        );
        assert_eq!(v.state(), VerificationState::On);
    }

    #[test]
    fn rotation_each_token_verifies_until_its_not_after_and_is_named() {
        let config: VerificationConfig = serde_json::from_value(serde_json::json!({
            "secrets": [
                {"secret": "old-token", "label": "old", "not_after": "2024-01-01T00:00:00Z"},
                {"secret": "new-token", "label": "new"}
            ]
        }))
        .expect("parses");
        let v = Verifier::from_config(config).expect("valid");
        let at = |token: &str, received: i64| {
            let raw = webhook(BODY)
                .header(DEFAULT_TOKEN_HEADER, token)
                .received_at(received)
                .build();
            v.verify(&Request::new(&raw))
                .map(|s| s.map(|s| (s.index, s.label)))
                .map_err(|r| r.reason)
        };
        assert_eq!(at("old-token", NOW), Ok(Some((0, "old".to_owned()))));
        assert_eq!(at("new-token", NOW), Ok(Some((1, "new".to_owned()))));
        assert!(at("old-token", NOW + 1).is_err());
        assert_eq!(at("new-token", NOW + 1), Ok(Some((1, "new".to_owned()))));
        assert!(at("other", NOW).is_err());
        let info = v.instance_info();
        assert_eq!(info.verification, VerificationState::On as i32);
        assert_eq!(info.secrets.len(), 2);
    }

    fn check(v: &Verifier, req: &WebhookRequest) -> bool {
        v.verify(&Request::new(req)).is_ok()
    }

    fn signed(timestamp: i64, secret: &[u8]) -> WebhookRequest {
        let ts = timestamp.to_string();
        let sig = sign_hex(secret, &[ts.as_bytes(), b".", BODY]);
        request(&[(TIMESTAMP_HEADER, &ts), (SIGNATURE_HEADER, &sig)], "")
    }

    #[test]
    fn header_match_is_case_insensitive_on_the_name() {
        let v = verifier(&[("X-Arcadia-Token", "abc-123")], &[], false);
        assert!(check(&v, &request(&[("x-arcadia-token", "abc-123")], "")));
        assert!(!check(&v, &request(&[("x-arcadia-token", "abc-124")], "")));
        assert!(!check(&v, &request(&[], "")));
    }

    #[test]
    fn query_match_decodes_escapes() {
        let v = verifier(&[], &[("token", "a/b,c")], false);
        assert!(check(&v, &request(&[], "x=1&token=a/b,c")));
        assert!(check(&v, &request(&[], "token=a%2Fb%2cc")));
        assert!(!check(&v, &request(&[], "token=a/b")));
        assert!(!check(&v, &request(&[], "other=a/b,c")));
    }

    #[test]
    fn every_configured_check_must_pass() {
        let v = verifier(&[("X-Token", "h")], &[("token", "q")], false);
        assert!(check(&v, &request(&[("X-Token", "h")], "token=q")));
        assert!(!check(&v, &request(&[("X-Token", "h")], "token=x")));
        assert!(!check(&v, &request(&[("X-Token", "x")], "token=q")));
    }

    #[test]
    fn legacy_hmac_ok_stale_and_wrong() {
        let v = verifier(&[], &[], true);
        assert!(check(&v, &signed(NOW - 299, b"s3cret")));
        assert!(check(&v, &signed(NOW + 300, b"s3cret")));
        assert!(!check(&v, &signed(NOW - 301, b"s3cret")), "stale");
        assert!(!check(&v, &signed(NOW + 301, b"s3cret")), "future");
        assert!(!check(&v, &signed(NOW, b"other")), "wrong secret");
        assert!(
            !check(&v, &request(&[(TIMESTAMP_HEADER, "x")], "")),
            "garbage"
        );
        assert!(!check(&v, &request(&[], "")), "missing");
    }

    #[test]
    fn nothing_configured_rejects_everything_and_warns() {
        let v = verifier(&[], &[], false);
        assert!(!v.has_checks());
        assert_eq!(v.state(), VerificationState::NotConfigured);
        let rejection = v.verify(&Request::new(&request(&[], ""))).unwrap_err();
        assert_eq!(
            rejection.kind,
            tributary_plugin_sdk::model::v1::RejectionKind::Unauthenticated as i32
        );
        assert!(!check(&v, &signed(NOW, b"s3cret")));
        assert!(!check(&v, &request(&[("X-Arcadia-Token", "x")], "token=x")));
        let warnings = v.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("every webhook is rejected"),
            "{warnings:?}"
        );
        assert!(
            verifier(&[("X-Token", "h")], &[], false)
                .warnings()
                .is_empty()
        );
    }

    #[test]
    fn explicit_switch_accepts_and_warns() {
        let v = Verifier::from_config(VerificationConfig {
            disabled: true,
            ..Default::default()
        })
        .expect("valid");
        assert!(check(&v, &request(&[], "")));
        let warnings = v.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("verification.disabled = true"),
            "{warnings:?}"
        );
    }

    #[test]
    fn switch_and_checks_together_are_refused() {
        let config = VerificationConfig {
            disabled: true,
            headers: [("X-Token".to_owned(), "h".to_owned())].into(),
            ..Default::default()
        };
        let error = Verifier::from_config(config).err().expect("refused");
        assert!(error.contains("cannot be combined"), "{error}");
        let config = VerificationConfig {
            disabled: true,
            legacy_hmac: Some(LegacyHmacConfig {
                secret: "s".into(),
                tolerance_seconds: 300,
            }),
            ..Default::default()
        };
        assert!(Verifier::from_config(config).is_err());
    }

    #[test]
    fn empty_expected_values_are_refused() {
        let config = VerificationConfig {
            headers: [("X-Token".to_owned(), String::new())].into(),
            ..Default::default()
        };
        assert!(Verifier::from_config(config).is_err());
        let config = VerificationConfig {
            legacy_hmac: Some(LegacyHmacConfig {
                secret: String::new(),
                tolerance_seconds: 300,
            }),
            ..Default::default()
        };
        assert!(Verifier::from_config(config).is_err());
        assert_eq!(percent_decode("%zz%4"), b"%zz%4".to_vec());
    }
}
