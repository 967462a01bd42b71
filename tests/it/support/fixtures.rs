//! The bundled plugins' fixtures as webhooks to send, and the events the server should deliver
//! for them.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tributary_model::v1::Event;

use super::repo;

/// A plugin's fixture: raw body and expected result JSON.
pub struct Fixture {
    pub name: String,
    pub raw: Vec<u8>,
    pub expected: Value,
    pub request: Value,
}

/// The fixtures of `plugins/<adapter>/fixtures` whose names start with one of `prefixes`.
pub fn fixtures(adapter: &str, prefixes: &[&str]) -> Vec<Fixture> {
    let dir = repo().join("plugins").join(adapter).join("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".raw.json")
                .map(str::to_owned)
        })
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let raw = std::fs::read(dir.join(format!("{name}.raw.json"))).expect("raw");
            let expected: Value = serde_json::from_slice(
                &std::fs::read(dir.join(format!("{name}.expected.json"))).expect("expected"),
            )
            .expect("expected json");
            let request = std::fs::read(dir.join(format!("{name}.request.json")))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            Fixture {
                name,
                raw,
                expected,
                request,
            }
        })
        .collect()
}

/// The fixture `name` of `plugins/<adapter>/fixtures`.
pub fn fixture(adapter: &str, name: &str) -> Fixture {
    fixtures(adapter, &[name])
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `key`: how Finicity and Klavi sign webhooks.
pub fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The canonical JSON of an event as delivered, without the receive time (which varies).
pub fn delivered_json(event: &Event) -> Value {
    let mut json = serde_json::to_value(event).expect("event json");
    if let Some(object) = json.as_object_mut() {
        object.remove("receivedAt");
    }
    json
}

/// What the server should deliver for an adapter's expected event: the fixture event plus the
/// envelope the host completes.
pub fn expected_delivery(mut event: Value, source: &str, sequence: u64, adapter: &str) -> Value {
    let object = event.as_object_mut().expect("event object");
    let provenance = object
        .entry("provenance")
        .or_insert_with(|| serde_json::json!({}));
    let provider_event_id = provenance["providerEventId"]
        .as_str()
        .expect("provider id")
        .to_owned();
    provenance["adapter"] = Value::from(adapter);
    provenance["adapterVersion"] = Value::from(env!("CARGO_PKG_VERSION"));
    object.insert(
        "id".into(),
        Value::from(format!("{source}:{provider_event_id}")),
    );
    object.insert("source".into(), Value::from(source));
    object.insert(
        "datacontenttype".into(),
        Value::from("application/protobuf"),
    );
    object.insert("sequence".into(), Value::from(sequence.to_string()));
    event
}

/// The Arcadia seed's statement webhook, byte for byte.
pub fn arcadia_seed() -> Vec<u8> {
    std::fs::read(
        repo().join("plugins/arcadia/fixtures/seed-statement-new-data-available.raw.json"),
    )
    .expect("seed")
}

/// POSTs [`arcadia_webhook`]`(id)` to `url` (a server's `/webhooks/arcadia`) over the caller's
/// client, as the load loops do: each worker keeps one client.
pub async fn post_arcadia(
    client: &reqwest::Client,
    url: &str,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(arcadia_webhook(id))
        .send()
        .await
}

/// An Arcadia statement webhook with its own `whk_` id, so it is not a duplicate.
pub fn arcadia_webhook(id: &str) -> Vec<u8> {
    let mut json: Value = serde_json::from_slice(&arcadia_seed()).expect("json");
    json["id"] = Value::from(id);
    serde_json::to_vec(&json).expect("encode")
}
