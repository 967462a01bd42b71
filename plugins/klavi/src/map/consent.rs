//! consent_* -> consent.granted / rejected / revoked / expired / failed / deleted.

use serde_json::Value;
use tributary_plugin_sdk::convert::{str_at, strings_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::Mapped;

/// `payload.consents`: an object, or an array holding exactly one object.
pub fn consent_object(payload: &Value) -> Option<&Value> {
    match payload.get("consents")? {
        object @ Value::Object(_) => Some(object),
        Value::Array(items) if items.len() == 1 => items.first().filter(|v| v.is_object()),
        _ => None,
    }
}

/// Maps a consent lifecycle event. Missing consent fields stay empty; an array of several
/// consents cannot be carried by one event (one eventId) and is refused for dead-lettering.
pub fn consent(payload: &Value, status: ConsentStatus) -> Result<Mapped, String> {
    if let Some(Value::Array(items)) = payload.get("consents")
        && items.len() > 1
    {
        return Err(format!(
            "payload.consents holds {} consents; one event can carry only one",
            items.len()
        ));
    }
    let empty = Value::Null;
    let consents = consent_object(payload).unwrap_or(&empty);
    let consent_id = str_at(consents, "consentId");
    let institution_code = str_at(consents, "institutionCode");
    let reason = ["failureReason", "reason"]
        .iter()
        .flat_map(|key| [str_at(payload, key), str_at(consents, key)])
        .find(|r| !r.is_empty())
        .unwrap_or_default();
    Ok(Mapped {
        r#type: canonical_type(status),
        subject: consent_id.clone(),
        payload: Payload::Consent(ConsentEvent {
            status: status as i32,
            consent_id,
            external_track_id: str_at(consents, "externalTrackId"),
            institution: (!institution_code.is_empty()).then(|| Institution {
                id: institution_code,
                ..Default::default()
            }),
            permissions_requested: strings_at(consents, "permissionsApply"),
            permissions_granted: strings_at(consents, "permissionsGranted"),
            expires_at: timestamp_at(consents, "expireAt"),
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
