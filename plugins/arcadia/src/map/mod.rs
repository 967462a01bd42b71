//! From an Arcadia envelope to one canonical event: the dispatch table and shared helpers.

mod account;
mod credential;
mod meter;
mod operations;
mod statement;

use serde_json::Value;
use tributary_plugin_sdk::convert::{str_at, timestamp_at, to_struct};
use tributary_plugin_sdk::personal_data::PersonalDataGuard;
use tributary_plugin_sdk::prelude::*;

/// Personal-data field names of the source's policy (`personal_data.fields`).
/// Account numbers: an account's own, its summary account's, statement lines', files'.
const ACCOUNT_NUMBER: &str = "account_number";
/// Meter numbers: a meter's own and the one it replaced, statement meter lines'.
const METER_NUMBER: &str = "meter_number";
/// A meter's service address.
const SERVICE_ADDRESS: &str = "service_address";
/// Site names: an account's `siteNames[]` and a meter's `site`.
const SITE: &str = "site";

/// The envelope every Arcadia webhook shares.
pub struct Envelope<'a> {
    /// `id` ("whk_..."): the dedup key.
    pub id: String,
    /// `eventType` ("STATUS_CHANGE").
    pub event_type: String,
    /// `resource` ("CREDENTIAL").
    pub resource: String,
    created_at: Option<Timestamp>,
    data: Option<&'a Value>,
    errors: Vec<ProviderError>,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope; a body without `id`, `eventType` and `resource` strings is not an
    /// Arcadia webhook (malformed).
    pub fn parse(body: &'a Value) -> Result<Self, Rejection> {
        if !body.is_object() {
            return Err(reject::malformed(
                "Arcadia webhook body must be a JSON object",
            ));
        }
        let required = |key: &str| match body.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(reject::malformed(format!(
                "Arcadia envelope has no non-empty string `{key}`"
            ))),
        };
        Ok(Self {
            id: required("id")?,
            event_type: required("eventType")?,
            resource: required("resource")?,
            created_at: timestamp_at(body, "createdAt"),
            data: body.get("data").filter(|d| d.is_object()),
            errors: provider_errors(body.get("errors")),
        })
    }

    /// The `data` object, or why the event cannot be mapped without it.
    fn data(&self) -> Result<&'a Value, String> {
        self.data.ok_or_else(|| {
            format!(
                "{} {} webhook has no `data` object",
                self.resource, self.event_type
            )
        })
    }
}

/// Maps envelopes with the source's personal-data policy and currency fallback.
pub struct Mapper {
    guard: PersonalDataGuard,
    default_currency: String,
}

impl Mapper {
    /// A mapper for one source.
    pub fn new(guard: PersonalDataGuard, default_currency: String) -> Self {
        Self {
            guard,
            default_currency,
        }
    }

    /// The canonical event, or the reason the envelope is dead-lettered.
    pub fn map(&self, env: &Envelope<'_>) -> Result<Event, String> {
        match (env.resource.as_str(), env.event_type.as_str()) {
            ("CREDENTIAL", "STATUS_CHANGE") => credential::status_change(self, env),
            ("CREDENTIAL", "REAL_TIME_CREDENTIAL_VALIDATION_SUCCESS") => {
                credential::real_time_validation(self, env, true)
            }
            ("CREDENTIAL", "REAL_TIME_CREDENTIAL_VALIDATION_FAILURE") => {
                credential::real_time_validation(self, env, false)
            }
            ("MFA_METHOD_PROMPT", "MFA_CHALLENGE_METHOD") => credential::mfa_method(self, env),
            ("MFA_CODE_PROMPT", "MFA_CHALLENGE_CODE") => credential::mfa_code(self, env),
            ("ACCOUNT", "STATUS_CHANGE") => account::status_change(self, env),
            ("STATEMENT", "NEW_DATA_AVAILABLE") => statement::map(self, env, "statement.available"),
            ("STATEMENT", "EXISTING_DATA_UPDATED") => {
                statement::map(self, env, "statement.updated")
            }
            ("METER", "NEW_DATA_AVAILABLE") => meter::map(self, env, "meter.discovered"),
            ("METER", "EXISTING_DATA_UPDATED") => meter::map(self, env, "meter.intervals_updated"),
            ("METER", "STATUS_CHANGE") => meter::map(self, env, "meter.status_changed"),
            ("FILE", "STATUS_CHANGE") => operations::file(self, env),
            ("DELETION", "STATUS_CHANGE") => operations::deletion(env),
            ("DOWNLOAD", "STATUS_CHANGE") => operations::download(env),
            (resource, event_type) => Err(format!(
                "no mapping for Arcadia resource {resource:?} with eventType {event_type:?}"
            )),
        }
    }

