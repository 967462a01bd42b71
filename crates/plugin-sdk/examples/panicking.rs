//! A test-only adapter that panics when the body contains `PANIC`, to show that a panic costs
//! only that request (HTTP 500) and the service carries on, and sleeps 2 s on `SLEEP`, past the
//! tests' call budget (503, nothing stored). Built by `cargo test`
//! (target/debug/examples/libpanicking.so); never shipped.

use tributary_plugin_sdk::prelude::*;

/// Accepts any JSON object with an `id`; panics on the marker.
pub struct Panicking;

impl Adapter for Panicking {
    type Config = serde_json::Value;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "panicking".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Test".into(),
            description: "panics on bodies containing PANIC, sleeps on SLEEP (tests only)".into(),
            personal_data_fields: Vec::new(),
            display_fields: Vec::new(),
        }
    }

    fn new(_config: Self::Config, _host: &HostContext) -> Result<Self, String> {
        Ok(Panicking)
    }

    fn verify(&self, _request: &Request<'_>) -> Result<(), Rejection> {
        Ok(())
    }

    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> {
        if request.body().windows(5).any(|w| w == b"PANIC") {
            panic!("marker payload");
        }
        if request.body().windows(5).any(|w| w == b"SLEEP") {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        let body = request.json()?;
        let id = convert::str_at(&body, "id");
        Ok(Normalized {
            events: vec![Event {
                r#type: "consent.granted".into(),
                subject: id.clone(),
                provenance: Some(Provenance {
                    provider_event_id: id,
                    ..Default::default()
                }),
                payload: Some(Payload::Consent(ConsentEvent {
                    status: ConsentStatus::Granted as i32,
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        })
    }
}

export_adapter!(Panicking);
