//! Helpers for an adapter's own tests (feature `testing`; enable it on the dev-dependency):
//! webhook requests as the host hands them to an adapter, and provider-style signatures.
//!
//! ```ignore
//! use tributary_plugin_sdk::testing::{sign_hex, webhook};
//!
//! let signature = sign_hex(b"s3cret", &[BODY]);
//! let raw = webhook(BODY).header("X-Acme-Signature", &signature).received_at(1_704_067_200).build();
//! adapter.verify(&Request::new(&raw))?;
//! ```

use tributary_model::v1::{Header, WebhookRequest};
use tributary_model::well_known::Timestamp;

/// A webhook request with `body` and nothing else yet; add headers, a query string and a
/// receive time, then [`WebhookBuilder::build`].
pub fn webhook(body: impl Into<Vec<u8>>) -> WebhookBuilder {
    WebhookBuilder {
        request: WebhookRequest {
            body: body.into(),
            ..Default::default()
        },
    }
}

/// Builds a [`WebhookRequest`] the way the host fills one in.
#[derive(Debug, Clone)]
pub struct WebhookBuilder {
    request: WebhookRequest,
}

impl WebhookBuilder {
    /// Adds a header; its name is lowercased, as the host passes names on (HTTP/2 style).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push(Header {
            name: name.to_ascii_lowercase(),
            value: value.to_owned(),
        });
        self
    }

    /// Adds each `(name, value)` pair with [`WebhookBuilder::header`], in order.
    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |builder, (name, value)| builder.header(name, value))
    }

    /// The raw query string, without the `?`.
    pub fn query(mut self, query: &str) -> Self {
        self.request.query = query.to_owned();
        self
    }

    /// When the host received the webhook, in seconds since the Unix epoch.
    pub fn received_at(mut self, seconds: i64) -> Self {
        self.request.received_at = Some(Timestamp { seconds, nanos: 0 });
        self
    }

    /// The request.
    pub fn build(self) -> WebhookRequest {
        self.request
    }
}

/// Lowercase hex HMAC-SHA256 of the concatenated `parts` keyed with `key`: the signature a
/// provider sends with most webhooks.
pub fn sign_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(crate::verify::hmac_sha256(key, parts))
}

/// JSON bodies made from `root` with one node (a member, an item, or the root itself) replaced
/// by one of `odd`, for every node and every value: an adapter's typed parsing must read each
/// of them as its `Value`-based path does. Nodes whose path is not a plain JSON pointer (a key
/// holding `/` or `~`) are left out.
pub fn mutations(root: &serde_json::Value, odd: &[serde_json::Value]) -> Vec<Vec<u8>> {
    fn paths(value: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    paths(child, format!("{path}/{key}"), out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    paths(child, format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(path);
    }
    let mut all = Vec::new();
    paths(root, String::new(), &mut all);
    let mut bodies = Vec::new();
    for path in all {
        for value in odd {
            let mut body = root.clone();
            if let Some(slot) = body.pointer_mut(&path) {
                *slot = value.clone();
                bodies.push(body.to_string().into_bytes());
            }
        }
    }
    bodies
}

/// Whether every number in the JSON `body` keeps its value in a `serde_json::Value` (an
/// integer within 64 bits, or a number a double holds exactly, see
/// [`crate::convert::exact_f64`]). Adapters read numbers from the body text; a test that
/// compares that read with a read through a `Value` can only expect the same result for such
/// bodies. `true` for a body that is not JSON or holds a number out of a double's range (both
/// reads refuse those alike).
pub fn numbers_survive_a_value(body: &[u8]) -> bool {
    fn walk(text: &str) -> bool {
        let text = text.trim();
        match text.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<
                std::collections::BTreeMap<String, &serde_json::value::RawValue>,
            >(text)
            .map_or(true, |entries| entries.values().all(|raw| walk(raw.get()))),
            Some(b'[') => serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text)
                .map_or(true, |items| items.iter().all(|raw| walk(raw.get()))),
            Some(b'-' | b'0'..=b'9') => {
                // Out of a double's range: refused by a `Value` and by the typed read alike.
                !text.parse::<f64>().is_ok_and(f64::is_finite)
                    || text.parse::<i64>().is_ok()
                    || text.parse::<u64>().is_ok()
                    || crate::convert::exact_f64(text).is_some()
            }
            _ => true,
        }
    }
    std::str::from_utf8(body).map_or(true, walk)
}

/// Every scalar leaf of `value` (objects and arrays walked into), as JSON pointers; an empty
/// array or object is a leaf too.
fn leaves(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaves(child, format!("{at}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                leaves(child, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// Other values for a leaf: the value changed in its own type, and for null or empty
/// containers every shape a field could take.
fn replacements(value: &serde_json::Value) -> Vec<serde_json::Value> {
    use serde_json::{Value, json};
    match value {
        Value::String(s) => vec![json!(format!("{s}x")), json!("2024-03-04T05:06:07Z")],
        Value::Bool(b) => vec![json!(!b)],
        Value::Number(n) => match n.as_i64() {
            Some(i) => vec![json!(i.wrapping_add(1))],
            None => vec![json!(n.as_f64().unwrap_or_default() + 1.0)],
        },
        _ => vec![
            json!("7"),
            json!(7),
            json!(true),
            json!("2024-03-04"),
            json!("2024-03-04T05:06:07Z"),
            json!({"id": "x", "name": "y", "code": "c", "message": "m"}),
            json!(["x"]),
            json!([{"id": "x", "code": "c", "message": "m"}]),
        ],
    }
}

/// The fields of `body` an adapter drops silently: each leaf is changed (in its own type, or
/// into every shape for a null or empty one) and the body normalized again with `normalize`;
/// a leaf whose change never changes the result is reported, as its JSON pointer with array
/// indexes as `*` (`/data/accounts/*/id`). Keys in `withheld` (personal data kept out on
/// purpose) are reported the other way round: when a change to them does reach the result.
/// Empty when every documented field reaches the canonical result.
pub fn dropped_fields<R: PartialEq>(
    body: &serde_json::Value,
    withheld: &[&str],
    normalize: impl Fn(&serde_json::Value) -> R,
) -> std::collections::BTreeSet<String> {
    let original = normalize(body);
    let mut pointers = Vec::new();
    leaves(body, String::new(), &mut pointers);
    let mut dropped = std::collections::BTreeSet::new();
    for pointer in pointers {
        let key = pointer.rsplit('/').next().unwrap_or_default();
        let is_withheld = withheld.contains(&key);
        let current = body.pointer(&pointer).cloned().unwrap_or_default();
        let changed = replacements(&current).into_iter().any(|replacement| {
            let mut changed_body = body.clone();
            if let Some(slot) = changed_body.pointer_mut(&pointer) {
                *slot = replacement;
            }
            normalize(&changed_body) != original
        });
        if changed == is_withheld {
            let field: String = pointer
                .split('/')
                .map(|part| {
                    if part.parse::<usize>().is_ok() {
                        "*"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            dropped.insert(if is_withheld {
                format!("{field} (withheld, but reaches the result)")
            } else {
                field
            });
        }
    }
    dropped
}
