//! Klavi (utility data) adapter. Placeholder being replaced by the full mapping.
use tributary_plugin_sdk::prelude::*;

pub struct Klavi;

impl Adapter for Klavi {
    type Config = serde_json::Value;
    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "klavi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Klavi".into(),
            description: "placeholder".into(),
        }
    }
    fn new(_config: Self::Config, _host: &HostContext) -> Result<Self, String> {
        Ok(Klavi)
    }
    fn verify(&self, _request: &Request<'_>) -> Result<(), Rejection> {
        Ok(())
    }
    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> {
        let body = request.json()?;
        let id = convert::str_at(&body, "id");
        Ok(Normalized {
            events: vec![Event {
                r#type: "statement.available".into(),
                subject: id.clone(),
                provenance: Some(Provenance {
                    provider_event_id: id,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }
}

export_adapter!(Klavi);