    /// A personal-data value after the policy; `None` when empty.
    fn personal(&self, field: &str, value: &str) -> Option<PersonalData> {
        self.guard.apply_opt(field, value)
    }

    /// `currencyCode` of `object` when set, else the configured fallback (maybe empty).
    fn currency(&self, object: &Value, fallback: Option<&str>) -> String {
        let own = str_at(object, "currencyCode");
        if !own.is_empty() {
            return own;
        }
        fallback.unwrap_or(&self.default_currency).to_owned()
    }
}

/// Builds the event around a payload with the envelope's provenance and time.
fn event(
    env: &Envelope<'_>,
    event_type: &str,
    subject: String,
    references: References,
    payload: Payload,
) -> Event {
    Event {
        r#type: event_type.to_owned(),
        subject,
        time: env.created_at,
        provenance: Some(Provenance {
            provider_event_id: env.id.clone(),
            provider_event_type: env.event_type.clone(),
            provider_resource: env.resource.clone(),
            provider_created_at: env.created_at,
            ..Default::default()
        }),
        references: (references != References::default()).then_some(references),
        payload: Some(payload),
        ..Default::default()
    }
}

/// The partner's `customData` echoed on accounts and meters, when it is an object.
fn custom_data(data: &Value) -> Option<Struct> {
    data.get("customData").and_then(to_struct)
}

/// References shared by every resource: institution (`provider`) and correlation ids.
fn base_references(data: &Value) -> References {
    References {
        institution: institution(data.get("provider")),
        correlation_ids: correlation_ids(data),
        ..Default::default()
    }
}

/// `provider` {id, name, country} as an Institution; `None` when null or empty.
fn institution(provider: Option<&Value>) -> Option<Institution> {
    let provider = provider.filter(|p| p.is_object())?;
    let institution = Institution {
        id: str_at(provider, "id"),
        name: str_at(provider, "name"),
        country: str_at(provider, "country"),
    };
    (institution != Institution::default()).then_some(institution)
}

/// `correlationId` and `correlationIds[]`, without empties or repeats.
fn correlation_ids(data: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let single = str_at(data, "correlationId");
    for id in std::iter::once(single).chain(convert::strings_at(data, "correlationIds")) {
        push_unique(&mut ids, id);
    }
    ids
}

/// The envelope's `errors[]`: objects with code/message, or bare strings.
fn provider_errors(errors: Option<&Value>) -> Vec<ProviderError> {
    let Some(items) = errors.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => ProviderError {
                code: String::new(),
                message: s.clone(),
            },
            Value::Object(_) => {
                let first = |keys: &[&str]| {
                    keys.iter()
                        .map(|k| str_at(item, k))
                        .find(|v| !v.is_empty())
                        .unwrap_or_default()
                };
                let code = first(&["code", "errorCode", "type"]);
                let mut message = first(&["message", "detail", "description", "error"]);
                if code.is_empty() && message.is_empty() {
                    message = item.to_string();
                }
                ProviderError { code, message }
            }
            other => ProviderError {
                code: String::new(),
                message: other.to_string(),
            },
        })
        .collect()
}

/// The boolean at `key`; `None` when absent, null or not a boolean (proto3 `optional bool`).
fn optional_bool(object: &Value, key: &str) -> Option<bool> {
    object.get(key).and_then(Value::as_bool)
}

/// The decimal at `key` (a JSON number or numeric string), exactly; `None` when absent or not
/// a number.
fn decimal_at(object: &Value, key: &str) -> Option<Decimal> {
    let (units, nanos) = object.get(key).and_then(convert::decimal)?;
    Some(Decimal { units, nanos })
}

/// The integer at `key` as i32, saturating; 0 when absent.
fn i32_at(object: &Value, key: &str) -> i32 {
    let value = convert::i64_at(object, key);
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

/// Pushes `id` unless empty or already present.
fn push_unique(ids: &mut Vec<String>, id: String) {
    if !id.is_empty() && !ids.contains(&id) {
        ids.push(id);
    }
}
