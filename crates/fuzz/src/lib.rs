//! Fuzz targets for the bundled adapters and for the plugin boundary, as plain functions over
//! `&[u8]` so they run three ways: under cargo-fuzz (`fuzz/`, one-line wrappers), in
//! `tests/corpus.rs` (every committed corpus file, on every `cargo test`), and by hand.
//!
//! An adapter target turns the bytes into a [`WebhookRequest`] ([`parse_input`]), runs verify
//! and normalize in process through the adapter type (as the SDK's C boundary does), then
//! encodes the result and decodes it again with prost exactly as the host does. It panics (a
//! finding) when:
//! - the adapter panics (a 500 for the provider, counted as a plugin crash);
//! - the host could not decode the result (e.g. a `Struct` nested past prost's limit);
//! - verification does not fail closed: with an empty config every request must be rejected
//!   as unauthenticated; with verification switched off none may be; with valid credentials
//!   added by the harness the request must pass verification.
//!
//! Each input runs against several configurations of the adapter: verification configured
//! (request as given), configured with valid credentials added, switched off, and not
//! configured at all.

mod http;

use std::sync::OnceLock;

use prost::Message;
use prost::bytes::Bytes;
use serde_json::{Value, json};
use tributary_adapter_arcadia::Arcadia;
use tributary_adapter_finicity::Finicity;
use tributary_adapter_klavi::Klavi;
use tributary_adapter_standard_webhooks::StandardWebhooks;
use tributary_model::check::{EventHead, ProvenanceHead, check_event, check_event_head};
use tributary_model::plugin_wire::{EncodedAdapterResult, EncodedOutcome};
use tributary_model::v1::adapter_result::Outcome;
use tributary_model::v1::{AdapterResult, Event, Header, RejectionKind, WebhookRequest};
use tributary_model::well_known::Timestamp;
use tributary_plugin_sdk::ffi::run_adapter;
use tributary_plugin_sdk::verify::hmac_sha256;
use tributary_plugin_sdk::{Adapter, HostContext, Request};

pub use http::fuzz_http_ingest;

/// When every fuzzed request is received (the fixtures' receive time, so the timestamps in
/// seeds taken from fixtures are fresh): 2024-01-01T00:00:00Z.
pub const RECEIVED_AT: i64 = 1_704_067_200;

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Adds valid credentials to a request (the harness knows the secrets).
type Sign = fn(&mut WebhookRequest);

/// The cargo-fuzz targets, by name (also the corpus directories under `corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("arcadia", fuzz_arcadia),
    ("finicity", fuzz_finicity),
    ("klavi", fuzz_klavi),
    ("standard_webhooks", fuzz_standard_webhooks),
    ("plugin_result", fuzz_plugin_result),
    ("redact", fuzz_redact),
    ("withhold", fuzz_withhold),
    ("http", fuzz_http_ingest),
];

/// Arcadia's fuzz configuration: a custom header and a query token (the current API).
pub const ARCADIA_TOKEN: &str = "tok_3f9a-77/b.c";
/// Arcadia's query token.
pub const ARCADIA_QUERY_TOKEN: &str = "q-secret_1";
/// Arcadia's legacy HMAC secret (the 2022 API), fuzzed as a second configuration.
pub const ARCADIA_LEGACY_SECRET: &str = "whsec_legacy_example";
/// Finicity's partner secret (as in its fixtures).
pub const FINICITY_SECRET: &str = "fixture-partner-secret";
/// Klavi's secret key (as in its fixtures).
pub const KLAVI_SECRET: &str = "klavi-fixture-secret";

/// The standard-webhooks shared secret (as in its fixtures: the specification's example).
pub const STANDARD_WEBHOOKS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The seed of the Ed25519 key the harness signs `v1a` signatures with.
const STANDARD_WEBHOOKS_ED25519_SEED: [u8; 32] = [42; 32];

