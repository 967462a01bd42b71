//! Redaction of personal data in raw provider JSON, for showing dead letters to an operator.
//! Adapters apply the real per-source policy to events; raw bodies are stored as received
//! (they are needed for redrive) and only ever leave the service through here.
//!
//! What is personal is what the adapter that received the body declares
//! (`AdapterInfo.personal_data_fields`): every value under a matching key is replaced, inside
//! arrays and objects too. An adapter that declares nothing gets nothing shown (fail closed).

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

/// Which JSON keys hold personal data.
#[derive(Debug, Clone)]
pub struct Redactor {
    fields: Vec<String>,
}

impl Redactor {
    /// From an adapter's declared field names. A key matches when its normalized form
    /// contains a declared name (`taxid` matches `personalTaxId` and `business_tax_id`), so
    /// the check errs towards hiding.
    pub fn new(fields: &[String]) -> Self {
        let mut fields: Vec<String> = fields
            .iter()
            .map(|field| normalize(field))
            .filter(|field| !field.is_empty())
            .collect();
        fields.sort_unstable();
        fields.dedup();
        Self { fields }
    }

    /// Whether values under `key` are personal data.
    pub fn is_personal(&self, key: &str) -> bool {
        let key = normalize(key);
        self.fields.iter().any(|field| key.contains(field.as_str()))
    }

    /// The JSON with personal-data values replaced by `"[redacted]"`. Bytes that are not JSON,
    /// or a body whose adapter declared no personal-data fields, are withheld entirely.
    pub fn redact_json(&self, raw: &[u8]) -> Vec<u8> {
        if self.fields.is_empty() {
            return b"\"[withheld: the adapter declares no personal-data fields]\"".to_vec();
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(mut value) => {
                self.redact(&mut value);
                serde_json::to_vec(&value).unwrap_or_default()
            }
            Err(_) => b"\"[withheld: not JSON]\"".to_vec(),
        }
    }

    fn redact(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    if self.is_personal(key) {
                        redact_all(inner);
                    } else {
                        self.redact(inner);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact(item)),
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
        Redactor::new(&fields.map(String::from))
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
    fn undeclared_or_unparseable_bodies_are_withheld() {
        assert_eq!(
            redactor().redact_json(b"not json"),
            b"\"[withheld: not JSON]\"".to_vec()
        );
        let nothing_declared = Redactor::new(&[]).redact_json(br#"{"cpf":"1"}"#);
        assert!(String::from_utf8_lossy(&nothing_declared).contains("withheld"));
    }
}
