//! Conversions from provider JSON to canonical values: money and quantities as exact decimals
//! (never floats), instants as Timestamps, calendar dates as Dates.

use std::fmt;

use serde_json::Value;
use serde_json::value::RawValue;
use tributary_model::v1::{Date, Money, Quantity};
use tributary_model::well_known::value::Kind;
use tributary_model::well_known::{ListValue, Struct, Timestamp, Value as StructValue};

/// Why a number cannot be held exactly by `units` (i64) plus `nanos` (billionths): the
/// canonical decimal types (Money, Quantity, Decimal). Such a value is never rounded: the
/// adapter dead-letters the event with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// A non-zero digit past the ninth decimal place.
    TooPrecise,
    /// The whole part does not fit in a signed 64-bit integer.
    TooLarge,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooPrecise => "has a non-zero digit past the 9th decimal place",
            Self::TooLarge => "has a whole part beyond the 64-bit range (units)",
        })
    }
}

impl std::error::Error for DecimalError {}

/// A decimal number's exact value as written: its significant digits (no leading or trailing
/// zeros; empty for zero) and the position of the decimal point relative to the first of them
/// (value = 0.d1d2... x 10^point).
#[derive(Debug, PartialEq, Eq)]
struct DecimalText {
    negative: bool,
    digits: Vec<u8>,
    point: i64,
}

impl DecimalText {
    /// Parses `[-+]digits[.digits][(e|E)[-+]digits]` (either digit run may be empty, not
    /// both). `None` for anything else.
    fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.first()? {
            b'-' => (true, &bytes[1..]),
            b'+' => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let digit_run = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
        let (whole, rest) = rest.split_at(digit_run(rest));
        let (fraction, rest) = match rest.split_first() {
            Some((b'.', after)) => after.split_at(digit_run(after)),
            _ => (&[][..], rest),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let exponent = match rest.split_first() {
            None => 0,
            Some((b'e' | b'E', after)) => {
                let (negative_exponent, digits) = match after.split_first() {
                    Some((b'-', d)) => (true, d),
                    Some((b'+', d)) => (false, d),
                    _ => (false, after),
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                // Saturates far beyond any exponent a decimal type can hold.
                let magnitude = digits.iter().fold(0_i64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
                });
                if negative_exponent {
                    -magnitude
                } else {
                    magnitude
                }
            }
            Some(_) => return None,
        };
        let all = || whole.iter().chain(fraction.iter());
        let leading = all().take_while(|d| **d == b'0').count();
        let mut digits: Vec<u8> = all().skip(leading).map(|d| d - b'0').collect();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        let point = (whole.len() as i64 - leading as i64).saturating_add(exponent);
        Some(Self {
            negative: negative && !digits.is_empty(),
            digits,
            point,
        })
    }

    /// As units and billionths (same sign), or why it does not fit.
    fn units_and_nanos(&self) -> Result<(i64, i32), DecimalError> {
        if self.digits.is_empty() {
            return Ok((0, 0));
        }
        // The digit at index i weighs 10^(point - 1 - i).
        let last_weight = self.point.saturating_sub(self.digits.len() as i64);
        if last_weight < -9 {
            return Err(DecimalError::TooPrecise);
        }
        if self.point > 19 {
            return Err(DecimalError::TooLarge);
        }
        let digit_at = |weight: i64| -> u64 {
            let index = self.point - 1 - weight;
            usize::try_from(index)
                .ok()
                .and_then(|i| self.digits.get(i))
                .map_or(0, |d| u64::from(*d))
        };
        let mut units: u64 = 0;
        for weight in (0..self.point.max(0)).rev() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(digit_at(weight)))
                .ok_or(DecimalError::TooLarge)?;
        }
        let mut nanos: i32 = 0;
        for weight in (-9..0).rev() {
            nanos = nanos * 10 + digit_at(weight) as i32;
        }
        let units = if self.negative {
            // -2^63 is a valid i64 whole part.
            0_i64
                .checked_sub_unsigned(units)
                .ok_or(DecimalError::TooLarge)?
        } else {
            i64::try_from(units).map_err(|_| DecimalError::TooLarge)?
        };
        Ok(if self.negative {
            (units, -nanos)
        } else {
            (units, nanos)
        })
    }
}

