//! Request authentication: `X-Finicity-Signature` (configurable name) is the lowercase hex
//! HMAC-SHA256 of the raw request body, keyed with the partner secret.

use tributary_plugin_sdk::model::v1::Rejection;
use tributary_plugin_sdk::verify::DISABLED_SWITCH;
use tributary_plugin_sdk::{Request, reject, verify};

use crate::config::Config;

/// Length of a hex-encoded SHA-256 MAC.
const SIGNATURE_HEX_LEN: usize = 64;

/// Checks requests against the configured scheme. Immutable after start-up.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Check the HMAC in `header` with `secret`.
    Hmac {
        /// The partner secret (never empty), prepared once.
        secret: verify::HmacKey,
        /// The header name (matched case-insensitively).
        header: String,
    },
    /// Verification is on but no secret is configured: every request is refused.
    NoSecret,
    /// Verification is switched off explicitly.
    Off,
}

impl Verifier {
    /// Builds the verifier from the config. Fails on an empty header name, and on a secret
    /// together with `verification.disabled = true` (which one did the operator mean?).
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let header = config.signature_header.trim();
        if header.is_empty() {
            return Err("signature_header must not be empty".into());
        }
        let secret = config.secret.as_deref().unwrap_or_default();
        Ok(match (config.verification.disabled, secret.is_empty()) {
            (true, true) => Verifier::Off,
            (true, false) => {
                return Err(format!(
                    "{DISABLED_SWITCH} cannot be combined with a secret: remove one of them"
                ));
            }
            (false, true) => Verifier::NoSecret,
            (false, false) => Verifier::Hmac {
                secret: verify::HmacKey::new(secret.as_bytes()),
                header: header.to_owned(),
            },
        })
    }

    /// Start-up warnings about this verifier.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Verifier::Hmac { .. } => Vec::new(),
            Verifier::NoSecret => vec![format!(
                "finicity: no secret configured: every webhook is rejected (401) until `secret` \
                 is set (or verification is switched off explicitly with {DISABLED_SWITCH})"
            )],
            Verifier::Off => vec![verify::disabled_warning("finicity")],
        }
    }

    /// Accepts the request or says why not (the reason is only logged).
    pub fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
        let (secret, header) = match self {
            Verifier::Off => return Ok(()),
            Verifier::NoSecret => return Err(reject::unauthenticated("no secret configured")),
            Verifier::Hmac { secret, header } => (secret, header),
        };
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
        if secret.matches_hex(&[request.body()], signature) {
            Ok(())
        } else {
            Err(reject::unauthenticated(format!(
                "{header} does not match the body"
            )))
        }
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
        v.verify(&Request::new(&raw)).map_err(|r| {
            assert_eq!(r.kind, RejectionKind::Unauthenticated as i32);
            r.reason
        })
    }

    #[test]
    fn correct_signature_passes_in_either_case() {
        let v = verifier(json!({"secret": "s3cret"}));
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
