//! METER NEW_DATA_AVAILABLE / EXISTING_DATA_UPDATED / STATUS_CHANGE: meter.discovered /
//! meter.intervals_updated / meter.status_changed.

use serde_json::Value;
use tributary_plugin_sdk::convert::str_at;
use tributary_plugin_sdk::lenient::{Flag, Json, Num, Obj, Objects, Str, Strings, Text};
use tributary_plugin_sdk::lenient_object;
use tributary_plugin_sdk::prelude::*;

use super::typed::{
    CredentialRefs, IdOnly, Provider, correlation_ids, credential_id, date_of, instant_of,
    institution,
};
use super::{
    ACCOUNT_NUMBER, Envelope, METER_NUMBER, Mapper, SERVICE_ADDRESS, SITE, event, extension,
    number_error, push_unique,
};

lenient_object! {
    /// METER `data`: the keys the mapping reads. The fields whose shape varies (tariff,
    /// address, site) and the partner's `customData` stay `Value`s (usually null).
    #[derive(Clone)]
    pub struct MeterData<'a> {
        "id" => id: Text<'a>,
        "meterNumber" => meter_number: Text<'a>,
        "pointOfDeliveryNumber" => point_of_delivery_number: Text<'a>,
        "normalizedMeterNumber" => normalized_meter_number: Text<'a>,
        "normalizedPointOfDeliveryNumber" => normalized_point_of_delivery_number: Text<'a>,
        "isIntervalsThirdPartyPortalMeter" => intervals_third_party_portal: Flag,
        "isLocationRecommendationIgnored" => location_recommendation_ignored: Flag,
        "isStandalone" => standalone: Flag,
        "bulbType" => bulb_type: Text<'a>,
        "pipeType" => pipe_type: Text<'a>,
        "generalDescriptionAsPrinted" => general_description_as_printed: Text<'a>,
        "serviceType" => service_type: Text<'a>,
        "serviceTypeClassification" => service_type_classification: Text<'a>,
        "status" => status: Text<'a>,
        "statusDetail" => status_detail: Text<'a>,
        "earliestIntervalAt" => earliest_interval_at: Str<'a>,
        "latestIntervalAt" => latest_interval_at: Str<'a>,
        "localTimezone" => local_timezone: Text<'a>,
        "nextExpectedPostDate" => next_expected_post_date: Str<'a>,
        "latestStatementDate" => latest_statement_date: Str<'a>,
        "isIntervalsProductActive" => intervals_product_active: Flag,
        "createdAt" => created_at: Str<'a>,
        "lastModifiedAt" => last_modified_at: Str<'a>,
        "meterConstantMultiplier" => constant_multiplier: Num,
        "previousMeterConstantMultiplier" => previous_constant_multiplier: Num,
        "previousMeterNumber" => previous_meter_number: Text<'a>,
        "currentTariff" => current_tariff: Value,
        "serviceAddress" => service_address: Value,
        "site" => site: Value,
        "customData" => custom_data: Json,
        "accounts" => accounts: Objects<MeterAccount<'a>>,
        "provider" => provider: Obj<Provider<'a>>,
        "correlationId" => correlation_id: Text<'a>,
        "correlationIds" => correlation_ids: Strings<'a>,
        "credentialId" => credential_id: Text<'a>,
        "credential" => credential: Obj<IdOnly<'a>>,
        "credentialIds" => credential_ids: Strings<'a>,
        "credentials" => credentials: Objects<IdOnly<'a>>,
    }
}

lenient_object! {
    /// One `accounts[]` entry of a meter.
    #[derive(Clone)]
    pub struct MeterAccount<'a> {
        "id" => id: Text<'a>,
        "accountNumber" => account_number: Text<'a>,
        "credentialId" => credential_id: Text<'a>,
        "credential" => credential: Obj<IdOnly<'a>>,
        "credentialIds" => credential_ids: Strings<'a>,
        "credentials" => credentials: Objects<IdOnly<'a>>,
    }
}

/// Maps one meter event as `event_type`; meter numbers go through the `meter_number` policy.
pub fn map(m: &Mapper, env: &Envelope<'_>, event_type: &str) -> Result<Event, String> {
    env.with_meter_data(|data| map_data(m, env, data, event_type))?
}

