//! CREDENTIAL status changes and real-time validations (connection.*), and the MFA prompts
//! (mfa.challenge_issued).

use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::{Envelope, Mapper, base_references, event, i32_at, institution};

/// The username fields of a credential, in order; null ones are skipped.
const USERNAME_KEYS: [&str; 4] = ["username", "username2", "username3", "username4"];

/// CREDENTIAL STATUS_CHANGE: the type follows `status`; an unknown status is dead-lettered
/// because it cannot tell pending from succeeded from failed.
pub fn status_change(m: &Mapper, env: &Envelope<'_>) -> Result<Event, String> {
    let data = env.data()?;
    let status = match credential_status(&str_at(data, "status")) {
        ConnectionStatus::Unspecified => {
            return Err(format!(
                "unknown CREDENTIAL status {:?}",
                str_at(data, "status")
            ));
        }
        status => status,
    };
    Ok(connection_event(m, env, data, status, false))
}

/// Canonical status of an Arcadia credential's `status`; UNSPECIFIED when unknown.
fn credential_status(status: &str) -> ConnectionStatus {
    match status {
        "CONNECTION_IN_PROGRESS" => ConnectionStatus::Pending,
        "CONNECTION_SUCCESS" => ConnectionStatus::Succeeded,
        "CONNECTION_FAILURE" => ConnectionStatus::Failed,
        _ => ConnectionStatus::Unspecified,
    }
}

/// REAL_TIME_CREDENTIAL_VALIDATION_SUCCESS / _FAILURE: the event type decides the outcome.
pub fn real_time_validation(
    m: &Mapper,
    env: &Envelope<'_>,
    succeeded: bool,
) -> Result<Event, String> {
    let data = env.data()?;
    let status = if succeeded {
        ConnectionStatus::Succeeded
    } else {
        ConnectionStatus::Failed
    };
    Ok(connection_event(m, env, data, status, true))
}

fn connection_event(
    m: &Mapper,
    env: &Envelope<'_>,
    data: &Value,
    status: ConnectionStatus,
    real_time_validation: bool,
) -> Event {
    let detail = str_at(data, "statusDetail");
    let (event_type, failure_reason) = match status {
        ConnectionStatus::Pending => ("connection.pending", ConnectionFailureReason::Unspecified),
        ConnectionStatus::Failed => ("connection.failed", failure_reason(&detail)),
        _ => ("connection.succeeded", ConnectionFailureReason::Unspecified),
    };
    let payload = ConnectionEvent {
        status: status as i32,
        failure_reason: failure_reason as i32,
        provider_status: str_at(data, "status"),
        provider_status_detail: detail,
        real_time_validation,
        credential: Some(credential(m, data)),
        errors: env.errors.clone(),
        ..Default::default()
    };
    let references = credential_references(data);
    event(
        env,
        event_type,
        str_at(data, "id"),
        references,
        Payload::Connection(payload),
    )
}

/// Canonical reason of a failed credential, from its `statusDetail`.
fn failure_reason(detail: &str) -> ConnectionFailureReason {
    match detail {
        "INVALID_CREDENTIALS" => ConnectionFailureReason::InvalidCredentials,
        "MULTI_FACTOR_AUTHENTICATION_FAILURE" => ConnectionFailureReason::MfaFailed,
        "MULTI_FACTOR_AUTHENTICATION_TIMEOUT" => ConnectionFailureReason::MfaTimedOut,
        "PROVIDER_WEBSITE_INACCESSIBLE" | "PROVIDER_WEBSITE_NAVIGATION_FAILURE" => {
            ConnectionFailureReason::InstitutionUnavailable
        }
        "MULTI_FACTOR_AUTHENTICATION_REFRESH_REQUIRED" => ConnectionFailureReason::ActionRequired,
        d if d.starts_with("UNSUPPORTED_") => ConnectionFailureReason::Unsupported,
        _ => ConnectionFailureReason::Other,
    }
}

/// MFA_CHALLENGE_METHOD: the user must pick one of `verificationMethods`.
pub fn mfa_method(m: &Mapper, env: &Envelope<'_>) -> Result<Event, String> {
    let data = env.data()?;
    let methods = data
        .get("verificationMethods")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(mfa_method_of).collect())
        .unwrap_or_default();
    let payload = MfaEvent {
        stage: MfaStage::MethodSelection as i32,
        methods,
        ..Default::default()
    };
    Ok(mfa_event(m, env, data, payload))
}

/// MFA_CHALLENGE_CODE: the user must enter the code sent by `selectedVerificationMethod`.
pub fn mfa_code(m: &Mapper, env: &Envelope<'_>) -> Result<Event, String> {
    let data = env.data()?;
    let payload = MfaEvent {
        stage: MfaStage::CodeEntry as i32,
        selected_method: data
            .get("selectedVerificationMethod")
            .filter(|v| v.is_object())
            .map(mfa_method_of),
        resubmission: bool_at(data, "isResubmission"),
        ..Default::default()
    };
    Ok(mfa_event(m, env, data, payload))
}

fn mfa_event(m: &Mapper, env: &Envelope<'_>, data: &Value, mut payload: MfaEvent) -> Event {
    let cred = data.get("credential").filter(|c| c.is_object());
    let references = cred.map(credential_references).unwrap_or_default();
    payload.credential = cred.map(|c| credential(m, c));
    payload.errors = env.errors.clone();
    let subject = cred.map(|c| str_at(c, "id")).unwrap_or_default();
    event(
        env,
        "mfa.challenge_issued",
        subject,
        references,
        Payload::Mfa(payload),
    )
}

fn mfa_method_of(method: &Value) -> MfaMethod {
    MfaMethod {
        id: str_at(method, "identifier"),
        name: str_at(method, "name"),
        r#type: str_at(method, "type"),
        resubmission: bool_at(method, "isResubmission"),
    }
}

fn credential_references(cred: &Value) -> References {
    References {
        connection_id: str_at(cred, "id"),
        ..base_references(cred)
    }
}

/// An Arcadia credential; usernames go through the `username` policy. Its own status is kept
/// (on MFA prompts it is the only word on where the credential stands).
fn credential(m: &Mapper, cred: &Value) -> Credential {
    let provider = cred.get("provider").filter(|p| p.is_object());
    let provider_flag = |key: &str| provider.is_some_and(|p| bool_at(p, key));
    Credential {
        id: str_at(cred, "id"),
        usernames: USERNAME_KEYS
            .iter()
            .filter_map(|key| m.personal("username", &str_at(cred, key)))
            .collect(),
        website: str_at(cred, "website"),
        accessible: bool_at(cred, "isAccessible"),
        active: bool_at(cred, "isActive"),
        customer_action_required: bool_at(cred, "isCustomerActionRequired"),
        third_party_portal: bool_at(cred, "isThirdPartyPortal"),
        total_accounts: i32_at(cred, "totalAccounts"),
        created_at: timestamp_at(cred, "createdAt"),
        last_modified_at: timestamp_at(cred, "lastModifiedAt"),
        next_scheduled_run_at: timestamp_at(cred, "nextScheduledAccountRunAt"),
        institution: institution(provider),
        interval_data_supported: provider_flag("isIntervalDataSupported"),
        real_time_validation_supported: provider_flag("isRealTimeCredentialValidationSupported"),
        status: credential_status(&str_at(cred, "status")) as i32,
        provider_status: str_at(cred, "status"),
        provider_status_detail: str_at(cred, "statusDetail"),
    }
}
