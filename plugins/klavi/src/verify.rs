//! Request authentication: `X-Klavi-Signature` (hex HMAC-SHA256 of the raw body keyed with the
//! partner's secret key) and the `X-Klavi-Timestamp` freshness window (the header is required
//! unless `require_timestamp = false`).

use std::time::{SystemTime, UNIX_EPOCH};

use tributary_plugin_sdk::prelude::*;

use tributary_plugin_sdk::verify::DISABLED_SWITCH;

use crate::config::Config;

/// The verification settings of one source, resolved at start-up.
#[derive(Debug)]
pub struct Verifier {
    /// The HMAC keys (prepared once), each with its position, label and end; or none (refuse
    /// everything), or switched off.
    secrets: Secrets<verify::HmacKey>,
    signature_header: String,
    timestamp_header: String,
    max_age_seconds: u64,
    /// A request without the timestamp header is refused.
    require_timestamp: bool,
    /// Warnings about the configuration itself (deprecated keys).
    config_warnings: Vec<String>,
}

impl Verifier {
    /// Builds the verifier from the source config. Refuses contradictions: secrets with
    /// `verification.disabled = true`, `secret_key` with `verification.secrets`,
    /// `require_timestamp = true` with `max_age_seconds = 0`.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let mut config_warnings = Vec::new();
        let legacy = config.secret_key.clone().filter(|key| !key.is_empty());
        let entries = secrets::merge_legacy(
            "klavi",
            config.verification.secrets.clone(),
            "secret_key",
            legacy,
            &mut config_warnings,
        )?;
        let secrets = Secrets::new(entries, config.verification.disabled, |key| {
            Ok(verify::HmacKey::new(key.as_bytes()))
        })?;
        let checks_timestamp = config.max_age_seconds > 0;
        let require_timestamp = match config.require_timestamp {
            Some(true) if !checks_timestamp => {
                return Err(
                    "require_timestamp = true needs max_age_seconds > 0 (0 switches the \
                     timestamp check off)"
                        .into(),
                );
            }
            Some(required) => required,
            None => checks_timestamp,
        };
        Ok(Self {
            secrets,
            signature_header: config.signature_header.clone(),
            timestamp_header: config.timestamp_header.clone(),
            max_age_seconds: config.max_age_seconds,
            require_timestamp,
            config_warnings,
        })
    }

    /// How this source verifies, for the host.
    pub fn instance_info(&self) -> InstanceInfo {
        self.secrets.instance_info()
    }

    /// Start-up warnings for the operator.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.config_warnings.clone();
        match self.secrets.state() {
            VerificationState::Disabled => warnings.push(verify::disabled_warning("klavi")),
            VerificationState::NotConfigured => warnings.push(format!(
                "klavi: no secret configured: every webhook will be refused (401); list the \
                 secretKey in verification.secrets, or set {DISABLED_SWITCH} to switch \
                 verification off"
            )),
            _ if self.max_age_seconds == 0 => warnings.push(format!(
                "klavi: max_age_seconds = 0: the {} header is not checked",
                self.timestamp_header
            )),
            _ if !self.require_timestamp => warnings.push(format!(
                "klavi: require_timestamp = false: a signed webhook without the {} header is \
                 accepted with no freshness check (it can be replayed)",
                self.timestamp_header
            )),
            _ => {}
        }
        warnings.extend(self.secrets.expired_warnings("klavi", &secrets::now()));
        warnings
    }

    /// Checks the signature against each secret valid at the receive time, then the timestamp
    /// (a missing one only when not required). Says which secret verified.
    pub fn verify(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        match self.secrets.state() {
            VerificationState::Disabled => return Ok(None),
            VerificationState::NotConfigured => {
                return Err(reject::unauthenticated(
                    "no secret configured for this source",
                ));
            }
            _ => {}
        }
        let Some(signature) = request.header(&self.signature_header) else {
            return Err(reject::unauthenticated(format!(
                "missing {} header",
                self.signature_header
            )));
        };
        let signature = strip_scheme(signature.trim());
        let at = secrets::request_time(request);
        let Some(secret) = self
            .secrets
            .find(&at, |key| key.matches_hex(&[request.body()], signature))
        else {
            return Err(reject::unauthenticated(format!(
                "{} does not match the body with any secret valid at the receive time",
                self.signature_header
            )));
        };
        self.check_timestamp(request)?;
        Ok(Some(secret))
    }

    fn check_timestamp(&self, request: &Request<'_>) -> Result<(), Rejection> {
        if self.max_age_seconds == 0 {
            return Ok(());
        }
        let Some(value) = request.header(&self.timestamp_header) else {
            if self.require_timestamp {
                return Err(reject::unauthenticated(format!(
                    "missing {} header",
                    self.timestamp_header
                )));
            }
            return Ok(());
        };
        let Ok(sent) = value.trim().parse::<i64>() else {
            return Err(reject::unauthenticated(format!(
                "{} is not unix seconds",
                self.timestamp_header
            )));
        };
        let received = received_seconds(request);
        let age = received.abs_diff(sent);
        if age > self.max_age_seconds {
            return Err(reject::unauthenticated(format!(
                "{} is {age} s away from the receive time (window {} s)",
                self.timestamp_header, self.max_age_seconds
            )));
        }
        Ok(())
    }
}

