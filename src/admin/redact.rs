//! Redaction of personal data in raw provider JSON, for showing dead letters to an operator.
//! Adapters apply the real per-source policy to events; raw bodies are stored as received
//! (they are needed for redrive) and only ever leave the service through here.
//!
//! An allow-list: the adapter that received the body declares the keys whose values are safe
//! to show (`AdapterInfo.display_fields`: ids, types, statuses); every other string and number
//! value is masked, so a key nobody declared is hidden. What the adapter declares as personal
//! (`AdapterInfo.personal_data_fields`) is masked whole, inside arrays and objects too, even
//! under a display key. An adapter that declares neither gets nothing shown (fail closed).

use serde_json::Value;

const REDACTED: &str = "[redacted]";

/// Lowercase, without `_` and `-`: `personalTaxId`, `personal_tax_id` and `PERSONAL-TAX-ID`
/// are one key.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Which JSON keys hold personal data, and which are safe to show.
#[derive(Debug, Clone)]
pub struct Redactor {
    personal: Vec<String>,
    display: Vec<String>,
}

/// Normalized, non-empty, sorted, once.
fn normalized(fields: &[String]) -> Vec<String> {
    let mut fields: Vec<String> = fields
        .iter()
        .map(|field| normalize(field))
        .filter(|field| !field.is_empty())
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

impl Redactor {
    /// From an adapter's declared personal-data fields (`personal`) and fields safe to show
    /// (`display`). A key is personal when its normalized form contains a personal name
    /// (`taxid` matches `personalTaxId` and `business_tax_id`), so that check errs towards
    /// hiding; a key is shown only when its normalized form equals a display name and it is
    /// not personal.
    pub fn new(personal: &[String], display: &[String]) -> Self {
        Self {
            personal: normalized(personal),
            display: normalized(display),
        }
    }

    /// Whether values under `key` are personal data.
    pub fn is_personal(&self, key: &str) -> bool {
        let key = normalize(key);
        self.personal
            .iter()
            .any(|field| key.contains(field.as_str()))
    }

    /// Whether string and number values directly under `key` may be shown.
    pub fn is_displayable(&self, key: &str) -> bool {
        !self.is_personal(key) && self.display.binary_search(&normalize(key)).is_ok()
    }

    /// The JSON with every string and number value masked as `"[redacted]"` except those
    /// directly under a display key (or in arrays under one), and everything under a
    /// personal-data key masked. Keys, booleans and `null` stay. Bytes that are not JSON, or a
    /// body whose adapter declared neither list, are withheld entirely.
    pub fn redact_json(&self, raw: &[u8]) -> Vec<u8> {
        if self.personal.is_empty() && self.display.is_empty() {
            return b"\"[withheld: the adapter declares no personal-data fields]\"".to_vec();
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(mut value) => {
                self.redact(&mut value, false);
                serde_json::to_vec(&value).unwrap_or_default()
            }
            Err(_) => b"\"[withheld: not JSON]\"".to_vec(),
        }
    }

    /// `shown`: whether scalars here sit directly under a display key.
    fn redact(&self, value: &mut Value, shown: bool) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    if self.is_personal(key) {
                        redact_all(inner);
                    } else {
                        self.redact(inner, self.is_displayable(key));
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact(item, shown)),
            Value::String(_) | Value::Number(_) if !shown => {
                *value = Value::String(REDACTED.into());
            }
            _ => {}
        }
    }
}

/// Replaces every value under a personal key: scalars, array elements, nested objects.
/// `null` stays `null` (it says nothing).
fn redact_all(value: &mut Value) {
    match value {
        Value::Null => {}
        Value::Object(map) => map.values_mut().for_each(redact_all),
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        _ => *value = Value::String(REDACTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        let fields = [
            "taxId",
            "username",
            "account_number",
            "accountNumbers",
            "number",
        ];
        let display = ["linkId", "id", "status"];
        Redactor::new(&fields.map(String::from), &display.map(String::from))
    }

    #[test]
    fn declared_fields_are_redacted_everywhere_arrays_included() {
        let raw =
            br#"[{"payload":{"personalTaxId":"25872252137","business_tax_id":"1","linkId":"l1"},
            "data":{"username":"bob","accountNumber":123,"accountNumbers":["12-34", 5678],
                    "accounts":[{"number":"99","id":"a"}],"provider":null,
                    "taxIds":[{"value":"1"},{"value":"2"}]}}]"#;
        let redacted: Value = serde_json::from_slice(&redactor().redact_json(raw)).expect("json");
        assert_eq!(
            redacted,
            serde_json::json!([{"payload":{"personalTaxId":"[redacted]","business_tax_id":"[redacted]","linkId":"l1"},
                "data":{"username":"[redacted]","accountNumber":"[redacted]",
                        "accountNumbers":["[redacted]","[redacted]"],
                        "accounts":[{"number":"[redacted]","id":"a"}],"provider":null,
                        "taxIds":[{"value":"[redacted]"},{"value":"[redacted]"}]}}])
        );
    }

    #[test]
    fn undeclared_strings_and_numbers_are_masked_declared_ones_shown() {
        let raw = br#"{"id":"e1","status":"ok","STATUS":"ok2","nickname":"Bills","note":"x",
            "amount":12.5,"flag":true,"none":null,"ids":["a","b"],
            "nested":{"id":"n1","comment":"free text","link_id":"l2"},
            "id_list":[{"id":"i1","memo":"m"}]}"#;
        let redacted: Value = serde_json::from_slice(&redactor().redact_json(raw)).expect("json");
        assert_eq!(
            redacted,
            serde_json::json!({"id":"e1","status":"ok","STATUS":"ok2","nickname":"[redacted]",
                "note":"[redacted]","amount":"[redacted]","flag":true,"none":null,
                "ids":["[redacted]","[redacted]"],
                "nested":{"id":"n1","comment":"[redacted]","link_id":"l2"},
                "id_list":[{"id":"i1","memo":"[redacted]"}]})
        );
        // A display key that is also personal stays masked.
        let both = Redactor::new(&["taxid".into()], &["taxid".into()]);
        assert_eq!(
            both.redact_json(br#"{"taxId":"1"}"#),
            br#"{"taxId":"[redacted]"}"#.to_vec()
        );
        // An adapter built before display fields: every string is masked, none shown.
        let old = Redactor::new(&["cpf".into()], &[]);
        assert_eq!(
            old.redact_json(br#"{"eventId":"e","cpf":"1"}"#),
            br#"{"cpf":"[redacted]","eventId":"[redacted]"}"#.to_vec()
        );
    }

    #[test]
    fn undeclared_or_unparseable_bodies_are_withheld() {
        assert_eq!(
            redactor().redact_json(b"not json"),
            b"\"[withheld: not JSON]\"".to_vec()
        );
        let nothing_declared = Redactor::new(&[], &[]).redact_json(br#"{"cpf":"1"}"#);
        assert!(String::from_utf8_lossy(&nothing_declared).contains("withheld"));
    }
}
