//! Standard Webhooks adapter (<https://www.standardwebhooks.com>): any provider that signs its
//! webhooks with `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1` HMAC-SHA256,
//! `v1a` Ed25519) and sends `{"type", "timestamp", "data"}` is served without an adapter of
//! its own.
//!
//! One webhook is one event, deduplicated on `webhook-id`; its canonical type is the payload's
//! `type` (mapped or prefixed by config) and its payload a `GenericEvent` holding `data` as its
//! JSON text, byte for byte.

pub mod config;
pub mod map;
pub mod verify;

use tributary_plugin_sdk::prelude::*;

pub use config::Config;

/// The Standard Webhooks adapter: one instance per configured source.
pub struct StandardWebhooks {
    verifier: verify::Verifier,
    types: map::TypeMap,
    /// Warnings about the configuration itself (deprecated keys).
    config_warnings: Vec<String>,
}

impl Adapter for StandardWebhooks {
    type Config = Config;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "standard-webhooks".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Standard Webhooks".into(),
            description: "Any provider following the Standard Webhooks specification \
                          (webhook-id, webhook-timestamp, webhook-signature v1/v1a)"
                .into(),
            // The payloads are the provider's own: no key is known to hold personal data.
            personal_data_fields: Vec::new(),
            // Only the envelope's type and time are known to be safe to show.
            display_fields: vec!["type".into(), "timestamp".into()],
        }
    }

    fn new(config: Config, _host: &HostContext) -> Result<Self, String> {
        config.validate()?;
        let mut config_warnings = Vec::new();
        let mut entries = config.verification.secrets;
        if !config.secrets.is_empty() {
            if !entries.is_empty() {
                return Err(
                    "`secrets` and `verification.secrets` are both set: keep only \
                            verification.secrets"
                        .into(),
                );
            }
            config_warnings.push(secrets::deprecated_key_warning(
                "standard-webhooks",
                "secrets",
                "verification.secrets",
            ));
            entries = config.secrets.into_iter().map(SecretEntry::bare).collect();
        }
        Ok(Self {
            verifier: verify::Verifier::from_entries(
                entries,
                config.tolerance_seconds,
                config.verification.disabled,
            )?,
            types: map::TypeMap::new(config.type_prefix, config.types),
            config_warnings,
        })
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.config_warnings.clone();
        warnings.extend(self.verifier.warnings());
        warnings
    }

    fn instance_info(&self) -> InstanceInfo {
        self.verifier.instance_info()
    }

    fn verify_secret(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        self.verifier.verify(request)
    }

    fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
        self.verifier.verify(request).map(drop)
    }

    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> {
        let payload = map::Payload::read(request.body())?;
        // Present and checked whenever verification is on; empty only with it switched off,
        // and then the host deduplicates on the content.
        let id = request
            .header(verify::ID_HEADER)
            .map(str::trim)
            .unwrap_or_default();
        let mapped = self.types.event(id, &payload);
        Ok(single_event(mapped, id, &payload.kind, request))
    }
}

export_adapter!(StandardWebhooks);

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_plugin_sdk::testing::webhook;

    fn adapter(config: serde_json::Value) -> Result<StandardWebhooks, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| e.to_string())?;
        StandardWebhooks::new(config, &HostContext::default())
    }

    #[test]
    fn config_typos_and_bad_values_are_refused() {
        for config in [
            serde_json::json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            serde_json::json!({"tolerance_seconds": 0}),
            serde_json::json!({"type_prefix": "acme events."}),
            serde_json::json!({"types": {"a.b": ""}}),
            serde_json::json!({"verification": "none"}),
            serde_json::json!({"secrets": ["x"]}),
        ] {
            assert!(adapter(config.clone()).is_err(), "{config}");
        }
        let ok = adapter(serde_json::json!({
            "verification": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
            "tolerance_seconds": 60, "type_prefix": "acme.", "types": {"a.b": "c.d"}
        }))
        .expect("valid");
        assert!(ok.warnings().is_empty());
        assert_eq!(
            ok.instance_info().verification,
            VerificationState::On as i32
        );
        // The old top-level `secrets` is still read, with a deprecation warning.
        let old = adapter(serde_json::json!({
            "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        }))
        .expect("valid");
        assert_eq!(
            old.warnings(),
            vec![secrets::deprecated_key_warning(
                "standard-webhooks",
                "secrets",
                "verification.secrets"
            )]
        );
        assert_eq!(
            old.instance_info().verification,
            VerificationState::On as i32
        );
        assert!(
            adapter(serde_json::json!({
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "verification": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
            }))
            .is_err()
        );
        assert_eq!(
            adapter(serde_json::json!({}))
                .expect("valid")
                .warnings()
                .len(),
            1
        );
    }

    #[test]
    fn types_are_mapped_then_prefixed() {
        let a = adapter(serde_json::json!({
            "verification": {"disabled": true},
            "type_prefix": "acme.", "types": {"invoice.paid": "payment.received"}
        }))
        .expect("valid");
        let run = |kind: &str| {
            let body = format!(r#"{{"type": "{kind}", "data": {{}}}}"#);
            let raw = webhook(body.into_bytes())
                .header("webhook-id", " msg_1 ")
                .build();
            let normalized = a.normalize(&Request::new(&raw)).expect("normalized");
            let event = normalized.events.into_iter().next().expect("one event");
            let provenance = event.provenance.expect("provenance");
            assert_eq!(provenance.provider_event_id, "msg_1");
            assert_eq!(provenance.provider_event_type, kind);
            event.r#type
        };
        assert_eq!(run("invoice.paid"), "payment.received");
        assert_eq!(run("invoice.created"), "acme.invoice.created");
    }

    #[test]
    fn an_unmappable_payload_is_one_dead_letter_with_the_body() {
        let a = adapter(serde_json::json!({"verification": {"disabled": true}})).expect("valid");
        let body = br#"{"type": "a.b", "timestamp": "never", "data": {}}"#;
        let raw = webhook(body.to_vec()).header("webhook-id", "msg_2").build();
        let normalized = a.normalize(&Request::new(&raw)).expect("normalized");
        assert!(normalized.events.is_empty());
        let item = &normalized.unmapped[0];
        assert_eq!(
            (
                item.provider_event_id.as_str(),
                item.provider_event_type.as_str()
            ),
            ("msg_2", "a.b")
        );
        assert_eq!(item.raw, body.to_vec());
        assert!(item.reason.contains("RFC 3339"), "{}", item.reason);
    }
}