/// Accepts an optional `sha256=` prefix in front of the hex digest.
fn strip_scheme(signature: &str) -> &str {
    match signature.split_once('=') {
        Some((scheme, hex)) if scheme.eq_ignore_ascii_case("sha256") => hex,
        _ => signature,
    }
}

/// The host's receive time; the wall clock only when the host gave none.
fn received_seconds(request: &Request<'_>) -> i64 {
    match request.received_at() {
        Some(ts) => ts.seconds,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_plugin_sdk::testing::{sign_hex, webhook};

    const BODY: &[u8] = br#"[{"eventId":"e1","eventName":"link_created"}]"#;
    const RECEIVED: i64 = 1_704_067_200;

    fn verifier(config: serde_json::Value) -> Verifier {
        let config: Config = serde_json::from_value(config).expect("config");
        Verifier::from_config(&config).expect("valid config")
    }

    const NOW: &str = "1704067200";

    fn request(headers: &[(&str, &str)]) -> WebhookRequest {
        webhook(BODY).headers(headers).received_at(RECEIVED).build()
    }

    fn sign(key: &str) -> String {
        sign_hex(key.as_bytes(), &[BODY])
    }

    fn check(v: &Verifier, headers: &[(&str, &str)]) -> Result<(), Rejection> {
        v.verify(&Request::new(&request(headers))).map(drop)
    }

    fn is_unauthenticated(result: Result<(), Rejection>) -> bool {
        matches!(result, Err(r) if r.kind == RejectionKind::Unauthenticated as i32)
    }

    #[test]
    fn correct_signature_passes_in_any_case_and_with_prefix() {
        let v = verifier(serde_json::json!({"verification": {"secrets": ["s3cret"]}}));
        let sig = sign("s3cret");
        let ok = |sig: &str| {
            check(
                &v,
                &[("X-Klavi-Signature", sig), ("X-Klavi-Timestamp", NOW)],
            )
        };
        assert!(ok(&sig).is_ok());
        assert!(ok(&sig.to_uppercase()).is_ok());
        assert!(ok(&format!("sha256={sig}")).is_ok());
        assert!(v.warnings().is_empty());
    }

    #[test]
    fn wrong_missing_or_garbled_signature_is_refused() {
        let v = verifier(serde_json::json!({"verification": {"secrets": ["s3cret"]}}));
        assert!(is_unauthenticated(check(
            &v,
            &[
                ("X-Klavi-Signature", &sign("other")),
                ("X-Klavi-Timestamp", NOW)
            ]
        )));
        assert!(is_unauthenticated(check(&v, &[])));
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", "not hex")]
        )));
        assert!(is_unauthenticated(check(&v, &[("X-Klavi-Signature", "")])));
    }

    #[test]
    fn timestamp_window_uses_receive_time() {
        let v = verifier(serde_json::json!({"secret_key": "k", "max_age_seconds": 60}));
        let sig = sign("k");
        let at = |t: i64| t.to_string();
        let ok = |t: &str| check(&v, &[("X-Klavi-Signature", &sig), ("X-Klavi-Timestamp", t)]);
        assert!(ok(&at(RECEIVED)).is_ok());
        assert!(ok(&at(RECEIVED - 60)).is_ok());
        assert!(ok(&at(RECEIVED + 60)).is_ok());
        assert!(is_unauthenticated(ok(&at(RECEIVED - 61))));
        assert!(is_unauthenticated(ok(&at(RECEIVED + 61))));
        assert!(is_unauthenticated(ok("yesterday")));
        assert!(is_unauthenticated(ok(&at(i64::MIN))));
    }

    #[test]
    fn zero_window_skips_the_timestamp() {
        let v =
            verifier(serde_json::json!({"verification": {"secrets": ["k"]}, "max_age_seconds": 0}));
        let sig = sign("k");
        let headers = [
            ("X-Klavi-Signature", sig.as_str()),
            ("X-Klavi-Timestamp", "1"),
        ];
        assert!(check(&v, &headers).is_ok());
        assert!(check(&v, &headers[..1]).is_ok(), "not required either");
        assert_eq!(v.warnings().len(), 1);
    }

    #[test]
    fn custom_header_names() {
        let v = verifier(serde_json::json!({
            "secret_key": "k", "signature_header": "X-Sig", "timestamp_header": "X-Ts"
        }));
        let sig = sign("k");
        assert!(check(&v, &[("X-Sig", &sig), ("X-Ts", NOW)]).is_ok());
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", &sig), ("X-Ts", NOW)]
        )));
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Sig", &sig), ("X-Klavi-Timestamp", NOW)]
        )));
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Sig", &sig), ("X-Ts", "5")]
        )));
    }

    #[test]
    fn no_key_refuses_everything_and_warns() {
        let v = verifier(serde_json::json!({}));
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", &sign(""))]
        )));
        assert_eq!(v.warnings().len(), 1);
        assert_eq!(
            v.instance_info().verification,
            VerificationState::NotConfigured as i32
        );
        let v = verifier(serde_json::json!({"secret_key": ""}));
        assert!(is_unauthenticated(check(&v, &[])));
    }

    #[test]
    fn the_old_secret_key_still_verifies_with_a_deprecation_warning() {
        let v = verifier(serde_json::json!({"secret_key": "k"}));
        assert!(
            check(
                &v,
                &[
                    ("X-Klavi-Signature", &sign("k")),
                    ("X-Klavi-Timestamp", NOW)
                ]
            )
            .is_ok()
        );
        assert_eq!(
            v.warnings(),
            vec![secrets::deprecated_key_warning(
                "klavi",
                "secret_key",
                "verification.secrets"
            )]
        );
        assert_eq!(v.instance_info().verification, VerificationState::On as i32);
        let both = serde_json::json!({"secret_key": "k", "verification": {"secrets": ["n"]}});
        let config: Config = serde_json::from_value(both).expect("parses");
        assert!(Verifier::from_config(&config).is_err());
    }

    #[test]
    fn rotation_old_and_new_both_verify_until_the_old_one_ends() {
        let v = verifier(serde_json::json!({"verification": {"secrets": [
            {"secret": "new", "label": "2024-new"},
            {"secret": "old", "label": "2024-old", "not_after": "2024-01-01T00:00:00Z"},
        ]}}));
        let at = |received: i64, key: &str| {
            let raw = webhook(BODY)
                .headers(&[
                    ("X-Klavi-Signature", &sign(key)),
                    ("X-Klavi-Timestamp", &received.to_string()),
                ])
                .received_at(received)
                .build();
            v.verify(&Request::new(&raw))
                .map(|s| s.map(|s| (s.index, s.label)))
        };
        // RECEIVED is 2024-01-01T00:00:00Z: the old key's last valid second.
        assert_eq!(at(RECEIVED, "old"), Ok(Some((1, "2024-old".to_owned()))));
        assert_eq!(at(RECEIVED, "new"), Ok(Some((0, "2024-new".to_owned()))));
        assert!(is_unauthenticated(at(RECEIVED + 1, "old").map(drop)));
        assert_eq!(
            at(RECEIVED + 1, "new"),
            Ok(Some((0, "2024-new".to_owned())))
        );
        let info = v.instance_info();
        assert_eq!(info.secrets.len(), 2);
        assert_eq!(info.secrets[1].label, "2024-old");
    }

    #[test]
    fn explicit_switch_accepts_and_warns() {
        let v = verifier(serde_json::json!({"verification": {"disabled": true}}));
        assert!(check(&v, &[]).is_ok());
        assert_eq!(
            v.instance_info().verification,
            VerificationState::Disabled as i32
        );
        let warnings = v.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains(DISABLED_SWITCH), "{warnings:?}");
    }

    #[test]
    fn contradictions_are_refused() {
        for config in [
            serde_json::json!({"secret_key": "k", "verification": {"disabled": true}}),
            serde_json::json!({"verification": {"disabled": true, "secrets": ["k"]}}),
            serde_json::json!({"secret_key": "k", "require_timestamp": true, "max_age_seconds": 0}),
        ] {
            let config: Config = serde_json::from_value(config).expect("parses");
            assert!(Verifier::from_config(&config).is_err());
        }
    }

    #[test]
    fn missing_timestamp_is_refused_by_default() {
        let sig = sign("k");
        let v = verifier(serde_json::json!({"secret_key": "k"}));
        let missing = check(&v, &[("X-Klavi-Signature", &sig)]);
        assert!(
            matches!(&missing, Err(r) if r.reason == "missing X-Klavi-Timestamp header"),
            "{missing:?}"
        );
        let v = verifier(serde_json::json!({"secret_key": "k", "require_timestamp": true}));
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", &sig)]
        )));
        // Still refused when the signature is wrong, whatever the timestamp.
        assert!(is_unauthenticated(check(
            &v,
            &[
                ("X-Klavi-Signature", &sign("x")),
                ("X-Klavi-Timestamp", NOW)
            ]
        )));
    }

    #[test]
    fn require_timestamp_false_accepts_a_missing_one_but_checks_a_present_one() {
        let sig = sign("k");
        let v = verifier(
            serde_json::json!({"verification": {"secrets": ["k"]}, "require_timestamp": false}),
        );
        assert!(check(&v, &[("X-Klavi-Signature", &sig)]).is_ok());
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", &sig), ("X-Klavi-Timestamp", "1")]
        )));
        let warnings = v.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("require_timestamp = false"),
            "{warnings:?}"
        );
    }
}