fn map_data(
    m: &Mapper,
    env: &Envelope<'_>,
    data: &MeterData<'_>,
    event_type: &str,
) -> Result<Event, String> {
    let provider_status = data.status.to_string_owned();
    let mut account_ids = Vec::new();
    for account in &data.accounts.0 {
        push_unique(&mut account_ids, account.id.to_string_owned());
    }
    let id = data.id.to_string_owned();
    let meter_number = m.personal(METER_NUMBER, data.meter_number.as_str());
    let payload = MeterEvent {
        id: id.clone(),
        normalized_meter_number: m.personal_or_same(
            METER_NUMBER,
            data.normalized_meter_number.as_str(),
            data.meter_number.as_str(),
            &meter_number,
        ),
        meter_number,
        point_of_delivery_number: data.point_of_delivery_number.to_string_owned(),
        service_type: data.service_type.to_string_owned(),
        status: interval_status(&provider_status) as i32,
        provider_status,
        provider_status_detail: data.status_detail.to_string_owned(),
        earliest_interval_at: instant_of(&data.earliest_interval_at),
        latest_interval_at: instant_of(&data.latest_interval_at),
        local_timezone: data.local_timezone.to_string_owned(),
        next_expected_post_date: date_of(&data.next_expected_post_date),
        intervals_product_active: data.intervals_product_active.is_true(),
        account_ids: account_ids.clone(),
        errors: env.errors.clone(),
        constant_multiplier: decimal(data.constant_multiplier, "meterConstantMultiplier")?,
        previous_constant_multiplier: decimal(
            data.previous_constant_multiplier,
            "previousMeterConstantMultiplier",
        )?,
        previous_meter_number: m.personal(METER_NUMBER, data.previous_meter_number.as_str()),
        current_tariff: tariff(&data.current_tariff),
        service_address: address_text(&data.service_address)
            .and_then(|address| m.personal(SERVICE_ADDRESS, &address)),
        site: site_name(&data.site).and_then(|name| m.personal(SITE, &name)),
        site_id: str_at(&data.site, "id"),
        latest_statement_date: date_of(&data.latest_statement_date),
        service_type_classification: data.service_type_classification.to_string_owned(),
        created_at: instant_of(&data.created_at),
        last_modified_at: instant_of(&data.last_modified_at),
        normalized_point_of_delivery_number: data
            .normalized_point_of_delivery_number
            .to_string_owned(),
        account_numbers: data
            .accounts
            .0
            .iter()
            .filter_map(|account| m.personal(ACCOUNT_NUMBER, account.account_number.as_str()))
            .collect(),
        arcadia: extension(ArcadiaExtension {
            intervals_third_party_portal: data.intervals_third_party_portal.0,
            location_recommendation_ignored: data.location_recommendation_ignored.0,
            standalone: data.standalone.0,
            bulb_type: data.bulb_type.to_string_owned(),
            pipe_type: data.pipe_type.to_string_owned(),
            general_description_as_printed: data.general_description_as_printed.to_string_owned(),
            ..Default::default()
        }),
    };
    // The meter's own credential keys, then each account's.
    let refs = std::iter::once(CredentialRefs {
        credential_id: &data.credential_id,
        credential: &data.credential,
        credential_ids: &data.credential_ids,
        credentials: &data.credentials,
    })
    .chain(data.accounts.0.iter().map(|account| CredentialRefs {
        credential_id: &account.credential_id,
        credential: &account.credential,
        credential_ids: &account.credential_ids,
        credentials: &account.credentials,
    }));
    let references = References {
        connection_id: credential_id(refs),
        account_ids,
        institution: institution(&data.provider),
        correlation_ids: correlation_ids(&data.correlation_id, &data.correlation_ids),
        ..Default::default()
    };
    let mut event = event(env, event_type, id, references, Payload::Meter(payload));
    event.partner_metadata = data.custom_data.to_struct();
    Ok(event)
}

/// A number or numeric string, exactly; one that a `Decimal` cannot hold is the reason the
/// event is dead-lettered (never rounded).
fn decimal(value: Num, field: &str) -> Result<Option<Decimal>, String> {
    Ok(value
        .get()
        .map_err(|e| number_error("METER", field, e))?
        .map(|(units, nanos)| Decimal { units, nanos }))
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
