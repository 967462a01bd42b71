//! From an Arcadia envelope to one canonical event: the dispatch table and shared helpers.

mod account;
mod credential;
mod meter;
mod operations;
mod statement;
mod typed;

use credential::CredentialData;
use meter::MeterData;
use statement::StatementData;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::SeqAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tributary_plugin_sdk::convert::DecimalError;
use tributary_plugin_sdk::convert::{str_at, to_struct};
use tributary_plugin_sdk::lenient::{Json, Key, Obj, Skip, Str};
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
/// An uploaded bill file's `fileName`.
const FILE_NAME: &str = "file_name";

/// The envelope every Arcadia webhook shares, read straight from the body (strings borrowed
/// from it) or from a parsed `Value` (see [`Envelope::parse`]).
pub struct Envelope<'a> {
    /// `id` ("whk_..."): the dedup key.
    pub id: Cow<'a, str>,
    /// `eventType` ("STATUS_CHANGE").
    pub event_type: Cow<'a, str>,
    /// `resource` ("CREDENTIAL").
    pub resource: Cow<'a, str>,
    created_at: Option<Timestamp>,
    data: Data<'a>,
    /// `data.customData` as its JSON text, when `data` was read as a `Value` from the body
    /// (typed resources keep their own).
    custom_data: Json,
    errors: Vec<ProviderError>,
}

/// `data`, typed for the resources that have typed mappers, a `Value` for the others.
enum Data<'a> {
    /// STATEMENT `data`, when the body was read straight into types (boxed: the struct is
    /// large, and moving it around cost more than the allocation).
    Statement(Obj<Box<StatementData<'a>>>),
    /// METER `data`, likewise.
    Meter(Obj<Box<MeterData<'a>>>),
    /// CREDENTIAL `data`, likewise.
    Credential(Obj<Box<CredentialData<'a>>>),
    /// Any resource's `data`, kept whole (the object check happens in [`Envelope::data`]).
    Value(Value),
}

/// What to read `data` as: decided before the envelope is read, so from a hint (see
/// [`Envelope::from_body`]); a wrong hint costs a second parse, never a different result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Statement,
    Meter,
    Credential,
    Value,
}

impl DataKind {
    /// The hint: the string after the last `"resource"` key, found without parsing (it is
    /// the last key of Arcadia's webhooks, so the search from the end is short). Anything odd
    /// means `Value`.
    fn guess(text: &str) -> Self {
        const KEY: &str = "\"resource\"";
        let Some(at) = text.rfind(KEY) else {
            return Self::Value;
        };
        let name = text[at + KEY.len()..]
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('"'))
            .and_then(|rest| rest.split('"').next());
        match name {
            Some("STATEMENT") => Self::Statement,
            Some("METER") => Self::Meter,
            Some("CREDENTIAL") => Self::Credential,
            _ => Self::Value,
        }
    }

    /// How `data` of `resource` is read.
    fn of(resource: &str) -> Self {
        match resource {
            "STATEMENT" => Self::Statement,
            "METER" => Self::Meter,
            "CREDENTIAL" => Self::Credential,
            _ => Self::Value,
        }
    }

    /// Whether `data` read this way fits the envelope's `resource`.
    fn fits(self, resource: &str) -> bool {
        match self {
            Self::Statement => resource == "STATEMENT",
            Self::Meter => resource == "METER",
            Self::Credential => resource == "CREDENTIAL",
            Self::Value => true,
        }
    }
}

/// The envelope's JSON fields before the checks of [`Envelope::parse`].
struct RawEnvelope<'a> {
    id: Str<'a>,
    event_type: Str<'a>,
    resource: Str<'a>,
    created_at: Str<'a>,
    data: Data<'a>,
    custom_data: Json,
    errors: Value,
}

/// Reads a body's top level: `None` when it is not an object. Unknown keys are checked and
/// skipped; a repeated key keeps its last value (as in a `Value`).
struct EnvelopeSeed(DataKind);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed {
    type Value = Option<RawEnvelope<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(EnvelopeVisitor(self.0))
    }
}

