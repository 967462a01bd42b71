//! Accounts: discovered, added (full account objects) and accountsDeleted (ids only).

use tributary_plugin_sdk::convert::{self, DecimalError};
use tributary_plugin_sdk::lenient::{Item, Skip};
use tributary_plugin_sdk::model::v1::event::Payload as EventPayload;
use tributary_plugin_sdk::model::v1::{
    Account, AccountChange, AccountEvent, AccountStatus, Institution, ProviderError,
};
use tributary_plugin_sdk::model::well_known::Timestamp;
use tributary_plugin_sdk::personal_data::PersonalDataGuard;

use super::payload::{Account as AccountObject, Payload};
use super::{Mapped, id, institution};

/// The personal-data field name of account numbers.
pub const ACCOUNT_NUMBER_FIELD: &str = "account_number";

/// Maps an account event. `customer_id` is the envelope's, used for accounts that carry none.
pub(super) fn map(
    event_type: &str,
    payload: &Payload<'_>,
    customer_id: &str,
    guard: &PersonalDataGuard,
) -> Result<Mapped, String> {
    let (kind, change) = match event_type {
        "discovered" => ("account.discovered", AccountChange::Discovered),
        "added" => ("account.added", AccountChange::Added),
        _ => ("account.deleted", AccountChange::Deleted),
    };
    let institution = institution(&payload.institution_id);
    let items = payload.accounts.as_array().unwrap_or_default();
    let mut accounts = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let scalar_id = match item {
            Item::Object(object) => {
                let account = full(object, customer_id, &institution, guard).map_err(|e| {
                    format!(
                        "accounts[{index}].balance {e}: the canonical decimal cannot hold it exactly, and numbers are never rounded"
                    )
                })?;
                accounts.push(account);
                continue;
            }
            Item::Str(id) => id.trim().to_owned(),
            Item::Number(n) => n.to_string(),
            _ => {
                errors.push(ProviderError {
                    code: "unrecognized_account".into(),
                    message: format!("accounts[{index}] is neither an account object nor an id"),
                });
                continue;
            }
        };
        accounts.push(Account {
            id: scalar_id,
            institution: institution.clone(),
            customer_id: customer_id.to_owned(),
            ..Default::default()
        });
    }
    if !matches!(payload.accounts, Item::Absent | Item::Null | Item::Array(_)) {
        errors.push(ProviderError {
            code: "unrecognized_accounts".into(),
            message: "accounts is not an array".into(),
        });
    }

    let mut connection_id = id(&payload.institution_login_id);
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
    Ok(Mapped {
        kind,
        payload: EventPayload::Account(AccountEvent {
            change: change as i32,
            accounts,
            oauth: payload.oauth.is_true(),
            errors,
        }),
        connection_id,
        institution: reference_institution,
        account_ids,
    })
}

/// A full Finicity account object.
fn full(
    object: &AccountObject<'_>,
    customer_id: &str,
    payload_institution: &Option<Institution>,
    guard: &PersonalDataGuard,
) -> Result<Account, DecimalError> {
    let currency = object.currency.as_str().trim().to_owned();
    let provider_status = object.status.to_string_owned();
    let mut account_customer = id(&object.customer_id);
    if account_customer.is_empty() {
        account_customer = customer_id.to_owned();
    }
    Ok(Account {
        id: id(&object.id),
        number: guard.apply_opt(ACCOUNT_NUMBER_FIELD, object.number.as_str().trim()),
        name: object.name.to_string_owned(),
        r#type: object.r#type.to_string_owned(),
        status: status(&provider_status) as i32,
        provider_status,
        balance: object
            .balance
            .get()?
            .map(|value| convert::money(value, &currency)),
        currency_code: currency,
        connection_id: id(&object.institution_login_id),
        institution: institution(&object.institution_id).or_else(|| payload_institution.clone()),
        customer_id: account_customer,
        created_at: epoch_seconds(&object.created_date),
        last_updated_at: epoch_seconds(&object.last_updated_date),
        display_position: object
            .display_position
            .0
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or_default(),
        ..Default::default()
    })
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
fn epoch_seconds(value: &Item<'_, Skip>) -> Option<Timestamp> {
    let seconds = match value {
        Item::Number(n) => n.as_i64()?,
        Item::Str(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (seconds > 0)
        .then(|| convert::timestamp_from_epoch_seconds(seconds))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    fn epoch(value: Value) -> Option<Timestamp> {
        epoch_seconds(&Item::deserialize(&value).expect("any JSON reads"))
    }

    #[test]
    fn epoch_seconds_accepts_numbers_and_numeric_strings() {
        let ts = epoch(json!(1607450357)).expect("number");
        assert_eq!(ts.seconds, 1_607_450_357);
        let ts = epoch(json!(" 1607450357")).expect("string");
        assert_eq!(ts.seconds, 1_607_450_357);
        assert!(epoch(json!(0)).is_none());
        assert!(epoch(json!("soon")).is_none());
        assert!(epoch(json!(1.5)).is_none());
        assert!(epoch(json!(null)).is_none());
        assert!(epoch_seconds(&Item::Absent).is_none());
    }

    #[test]
    fn unknown_statuses_are_kept_unspecified() {
        assert_eq!(status("active"), AccountStatus::Active);
        assert_eq!(status("PENDING"), AccountStatus::Pending);
        assert_eq!(status("frozen"), AccountStatus::Unspecified);
    }
}
