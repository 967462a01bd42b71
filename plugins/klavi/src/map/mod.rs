//! Mapping of one known Klavi event to a canonical [`Event`]: the parts every event shares
//! (provenance, references, tax ids, partner metadata), then the payload per domain.

mod connection;
mod consent;
mod product;
mod typed;

use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

pub use typed::Payload as KlaviPayload;
use typed::RequestBody;

use crate::envelope::{Envelope, Kind, RawEvent};

/// Personal-data field name of `payload.personalTaxId` (CPF).
pub const PERSONAL_TAX_ID: &str = "personal_tax_id";
/// Personal-data field name of `payload.businessTaxId` (CNPJ).
pub const BUSINESS_TAX_ID: &str = "business_tax_id";

/// What a domain mapper adds to the shared envelope.
pub struct Mapped {
    /// Canonical type ("consent.granted").
    pub r#type: &'static str,
    /// The resource the event is about.
    pub subject: String,
    /// The typed payload.
    pub payload: Payload,
}

/// Builds the canonical event for a classified element.
pub fn event(
    element: &RawEvent<'_>,
    envelope: &Envelope<'_>,
    kind: Kind,
    guard: &PersonalDataGuard,
) -> Result<Event, String> {
    // A payload that is not an object reads as an empty one.
    let empty = KlaviPayload::default();
    let payload = element.payload.0.as_ref().unwrap_or(&empty);
    let mapped = match kind {
        Kind::LinkCreated => connection::link_created(payload),
        Kind::Consent(status) => consent::consent(payload, status)?,
        Kind::ProductRequestReceived => product::request_received(payload),
        Kind::ProductGenerated(status) => product::generated(payload, status),
    };
    let time = element.event_time.get().and_then(timestamp);
    Ok(Event {
        r#type: mapped.r#type.to_owned(),
        subject: mapped.subject,
        time,
        provenance: Some(Provenance {
            provider_event_id: envelope.event_id.to_owned(),
            provider_event_type: envelope.event_name.to_owned(),
            provider_resource: envelope.event_type.to_owned(),
            provider_created_at: time,
            ..Default::default()
        }),
        references: Some(references(element, payload, guard)),
        partner_metadata: element.external_info.to_struct(),
        payload: Some(mapped.payload),
        ..Default::default()
    })
}

/// partnerAppId, the link, the institution and the tax ids (after the policy).
fn references(
    element: &RawEvent<'_>,
    payload: &KlaviPayload<'_>,
    guard: &PersonalDataGuard,
) -> References {
    let empty = RequestBody::default();
    let request_body = payload.request_body.0.as_ref().unwrap_or(&empty);
    let consents = consent::consent_object(payload);
    let connection_id = first_non_empty([payload.link_id.as_str(), request_body.link_id.as_str()]);
    let institution_code = first_non_empty([
        consents
            .map(|c| c.institution_code.as_str())
            .unwrap_or_default(),
        request_body.institution_code.as_str(),
    ]);
    References {
        partner_app_id: element.partner_app_id.to_string_owned(),
        connection_id,
        institution: (!institution_code.is_empty()).then(|| Institution {
            id: institution_code,
            ..Default::default()
        }),
        tax_ids: tax_ids(payload, request_body, guard),
        ..Default::default()
    }
}

/// CPF (`personalTaxId`), CNPJ (`businessTaxId`) and a product request's `requestBody.taxId`
/// when it differs from both; empty values are skipped. Values are reduced to their digits
/// ("258.722.521-37" -> "25872252137") before the policy, so hashes do not depend on
/// formatting.
fn tax_ids(
    payload: &KlaviPayload<'_>,
    request_body: &RequestBody<'_>,
    guard: &PersonalDataGuard,
) -> Vec<TaxId> {
    let personal = digits_of(payload.personal_tax_id.as_str());
    let business = digits_of(payload.business_tax_id.as_str());
    let requested = digits_of(request_body.tax_id.as_str());
    let mut ids = Vec::new();
    let mut push = |kind: TaxIdKind, field: &str, value: &str| {
        if !value.is_empty() {
            ids.push(TaxId {
                kind: kind as i32,
                id: Some(guard.apply(field, value)),
            });
        }
    };
    push(TaxIdKind::BrCpf, PERSONAL_TAX_ID, &personal);
    push(TaxIdKind::BrCnpj, BUSINESS_TAX_ID, &business);
    if requested != personal && requested != business {
        match requested.len() {
            14 => push(TaxIdKind::BrCnpj, BUSINESS_TAX_ID, &requested),
            11 => push(TaxIdKind::BrCpf, PERSONAL_TAX_ID, &requested),
            _ => push(TaxIdKind::Unspecified, PERSONAL_TAX_ID, &requested),
        }
    }
    ids
}

/// Drops the usual CPF/CNPJ punctuation (`.`, `-`, `/`, spaces).
fn digits_of(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, '.' | '-' | '/' | ' '))
        .collect()
}

fn first_non_empty<const N: usize>(values: [&str; N]) -> String {
    values
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use tributary_plugin_sdk::personal_data::PersonalDataPolicy;

    #[test]
    fn tax_ids_are_guarded_and_deduplicated() {
        let guard = PersonalDataPolicy::default()
            .resolve("k")
            .expect("policy resolves");
        let payload = serde_json::json!({
            "personalTaxId": "258.722.521-37",
            "businessTaxId": "",
            "requestBody": {"taxId": "25872252137"}
        });
        let payload = KlaviPayload::deserialize(&payload).expect("an object");
        let body = payload.request_body.0.as_ref().expect("an object");
        let ids = tax_ids(&payload, body, &guard);
        assert_eq!(ids.len(), 1);
        let text = format!("{ids:?}");
        assert!(!text.contains("25872252137"));
        assert!(!text.contains("2137"));
    }
}