/// Splits fuzz bytes into a request: header lines, an empty line, then the body.
///
/// ```text
/// x-klavi-signature: 1f2e...
/// ?token=abc            <- a line starting with '?' is the query string
///                       <- the first "\n\n" ends the head
/// [{"eventId": ...}]    <- the body, byte for byte
/// ```
///
/// Without "\n\n" the whole input is the body. Header names are lowercased (as the host
/// does); names and values are read as UTF-8, invalid bytes replaced.
pub fn parse_input(data: &[u8], source: &str) -> WebhookRequest {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&[][..], data),
    };
    let mut headers = Vec::new();
    let mut query = String::new();
    for line in head.split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(line);
        if let Some(q) = line.strip_prefix('?') {
            query = q.to_owned();
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push(Header {
                name: name.trim().to_ascii_lowercase(),
                value: value.trim_start().to_owned(),
            });
        }
    }
    WebhookRequest {
        source: source.to_owned(),
        method: "POST".to_owned(),
        path: format!("/webhooks/{source}"),
        query,
        headers,
        body: body.to_vec(),
        received_at: Some(Timestamp {
            seconds: RECEIVED_AT,
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// The inverse of [`parse_input`], for writing seeds: header lines, the query line, an empty
/// line, the body.
pub fn format_input(headers: &[(String, String)], query: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    if !query.is_empty() {
        out.extend_from_slice(format!("?{query}\n").as_bytes());
    }
    if headers.is_empty() && query.is_empty() {
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// One adapter instance built from a JSON config, as the host's `create` would.
fn instance<A: Adapter>(source: &str, config: Value) -> A {
    let config: A::Config = match serde_json::from_value(config) {
        Ok(config) => config,
        Err(e) => panic!("fuzz config for {source} is invalid: {e}"),
    };
    let host = HostContext {
        source: source.to_owned(),
        installation_key: "fuzz-installation-key".to_owned(),
    };
    A::new(config, &host).unwrap_or_else(|e| panic!("fuzz config for {source} refused: {e}"))
}

/// The configurations one adapter is fuzzed with.
struct Instances<A> {
    /// Verification configured, each with the harness's way to add valid credentials.
    configured: Vec<(A, Sign)>,
    disabled: A,
    unconfigured: A,
}

impl<A: Adapter> Instances<A> {
    fn new(source: &str, configured: Vec<(Value, Sign)>) -> Self {
        Self {
            configured: configured
                .into_iter()
                .map(|(config, sign)| (instance(source, config), sign))
                .collect(),
            disabled: instance(source, json!({"verification": {"disabled": true}})),
            unconfigured: instance(source, json!({})),
        }
    }

    fn run(&self, data: &[u8], source: &str) {
        let request = parse_input(data, source);
        for (adapter, sign) in &self.configured {
            decode_as_host(handle(adapter, &request));
            let mut signed = request.clone();
            sign(&mut signed);
            let outcome = decode_as_host(handle(adapter, &signed));
            assert!(
                !is_unauthenticated(&outcome),
                "{source}: valid credentials were rejected: {outcome:?}"
            );
        }
        let outcome = decode_as_host(handle(&self.disabled, &request));
        assert!(
            !is_unauthenticated(&outcome),
            "{source}: verification is switched off but the request was rejected: {outcome:?}"
        );
        let outcome = decode_as_host(handle(&self.unconfigured, &request));
        assert!(
            is_unauthenticated(&outcome),
            "{source}: verification is not configured, yet the request was not rejected as \
             unauthenticated: {outcome:?}"
        );
    }
}

/// Verify then normalize, as the SDK's `handle` does across the C boundary.
fn handle<A: Adapter>(adapter: &A, request: &WebhookRequest) -> Outcome {
    run_adapter(adapter, &Request::new(request))
}

fn is_unauthenticated(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Rejection(r) if r.kind == RejectionKind::Unauthenticated as i32)
}

/// Encodes the result as the plugin does and decodes it as the host does; panics if the host
/// could not. Then the proto3 JSON mapping (fixture runner, operator tools, JSON consumers)
/// must round-trip: this refuses what protobuf itself does not define, such as a `Timestamp`
/// outside 0001-01-01..9999-12-31.
fn decode_as_host(outcome: Outcome) -> Outcome {
    let bytes = AdapterResult {
        outcome: Some(outcome),
        timings: None,
        verified_by: None,
    }
    .encode_to_vec();
    let decoded = match AdapterResult::decode(bytes.as_slice()) {
        Ok(decoded) => decoded,
        Err(e) => panic!("the host cannot decode this adapter result: {e}"),
    };
    // The service keeps the events encoded and checks them instead of decoding them.
    check_as_host(&bytes, true);
    let json = match serde_json::to_vec(&decoded) {
        Ok(json) => json,
        Err(e) => panic!("the adapter result has no proto3 JSON form: {e}: {decoded:?}"),
    };
    if let Err(e) = serde_json::from_slice::<AdapterResult>(&json) {
        panic!(
            "the adapter result's proto3 JSON does not read back: {e}: {}",
            String::from_utf8_lossy(&json)
        );
    }
    decoded.outcome.expect("an outcome was encoded")
}

/// Replaces every header `name` by one with `value`.
fn set_header(request: &mut WebhookRequest, name: &str, value: String) {
    request
        .headers
        .retain(|h| !h.name.eq_ignore_ascii_case(name));
    request.headers.push(Header {
        name: name.to_owned(),
        value,
    });
}

fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), parts))
}

