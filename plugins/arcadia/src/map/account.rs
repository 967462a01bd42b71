//! ACCOUNT STATUS_CHANGE: account.discovered (NEW_ACCOUNT) or account.status_changed.

use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, date_at, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::{
    ACCOUNT_NUMBER, Envelope, Mapper, SITE, base_references, custom_data, event, extension,
    institution, optional_bool, push_unique,
};

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
    let connection_id = credential_id(data, None);
    let account_number = str_at(data, "accountNumber");
    let number = m.personal(ACCOUNT_NUMBER, &account_number);
    let account = Account {
        id: id.clone(),
        normalized_number: m.personal_or_same(
            ACCOUNT_NUMBER,
            &str_at(data, "normalizedAccountNumber"),
            &account_number,
            &number,
        ),
        number,
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
        summary_account_id: str_at(data, "summaryAccountId"),
        summary_account_number: m.personal(ACCOUNT_NUMBER, &str_at(data, "summaryAccountNumber")),
        prepaid: optional_bool(data, "prepaid"),
        accessible: optional_bool(data, "isAccessible"),
        provider_classification: str_at(data, "providerClassification"),
        last_successful_extraction_at: timestamp_at(data, "lastSuccessfulStatementExtractionAt"),
        latest_new_statement_at: timestamp_at(data, "latestNewStatementAt"),
        site_names: convert::strings_at(data, "siteNames")
            .iter()
            .filter_map(|name| m.personal(SITE, name))
            .collect(),
        normalized_summary_account_number: m.personal(
            ACCOUNT_NUMBER,
            &str_at(data, "normalizedSummaryAccountNumber"),
        ),
        first_extracted_at: timestamp_at(data, "firstExtractedAt"),
        history_fulfilled: optional_bool(data, "isHistoryFulfilled"),
        service_type_details: service_type_details(data),
        arcadia: extension(ArcadiaExtension {
            statements_product_active: optional_bool(data, "isStatementsProductActive"),
            intervals_third_party_portal: optional_bool(data, "isIntervalsThirdPartyPortalAccount"),
            ..Default::default()
        }),
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
    event.partner_metadata = custom_data(env, data);
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

/// `serviceTypes` with their classification: objects `{serviceType, serviceTypeClassification}`
/// or plain strings (no classification), without repeats.
fn service_type_details(data: &Value) -> Vec<ServiceType> {
    let mut types: Vec<ServiceType> = Vec::new();
    for item in data
        .get("serviceTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let service_type = match item {
            Value::String(s) => ServiceType {
                service_type: s.clone(),
                ..Default::default()
            },
            other => ServiceType {
                service_type: str_at(other, "serviceType"),
                classification: str_at(other, "serviceTypeClassification"),
            },
        };
        if service_type != ServiceType::default() && !types.contains(&service_type) {
            types.push(service_type);
        }
    }
    types
}

/// The credential a resource belongs to, when the payload names exactly one: `credentialId`,
/// `credential.id`, `credentialIds[]` or `credentials[].id` of `data`, and the same keys on the
/// nested objects under `nested` (a statement's `accountData[]`, a meter's `accounts[]`).
/// Several different ids, or none, give an empty id: a credential is never guessed. The
/// documented examples carry none of these keys.
pub fn credential_id(data: &Value, nested: Option<&str>) -> String {
    let mut ids = Vec::new();
    credential_ids_of(data, &mut ids);
    if let Some(items) = nested
        .and_then(|key| data.get(key))
        .and_then(Value::as_array)
    {
        for item in items {
            credential_ids_of(item, &mut ids);
        }
    }
    match ids.as_slice() {
        [only] => only.clone(),
        _ => String::new(),
    }
}

/// The credential ids one object names, added to `ids` without repeats.
fn credential_ids_of(object: &Value, ids: &mut Vec<String>) {
    push_unique(ids, str_at(object, "credentialId"));
    if let Some(credential) = object.get("credential") {
        push_unique(ids, str_at(credential, "id"));
    }
    for id in convert::strings_at(object, "credentialIds") {
        push_unique(ids, id);
    }
    for credential in object
        .get("credentials")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_unique(ids, str_at(credential, "id"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_credential_is_linked_only_when_the_payload_names_exactly_one() {
        assert_eq!(
            credential_id(&json!({"credentialId": "crd_1"}), None),
            "crd_1"
        );
        assert_eq!(
            credential_id(&json!({"credential": {"id": "crd_1"}}), None),
            "crd_1"
        );
        assert_eq!(
            credential_id(&json!({"credentialIds": ["crd_1", "crd_1"]}), None),
            "crd_1"
        );
        assert_eq!(
            credential_id(&json!({"credentials": [{"id": "crd_1"}, {"x": 1}]}), None),
            "crd_1"
        );
        let lines = json!({"accountData": [{"credentialId": "crd_1"}, {"credentialId": "crd_1"}]});
        assert_eq!(credential_id(&lines, Some("accountData")), "crd_1");
        assert_eq!(credential_id(&lines, None), "");
        let two = json!({"credentialId": "crd_1", "accounts": [{"credentialId": "crd_2"}]});
        assert_eq!(credential_id(&two, Some("accounts")), "", "never guessed");
        assert_eq!(credential_id(&json!({"credential": "crd_1"}), None), "");
        assert_eq!(credential_id(&json!({}), Some("accounts")), "");
    }
}