struct EnvelopeVisitor(DataKind);

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Option<RawEnvelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawEnvelope {
            id: Str::default(),
            event_type: Str::default(),
            resource: Str::default(),
            created_at: Str::default(),
            data: Data::Value(Value::Null),
            custom_data: Json::default(),
            errors: Value::Null,
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match &*key.0 {
                "id" => raw.id = map.next_value()?,
                "eventType" => raw.event_type = map.next_value()?,
                "resource" => raw.resource = map.next_value()?,
                "createdAt" => raw.created_at = map.next_value()?,
                "errors" => raw.errors = map.next_value()?,
                "data" => {
                    raw.data = match self.0 {
                        DataKind::Statement => Data::Statement(map.next_value()?),
                        DataKind::Meter => Data::Meter(map.next_value()?),
                        DataKind::Credential => Data::Credential(map.next_value()?),
                        DataKind::Value => {
                            let data: DataValue = map.next_value()?;
                            raw.custom_data = data.custom_data;
                            Data::Value(data.value)
                        }
                    }
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Some(raw))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `data` as a `Value`, with `customData` also kept as its JSON text (partner metadata keeps
/// every digit of its numbers, which a `Value` reads through f64).
struct DataValue {
    value: Value,
    custom_data: Json,
}

impl<'de> Deserialize<'de> for DataValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DataValueVisitor)
    }
}

struct DataValueVisitor;

impl DataValueVisitor {
    fn plain(value: Value) -> DataValue {
        DataValue {
            value,
            custom_data: Json::default(),
        }
    }
}

impl<'de> Visitor<'de> for DataValueVisitor {
    type Value = DataValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataValue, A::Error> {
        let mut object = serde_json::Map::new();
        let mut custom_data = Json::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value = if &*key.0 == "customData" {
                let json: Json = map.next_value()?;
                let value = json
                    .get()
                    .map(serde_json::from_str::<Value>)
                    .transpose()
                    .map_err(serde::de::Error::custom)?
                    .unwrap_or_default();
                custom_data = json;
                value
            } else {
                map.next_value::<Value>()?
            };
            object.insert(key.0.into_owned(), value);
        }
        Ok(DataValue {
            value: Value::Object(object),
            custom_data,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DataValue, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Self::plain)
    }

