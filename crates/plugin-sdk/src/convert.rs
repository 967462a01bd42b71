//! Conversions from provider JSON to canonical values: money and quantities as exact decimals
//! (never floats), instants as Timestamps, calendar dates as Dates.

use serde_json::Value;
use tributary_model::v1::{Date, Money, Quantity};
use tributary_model::well_known::value::Kind;
use tributary_model::well_known::{ListValue, Struct, Timestamp, Value as StructValue};

/// Splits a decimal into whole units and billionths (same sign). Digits past the ninth decimal
/// are truncated. Accepts JSON numbers and numeric strings; `None` for null or non-numbers.
pub fn decimal(value: &Value) -> Option<(i64, i32)> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some((i, 0))
            } else {
                decimal_from_f64(n.as_f64()?)
            }
        }
        Value::String(s) => parse_decimal(s.trim()),
        _ => None,
    }
}

/// Below this magnitude an f64 is spaced by less than 1e-9 (ulp(1e6) is about 1.2e-10), so at
/// most one decimal with nine fractional digits reads back to it.
const FAST_DECIMAL_LIMIT: f64 = 1e6;

/// A JSON float as units and billionths: exactly what parsing its shortest round-trip text
/// (`f64`'s Display: a JSON `94.99` becomes "94.99" again) with [`parse_decimal`] gives.
///
/// Fast path, without formatting: when `c = round(x * 1e9)` reads back to `x` (`c / 1e9 == x`,
/// both exact in f64 and the division correctly rounded) and `|x| < 1e6`, `c` is the only
/// nine-digit decimal that reads back to `x`, and the shortest text has no more than nine
/// fractional digits, so it is that decimal. Anything else takes the formatting path.
pub fn decimal_from_f64(x: f64) -> Option<(i64, i32)> {
    if x.abs() < FAST_DECIMAL_LIMIT {
        let scaled = (x * 1e9).round();
        // |scaled| <= 1e15 < 2^53: exact as i64 and back.
        let c = scaled as i64;
        if (c as f64) / 1e9 == x {
            return Some((c / 1_000_000_000, (c % 1_000_000_000) as i32));
        }
    }
    parse_decimal(&x.to_string())
}

/// Parses `[-+]digits[.digits]` into units and nanos.
pub fn parse_decimal(text: &str) -> Option<(i64, i32)> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let units: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos: i32 = 0;
    for (i, b) in fraction.bytes().take(9).enumerate() {
        nanos += i32::from(b - b'0') * 10_i32.pow(8 - i as u32);
    }
    Some(if negative {
        (-units, -nanos)
    } else {
        (units, nanos)
    })
}

/// A money amount; `None` when the provider sent null or no number.
pub fn money(value: &Value, currency_code: &str) -> Option<Money> {
    let (units, nanos) = decimal(value)?;
    Some(Money {
        currency_code: currency_code.to_owned(),
        units,
        nanos,
    })
}

/// A measured quantity with its unit; `None` when the provider sent null or no number.
pub fn quantity(value: &Value, unit: &str) -> Option<Quantity> {
    let (units, nanos) = decimal(value)?;
    Some(Quantity {
        units,
        nanos,
        unit: unit.to_owned(),
    })
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
/// lost and the result always decodes. Numbers become doubles, as in every `Struct`.
pub fn to_struct(value: &Value) -> Option<Struct> {
    let Value::Object(map) = value else {
        return None;
    };
    Some(object_to_struct(map, 1))
}

/// `map` sits at JSON level `depth` (1 = the top object).
fn object_to_struct(map: &serde_json::Map<String, Value>, depth: usize) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), to_value(value, depth + 1)))
            .collect(),
    }
}

/// `value` sits at JSON level `depth`.
fn to_value(value: &Value, depth: usize) -> StructValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        // serde_json numbers always have an f64 view (without the arbitrary_precision feature).
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Object(_) | Value::Array(_) if depth > MAX_STRUCT_DEPTH => {
            Kind::StringValue(value.to_string())
        }
        Value::Object(map) => Kind::StructValue(object_to_struct(map, depth)),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(|item| to_value(item, depth + 1)).collect(),
        }),
    };
    StructValue { kind: Some(kind) }
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
        assert_eq!(decimal(&json!(94.99)), Some((94, 990_000_000)));
        assert_eq!(decimal(&json!(1831.85)), Some((1831, 850_000_000)));
        assert_eq!(decimal(&json!(-0.5)), Some((0, -500_000_000)));
        assert_eq!(decimal(&json!(-12.25)), Some((-12, -250_000_000)));
        assert_eq!(decimal(&json!(100)), Some((100, 0)));
        assert_eq!(decimal(&json!("619.85")), Some((619, 850_000_000)));
        assert_eq!(decimal(&json!("0.1234567891")), Some((0, 123_456_789)));
        assert_eq!(decimal(&json!(null)), None);
        assert_eq!(decimal(&json!("abc")), None);
        assert_eq!(decimal(&json!("-")), None);
        assert_eq!(decimal(&json!(-0.0)), Some((0, 0)));
        assert_eq!(decimal(&json!(1e-10)), Some((0, 0)));
        assert_eq!(decimal(&json!(0.000000001)), Some((0, 1)));
        assert_eq!(
            decimal(&json!(123456789.123)),
            Some((123_456_789, 123_000_000))
        );
    }

    /// The fast path gives what the formatting path gives, on every kind of float: short
    /// decimals, long fractions, values near the fast path's limit, tiny and huge ones.
    #[test]
    fn fast_decimal_path_equals_formatting() {
        let slow = |x: f64| parse_decimal(&x.to_string());
        // A small deterministic generator (xorshift), no extra dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for i in 0..400_000_u64 {
            let r = next();
            let x = match i % 5 {
                // Any bit pattern.
                0 => f64::from_bits(r),
                // Cents and other short decimals, as providers send amounts.
                1 => (r % 200_000_000) as f64 / 100.0 - 1_000_000.0,
                2 => (r % 2_000_000_000_000) as f64 / 1e6 - 1_000_000.0,
                // Up to 12 fractional digits, below and around the limit.
                3 => (r % 2_000_000_000_000_000) as f64 / 1e12 - 1_000.0,
                _ => (r % 4_000_000_000) as f64 / 1e3 - 2_000_000.0 + 0.5e-9,
            };
            if !x.is_finite() {
                continue;
            }
            assert_eq!(decimal_from_f64(x), slow(x), "{x:e}");
            checked += 1;
        }
        for x in [
            0.0,
            -0.0,
            1e-9,
            -1e-9,
            5e-10,
            999_999.999_999_999,
            1e6,
            -1e6,
            0.1,
            0.2,
            0.3,
            94.99,
            1831.85,
            616.09,
            722.97,
            2e-9,
            1.000_000_000_5,
        ] {
            assert_eq!(decimal_from_f64(x), slow(x), "{x:e}");
        }
        assert!(checked > 300_000);
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
