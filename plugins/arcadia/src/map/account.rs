//! ACCOUNT STATUS_CHANGE: account.discovered (NEW_ACCOUNT) or account.status_changed.

use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, date_at, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::{Envelope, Mapper, base_references, custom_data, event, institution, push_unique};

/// Maps one account status change; every status is kept, unknown ones as UNSPECIFIED.
pub fn status_change(m: &Mapper, env: &Envelope<'_>) -> Result<Event, String> {
    let data = env.data()?;
    let provider_status = str_at(data, "status");
    let status = match provider_status.as_str() {
        "NEW_ACCOUNT" => AccountStatus::New,
        "CONNECTION_SUCCESS" => AccountStatus::Active,
        "CONNECTION_IN_PROGRESS" => AccountStatus::Pending,
        "DATA_ACCESS_FAILURE" => AccountStatus::AccessFailed,
        "INACTIVE" => AccountStatus::Inactive,
        _ => AccountStatus::Unspecified,
    };
    let (event_type, change) = if status == AccountStatus::New {
        ("account.discovered", AccountChange::Discovered)
    } else {
        ("account.status_changed", AccountChange::StatusChanged)
    };
    let id = str_at(data, "id");
    let connection_id = credential_id(data);
    let account = Account {
        id: id.clone(),
        number: m.personal("account_number", &str_at(data, "accountNumber")),
        name: str_at(data, "name"),
        r#type: str_at(data, "type"),
        status: status as i32,
        provider_status,
        provider_status_detail: str_at(data, "statusDetail"),
        connection_id: connection_id.clone(),
        institution: institution(data.get("provider")),
        created_at: timestamp_at(data, "createdAt"),
        last_updated_at: timestamp_at(data, "lastModifiedAt"),
        billing_cycle: str_at(data, "billingCycle"),
        service_types: service_types(data),
        customer_action_required: bool_at(data, "isCustomerActionRequired"),
        latest_statement_date: date_at(data, "latestStatementDate"),
        next_expected_post_date: date_at(data, "nextExpectedPostDate"),
        ..Default::default()
    };
    let payload = AccountEvent {
        change: change as i32,
        accounts: vec![account],
        errors: env.errors.clone(),
        ..Default::default()
    };
    let references = References {
        connection_id,
        account_ids: vec![id.clone()]
            .into_iter()
            .filter(|i| !i.is_empty())
            .collect(),
        ..base_references(data)
    };
    let mut event = event(env, event_type, id, references, Payload::Account(payload));
    event.partner_metadata = custom_data(data);
    Ok(event)
}

/// `serviceTypes`: objects `{serviceType, ...}` or plain strings, without repeats.
fn service_types(data: &Value) -> Vec<String> {
    let mut types = Vec::new();
    for item in data
        .get("serviceTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = match item {
            Value::String(s) => s.clone(),
            other => str_at(other, "serviceType"),
        };
        push_unique(&mut types, name);
    }
    types
}

/// The credential an account or meter belongs to, when the payload names it
/// (`credentialId` or `credential.id`; the documented examples carry neither).
pub fn credential_id(data: &Value) -> String {
    let direct = str_at(data, "credentialId");
    if !direct.is_empty() {
        return direct;
    }
    data.get("credential")
        .map(|c| str_at(c, "id"))
        .unwrap_or_default()
}