    fn visit_bool<E>(self, b: bool) -> Result<DataValue, E> {
        Ok(Self::plain(Value::Bool(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<DataValue, E> {
        Ok(Self::plain(Value::from(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<DataValue, E> {
        Ok(Self::plain(Value::from(u)))
    }

    fn visit_f64<E>(self, f: f64) -> Result<DataValue, E> {
        Ok(Self::plain(Value::from(f)))
    }

    fn visit_str<E>(self, s: &str) -> Result<DataValue, E> {
        Ok(Self::plain(Value::String(s.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<DataValue, E> {
        Ok(Self::plain(Value::Null))
    }
}

/// `Envelope::$name`: runs `f` on the typed `data` of one resource, read from the `Value` when
/// the body went that way. `data` of another resource is impossible (`DataKind::fits`), and
/// treated as missing.
macro_rules! with_typed_data {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ident) => {
        $(#[$doc])*
        fn $name<R>(&self, f: impl FnOnce(&$ty<'_>) -> R) -> Result<R, String> {
            match &self.data {
                Data::$variant(Obj(Some(data))) => Ok(f(data)),
                Data::Value(value) => match Obj::<$ty<'_>>::deserialize(value) {
                    Ok(Obj(Some(data))) => Ok(f(&data)),
                    Ok(Obj(None)) => Err(self.no_data()),
                    Err(e) => Err(format!("{} data: {e}", self.resource)),
                },
                _ => Err(self.no_data()),
            }
        }
    };
}

impl<'a> Envelope<'a> {
    /// Reads the envelope straight from the body when it can; `None` when the body must be
    /// read as a `Value` instead ([`Envelope::from_value`]): it does not parse (the `Value`
    /// parse then gives the exact error). A wrong hint for `data` costs a second read of the
    /// text.
    ///
    /// The typed read goes through the same serde_json parser, token by token, with the same
    /// nesting limit, and checks what it skips ([`Skip`]), so it succeeds exactly when
    /// `serde_json::from_slice::<Value>` does.
    pub fn from_body(body: &'a [u8]) -> Option<Result<Self, Rejection>> {
        // A body that parses is UTF-8 throughout (strings are checked, the rest is ASCII);
        // checked once here, the parser then reads it as a `str` without checking strings.
        let text = std::str::from_utf8(body).ok()?;
        let kind = DataKind::guess(text);
        let envelope = Self::read(text, kind)?;
        match &envelope {
            // A wrong hint: read again the right way, still from the text (a `Value` would
            // round amounts through f64).
            Ok(env) if !kind.fits(&env.resource) => {
                let right = DataKind::of(&env.resource);
                Self::read(text, right)
            }
            _ => Some(envelope),
        }
    }

    /// Reads the envelope from the text with `data` read as `kind`; `None` when it does not
    /// parse.
    fn read(text: &'a str, kind: DataKind) -> Option<Result<Self, Rejection>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = EnvelopeSeed(kind).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(Self::parse(raw))
    }

    /// Reads the envelope from a parsed body (strings borrowed from it).
    pub fn from_value(body: &'a Value) -> Result<Self, Rejection> {
        let raw = EnvelopeSeed(DataKind::Value)
            .deserialize(body)
            .map_err(|e| reject::malformed(format!("Arcadia envelope: {e}")))?;
        Self::parse(raw)
    }

    /// Checks the envelope; a body without `id`, `eventType` and `resource` strings is not an
    /// Arcadia webhook (malformed).
    fn parse(raw: Option<RawEnvelope<'a>>) -> Result<Self, Rejection> {
        let Some(raw) = raw else {
            return Err(reject::malformed(
                "Arcadia webhook body must be a JSON object",
            ));
        };
        let required = |key: &str, value: Str<'a>| match value.0 {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(reject::malformed(format!(
                "Arcadia envelope has no non-empty string `{key}`"
            ))),
        };
        Ok(Self {
            id: required("id", raw.id)?,
            event_type: required("eventType", raw.event_type)?,
            resource: required("resource", raw.resource)?,
            created_at: raw.created_at.get().and_then(timestamp),
            data: raw.data,
            custom_data: raw.custom_data,
            errors: provider_errors(Some(&raw.errors)),
        })
    }

    /// The `data` object as a `Value`, or why the event cannot be mapped without it.
    fn data(&self) -> Result<&Value, String> {
        match &self.data {
            Data::Value(value) if value.is_object() => Ok(value),
            _ => Err(self.no_data()),
        }
    }

    with_typed_data!(
        /// Runs `f` on the STATEMENT `data`, typed (read from the `Value` when the body went
        /// that way), or says why the event cannot be mapped without it.
        with_statement_data, Statement, StatementData
    );
    with_typed_data!(
        /// The same for METER `data`.
        with_meter_data, Meter, MeterData
    );
    with_typed_data!(
        /// The same for CREDENTIAL `data`.
        with_credential_data, Credential, CredentialData
    );

    /// Why an event without a `data` object cannot be mapped.
    fn no_data(&self) -> String {
        format!(
            "{} {} webhook has no `data` object",
            self.resource, self.event_type
        )
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
        match (&*env.resource, &*env.event_type) {
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

    /// [`Mapper::personal`] of `value`, reusing `known` (the same field's result for
    /// `known_value`) when the two values are equal: a normalized number usually repeats the
    /// printed one, and a keyed hash costs more than the rest of a field's mapping.
    fn personal_or_same(
        &self,
        field: &str,
        value: &str,
        known_value: &str,
        known: &Option<PersonalData>,
    ) -> Option<PersonalData> {
        if value == known_value {
            known.clone()
        } else {
            self.personal(field, value)
        }
    }

    /// `own` (an item's `currencyCode`) when set, else the fallback, else the configured
    /// default (maybe empty).
    fn currency_of(&self, own: &str, fallback: Option<&str>) -> String {
        if !own.is_empty() {
            return own.to_owned();
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
            provider_event_id: env.id.clone().into_owned(),
            provider_event_type: env.event_type.clone().into_owned(),
            provider_resource: env.resource.clone().into_owned(),
            provider_created_at: env.created_at,
            ..Default::default()
        }),
        references: (references != References::default()).then_some(references),
        payload: Some(payload),
        ..Default::default()
    }
}

/// The partner's `customData` echoed on accounts, when it is an object: from its JSON text
/// when the body was read that way, so numbers keep every digit.
fn custom_data(env: &Envelope<'_>, data: &Value) -> Option<Struct> {
    match env.custom_data.get() {
        Some(_) => env.custom_data.to_struct(),
        None => data.get("customData").and_then(to_struct),
    }
}

/// The Arcadia extension, when it holds anything.
fn extension(extension: ArcadiaExtension) -> Option<ArcadiaExtension> {
    (extension != ArcadiaExtension::default()).then_some(extension)
}

/// Why an event is dead-lettered when one of its numbers cannot be held exactly.
fn number_error(resource: &str, field: &str, error: DecimalError) -> String {
    format!(
        "{resource} `{field}` {error}: the canonical decimal cannot hold it exactly, and numbers are never rounded"
    )
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
        interval_data_supported: optional_bool(provider, "isIntervalDataSupported"),
        real_time_validation_supported: optional_bool(
            provider,
            "isRealTimeCredentialValidationSupported",
        ),
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