fn arcadia_token(request: &mut WebhookRequest) {
    set_header(request, "x-arcadia-token", ARCADIA_TOKEN.to_owned());
    // Prepended: the adapter reads the first `token` parameter.
    request.query = format!("token={ARCADIA_QUERY_TOKEN}&{}", request.query);
}

fn arcadia_legacy_signature(request: &mut WebhookRequest) {
    let timestamp = RECEIVED_AT.to_string();
    let signature = hex_hmac(
        ARCADIA_LEGACY_SECRET,
        &[timestamp.as_bytes(), b".", &request.body],
    );
    set_header(request, "arc-webhook-timestamp", timestamp);
    set_header(request, "arc-webhook-signature", signature);
}

fn finicity_signature(request: &mut WebhookRequest) {
    let signature = hex_hmac(FINICITY_SECRET, &[&request.body]);
    set_header(request, "x-finicity-signature", signature);
}

fn klavi_signature(request: &mut WebhookRequest) {
    let signature = hex_hmac(KLAVI_SECRET, &[&request.body]);
    set_header(request, "x-klavi-signature", signature);
    set_header(request, "x-klavi-timestamp", RECEIVED_AT.to_string());
}

/// The content Standard Webhooks signs, with a fresh id and timestamp set on `request`.
fn standard_webhooks_content(request: &mut WebhookRequest) -> Vec<u8> {
    let timestamp = RECEIVED_AT.to_string();
    set_header(request, "webhook-id", "msg_fuzz".to_owned());
    set_header(request, "webhook-timestamp", timestamp.clone());
    [b"msg_fuzz.", timestamp.as_bytes(), b".", &request.body].concat()
}

fn standard_webhooks_v1(request: &mut WebhookRequest) {
    use base64::Engine as _;
    let content = standard_webhooks_content(request);
    let key = base64::engine::general_purpose::STANDARD
        .decode(&STANDARD_WEBHOOKS_SECRET["whsec_".len()..])
        .expect("the harness secret is base64");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &[&content]));
    // Beside the fuzzed header's own entries: one valid signature is enough.
    let fuzzed = request
        .headers
        .iter()
        .find(|h| h.name == "webhook-signature")
        .map(|h| h.value.clone())
        .unwrap_or_default();
    let entries = fuzzed.split(' ').filter(|e| !e.is_empty()).take(8);
    let value = entries
        .chain(std::iter::once(format!("v1,{signature}").as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    set_header(request, "webhook-signature", value);
}

fn standard_webhooks_v1a(request: &mut WebhookRequest) {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let content = standard_webhooks_content(request);
    let key = ed25519_dalek::SigningKey::from_bytes(&STANDARD_WEBHOOKS_ED25519_SEED);
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&content).to_bytes());
    set_header(request, "webhook-signature", format!("v1a,{signature}"));
}

