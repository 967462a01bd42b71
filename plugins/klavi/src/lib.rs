//! Klavi (Brazilian open finance) adapter: API event webhooks (links, consents, data requests
//! and data products) to canonical Tributary events.
//!
//! The body is a JSON array; every element becomes one canonical event (deduplicated on its
//! own `eventId`) or one dead-lettered item: when its eventType/eventName is unknown, and when
//! it is not a Klavi event at all (not an object, no `eventId` or no `eventName`), so one bad
//! element never costs its siblings. The tax ids (CPF, CNPJ) leave the adapter only after the
//! source's personal-data policy.

pub mod config;
pub mod envelope;
pub mod map;
pub mod verify;

use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

use crate::config::Config;
use crate::verify::Verifier;

/// JSON keys (lowercase) of Klavi payloads that hold personal data under Brazil's LGPD: the CPF
/// (`personalTaxId`), the CNPJ (`businessTaxId`), a product request's `taxId`, and the `cpf` /
/// `cnpj` spellings of Klavi's other APIs. The host redacts them when it shows a raw body.
pub const PERSONAL_DATA_FIELDS: &[&str] =
    &["personaltaxid", "businesstaxid", "taxid", "cpf", "cnpj"];

/// One configured Klavi source.
pub struct Klavi {
    verifier: Verifier,
    guard: PersonalDataGuard,
}

impl Adapter for Klavi {
    type Config = Config;

    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "klavi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider: "Klavi".into(),
            description: "Klavi open-finance API events: links, consents, data requests and \
                          data products"
                .into(),
            personal_data_fields: PERSONAL_DATA_FIELDS.iter().map(|f| (*f).into()).collect(),
        }
    }

    fn new(config: Self::Config, host: &HostContext) -> Result<Self, String> {
        let verifier = Verifier::from_config(&config)?;
        let guard = config.personal_data.resolve(&host.installation_key)?;
        Ok(Self { verifier, guard })
    }

    fn warnings(&self) -> Vec<String> {
        self.verifier.warnings()
    }

    fn verify(&self, request: &Request<'_>) -> Result<(), Rejection> {
        self.verifier.verify(request)
    }

    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> {
        let elements = envelope::elements(request)?;
        let mut normalized = Normalized::default();
        if elements.is_empty() {
            normalized
                .ignored
                .push("empty event array: nothing to store".to_owned());
            return Ok(normalized);
        }
        for (index, element) in elements.iter().enumerate() {
            let envelope = match envelope::envelope(index, &element.value) {
                Ok(envelope) => envelope,
                Err(reason) => {
                    // Not a Klavi event, yet authentic (the whole body is signed): kept as a
                    // dead letter. Without a usable eventId the host keys it on the element's
                    // content (`sha256:<hex of these bytes>`), so a retry of the same array
                    // adds nothing and it never collides with a sibling's eventId.
                    normalized.unmapped.push(UnmappedItem {
                        provider_event_id: String::new(),
                        provider_event_type: tributary_plugin_sdk::convert::str_at(
                            &element.value,
                            "eventName",
                        ),
                        reason: format!("{reason}: not a Klavi event, dead-lettered"),
                        raw: element.raw.to_vec(),
                    });
                    continue;
                }
            };
            let unmapped = |reason: String| UnmappedItem {
                provider_event_id: envelope.event_id.clone(),
                provider_event_type: envelope.event_name.clone(),
                reason,
                raw: element.raw.to_vec(),
            };
            let Some(kind) = envelope::classify(&envelope) else {
                normalized.unmapped.push(unmapped(format!(
                    "unknown Klavi event: eventType {:?}, eventName {:?}",
                    envelope.event_type, envelope.event_name
                )));
                continue;
            };
            match map::event(&element.value, &envelope, kind, &self.guard) {
                Ok(event) => normalized.events.push(event),
                Err(reason) => normalized.unmapped.push(unmapped(reason)),
            }
        }
        Ok(normalized)
    }
}

export_adapter!(Klavi);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_fields_are_declared_in_lowercase() {
        let declared = tributary_plugin_sdk::ffi::adapter_info::<Klavi>().personal_data_fields;
        assert_eq!(declared.len(), PERSONAL_DATA_FIELDS.len(), "no duplicates");
        for field in PERSONAL_DATA_FIELDS {
            assert_eq!(*field, field.to_lowercase());
        }
        for key in ["personalTaxId", "businessTaxId", "taxId"] {
            assert!(declared.contains(&key.to_lowercase()), "{key}");
        }
    }
}
