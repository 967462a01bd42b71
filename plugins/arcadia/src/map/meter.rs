//! METER NEW_DATA_AVAILABLE / EXISTING_DATA_UPDATED / STATUS_CHANGE: meter.discovered /
//! meter.intervals_updated / meter.status_changed.

use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, date_at, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::account::credential_id;
use super::{Envelope, Mapper, base_references, custom_data, event, push_unique};

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
        meter_number: m.personal("meter_number", &str_at(data, "meterNumber")),
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
    };
    let references = References {
        connection_id: credential_id(data),
        account_ids,
        ..base_references(data)
    };
    let mut event = event(env, event_type, id, references, Payload::Meter(payload));
    event.partner_metadata = custom_data(data);
    Ok(event)
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
