//! Connection attempts (adding, processing, invalidCredentials, unableToConnect,
//! credentialsUpdated) and MFA (mfa, mfaUpdated).

use serde_json::{Map, Value};
use tributary_plugin_sdk::model::v1::event::Payload;
use tributary_plugin_sdk::model::v1::{
    ConnectionEvent, ConnectionFailureReason, ConnectionStatus, Credential, Institution, MfaEvent,
    MfaStage,
};

use super::{Mapped, bool_of, id_at, institution_at, str_of};

/// The sign-in Finicity holds (institutionLoginId at an institution), when anything is known.
fn credential(connection_id: &str, institution: &Option<Institution>) -> Option<Credential> {
    (!connection_id.is_empty() || institution.is_some()).then(|| Credential {
        id: connection_id.to_owned(),
        institution: institution.clone(),
        ..Default::default()
    })
}

/// Maps a connection event.
pub(super) fn map(event_type: &str, payload: &Map<String, Value>) -> Mapped {
    let institution = institution_at(payload);
    let connection_id = id_at(payload, "institutionLoginId");
    let mut connection = ConnectionEvent {
        provider_status: event_type.to_owned(),
        oauth: bool_of(payload, "oauth"),
        credential: credential(&connection_id, &institution),
        ..Default::default()
    };
    let kind = match event_type {
        "adding" | "processing" => {
            connection.status = ConnectionStatus::Pending as i32;
            "connection.pending"
        }
        "invalidCredentials" => {
            connection.status = ConnectionStatus::Failed as i32;
            connection.failure_reason = ConnectionFailureReason::InvalidCredentials as i32;
            "connection.failed"
        }
        "unableToConnect" => {
            connection.status = ConnectionStatus::Failed as i32;
            connection.failure_reason = ConnectionFailureReason::InstitutionUnavailable as i32;
            connection.provider_code = str_of(payload, "code");
            "connection.failed"
        }
        _ => {
            // credentialsUpdated
            connection.status = ConnectionStatus::CredentialsUpdated as i32;
            connection.mfa_required = bool_of(payload, "mfa");
            "connection.credentials_updated"
        }
    };
    Mapped {
        kind,
        payload: Payload::Connection(connection),
        connection_id,
        institution,
        account_ids: Vec::new(),
    }
}

/// Maps an MFA event: `mfa` (a challenge question is shown) or `mfaUpdated` (answered).
pub(super) fn map_mfa(event_type: &str, payload: &Map<String, Value>) -> Mapped {
    let institution = institution_at(payload);
    let connection_id = id_at(payload, "institutionLoginId");
    let (kind, stage) = if event_type == "mfa" {
        ("mfa.challenge_issued", MfaStage::CodeEntry)
    } else {
        ("mfa.answered", MfaStage::Answered)
    };
    Mapped {
        kind,
        payload: Payload::Mfa(MfaEvent {
            stage: stage as i32,
            credential: credential(&connection_id, &institution),
            ..Default::default()
        }),
        connection_id,
        institution,
        account_ids: Vec::new(),
    }
}
