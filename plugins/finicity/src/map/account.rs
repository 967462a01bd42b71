//! Accounts: discovered, added (full account objects) and accountsDeleted (ids only).

use serde_json::{Map, Value};
use tributary_plugin_sdk::convert;
use tributary_plugin_sdk::model::v1::event::Payload;
use tributary_plugin_sdk::model::v1::{
    Account, AccountChange, AccountEvent, AccountStatus, Institution, ProviderError,
};
use tributary_plugin_sdk::model::well_known::Timestamp;
use tributary_plugin_sdk::personal_data::PersonalDataGuard;

use super::{Mapped, bool_of, id_at, institution_at, str_of};

/// The personal-data field name of account numbers.
pub const ACCOUNT_NUMBER_FIELD: &str = "account_number";

/// Maps an account event. `customer_id` is the envelope's, used for accounts that carry none.
pub(super) fn map(
    event_type: &str,
    payload: &Map<String, Value>,
    customer_id: &str,
    guard: &PersonalDataGuard,
) -> Mapped {
    let (kind, change) = match event_type {
        "discovered" => ("account.discovered", AccountChange::Discovered),
        "added" => ("account.added", AccountChange::Added),
        _ => ("account.deleted", AccountChange::Deleted),
    };
    let institution = institution_at(payload);
    let items: &[Value] = match payload.get("accounts") {
        Some(Value::Array(items)) => items,
        _ => &[],
    };
    let mut accounts = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let account = match item {
            Value::Object(object) => Some(full(object, customer_id, &institution, guard)),
            Value::String(_) | Value::Number(_) => Some(Account {
                id: scalar_id(item),
                institution: institution.clone(),
                customer_id: customer_id.to_owned(),
                ..Default::default()
            }),
            _ => None,
        };
        match account {
            Some(account) => accounts.push(account),
            None => errors.push(ProviderError {
                code: "unrecognized_account".into(),
                message: format!("accounts[{index}] is neither an account object nor an id"),
            }),
        }
    }
    if payload
        .get("accounts")
        .is_some_and(|v| !v.is_array() && !v.is_null())
    {
        errors.push(ProviderError {
            code: "unrecognized_accounts".into(),
            message: "accounts is not an array".into(),
        });
    }

    let mut connection_id = id_at(payload, "institutionLoginId");
    if connection_id.is_empty() {
        connection_id = accounts
            .iter()
            .map(|a| a.connection_id.clone())
            .find(|id| !id.is_empty())
            .unwrap_or_default();
    }
    let reference_institution =
        institution.or_else(|| accounts.iter().find_map(|a| a.institution.clone()));
    let account_ids = accounts
        .iter()
        .map(|a| a.id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    Mapped {
        kind,
        payload: Payload::Account(AccountEvent {
            change: change as i32,
            accounts,
            oauth: bool_of(payload, "oauth"),
            errors,
        }),
        connection_id,
        institution: reference_institution,
        account_ids,
    }
}

fn scalar_id(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A full Finicity account object.
fn full(
    object: &Map<String, Value>,
    customer_id: &str,
    payload_institution: &Option<Institution>,
    guard: &PersonalDataGuard,
) -> Account {
    let currency = str_of(object, "currency").trim().to_owned();
    let provider_status = str_of(object, "status");
    let mut account_customer = id_at(object, "customerId");
    if account_customer.is_empty() {
        account_customer = customer_id.to_owned();
    }
    Account {
        id: id_at(object, "id"),
        number: guard.apply_opt(ACCOUNT_NUMBER_FIELD, str_of(object, "number").trim()),
        name: str_of(object, "name"),
        r#type: str_of(object, "type"),
        status: status(&provider_status) as i32,
        provider_status,
        balance: object
            .get("balance")
            .and_then(|balance| convert::money(balance, &currency)),
        currency_code: currency,
        connection_id: id_at(object, "institutionLoginId"),
        institution: institution_at(object).or_else(|| payload_institution.clone()),
        customer_id: account_customer,
        created_at: epoch_seconds(object.get("createdDate")),
        last_updated_at: epoch_seconds(object.get("lastUpdatedDate")),
        display_position: object
            .get("displayPosition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// Finicity account status ("active", "pending", "error"...); unknown values are UNSPECIFIED
/// (the provider's value is kept in `provider_status`).
fn status(provider_status: &str) -> AccountStatus {
    match provider_status.trim().to_ascii_lowercase().as_str() {
        "active" => AccountStatus::Active,
        "pending" => AccountStatus::Pending,
        "error" | "failed" => AccountStatus::AccessFailed,
        "inactive" | "closed" => AccountStatus::Inactive,
        _ => AccountStatus::Unspecified,
    }
}

/// An instant given as epoch seconds, a JSON integer or a numeric string; `None` when absent,
/// zero, not a number or outside the years 0001-9999.
fn epoch_seconds(value: Option<&Value>) -> Option<Timestamp> {
    let seconds = match value? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (seconds > 0)
        .then(|| convert::timestamp_from_epoch_seconds(seconds))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn epoch_seconds_accepts_numbers_and_numeric_strings() {
        let ts = epoch_seconds(Some(&json!(1607450357))).expect("number");
        assert_eq!(ts.seconds, 1_607_450_357);
        let ts = epoch_seconds(Some(&json!("1607450357"))).expect("string");
        assert_eq!(ts.seconds, 1_607_450_357);
        assert!(epoch_seconds(Some(&json!(0))).is_none());
        assert!(epoch_seconds(Some(&json!("soon"))).is_none());
        assert!(epoch_seconds(Some(&json!(1.5))).is_none());
        assert!(epoch_seconds(None).is_none());
    }

    #[test]
    fn unknown_statuses_are_kept_unspecified() {
        assert_eq!(status("active"), AccountStatus::Active);
        assert_eq!(status("PENDING"), AccountStatus::Pending);
        assert_eq!(status("frozen"), AccountStatus::Unspecified);
    }
}