/// Standard Webhooks: a `whsec_` secret (v1) and a `whpk_` key (v1a) with a type mapping,
/// each as given and signed; switched off; not configured.
pub fn fuzz_standard_webhooks(data: &[u8]) {
    use base64::Engine as _;
    static INSTANCES: OnceLock<Instances<StandardWebhooks>> = OnceLock::new();
    INSTANCES
        .get_or_init(|| {
            let public = ed25519_dalek::SigningKey::from_bytes(&STANDARD_WEBHOOKS_ED25519_SEED)
                .verifying_key();
            let whpk = format!(
                "whpk_{}",
                base64::engine::general_purpose::STANDARD.encode(public.as_bytes())
            );
            Instances::new(
                "standard-webhooks",
                vec![
                    (
                        json!({"secrets": [STANDARD_WEBHOOKS_SECRET]}),
                        standard_webhooks_v1,
                    ),
                    (
                        json!({"secrets": [whpk], "tolerance_seconds": 60,
                               "type_prefix": "fuzz.", "types": {"a.b": "c.d"}}),
                        standard_webhooks_v1a,
                    ),
                ],
            )
        })
        .run(data, "standard-webhooks");
}

/// Arcadia: custom header + query token, and the legacy HMAC, each as given and signed;
/// switched off; not configured.
pub fn fuzz_arcadia(data: &[u8]) {
    static INSTANCES: OnceLock<Instances<Arcadia>> = OnceLock::new();
    INSTANCES
        .get_or_init(|| {
            Instances::new(
                "arcadia",
                vec![
                    (
                        json!({"verification": {
                            "headers": {"X-Arcadia-Token": ARCADIA_TOKEN},
                            "query": {"token": ARCADIA_QUERY_TOKEN},
                        }}),
                        arcadia_token,
                    ),
                    (
                        json!({"verification": {"legacy_hmac": {"secret": ARCADIA_LEGACY_SECRET}},
                               "personal_data": {"default": "mask"}, "default_currency": "USD"}),
                        arcadia_legacy_signature,
                    ),
                ],
            )
        })
        .run(data, "arcadia");
}

/// Finicity: the body HMAC, as given and signed; switched off; not configured.
pub fn fuzz_finicity(data: &[u8]) {
    static INSTANCES: OnceLock<Instances<Finicity>> = OnceLock::new();
    INSTANCES
        .get_or_init(|| {
            Instances::new(
                "finicity",
                vec![(json!({"secret": FINICITY_SECRET}), finicity_signature)],
            )
        })
        .run(data, "finicity");
}

/// Klavi: the body HMAC and the required timestamp, as given and signed; switched off; not
/// configured.
pub fn fuzz_klavi(data: &[u8]) {
    static INSTANCES: OnceLock<Instances<Klavi>> = OnceLock::new();
    INSTANCES
        .get_or_init(|| {
            Instances::new(
                "klavi",
                vec![(
                    json!({"secret_key": KLAVI_SECRET, "personal_data": {"default": "mask"}}),
                    klavi_signature,
                )],
            )
        })
        .run(data, "klavi");
}

/// Arbitrary bytes as a plugin's answer: read with the events left encoded (as the service
/// reads whatever a plugin returns), the check of each event must agree with decoding it; if
/// they decode as an `AdapterResult`, re-encoding, decoding again and rendering JSON must not
/// panic or fail.
pub fn fuzz_plugin_result(data: &[u8]) {
    check_as_host(data, false);
    let Ok(result) = AdapterResult::decode(data) else {
        return;
    };
    let bytes = result.encode_to_vec();
    if let Err(e) = AdapterResult::decode(bytes.as_slice()) {
        panic!("a re-encoded AdapterResult does not decode: {e}");
    }
    let _ = serde_json::to_vec(&result);
}

/// Reads `bytes` (an encoded `AdapterResult`) as the service does: the events left encoded
/// and checked ([`check_event`]). The check must agree with decoding each event; with
/// `all_valid`, every event must pass.
fn check_as_host(bytes: &[u8], all_valid: bool) {
    let Ok(result) = EncodedAdapterResult::decode(Bytes::copy_from_slice(bytes)) else {
        return;
    };
    let Some(EncodedOutcome::Normalized(normalized)) = result.outcome else {
        return;
    };
    for event in &normalized.events {
        let checked = check_event(event);
        let decoded = Event::decode(event.as_ref());
        if checked.is_ok() != decoded.is_ok() {
            panic!("check_event says {checked:?}, Event::decode says {decoded:?}");
        }
        // The host reads the head in the check's walk: the same verdict, and the head the
        // decoded event has (the last value of a repeated field, provenances merged).
        match (check_event_head(event), &decoded) {
            (Ok(head), Ok(decoded)) => assert_eq!(head, head_of(decoded), "the head"),
            (Err(_), Err(_)) => {}
            (head, _) => panic!("check_event_head says {head:?}, check_event says {checked:?}"),
        }
        if all_valid && let Err(e) = checked {
            panic!("the host refuses an event the adapter encoded: {e}");
        }
    }
}

