//! Finicity / Mastercard Open Banking Connect adapter: verifies the `X-Finicity-Signature`
//! HMAC and maps each of the 16 Connect webhook events onto one canonical event (`ping` is
//! acknowledged and ignored). See the crate README for the config and the mapping table.

mod config;
mod envelope;
mod map;
mod verify;

use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

pub use config::{Config, DEFAULT_SIGNATURE_HEADER};
use envelope::Envelope;
use verify::Verifier;

/// The `eventType` Finicity sends to check the webhook URL; acknowledged, never stored.
const PING: &str = "ping";

/// JSON keys (lowercase) of Finicity payloads that hold personal data: an account's `number`
/// (and the `realAccountNumber` / `accountNumber` spellings of other Finicity APIs), its
/// masked display form, its `name` and the customer's own `accountNickname`, and contact
/// fields. `customerId`/`consumerId` are Finicity's opaque ids. The host redacts these keys
/// when it shows a raw body.
pub const PERSONAL_DATA_FIELDS: &[&str] = &[
    "number",
    "accountnumber",
    "realaccountnumber",
    "accountnumberdisplay",
    "name",
    "accountnickname",
    "username",
    "email",
    "phone",
];

/// One configured Finicity source.
pub struct Finicity {
    verifier: Verifier,
    guard: PersonalDataGuard,
}

impl Adapter for Finicity {
    type Config = Config;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "finicity".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Finicity (Mastercard Open Banking)".into(),
            description: "Finicity / Mastercard Open Banking Connect webhooks: session activity, \
                          connections, MFA and accounts, signed with HMAC-SHA256."
                .into(),
            personal_data_fields: PERSONAL_DATA_FIELDS.iter().map(|f| (*f).into()).collect(),
        }
    }

    fn new(config: Config, host: &HostContext) -> Result<Self, String> {
        let verifier = Verifier::from_config(&config)?;
        let guard = config.personal_data.resolve(&host.installation_key)?;
        Ok(Finicity { verifier, guard })
    }

    fn warnings(&self) -> Vec<String> {
        self.verifier.warnings()
    }

    fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
        self.verifier.verify(request)
    }

    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> {
        let body = request.json()?;
        let envelope = Envelope::parse(&body)?;
        if envelope.event_type == PING {
            return Ok(Normalized {
                ignored: vec![PING.into()],
                ..Default::default()
            });
        }
        let mapped = map::event(&envelope, &self.guard);
        Ok(single_event(
            mapped,
            &envelope.event_id,
            envelope.event_type,
            request,
        ))
    }
}

export_adapter!(Finicity);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_fields_are_declared_in_lowercase() {
        let declared = tributary_plugin_sdk::ffi::adapter_info::<Finicity>().personal_data_fields;
        assert_eq!(declared.len(), PERSONAL_DATA_FIELDS.len(), "no duplicates");
        for field in PERSONAL_DATA_FIELDS {
            assert_eq!(*field, field.to_lowercase());
        }
        for key in ["number", "name", "accountNickname", "accountNumberDisplay"] {
            assert!(declared.contains(&key.to_lowercase()), "{key}");
        }
    }
}
