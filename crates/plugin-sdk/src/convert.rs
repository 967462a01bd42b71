//! Conversions from provider JSON to canonical values: money and quantities as exact decimals
//! (never floats), instants as Timestamps, calendar dates as Dates.

use serde_json::Value;
use tributary_model::v1::{Date, Money, Quantity};
use tributary_model::well_known::{Struct, Timestamp};

/// Splits a decimal into whole units and billionths (same sign). Digits past the ninth decimal
/// are truncated. Accepts JSON numbers and numeric strings; `None` for null or non-numbers.
pub fn decimal(value: &Value) -> Option<(i64, i32)> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some((i, 0))
            } else {
                // `f64`'s Display is the shortest text that reads back to the same f64, so a
                // JSON `94.99` becomes "94.99" again and is parsed exactly from there.
                parse_decimal(&n.as_f64()?.to_string())
            }
        }
        Value::String(s) => parse_decimal(s.trim()),
        _ => None,
    }
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

/// An RFC 3339 instant ("2024-02-21T00:00:00.000+00:00", "2022-06-25T20:08:17.848Z").
pub fn timestamp(text: &str) -> Option<Timestamp> {
    let ts: jiff::Timestamp = text.trim().parse().ok()?;
    Some(Timestamp {
        seconds: ts.as_second(),
        nanos: ts.subsec_nanosecond(),
    })
}

/// An instant given as Unix epoch seconds (Finicity dates).
pub fn timestamp_from_epoch_seconds(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// A calendar date "YYYY-MM-DD".
pub fn date(text: &str) -> Option<Date> {
    let date: jiff::civil::Date = text.trim().parse().ok()?;
    Some(Date {
        year: i32::from(date.year()),
        month: i32::from(date.month()),
        day: i32::from(date.day()),
    })
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

/// A JSON object as a protobuf `Struct` (partner metadata); `None` for anything else.
pub fn to_struct(value: &Value) -> Option<Struct> {
    if !value.is_object() {
        return None;
    }
    serde_json::from_value(value.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    }

    #[test]
    fn instants_and_dates() {
        let ts = timestamp("2024-02-21T00:00:00.000+00:00").expect("valid");
        assert_eq!((ts.seconds, ts.nanos), (1_708_473_600, 0));
        let ts = timestamp("2022-06-25T20:08:17.848Z").expect("valid");
        assert_eq!((ts.seconds, ts.nanos), (1_656_187_697, 848_000_000));
        assert!(timestamp("yesterday").is_none());
        let d = date("2023-01-12").expect("valid");
        assert_eq!((d.year, d.month, d.day), (2023, 1, 12));
        assert!(date("2023-13-12").is_none());
    }
}
