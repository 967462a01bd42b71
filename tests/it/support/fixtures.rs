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

/// The current Unix time in seconds: what a provider stamps a webhook with (Klavi's
/// `X-Klavi-Timestamp`, which its adapter requires by default).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `key`: how Finicity and Klavi sign webhooks.
pub fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The canonical JSON of an event as delivered, without the receive time (which varies) and
/// the raw-archive reference (which depends on how webhooks were grouped; `archive` tests it).
pub fn delivered_json(event: &Event) -> Value {
    let mut json = serde_json::to_value(event).expect("event json");
    if let Some(object) = json.as_object_mut() {
        object.remove("receivedAt");
        object.remove("rawId");
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
    object.insert("specversion".into(), Value::from("1.0"));
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

/// The value the tests' Arcadia source expects in `X-Arcadia-Token`. Arcadia's current API
/// signs nothing, so a deployment agrees a custom header value with Arcadia support and
/// configures it as the source's verification (plugins/arcadia/README.md).
pub const ARCADIA_TOKEN: &str = "arcadia-shared-test-token";

/// The header that authenticates a webhook to the source of [`arcadia_source`].
pub const ARCADIA_AUTH: [(&str, &str); 1] = [("X-Arcadia-Token", ARCADIA_TOKEN)];

/// `[sources.arcadia]` as a deployment configures it: the Arcadia adapter verifying the shared
/// header [`ARCADIA_TOKEN`], plus `extra` inline-table entries of its adapter config (e.g.
/// `personal_data = { ... }`; empty for none). Append it to a config after any top-level keys.
pub fn arcadia_source(extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "\n[sources.arcadia]\nadapter = \"arcadia\"\n\
         config = {{ verification = {{ secrets = [\"{ARCADIA_TOKEN}\"] }}{extra} }}\n"
    )
}

/// Turns the per-source rate limit off (`[http] rate_limit_per_second = 0`): for the tests
/// that flood one source on purpose and measure something else than the limit.
pub const NO_RATE_LIMIT: &str = "\n[http]\nrate_limit_per_second = 0\n";

/// The client each worker of a load loop keeps. Every request gives up after 10 s: a request
/// caught by a kill -9 then fails like any refused one, where without a limit it can wait
/// forever in the connection pool for a connection that died with the server.
pub fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// POSTs [`arcadia_webhook`]`(id)` with [`ARCADIA_AUTH`] to `url` (a server's
/// `/webhooks/arcadia`) over the caller's client, as the load loops do: each worker keeps one
/// client ([`load_client`]).
pub async fn post_arcadia(
    client: &reqwest::Client,
    url: &str,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .header(ARCADIA_AUTH[0].0, ARCADIA_AUTH[0].1)
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
