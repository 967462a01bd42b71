//! Mapping of one known Klavi event to a canonical [`Event`]: the parts every event shares
//! (provenance, references, tax ids, partner metadata), then the payload per domain.

mod connection;
mod consent;
mod product;
pub(crate) mod typed;

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
        Kind::ProductRequestReceived => product::request_received(payload, guard),
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
        tax_ids: tax_ids(payload, guard),
        ..Default::default()
    }
}

/// The subject's tax ids: CPF (`personalTaxId`) and CNPJ (`businessTaxId`), empty values
/// skipped. A product request's `requestBody.taxId` is the requester's and stays apart
/// (`DataRequestEvent.request_tax_id`, see [`tax_id`]).
fn tax_ids(payload: &KlaviPayload<'_>, guard: &PersonalDataGuard) -> Vec<TaxId> {
    let mut ids = Vec::new();
    for (kind, field, value) in [
        (
            TaxIdKind::BrCpf,
            PERSONAL_TAX_ID,
            payload.personal_tax_id.as_str(),
        ),
        (
            TaxIdKind::BrCnpj,
            BUSINESS_TAX_ID,
            payload.business_tax_id.as_str(),
        ),
    ] {
        let value = digits_of(value);
        if !value.is_empty() {
            ids.push(TaxId {
                kind: kind as i32,
                id: Some(guard.apply(field, &value)),
            });
        }
    }
    ids
}

/// One tax id whose kind is known by its length: 14 digits a CNPJ (`business_tax_id` policy),
/// 11 a CPF (`personal_tax_id`), anything else UNSPECIFIED under `personal_tax_id`. `None`
/// when empty. Values are reduced to their digits ("258.722.521-37" -> "25872252137") before
/// the policy, so hashes do not depend on formatting and equal the subject's for the same
/// number.
pub fn tax_id(value: &str, guard: &PersonalDataGuard) -> Option<TaxId> {
    let digits = digits_of(value);
    let (kind, field) = match digits.len() {
        0 => return None,
        14 => (TaxIdKind::BrCnpj, BUSINESS_TAX_ID),
        11 => (TaxIdKind::BrCpf, PERSONAL_TAX_ID),
        _ => (TaxIdKind::Unspecified, PERSONAL_TAX_ID),
    };
    Some(TaxId {
        kind: kind as i32,
        id: Some(guard.apply(field, &digits)),
    })
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
    fn subject_and_request_tax_ids_stay_apart_and_are_guarded() {
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
        let ids = tax_ids(&payload, &guard);
        assert_eq!(ids.len(), 1);
        let requested = tax_id(body.tax_id.as_str(), &guard).expect("a tax id");
        // The same CPF, however formatted, hashes alike in both places.
        assert_eq!(ids[0], requested);
        let other = tax_id("123.456.789-01", &guard).expect("a tax id");
        assert_eq!(other.kind, TaxIdKind::BrCpf as i32);
        assert_ne!(other, requested);
        let cnpj = tax_id("12.345.678/0001-95", &guard).expect("a tax id");
        assert_eq!(cnpj.kind, TaxIdKind::BrCnpj as i32);
        assert_eq!(tax_id("", &guard), None);
        let text = format!("{ids:?} {requested:?} {other:?} {cnpj:?}");
        for clear in ["25872252137", "2137", "12345678901", "12345678000195"] {
            assert!(!text.contains(clear), "{clear}");
        }
    }
}