/// Reads a decimal exactly from its text, a JSON number's (`12345678901234567.89`, `1.5e3`)
/// or a numeric string's (`" 619.85 "`, `"+1"`), into whole units and billionths (same sign).
///
/// `Ok(None)` when the text is not a number. Never rounds: more than nine significant decimal
/// places or a whole part beyond i64 is an error ([`DecimalError`]). Trailing zeros past the
/// ninth place are not significant (`0.1000000000` is fine).
pub fn parse_decimal(text: &str) -> Result<Option<(i64, i32)>, DecimalError> {
    match DecimalText::parse(text.trim()) {
        Some(decimal) => decimal.units_and_nanos().map(Some),
        None => Ok(None),
    }
}

/// A decimal from a parsed `Value`: a number or a numeric string, as [`parse_decimal`] reads
/// it; `Ok(None)` for null and non-numbers.
///
/// A `Value` has already read a fractional number through f64 (only integers up to 64 bits
/// stay exact in it), so adapters read amounts with [`crate::lenient::Num`] straight from the
/// body text instead; this helper is exact for what a `Value` holds.
pub fn decimal(value: &Value) -> Result<Option<(i64, i32)>, DecimalError> {
    match value {
        Value::Number(n) => parse_decimal(&n.to_string()),
        Value::String(s) => parse_decimal(s),
        _ => Ok(None),
    }
}

/// The double a JSON number's text stands for, when a double holds it exactly: when the
/// double reads back as the same decimal (its shortest round-trip text names the same
/// number, so `0.1` and `1e2` qualify, `9007199254740993` and `12345678901234567.89` do
/// not). `None` otherwise, and for text that is not a number.
pub fn exact_f64(text: &str) -> Option<f64> {
    let written = DecimalText::parse(text)?;
    let double: f64 = text.parse().ok()?;
    if !double.is_finite() {
        return None;
    }
    let read_back = DecimalText::parse(&format!("{double:e}"))?;
    (read_back == written).then_some(double)
}

/// A money amount from units and billionths ([`parse_decimal`], [`crate::lenient::Num`]).
pub fn money((units, nanos): (i64, i32), currency_code: &str) -> Money {
    Money {
        currency_code: currency_code.to_owned(),
        units,
        nanos,
    }
}

/// A measured quantity with its unit from units and billionths.
pub fn quantity((units, nanos): (i64, i32), unit: &str) -> Quantity {
    Quantity {
        units,
        nanos,
        unit: unit.to_owned(),
    }
}

/// The first second a protobuf `Timestamp` can hold: 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// The last second a protobuf `Timestamp` can hold: 9999-12-31T23:59:59Z.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A `Timestamp` protobuf defines: years 0001 to 9999, `nanos` in 0..1e9 (negative nanos are
/// carried into the seconds). `None` otherwise: consumers and the proto3 JSON mapping refuse
/// other values, so an adapter leaves such a time empty instead of emitting it.
pub fn checked_timestamp(seconds: i64, nanos: i32) -> Option<Timestamp> {
    let (seconds, nanos) = if nanos < 0 {
        (seconds.checked_sub(1)?, nanos.checked_add(1_000_000_000)?)
    } else {
        (seconds, nanos)
    };
    ((MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&seconds)
        && (0..1_000_000_000).contains(&nanos))
    .then_some(Timestamp { seconds, nanos })
}

/// An RFC 3339 instant ("2024-02-21T00:00:00.000+00:00", "2022-06-25T20:08:17.848Z"); `None`
/// when it does not parse or lies outside the years 0001-9999.
pub fn timestamp(text: &str) -> Option<Timestamp> {
    let ts: jiff::Timestamp = text.trim().parse().ok()?;
    checked_timestamp(ts.as_second(), ts.subsec_nanosecond())
}

/// An instant given as Unix epoch seconds (Finicity dates); `None` outside the years
/// 0001-9999.
pub fn timestamp_from_epoch_seconds(seconds: i64) -> Option<Timestamp> {
    checked_timestamp(seconds, 0)
}

/// A calendar date "YYYY-MM-DD".
pub fn date(text: &str) -> Option<Date> {
    let text = text.trim();
    let date = match plain_date(text) {
        Some(date) => date,
        None => text.parse().ok()?,
    };
    Some(Date {
        year: i32::from(date.year()),
        month: i32::from(date.month()),
        day: i32::from(date.day()),
    })
}

