//! METER NEW_DATA_AVAILABLE / EXISTING_DATA_UPDATED / STATUS_CHANGE: meter.discovered /
//! meter.intervals_updated / meter.status_changed.

use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, date_at, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::account::credential_id;
use super::{
    Envelope, METER_NUMBER, Mapper, SERVICE_ADDRESS, SITE, base_references, custom_data,
    decimal_at, event, push_unique,
};

/// Maps one meter event as `event_type`; meter numbers go through the `meter_number` policy.
pub fn map(m: &Mapper, env: &Envelope<'_>, event_type: &str) -> Result<Event, String> {
    let data = env.data()?;
    let provider_status = str_at(data, "status");
    let mut account_ids = Vec::new();
    for account in data
        .get("accounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_unique(&mut account_ids, str_at(account, "id"));
    }
    let id = str_at(data, "id");
    let payload = MeterEvent {
        id: id.clone(),
        meter_number: m.personal(METER_NUMBER, &str_at(data, "meterNumber")),
        point_of_delivery_number: str_at(data, "pointOfDeliveryNumber"),
        service_type: str_at(data, "serviceType"),
        status: interval_status(&provider_status) as i32,
        provider_status,
        provider_status_detail: str_at(data, "statusDetail"),
        earliest_interval_at: timestamp_at(data, "earliestIntervalAt"),
        latest_interval_at: timestamp_at(data, "latestIntervalAt"),
        local_timezone: str_at(data, "localTimezone"),
        next_expected_post_date: date_at(data, "nextExpectedPostDate"),
        intervals_product_active: bool_at(data, "isIntervalsProductActive"),
        account_ids: account_ids.clone(),
        errors: env.errors.clone(),
        constant_multiplier: decimal_at(data, "meterConstantMultiplier"),
        previous_constant_multiplier: decimal_at(data, "previousMeterConstantMultiplier"),
        previous_meter_number: m.personal(METER_NUMBER, &str_at(data, "previousMeterNumber")),
        current_tariff: data.get("currentTariff").and_then(tariff),
        service_address: data
            .get("serviceAddress")
            .and_then(address_text)
            .and_then(|address| m.personal(SERVICE_ADDRESS, &address)),
        site: data
            .get("site")
            .and_then(site_name)
            .and_then(|name| m.personal(SITE, &name)),
        site_id: data
            .get("site")
            .map(|site| str_at(site, "id"))
            .unwrap_or_default(),
        latest_statement_date: date_at(data, "latestStatementDate"),
        service_type_classification: str_at(data, "serviceTypeClassification"),
    };
    let references = References {
        connection_id: credential_id(data, Some("accounts")),
        account_ids,
        ..base_references(data)
    };
    let mut event = event(env, event_type, id, references, Payload::Meter(payload));
    event.partner_metadata = custom_data(data);
    Ok(event)
}

/// `currentTariff`: the seeds only show `null`. Consumer code of the API reads an object with
/// `tariffName`; a plain string is taken as the name. Also read: `name`, `tariffCode`/`code`,
/// `id`/`tariffId`/`masterTariffId`. `None` when nothing is known.
fn tariff(value: &Value) -> Option<Tariff> {
    let first = |keys: &[&str]| {
        keys.iter()
            .map(|key| str_at(value, key))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    let tariff = match value {
        Value::String(name) => Tariff {
            name: name.trim().to_owned(),
            ..Default::default()
        },
        Value::Object(_) => Tariff {
            id: first(&["id", "tariffId", "masterTariffId"]),
            name: first(&["tariffName", "name"]),
            code: first(&["tariffCode", "code"]),
        },
        _ => return None,
    };
    (tariff != Tariff::default()).then_some(tariff)
}

/// Address parts joined into one line when no `fullAddress` is given, in this order.
const ADDRESS_PARTS: [&str; 6] = [
    "streetLine1",
    "streetLine2",
    "city",
    "state",
    "postalCode",
    "country",
];

/// `serviceAddress` as one line of text: a string as given, or an object's `fullAddress`, else
/// its parts joined with ", " (the seeds only show `null`; consumer code of the API reads
/// `fullAddress`, `streetLine1`, `city`, `state`, `postalCode`). `None` when empty.
fn address_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Object(_) => {
            let full = str_at(value, "fullAddress");
            if full.trim().is_empty() {
                ADDRESS_PARTS
                    .iter()
                    .map(|key| str_at(value, key))
                    .filter(|part| !part.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                full.trim().to_owned()
            }
        }
        _ => String::new(),
    };
    (!text.is_empty()).then_some(text)
}

/// `site` as a name: a string as given, or an object's `name` (else its address). The seeds
/// only show `null`; the shape is not public.
fn site_name(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) => {
            let name = str_at(value, "name");
            if name.trim().is_empty() {
                value.get("address").and_then(address_text)
            } else {
                Some(name.trim().to_owned())
            }
        }
        other => address_text(other),
    }
}

/// Canonical interval status. Arcadia does not document its failure values publicly, so any
/// `INTERVALS_*FAIL*` value counts as failed; anything else unknown stays UNSPECIFIED.
fn interval_status(status: &str) -> MeterIntervalStatus {
    match status {
        "INTERVALS_NOT_REQUESTED" => MeterIntervalStatus::NotRequested,
        "INTERVALS_IN_PROGRESS" => MeterIntervalStatus::InProgress,
        "INTERVALS_SUCCESS" => MeterIntervalStatus::Available,
        s if s.starts_with("INTERVALS_") && s.contains("FAIL") => MeterIntervalStatus::Failed,
        _ => MeterIntervalStatus::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tariffs_in_every_shape() {
        let full = json!({"masterTariffId": 522, "name": "Residential", "code": "E-1"});
        assert_eq!(
            tariff(&full),
            Some(Tariff {
                id: "522".into(),
                name: "Residential".into(),
                code: "E-1".into(),
            })
        );
        assert_eq!(tariff(&json!(" E-1 ")).map(|t| t.name), Some("E-1".into()));
        assert_eq!(tariff(&json!({})), None);
        assert_eq!(tariff(&json!("")), None);
        assert_eq!(tariff(&json!(7)), None);
        assert_eq!(tariff(&Value::Null), None);
    }

    #[test]
    fn addresses_as_one_line() {
        let parts = json!({"streetLine1": "1 A St", "streetLine2": "", "city": "X",
            "state": null, "postalCode": "01234", "country": "USA"});
        assert_eq!(
            address_text(&parts).as_deref(),
            Some("1 A St, X, 01234, USA")
        );
        let full = json!({"fullAddress": " 1 A St, X ", "city": "ignored"});
        assert_eq!(address_text(&full).as_deref(), Some("1 A St, X"));
        assert_eq!(address_text(&json!({"fullAddress": " "})), None);
        assert_eq!(address_text(&json!("  ")), None);
        assert_eq!(address_text(&json!(["1 A St"])), None);
        assert_eq!(
            site_name(&json!({"id": "sit_1", "address": {"city": "X"}})).as_deref(),
            Some("X")
        );
        assert_eq!(site_name(&json!({"id": "sit_1"})), None);
    }
}