/// What [`check_event_head`] must read from an encoding of `event`.
fn head_of(event: &Event) -> EventHead<'_> {
    EventHead {
        source: &event.source,
        r#type: &event.r#type,
        has_time: event.time.is_some(),
        traceparent: &event.traceparent,
        tracestate: &event.tracestate,
        sequence: event.sequence,
        has_received_at: event.received_at.is_some(),
        provenance: event.provenance.as_ref().map(|p| ProvenanceHead {
            adapter_version: &p.adapter_version,
            provider_event_id: &p.provider_event_id,
        }),
        has_replay_of: event.replay_of.is_some(),
    }
}

/// The raw archive's secret withholding (`archive::holds_secret`, which percent-decodes
/// header and query values): the first line is a comma-separated list of secrets, the rest a
/// value. It must never panic, and must find each secret in the value that is that secret
/// percent-encoded byte by byte (or plainly).
pub fn fuzz_withhold(data: &[u8]) {
    let split = data
        .iter()
        .position(|byte| *byte == b'\n')
        .unwrap_or(data.len());
    let secrets: Vec<String> = String::from_utf8_lossy(&data[..split])
        .split(',')
        .filter(|secret| !secret.is_empty())
        .map(str::to_owned)
        .collect();
    let value = String::from_utf8_lossy(data.get(split + 1..).unwrap_or_default());
    let _ = tributary::archive::holds_secret(&value, &secrets);
    for secret in &secrets {
        let encoded: String = secret.bytes().map(|byte| format!("%{byte:02X}")).collect();
        assert!(
            tributary::archive::holds_secret(&encoded, &secrets),
            "a percent-encoded secret was not found"
        );
        assert!(
            tributary::archive::holds_secret(secret, &secrets),
            "a plain secret was not found"
        );
    }
}

/// The service's dead-letter redaction (it parses raw provider bodies that no adapter could
/// map): the first line is the declared personal-data field names, comma-separated, then
/// optionally `|` and the display field names, comma-separated; the rest is the body. The
/// output must be JSON; no scalar under a personal key may survive, nor any string or number
/// that is not directly under a display key.
pub fn fuzz_redact(data: &[u8]) {
    let split = data
        .iter()
        .position(|byte| *byte == b'\n')
        .unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]).into_owned();
    let (personal, display) = head.split_once('|').unwrap_or((&head, ""));
    let list = |text: &str| -> Vec<String> { text.split(',').map(str::to_owned).collect() };
    let body = data.get(split + 1..).unwrap_or_default();
    let redactor = tributary::admin::redact::Redactor::new(&list(personal), &list(display));
    let out = redactor.redact_json(body);
    let value: serde_json::Value = match serde_json::from_slice(&out) {
        Ok(value) => value,
        Err(error) => panic!("redaction output is not JSON ({error})"),
    };
    if value
        .as_str()
        .is_some_and(|text| text.starts_with("[withheld: "))
    {
        return;
    }
    assert_redacted(&redactor, &value, false, false);
}

fn assert_redacted(
    redactor: &tributary::admin::redact::Redactor,
    value: &serde_json::Value,
    personal: bool,
    shown: bool,
) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let personal = personal || redactor.is_personal(key);
                let shown = !personal && redactor.is_displayable(key);
                assert_redacted(redactor, inner, personal, shown);
            }
        }
        Value::Array(items) => {
            for item in items {
                assert_redacted(redactor, item, personal, shown);
            }
        }
        Value::Null => {}
        Value::Bool(_) if !personal => {}
        scalar => assert!(
            (!personal && shown) || scalar.as_str() == Some("[redacted]"),
            "a personal or undeclared value survived redaction"
        ),
    }
}
