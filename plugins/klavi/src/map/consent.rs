//! consent_* -> consent.granted / rejected / revoked / expired / failed / deleted.

use tributary_plugin_sdk::lenient::Item;
use tributary_plugin_sdk::prelude::*;

use super::Mapped;
use super::typed::{Consent, Payload as KlaviPayload, owned};

/// `payload.consents`: an object, or an array holding exactly one object.
pub fn consent_object<'r, 'a>(payload: &'r KlaviPayload<'a>) -> Option<&'r Consent<'a>> {
    match &payload.consents {
        Item::Object(consent) => Some(consent),
        Item::Array(items) if items.len() == 1 => items.first().and_then(Item::as_object),
        _ => None,
    }
}

/// Maps a consent lifecycle event. Missing consent fields stay empty; an array of several
/// consents cannot be carried by one event (one eventId) and is refused for dead-lettering.
pub fn consent(payload: &KlaviPayload<'_>, status: ConsentStatus) -> Result<Mapped, String> {
    if let Item::Array(items) = &payload.consents
        && items.len() > 1
    {
        return Err(format!(
            "payload.consents holds {} consents; one event can carry only one",
            items.len()
        ));
    }
    let empty = Consent::default();
    let consents = consent_object(payload).unwrap_or(&empty);
    let consent_id = consents.consent_id.to_string_owned();
    let institution_code = consents.institution_code.to_string_owned();
    let reason = [
        &payload.failure_reason,
        &consents.failure_reason,
        &payload.reason,
        &consents.reason,
    ]
    .into_iter()
    .find(|r| !r.is_empty())
    .map(|r| r.to_string_owned())
    .unwrap_or_default();
    Ok(Mapped {
        r#type: canonical_type(status),
        subject: consent_id.clone(),
        payload: Payload::Consent(ConsentEvent {
            status: status as i32,
            consent_id,
            external_track_id: consents.external_track_id.to_string_owned(),
            institution: (!institution_code.is_empty()).then(|| Institution {
                id: institution_code,
                ..Default::default()
            }),
            permissions_requested: owned(&consents.permissions_apply),
            permissions_granted: owned(&consents.permissions_granted),
            expires_at: consents.expire_at.get().and_then(timestamp),
            reason,
        }),
    })
}

fn canonical_type(status: ConsentStatus) -> &'static str {
    match status {
        ConsentStatus::Granted => "consent.granted",
        ConsentStatus::Rejected => "consent.rejected",
        ConsentStatus::Revoked => "consent.revoked",
        ConsentStatus::Expired => "consent.expired",
        ConsentStatus::Failed => "consent.failed",
        ConsentStatus::Deleted => "consent.deleted",
        ConsentStatus::Unspecified => "consent.unspecified",
    }
}
