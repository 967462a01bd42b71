//! Request authentication: `X-Klavi-Signature` (hex HMAC-SHA256 of the raw body keyed with the
//! partner's secret key) and an optional `X-Klavi-Timestamp` freshness window.

use std::time::{SystemTime, UNIX_EPOCH};

use tributary_plugin_sdk::prelude::*;

use crate::config::{Config, VerificationMode};

/// The verification settings of one source, resolved at start-up.
#[derive(Debug, Clone)]
pub struct Verifier {
    mode: Mode,
    signature_header: String,
    timestamp_header: String,
    max_age_seconds: u64,
}

#[derive(Debug, Clone)]
enum Mode {
    /// Check the HMAC with this key.
    Hmac(Vec<u8>),
    /// HMAC asked for but no key configured: refuse everything.
    MissingKey,
    /// Explicitly switched off.
    Off,
}

impl Verifier {
    /// Builds the verifier from the source config.
    pub fn from_config(config: &Config) -> Self {
        let key = config.secret_key.as_deref().unwrap_or_default();
        let mode = match config.verification {
            VerificationMode::None => Mode::Off,
            VerificationMode::Hmac if key.is_empty() => Mode::MissingKey,
            VerificationMode::Hmac => Mode::Hmac(key.as_bytes().to_vec()),
        };
        Self {
            mode,
            signature_header: config.signature_header.clone(),
            timestamp_header: config.timestamp_header.clone(),
            max_age_seconds: config.max_age_seconds,
        }
    }

    /// Start-up warnings for the operator.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        match self.mode {
            Mode::Off => warnings.push(
                "klavi: verification = \"none\": webhooks are accepted without checking \
                 their signature"
                    .to_owned(),
            ),
            Mode::MissingKey => warnings.push(
                "klavi: no secret_key configured: every webhook will be refused (401); set \
                 secret_key, or verification = \"none\" to switch verification off"
                    .to_owned(),
            ),
            Mode::Hmac(_) if self.max_age_seconds == 0 => warnings.push(format!(
                "klavi: max_age_seconds = 0: the {} header is not checked",
                self.timestamp_header
            )),
            Mode::Hmac(_) => {}
        }
        warnings
    }

    /// Checks the signature, then the timestamp when present.
    pub fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
        let key = match &self.mode {
            Mode::Off => return Ok(()),
            Mode::MissingKey => {
                return Err(reject::unauthenticated(
                    "no secret_key configured for this source",
                ));
            }
            Mode::Hmac(key) => key,
        };
        let Some(signature) = request.header(&self.signature_header) else {
            return Err(reject::unauthenticated(format!(
                "missing {} header",
                self.signature_header
            )));
        };
        let signature = strip_scheme(signature.trim());
        if !verify::hmac_sha256_hex_matches(key, &[request.body()], signature) {
            return Err(reject::unauthenticated(format!(
                "{} does not match the body",
                self.signature_header
            )));
        }
        self.check_timestamp(request)
    }

    fn check_timestamp(&self, request: &Request<'_>) -> Result<(), Rejection> {
        if self.max_age_seconds == 0 {
            return Ok(());
        }
        let Some(value) = request.header(&self.timestamp_header) else {
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
    match &request.raw().received_at {
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
        Verifier::from_config(&config)
    }

    fn request(headers: &[(&str, &str)]) -> WebhookRequest {
        webhook(BODY).headers(headers).received_at(RECEIVED).build()
    }

    fn sign(key: &str) -> String {
        sign_hex(key.as_bytes(), &[BODY])
    }

    fn check(v: &Verifier, headers: &[(&str, &str)]) -> Result<(), Rejection> {
        v.verify(&Request::new(&request(headers)))
    }

    fn is_unauthenticated(result: Result<(), Rejection>) -> bool {
        matches!(result, Err(r) if r.kind == RejectionKind::Unauthenticated as i32)
    }

    #[test]
    fn correct_signature_passes_in_any_case_and_with_prefix() {
        let v = verifier(serde_json::json!({"secret_key": "s3cret"}));
        let sig = sign("s3cret");
        assert!(check(&v, &[("X-Klavi-Signature", &sig)]).is_ok());
        assert!(check(&v, &[("x-klavi-signature", &sig.to_uppercase())]).is_ok());
        assert!(check(&v, &[("X-Klavi-Signature", &format!("sha256={sig}"))]).is_ok());
        assert!(v.warnings().is_empty());
    }

    #[test]
    fn wrong_missing_or_garbled_signature_is_refused() {
        let v = verifier(serde_json::json!({"secret_key": "s3cret"}));
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", &sign("other"))]
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
        let v = verifier(serde_json::json!({"secret_key": "k", "max_age_seconds": 0}));
        let sig = sign("k");
        let headers = [
            ("X-Klavi-Signature", sig.as_str()),
            ("X-Klavi-Timestamp", "1"),
        ];
        assert!(check(&v, &headers).is_ok());
        assert_eq!(v.warnings().len(), 1);
    }

    #[test]
    fn custom_header_names() {
        let v = verifier(serde_json::json!({
            "secret_key": "k", "signature_header": "X-Sig", "timestamp_header": "X-Ts"
        }));
        let sig = sign("k");
        assert!(check(&v, &[("X-Sig", &sig)]).is_ok());
        assert!(is_unauthenticated(check(
            &v,
            &[("X-Klavi-Signature", &sig)]
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
        let v = verifier(serde_json::json!({"secret_key": ""}));
        assert!(is_unauthenticated(check(&v, &[])));
    }

    #[test]
    fn explicit_none_accepts_and_warns() {
        let v = verifier(serde_json::json!({"verification": "none"}));
        assert!(check(&v, &[]).is_ok());
        assert_eq!(v.warnings().len(), 1);
    }
}
