//! CREDENTIAL status changes and real-time validations (connection.*), and the MFA prompts
//! (mfa.challenge_issued).

use serde::Deserialize;
use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, str_at};
use tributary_plugin_sdk::lenient::{Flag, Int, Obj, Str, Strings, Text};
use tributary_plugin_sdk::lenient_object;
use tributary_plugin_sdk::prelude::*;

use super::typed::{Provider, correlation_ids, instant_of, institution};
use super::{Envelope, Mapper, event};

lenient_object! {
    /// An Arcadia credential: CREDENTIAL `data`, and `data.credential` of the MFA prompts.
    #[derive(Clone)]
    pub struct CredentialData<'a> {
        "id" => id: Text<'a>,
        "username" => username: Text<'a>,
        "username2" => username2: Text<'a>,
        "username3" => username3: Text<'a>,
        "username4" => username4: Text<'a>,
        "website" => website: Text<'a>,
        "isAccessible" => accessible: Flag,
        "isActive" => active: Flag,
        "isCustomerActionRequired" => customer_action_required: Flag,
        "isThirdPartyPortal" => third_party_portal: Flag,
        "totalAccounts" => total_accounts: Int,
        "createdAt" => created_at: Str<'a>,
        "lastModifiedAt" => last_modified_at: Str<'a>,
        "nextScheduledAccountRunAt" => next_scheduled_run_at: Str<'a>,
        "provider" => provider: Obj<Provider<'a>>,
        "status" => status: Text<'a>,
        "statusDetail" => status_detail: Text<'a>,
        "correlationId" => correlation_id: Text<'a>,
        "correlationIds" => correlation_ids: Strings<'a>,
    }
}

/// CREDENTIAL STATUS_CHANGE: the type follows `status`; an unknown status is dead-lettered
/// because it cannot tell pending from succeeded from failed.
pub fn status_change(m: &Mapper, env: &Envelope<'_>) -> Result<Event, String> {
    env.with_credential_data(|data| {
        let status = match credential_status(data.status.as_str()) {
            ConnectionStatus::Unspecified => {
                return Err(format!(
                    "unknown CREDENTIAL status {:?}",
                    data.status.as_str()
                ));
            }
            status => status,
        };
        Ok(connection_event(m, env, data, status, false))
    })?
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
    let status = if succeeded {
        ConnectionStatus::Succeeded
    } else {
        ConnectionStatus::Failed
    };
    env.with_credential_data(|data| connection_event(m, env, data, status, true))
}

fn connection_event(
    m: &Mapper,
    env: &Envelope<'_>,
    data: &CredentialData<'_>,
    status: ConnectionStatus,
    real_time_validation: bool,
) -> Event {
    let detail = data.status_detail.to_string_owned();
    let (event_type, failure_reason) = match status {
        ConnectionStatus::Pending => ("connection.pending", ConnectionFailureReason::Unspecified),
        ConnectionStatus::Failed => ("connection.failed", failure_reason(&detail)),
        _ => ("connection.succeeded", ConnectionFailureReason::Unspecified),
    };
    let payload = ConnectionEvent {
        status: status as i32,
        failure_reason: failure_reason as i32,
        provider_status: data.status.to_string_owned(),
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
        data.id.to_string_owned(),
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
    // Lenient: reading a `Value` never fails; a credential that is not an object is none.
    let cred = data
        .get("credential")
        .and_then(|c| Obj::<CredentialData<'_>>::deserialize(c).ok())
        .and_then(|c| c.0);
    let cred = cred.as_ref();
    let references = cred.map(credential_references).unwrap_or_default();
    payload.credential = cred.map(|c| credential(m, c));
    payload.errors = env.errors.clone();
    let subject = cred.map(|c| c.id.to_string_owned()).unwrap_or_default();
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

fn credential_references(cred: &CredentialData<'_>) -> References {
    References {
        connection_id: cred.id.to_string_owned(),
        institution: institution(&cred.provider),
        correlation_ids: correlation_ids(&cred.correlation_id, &cred.correlation_ids),
        ..Default::default()
    }
}

/// An Arcadia credential; usernames go through the `username` policy. Its own status is kept
/// (on MFA prompts it is the only word on where the credential stands).
fn credential(m: &Mapper, cred: &CredentialData<'_>) -> Credential {
    let provider = cred.provider.0.as_ref();
    Credential {
        id: cred.id.to_string_owned(),
        usernames: [
            &cred.username,
            &cred.username2,
            &cred.username3,
            &cred.username4,
        ]
        .into_iter()
        .filter_map(|name| m.personal("username", name.as_str()))
        .collect(),
        website: cred.website.to_string_owned(),
        accessible: cred.accessible.is_true(),
        active: cred.active.is_true(),
        customer_action_required: cred.customer_action_required.is_true(),
        third_party_portal: cred.third_party_portal.is_true(),
        total_accounts: saturating_i32(cred.total_accounts.or_zero()),
        created_at: instant_of(&cred.created_at),
        last_modified_at: instant_of(&cred.last_modified_at),
        next_scheduled_run_at: instant_of(&cred.next_scheduled_run_at),
        institution: institution(&cred.provider),
        interval_data_supported: provider.is_some_and(|p| p.interval_data_supported.is_true()),
        real_time_validation_supported: provider
            .is_some_and(|p| p.real_time_validation_supported.is_true()),
        status: credential_status(cred.status.as_str()) as i32,
        provider_status: cred.status.to_string_owned(),
        provider_status_detail: cred.status_detail.to_string_owned(),
    }
}

/// `i32_at`: an i64 as i32, saturating.
fn saturating_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}