/// Exactly "DDDD-DD-DD", a valid date: what jiff's parser gives for it, without its general
/// ISO 8601 machinery. `None` for anything else (which then goes through jiff).
fn plain_date(text: &str) -> Option<jiff::civil::Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0_i16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i16::from(c - b'0'))
        })
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    jiff::civil::Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// The string at `key`, or empty when absent or null. Numbers are rendered as text (ids that
/// providers send either way).
pub fn str_at(object: &Value, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The boolean at `key`; false when absent or not a boolean.
pub fn bool_at(object: &Value, key: &str) -> bool {
    object.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The integer at `key`; 0 when absent or not an integer.
pub fn i64_at(object: &Value, key: &str) -> i64 {
    object.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The strings of the array at `key` (non-strings skipped); empty when absent.
pub fn strings_at(object: &Value, key: &str) -> Vec<String> {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The instant at `key` (RFC 3339), if present and valid.
pub fn timestamp_at(object: &Value, key: &str) -> Option<Timestamp> {
    object.get(key)?.as_str().and_then(timestamp)
}

/// The date at `key` ("YYYY-MM-DD"), if present and valid.
pub fn date_at(object: &Value, key: &str) -> Option<Date> {
    object.get(key)?.as_str().and_then(date)
}

/// How many JSON levels [`to_struct`] keeps as nested `Struct`/`ListValue` messages (the object
/// passed in is level 1).
///
/// Every JSON level costs up to three nested protobuf messages (`Struct` -> map entry ->
/// `Value`), and decoders refuse deep messages (prost stops at 100 levels), so a provider
/// payload nested 40 levels deep would produce a result the host cannot decode. 16 levels keep
/// an event far below that limit wherever it is embedded.
pub const MAX_STRUCT_DEPTH: usize = 16;

/// A JSON object as a protobuf `Struct` (partner metadata); `None` for anything else.
///
/// Objects and arrays deeper than [`MAX_STRUCT_DEPTH`] levels are not dropped: each one is
/// replaced by a string `Value` holding its compact JSON text (`{"a":{"b":1}}`), so nothing is
/// lost and the result always decodes. A number a double holds exactly ([`exact_f64`]) is a
/// number value; any other (an id above 2^53) is a string value with its JSON text, so no
/// digit is lost. A `Value` has already read fractional numbers through f64: adapters convert
/// partner metadata from the body text with [`struct_from_json`].
pub fn to_struct(value: &Value) -> Option<Struct> {
    let Value::Object(_) = value else {
        return None;
    };
    struct_from_json(&value.to_string())
}

/// A JSON object's text (a [`RawValue`] of the body) as a protobuf `Struct`, numbers kept
/// exactly as [`to_struct`] says; `None` when the text is not a JSON object.
pub fn struct_from_json(text: &str) -> Option<Struct> {
    match json_to_value(text, 1)?.kind {
        Some(Kind::StructValue(object)) => Some(object),
        _ => None,
    }
}

/// Any JSON text (a [`RawValue`]) as a protobuf `Value`, as [`struct_from_json`] converts the
/// values of an object; `None` when the text is not JSON.
pub fn value_from_json(text: &str) -> Option<StructValue> {
    json_to_value(text, 1)
}

/// The entries of a JSON object, each value's text borrowed; a repeated key keeps its last
/// value (as in a `Value`).
type Entries<'a> = std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>;

/// `text` sits at JSON level `depth` (1 = the top object). Containers are read one level at
/// a time, each value kept as its text, so numbers keep every digit.
fn json_to_value(text: &str, depth: usize) -> Option<StructValue> {
    let text = text.trim();
    let kind = match text.as_bytes().first()? {
        b'{' | b'[' if depth > MAX_STRUCT_DEPTH => Kind::StringValue(compact_json(text)),
        b'{' => {
            let entries: Entries<'_> = serde_json::from_str(text).ok()?;
            let mut fields = std::collections::HashMap::with_capacity(entries.len());
            for (key, raw) in entries {
                fields.insert(key.into_owned(), json_to_value(raw.get(), depth + 1)?);
            }
            Kind::StructValue(Struct {
                fields: fields.into_iter().collect(),
            })
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            let mut values = Vec::with_capacity(items.len());
            for raw in items {
                values.push(json_to_value(raw.get(), depth + 1)?);
            }
            Kind::ListValue(ListValue { values })
        }
        b'"' => Kind::StringValue(serde_json::from_str(text).ok()?),
        b't' | b'f' => Kind::BoolValue(serde_json::from_str(text).ok()?),
        b'n' => Kind::NullValue(0),
        _ => match exact_f64(text) {
            Some(number) => Kind::NumberValue(number),
            // Still checked to be a JSON number (the body parsed), kept digit for digit.
            None if DecimalText::parse(text).is_some() => Kind::StringValue(text.to_owned()),
            None => return None,
        },
    };
    Some(StructValue { kind: Some(kind) })
}

/// JSON text without the whitespace between tokens (strings and numbers kept as written).
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_ascii_whitespace() {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;
    use tributary_model::v1::adapter_result::Outcome;
    use tributary_model::v1::{AdapterResult, Event, Normalized};

    #[test]
    fn decimals_are_exact() {
        let d = |text: &str| parse_decimal(text);
        assert_eq!(d("94.99"), Ok(Some((94, 990_000_000))));
        assert_eq!(d("1831.85"), Ok(Some((1831, 850_000_000))));
        assert_eq!(d("-0.5"), Ok(Some((0, -500_000_000))));
        assert_eq!(d("-12.25"), Ok(Some((-12, -250_000_000))));
        assert_eq!(d("100"), Ok(Some((100, 0))));
        assert_eq!(d(" 619.85 "), Ok(Some((619, 850_000_000))));
        assert_eq!(d("+1"), Ok(Some((1, 0))));
        assert_eq!(d(".5"), Ok(Some((0, 500_000_000))));
        assert_eq!(d("5."), Ok(Some((5, 0))));
        assert_eq!(d("-0"), Ok(Some((0, 0))));
        assert_eq!(d("-0.0"), Ok(Some((0, 0))));
        assert_eq!(d("0.000000001"), Ok(Some((0, 1))));
        assert_eq!(d("1.5e3"), Ok(Some((1500, 0))));
        assert_eq!(d("15E-1"), Ok(Some((1, 500_000_000))));
        assert_eq!(d("1e-9"), Ok(Some((0, 1))));
        assert_eq!(d("0e999999999999999999999"), Ok(Some((0, 0))));
        // Beyond f64's 17 significant digits, kept exactly.
        assert_eq!(
            d("12345678901234567.89"),
            Ok(Some((12_345_678_901_234_567, 890_000_000)))
        );
        assert_eq!(d("0.123456789"), Ok(Some((0, 123_456_789))), "nine places");
        assert_eq!(d("0.1234567890000"), Ok(Some((0, 123_456_789))));
        assert_eq!(
            d("9223372036854775807.999999999"),
            Ok(Some((i64::MAX, 999_999_999)))
        );
        assert_eq!(
            d("-9223372036854775808.5"),
            Ok(Some((i64::MIN, -500_000_000)))
        );
        // Never rounded, never truncated.
        assert_eq!(d("0.1234567891"), Err(DecimalError::TooPrecise));
        assert_eq!(d("1e-10"), Err(DecimalError::TooPrecise));
        assert_eq!(d("9223372036854775808"), Err(DecimalError::TooLarge));
        assert_eq!(d("-9223372036854775809"), Err(DecimalError::TooLarge));
        assert_eq!(d("123456789012345678901.5"), Err(DecimalError::TooLarge));
        assert_eq!(d("1e19"), Err(DecimalError::TooLarge));
        assert_eq!(d("1e999999999999999999999"), Err(DecimalError::TooLarge));
        // Not numbers.
        for text in [
            "", "abc", "-", ".", "1.2.3", "1e", "1e+", "0x10", "1,5", "--1", "NaN",
        ] {
            assert_eq!(d(text), Ok(None), "{text:?}");
        }
        assert_eq!(decimal(&json!(null)), Ok(None));
        assert_eq!(decimal(&json!(true)), Ok(None));
        assert_eq!(decimal(&json!(94.99)), Ok(Some((94, 990_000_000))));
        assert_eq!(decimal(&json!(u64::MAX)), Err(DecimalError::TooLarge));
        assert_eq!(decimal(&json!("1.25")), Ok(Some((1, 250_000_000))));
    }

    #[test]
    fn doubles_only_when_exact() {
        assert_eq!(exact_f64("1.5"), Some(1.5));
        assert_eq!(exact_f64("0.1"), Some(0.1));
        assert_eq!(exact_f64("1e2"), Some(100.0));
        assert_eq!(exact_f64("-0"), Some(-0.0));
        assert_eq!(exact_f64("9007199254740992"), Some(9_007_199_254_740_992.0));
        assert_eq!(exact_f64("9007199254740993"), None);
        assert_eq!(exact_f64("12345678901234567.89"), None);
        assert_eq!(exact_f64("0.10000000000000000001"), None);
        assert_eq!(exact_f64("1e400"), None);
        assert_eq!(exact_f64("x"), None);
    }

    #[test]
    fn metadata_numbers_keep_their_digits() {
        let text = r#"{"id": 12345678901234567890123, "small": 42, "price": 12345678901234567.89,
            "ratio": 0.25, "list": [9007199254740993, 1.5], "nested": {"big": -9007199254740993},
            "s": "x", "b": false, "n": null, "dup": 1, "dup": 2}"#;
        let converted = struct_from_json(text).expect("an object");
        let kind = |key: &str| converted.fields[key].kind.clone();
        let text_value = |t: &str| Some(Kind::StringValue(t.to_owned()));
        assert_eq!(kind("id"), text_value("12345678901234567890123"));
        assert_eq!(kind("small"), Some(Kind::NumberValue(42.0)));
        assert_eq!(kind("price"), text_value("12345678901234567.89"));
        assert_eq!(kind("ratio"), Some(Kind::NumberValue(0.25)));
        assert_eq!(kind("s"), text_value("x"));
        assert_eq!(kind("b"), Some(Kind::BoolValue(false)));
        assert_eq!(kind("n"), Some(Kind::NullValue(0)));
        assert_eq!(kind("dup"), Some(Kind::NumberValue(2.0)));
        let Some(Kind::ListValue(list)) = kind("list") else {
            panic!("list");
        };
        assert_eq!(list.values[0].kind, text_value("9007199254740993"));
        assert_eq!(list.values[1].kind, Some(Kind::NumberValue(1.5)));
        let Some(Kind::StructValue(nested)) = kind("nested") else {
            panic!("struct");
        };
        assert_eq!(nested.fields["big"].kind, text_value("-9007199254740993"));
        assert_eq!(struct_from_json("[1]"), None);
        assert_eq!(struct_from_json("7"), None);
        // From a `Value`, 64-bit integers are still exact.
        let value = json!({"id": 18_446_744_073_709_551_615_u64});
        assert_eq!(
            to_struct(&value).expect("object").fields["id"].kind,
            text_value("18446744073709551615")
        );
    }

    /// `{"l1": {"l2": ... {"l<levels>": "bottom"}}}`: `levels` objects inside the top one.
    fn nested(levels: usize) -> Value {
        (1..=levels).rev().fold(
            json!("bottom"),
            |inner, level| json!({ format!("l{level}"): inner }),
        )
    }

    fn result_with_metadata(metadata: Struct) -> AdapterResult {
        AdapterResult {
            outcome: Some(Outcome::Normalized(Normalized {
                events: vec![Event {
                    partner_metadata: Some(metadata),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            timings: None,
            verified_by: None,
        }
    }

    #[test]
    fn deep_json_is_capped_and_still_decodes() {
        let deep = nested(40);
        // What the SDK did before the cap: the host cannot decode the result.
        let uncapped: Struct = serde_json::from_value(deep.clone()).expect("converts");
        let bytes = result_with_metadata(uncapped).encode_to_vec();
        assert!(AdapterResult::decode(bytes.as_slice()).is_err());

        let capped = to_struct(&deep).expect("an object");
        let bytes = result_with_metadata(capped).encode_to_vec();
        let decoded = AdapterResult::decode(bytes.as_slice()).expect("decodes");
        let Some(Outcome::Normalized(normalized)) = decoded.outcome else {
            panic!("normalized");
        };
        let metadata = normalized.events[0]
            .partner_metadata
            .clone()
            .expect("metadata");
        // Levels 1..=16 are Structs; the object at level 17 is its own JSON text.
        let mut level = metadata;
        for n in 1..MAX_STRUCT_DEPTH {
            let value = level.fields.remove(&format!("l{n}")).expect("key");
            let Some(Kind::StructValue(inner)) = value.kind else {
                panic!("level {} is not a Struct", n + 1);
            };
            level = inner;
        }
        let value = level
            .fields
            .remove(&format!("l{MAX_STRUCT_DEPTH}"))
            .expect("key");
        let Some(Kind::StringValue(text)) = value.kind else {
            panic!("level {} is not a string", MAX_STRUCT_DEPTH + 1);
        };
        assert!(!text.contains(' '), "compact JSON: {text}");
        let kept: Value = serde_json::from_str(&text).expect("JSON text");
        let mut expected = &deep;
        for n in 1..=MAX_STRUCT_DEPTH {
            expected = &expected[format!("l{n}")];
        }
        assert_eq!(&kept, expected, "nothing dropped");
        let path: String = (MAX_STRUCT_DEPTH + 1..=40)
            .map(|n| format!("/l{n}"))
            .collect();
        assert_eq!(kept.pointer(&path), Some(&json!("bottom")));
    }

    #[test]
    fn shallow_json_is_unchanged_and_arrays_count_as_levels() {
        let value = json!({"a": 1.5, "b": [true, null, "x", {"c": 2.5}], "d": {"e": "f"}});
        let converted = to_struct(&value).expect("an object");
        assert_eq!(serde_json::to_value(&converted).expect("JSON"), value);
        // null is an explicit NullValue (a Value without kind is invalid for other runtimes).
        let Some(Kind::ListValue(list)) = converted.fields["b"].kind.clone() else {
            panic!("list");
        };
        assert_eq!(list.values[1].kind, Some(Kind::NullValue(0)));
        assert_eq!(to_struct(&json!([1])), None);
        assert_eq!(to_struct(&json!("x")), None);

        // An array at level 17 becomes text too, scalars at any level stay scalars.
        let mut deep = json!([[1]]);
        for _ in 0..MAX_STRUCT_DEPTH - 1 {
            deep = json!({ "k": deep });
        }
        let mut level = to_struct(&deep).expect("object");
        for _ in 1..MAX_STRUCT_DEPTH - 1 {
            let Some(Kind::StructValue(inner)) = level.fields.remove("k").and_then(|v| v.kind)
            else {
                panic!("struct");
            };
            level = inner;
        }
        let Some(Kind::ListValue(list)) = level.fields.remove("k").and_then(|v| v.kind) else {
            panic!("list at level 16");
        };
        assert_eq!(
            list.values[0].kind,
            Some(Kind::StringValue("[1]".to_owned()))
        );
    }

    #[test]
    fn instants_and_dates() {
        let ts = timestamp("2024-02-21T00:00:00.000+00:00").expect("valid");
        assert_eq!((ts.seconds, ts.nanos), (1_708_473_600, 0));
        let ts = timestamp("2022-06-25T20:08:17.848Z").expect("valid");
        assert_eq!((ts.seconds, ts.nanos), (1_656_187_697, 848_000_000));
        assert!(timestamp("yesterday").is_none());
        // Before 1970 with a fraction: nanos stay positive (protobuf's rule).
        let ts = timestamp("1969-12-31T23:59:59.5Z").expect("valid");
        assert_eq!((ts.seconds, ts.nanos), (-1, 500_000_000));
        // Outside protobuf's years 0001-9999: no Timestamp.
        assert!(timestamp("0000-12-31T23:59:59Z").is_none());
        assert!(timestamp("-0001-01-01T00:00:00Z").is_none());
        assert!(timestamp("0001-01-01T00:00:00Z").is_some());
        assert!(timestamp("9999-12-30T21:59:59.999999999Z").is_some());
        assert!(timestamp_from_epoch_seconds(MAX_TIMESTAMP_SECONDS + 1).is_none());
        assert!(timestamp_from_epoch_seconds(i64::MIN).is_none());
        assert_eq!(
            timestamp_from_epoch_seconds(1_700_000_000),
            Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0
            })
        );
        assert!(checked_timestamp(0, 1_000_000_000).is_none());
        assert!(checked_timestamp(i64::MIN, -1).is_none());
        // The plain "DDDD-DD-DD" path gives what jiff's parser gives, for every day of a few
        // years (leap and not), impossible days and months, year 0000 and odd digits.
        for year in ["0000", "0001", "1900", "2000", "2023", "2024", "9999"] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year}-{month:02}-{day:02}");
                    let slow = text
                        .parse::<jiff::civil::Date>()
                        .ok()
                        .map(|d| (d.year(), d.month(), d.day()));
                    let fast = date(&text).map(|d| (d.year, d.month, d.day));
                    let slow = slow.map(|(y, m, d)| (i32::from(y), i32::from(m), i32::from(d)));
                    assert_eq!(fast, slow, "{text}");
                }
            }
        }
        for text in [
            "2023-1-12",
            "2023-01-1x",
            "+2023-01-12",
            "2023-01-12T00:00",
            " 2023-01-12 ",
        ] {
            let slow = text.trim().parse::<jiff::civil::Date>().ok();
            assert_eq!(
                date(text).map(|d| (d.year, d.month, d.day)),
                slow.map(|d| (
                    i32::from(d.year()),
                    i32::from(d.month()),
                    i32::from(d.day())
                )),
                "{text}"
            );
        }
        let d = date("2023-01-12").expect("valid");
        assert_eq!((d.year, d.month, d.day), (2023, 1, 12));
        assert!(date("2023-13-12").is_none());
    }
}
