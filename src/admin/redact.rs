//! Redaction of personal-data fields in raw provider JSON, for showing dead letters to an
//! operator. Adapters apply the real per-source policy to events; raw bodies are stored as
//! received (they are needed for redrive) and only ever leave the service through here.

use serde_json::Value;

/// Field names (lowercase, without `_`) holding personal data in the bundled providers'
/// payloads; a key matches when its normalized form contains one of these.
const PERSONAL_KEYS: &[&str] = &[
    "taxid",
    "cpf",
    "cnpj",
    "username",
    "accountnumber",
    "meternumber",
    "email",
    "createdby",
    "lastmodifiedby",
    "token",
];

/// Keys that are personal data only as an exact match (too short to match by substring).
const PERSONAL_EXACT: &[&str] = &["number", "name"];

fn is_personal(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    PERSONAL_EXACT.contains(&key.as_str()) || PERSONAL_KEYS.iter().any(|p| key.contains(p))
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_personal(key) && !(inner.is_null() || inner.is_object() || inner.is_array()) {
                    *inner = Value::String("[redacted]".into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The JSON with personal-data values replaced by "[redacted]". Bytes that are not JSON are
/// withheld entirely (they cannot be redacted field by field).
pub fn redact_json(raw: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(mut value) => {
            redact(&mut value);
            serde_json::to_vec(&value).unwrap_or_default()
        }
        Err(_) => b"\"[withheld: not JSON]\"".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_are_redacted_everywhere() {
        let raw = br#"[{"payload":{"personalTaxId":"25872252137","business_tax_id":"1","linkId":"l1"},
            "data":{"username":"bob","accountNumber":123,"accounts":[{"number":"99","id":"a"}],"provider":null}}]"#;
        let redacted: Value = serde_json::from_slice(&redact_json(raw)).expect("json");
        assert_eq!(
            redacted,
            serde_json::json!([{"payload":{"personalTaxId":"[redacted]","business_tax_id":"[redacted]","linkId":"l1"},
                "data":{"username":"[redacted]","accountNumber":"[redacted]","accounts":[{"number":"[redacted]","id":"a"}],"provider":null}}])
        );
        assert_eq!(
            redact_json(b"not json"),
            b"\"[withheld: not JSON]\"".to_vec()
        );
    }
}
