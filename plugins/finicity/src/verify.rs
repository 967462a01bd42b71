//! Request authentication: `X-Finicity-Signature` (configurable name) is the lowercase hex
//! HMAC-SHA256 of the raw request body, keyed with the partner secret.

use tributary_plugin_sdk::model::v1::{InstanceInfo, Rejection, SecretInfo, VerificationState};
use tributary_plugin_sdk::secrets::{self, Secrets};
use tributary_plugin_sdk::verify::DISABLED_SWITCH;
use tributary_plugin_sdk::{Request, reject, verify};

use crate::config::Config;

/// Length of a hex-encoded SHA-256 MAC.
const SIGNATURE_HEX_LEN: usize = 64;

/// Checks requests against the configured secrets. Immutable after start-up.
#[derive(Debug)]
pub struct Verifier {
    /// The partner secrets (never empty), prepared once, each with its position, label and
    /// end; none (every request refused) or switched off.
    secrets: Secrets<verify::HmacKey>,
    /// The header name (matched case-insensitively).
    header: String,
    /// Warnings about the configuration itself (deprecated keys).
    config_warnings: Vec<String>,
}

impl Verifier {
    /// Builds the verifier from the config. Fails on an empty header name, on secrets together
    /// with `verification.disabled = true` (which one did the operator mean?) and on `secret`
    /// together with `verification.secrets`.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let header = config.signature_header.trim();
        if header.is_empty() {
            return Err("signature_header must not be empty".into());
        }
        let mut config_warnings = Vec::new();
        let legacy = config.secret.clone().filter(|secret| !secret.is_empty());
        let entries = secrets::merge_legacy(
            "finicity",
            config.verification.secrets.clone(),
            "secret",
            legacy,
            &mut config_warnings,
        )?;
        let secrets = Secrets::new(entries, config.verification.disabled, |secret| {
            Ok(verify::HmacKey::new(secret.as_bytes()))
        })?;
        Ok(Self {
            secrets,
            header: header.to_owned(),
            config_warnings,
        })
    }

    /// How this source verifies, for the host.
    pub fn instance_info(&self) -> InstanceInfo {
        self.secrets.instance_info()
    }

    /// Start-up warnings about this verifier.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.config_warnings.clone();
        match self.secrets.state() {
            VerificationState::NotConfigured => warnings.push(format!(
                "finicity: no secret configured: every webhook is rejected (401) until \
                 verification.secrets lists the partner secret (or verification is switched \
                 off explicitly with {DISABLED_SWITCH})"
            )),
            VerificationState::Disabled => warnings.push(verify::disabled_warning("finicity")),
            _ => {}
        }
        warnings.extend(self.secrets.expired_warnings("finicity", &secrets::now()));
        warnings
    }

    /// Accepts the request, saying which secret verified it, or says why not (the reason is
    /// only logged).
    pub fn verify(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        match self.secrets.state() {
            VerificationState::Disabled => return Ok(None),
            VerificationState::NotConfigured => {
                return Err(reject::unauthenticated("no secret configured"));
            }
            _ => {}
        }
        let header = &self.header;
        let signature = request
            .header(header)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| reject::unauthenticated(format!("missing {header} header")))?;
        if signature.len() != SIGNATURE_HEX_LEN || !signature.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(reject::unauthenticated(format!(
                "malformed {header}: expected {SIGNATURE_HEX_LEN} hex characters"
            )));
        }
        let at = secrets::request_time(request);
        self.secrets
            .find(&at, |secret| {
                secret.matches_hex(&[request.body()], signature)
            })
            .map(Some)
            .ok_or_else(|| {
                reject::unauthenticated(format!(
                    "{header} does not match the body with any secret valid at the receive time"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tributary_plugin_sdk::model::v1::{RejectionKind, WebhookRequest};
    use tributary_plugin_sdk::testing::{sign_hex, webhook};

    const BODY: &[u8] = br#"{"eventType":"ping","payload":{}}"#;

    fn sign(secret: &str, body: &[u8]) -> String {
        sign_hex(secret.as_bytes(), &[body])
    }

    fn verifier(config: serde_json::Value) -> Verifier {
        let config: Config = serde_json::from_value(config).expect("config parses");
        Verifier::from_config(&config).expect("verifier builds")
    }

    fn request(headers: &[(&str, &str)], body: &[u8]) -> WebhookRequest {
        webhook(body).headers(headers).build()
    }

    fn check(v: &Verifier, headers: &[(&str, &str)], body: &[u8]) -> Result<(), String> {
        let raw = request(headers, body);
        v.verify(&Request::new(&raw)).map(drop).map_err(|r| {
            assert_eq!(r.kind, RejectionKind::Unauthenticated as i32);
            r.reason
        })
    }

    #[test]
    fn correct_signature_passes_in_either_case() {
        let v = verifier(json!({"verification": {"secrets": ["s3cret"]}}));
        let sig = sign("s3cret", BODY);
        assert_eq!(check(&v, &[("X-Finicity-Signature", &sig)], BODY), Ok(()));
        let upper = sig.to_uppercase();
        assert_eq!(check(&v, &[("x-finicity-signature", &upper)], BODY), Ok(()));
        assert!(v.warnings().is_empty());
    }

    #[test]
    fn wrong_missing_and_malformed_signatures_are_refused() {
        let v = verifier(json!({"secret": "s3cret"}));
        let other_key = sign("other", BODY);
        let err = check(&v, &[("X-Finicity-Signature", &other_key)], BODY).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let tampered = sign("s3cret", BODY);
        let err = check(&v, &[("X-Finicity-Signature", &tampered)], b"{}").unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = check(&v, &[], BODY).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        let err = check(&v, &[("X-Finicity-Signature", "  ")], BODY).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        let not_hex = "z".repeat(64);
        let err = check(&v, &[("X-Finicity-Signature", &not_hex)], BODY).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        let short = &tampered[..63];
        let err = check(&v, &[("X-Finicity-Signature", short)], BODY).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        // The signature in another header does not count.
        let sig = sign("s3cret", BODY);
        let err = check(&v, &[("X-Signature", &sig)], BODY).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn header_name_is_configurable() {
        let v = verifier(json!({"secret": "s3cret", "signature_header": "X-Signature"}));
        let sig = sign("s3cret", BODY);
        assert_eq!(check(&v, &[("X-Signature", &sig)], BODY), Ok(()));
        assert!(check(&v, &[("X-Finicity-Signature", &sig)], BODY).is_err());
    }

    #[test]
    fn no_secret_rejects_everything_and_warns() {
        for config in [
            json!({}),
            json!({"secret": ""}),
            json!({"verification": {}}),
            json!({"verification": {"disabled": false}}),
        ] {
            let v = verifier(config);
            let sig = sign("", BODY);
            let err = check(&v, &[("X-Finicity-Signature", &sig)], BODY).unwrap_err();
            assert_eq!(err, "no secret configured");
            let warnings = v.warnings();
            assert_eq!(warnings.len(), 1);
            assert!(warnings.iter().all(|w| w.contains("no secret")));
        }
    }

    #[test]
    fn explicit_off_accepts_and_warns() {
        let v = verifier(json!({"verification": {"disabled": true}}));
        assert_eq!(check(&v, &[], BODY), Ok(()));
        assert!(
            v.warnings()
                .iter()
                .any(|w| w.contains("switched off") && w.contains(DISABLED_SWITCH))
        );
        // An empty secret is no secret: still just "off".
        let v = verifier(json!({"verification": {"disabled": true}, "secret": ""}));
        assert_eq!(check(&v, &[], BODY), Ok(()));
    }

    #[test]
    fn the_old_secret_key_still_verifies_with_a_deprecation_warning() {
        let v = verifier(json!({"secret": "s3cret"}));
        let sig = sign("s3cret", BODY);
        assert_eq!(check(&v, &[("X-Finicity-Signature", &sig)], BODY), Ok(()));
        assert_eq!(
            v.warnings(),
            vec![secrets::deprecated_key_warning(
                "finicity",
                "secret",
                "verification.secrets"
            )]
        );
        let both: Config =
            serde_json::from_value(json!({"secret": "s", "verification": {"secrets": ["n"]}}))
                .expect("parses");
        assert!(Verifier::from_config(&both).is_err());
    }

    #[test]
    fn rotation_each_secret_verifies_until_its_not_after() {
        let v = verifier(json!({"verification": {"secrets": [
            {"secret": "old", "label": "old", "not_after": "2024-01-01T00:00:00Z"},
            {"secret": "new", "label": "new"},
        ]}}));
        let at = |received: i64, secret: &str| {
            let raw = webhook(BODY)
                .header("X-Finicity-Signature", &sign(secret, BODY))
                .received_at(received)
                .build();
            v.verify(&Request::new(&raw))
                .map(|s| s.map(|s| (s.index, s.label)))
                .map_err(|r| r.reason)
        };
        let end = 1_704_067_200; // 2024-01-01T00:00:00Z
        assert_eq!(at(end, "old"), Ok(Some((0, "old".to_owned()))));
        assert_eq!(at(end, "new"), Ok(Some((1, "new".to_owned()))));
        assert!(at(end + 1, "old").is_err());
        assert_eq!(at(end + 1, "new"), Ok(Some((1, "new".to_owned()))));
        assert_eq!(v.instance_info().verification, VerificationState::On as i32);
    }

    #[test]
    fn switch_with_a_secret_is_refused() {
        let config: Config =
            serde_json::from_value(json!({"secret": "s", "verification": {"disabled": true}}))
                .expect("parses");
        let error = Verifier::from_config(&config).expect_err("refused");
        assert!(error.contains("cannot be combined"), "{error}");
    }

    #[test]
    fn config_refuses_typos_and_empty_header() {
        let typo: Result<Config, _> = serde_json::from_value(json!({"secert": "x"}));
        assert!(typo.is_err());
        for old in ["off", "none", "hmac"] {
            let bad: Result<Config, _> = serde_json::from_value(json!({"verification": old}));
            assert!(bad.is_err(), "{old}");
        }
        let typo: Result<Config, _> =
            serde_json::from_value(json!({"verification": {"disable": true}}));
        assert!(typo.is_err());
        let config: Config =
            serde_json::from_value(json!({"secret": "x", "signature_header": " "}))
                .expect("parses");
        assert!(Verifier::from_config(&config).is_err());
    }
}
