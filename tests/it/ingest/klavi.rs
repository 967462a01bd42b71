//! Klavi event arrays through the real binary: signed over HTTP, read back over gRPC, with the
//! tax ids kept out of logs and events.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tributary_model::v1::event::Payload;
use tributary_model::v1::{
    Filter, ListDeadLettersRequest, TaxIdKind, UnmappedItem, subscribe_request::Start,
};

use crate::support::{self, Fixture, Server, delivered_json, expected_delivery, hmac_hex};

/// The secret key of the fixtures (`plugins/klavi/fixtures/adapter-config.json`).
const SECRET: &str = "klavi-fixture-secret";

/// Klavi as a source whose secret and personal-data hashes match the fixtures'.
const CONFIG: &str = r#"
[sources.klavi]
adapter = "klavi"
config = { secret_key = "klavi-fixture-secret", personal_data = { hash_key = "fixture-installation-key" } }
"#;

/// The default personal-data policy: keyed hash with the installation's own key.
const DEFAULT_POLICY_CONFIG: &str = r#"
[sources.klavi]
adapter = "klavi"
config = { secret_key = "klavi-fixture-secret" }
"#;

/// Every tax id in the fixtures, as sent and as digits: CPFs and the CNPJ.
const TAX_IDS: [&str; 5] = [
    "25872252137",
    "258.722.521-37",
    "12345678901",
    "12345678000195",
    "12.345.678/0001-95",
];

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// POSTs `body` signed with `secret`, with an `X-Klavi-Timestamp` when given.
async fn post_with(
    server: &Server,
    body: &[u8],
    secret: &str,
    timestamp: Option<u64>,
) -> (u16, Value) {
    let signature = hmac_hex(secret, body);
    let timestamp = timestamp.map(|t| t.to_string());
    let mut headers = vec![("X-Klavi-Signature", signature.as_str())];
    if let Some(timestamp) = &timestamp {
        headers.push(("X-Klavi-Timestamp", timestamp));
    }
    server.post("klavi", body, &headers).await
}

/// POSTs `body` correctly signed, stamped now.
async fn post_signed(server: &Server, body: &[u8]) -> (u16, Value) {
    post_with(server, body, SECRET, Some(now_seconds())).await
}

fn fixture(name: &str) -> Fixture {
    support::fixture("klavi", name)
}

fn expected_events(fixture: &Fixture) -> Vec<Value> {
    fixture.expected["normalized"]["events"]
        .as_array()
        .cloned()
        .expect("expected events")
}

fn answer(accepted: &[u64], duplicates: usize, dead_lettered: usize) -> Value {
    json!({"accepted": accepted.len(), "duplicates": duplicates,
        "dead_lettered": dead_lettered, "ignored": 0, "sequences": accepted})
}

/// Collects every event from sequence 1 and compares it with `expected` (already enveloped).
async fn assert_delivered(server: &Server, expected: &[Value]) {
    let delivered = server
        .collect(Filter::default(), None, expected.len())
        .await;
    let delivered: Vec<Value> = delivered.iter().map(delivered_json).collect();
    assert_eq!(delivered, expected);
    server
        .assert_no_more(Some(Start::AfterSequence(expected.len() as u64)))
        .await;
}

fn assert_unauthorized((status, body): (u16, Value), case: &str) {
    assert_eq!(status, 401, "{case}: {body}");
    assert_eq!(body["detail"], json!("verification failed"), "{case}");
}

#[tokio::test]
async fn signed_arrays_reach_a_subscriber_in_array_order() {
    let server = Server::start(CONFIG);
    let mut expected = Vec::new();
    for name in [
        "array-several-events",
        "event-name-with-spaces",
        "extra-unknown-fields",
        "seed-consent-authorised",
    ] {
        let case = fixture(name);
        let first = expected.len() as u64 + 1;
        for event in expected_events(&case) {
            let sequence = expected.len() as u64 + 1;
            expected.push(expected_delivery(event, "klavi", sequence, "klavi"));
        }
        let sequences: Vec<u64> = (first..=expected.len() as u64).collect();
        let (status, body) = post_signed(&server, &case.raw).await;
        assert_eq!((status, body), (200, answer(&sequences, 0, 0)), "{name}");
    }
    assert_eq!(expected.len(), 11);
    assert_delivered(&server, &expected).await;
}

#[tokio::test]
async fn wrong_signature_and_stale_timestamp_get_401_and_store_nothing() {
    let server = Server::start(CONFIG);
    let case = fixture("array-several-events");
    let now = now_seconds();
    let attempts = [
        ("wrong secret", "another-secret", Some(now)),
        ("wrong secret, no timestamp", "another-secret", None),
        // The timestamp header is required by default (`require_timestamp`).
        ("no timestamp", SECRET, None),
        ("stale by 10 minutes", SECRET, Some(now - 600)),
        ("stale by 1 hour", SECRET, Some(now - 3600)),
        ("10 minutes in the future", SECRET, Some(now + 600)),
    ];
    for (name, secret, timestamp) in attempts {
        assert_unauthorized(post_with(&server, &case.raw, secret, timestamp).await, name);
    }
    let missing = server.post("klavi", &case.raw, &[]).await;
    assert_unauthorized(missing, "no signature");
    // The recorded signature of another body.
    let other = fixture("signature-over-other-bytes");
    let signature = other.request["headers"]["X-Klavi-Signature"]
        .as_str()
        .expect("signature");
    let over_other = server
        .post("klavi", &other.raw, &[("X-Klavi-Signature", signature)])
        .await;
    assert_unauthorized(over_other, "signature over other bytes");
    server.assert_no_more(None).await;

    // Within the window the same body is stored.
    let (status, body) = post_with(&server, &case.raw, SECRET, Some(now - 60)).await;
    assert_eq!((status, body), (200, answer(&[1, 2, 3, 4, 5], 0, 0)));
}

#[tokio::test]
async fn a_partially_retried_array_stores_only_its_new_elements() {
    let server = Server::start(CONFIG);
    let case = fixture("array-several-events");
    let elements: Vec<Value> = serde_json::from_slice(&case.raw).expect("array");
    let events = expected_events(&case);
    let body = |indices: &[usize]| -> Vec<u8> {
        let array: Vec<&Value> = indices.iter().map(|&i| &elements[i]).collect();
        serde_json::to_vec(&array).expect("json")
    };

    let (status, first) = post_signed(&server, &body(&[1, 3])).await;
    assert_eq!((status, first), (200, answer(&[1, 2], 0, 0)));
    // The whole array: elements 1 and 3 are retries, 0, 2 and 4 are new.
    let (status, second) = post_signed(&server, &case.raw).await;
    assert_eq!((status, second), (200, answer(&[3, 4, 5], 2, 0)));
    // Everything again: nothing new.
    let (status, third) = post_signed(&server, &case.raw).await;
    assert_eq!((status, third), (200, answer(&[], 5, 0)));

    let order = [1, 3, 0, 2, 4];
    let expected: Vec<Value> = order
        .iter()
        .enumerate()
        .map(|(n, &i)| expected_delivery(events[i].clone(), "klavi", n as u64 + 1, "klavi"))
        .collect();
    assert_delivered(&server, &expected).await;
}

#[tokio::test]
async fn an_unknown_event_in_an_array_is_dead_lettered_and_the_others_stored() {
    let server = Server::start(CONFIG);
    let case = fixture("array-unknown-events-mixed");
    assert_eq!(
        case.expected["normalized"]["unmapped"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (status, body) = post_signed(&server, &case.raw).await;
    assert_eq!((status, body), (200, answer(&[1, 2, 3], 0, 2)));
    // A retry stores nothing new, not even a second dead letter.
    let (status, body) = post_signed(&server, &case.raw).await;
    assert_eq!((status, body), (200, answer(&[], 5, 0)));

    let expected: Vec<Value> = expected_events(&case)
        .into_iter()
        .enumerate()
        .map(|(n, event)| expected_delivery(event, "klavi", n as u64 + 1, "klavi"))
        .collect();
    assert_delivered(&server, &expected).await;
}

/// Rewrites the fixture hashes (keyed with `fixture-installation-key`) into hashes keyed with
/// `key`, so an expectation holds for a server with its own installation key.
fn rehash(mut value: Value, key: &str) -> Value {
    let digits = ["25872252137", "12345678901", "12345678000195"];
    let map: HashMap<String, String> = digits
        .iter()
        .map(|d| {
            let from = format!(
                "hmac-sha256:{}",
                hmac_hex("fixture-installation-key", d.as_bytes())
            );
            (from, format!("hmac-sha256:{}", hmac_hex(key, d.as_bytes())))
        })
        .collect();
    fn walk(value: &mut Value, map: &HashMap<String, String>) {
        match value {
            Value::String(s) if s.starts_with("hmac-sha256:") => {
                *s = map.get(s.as_str()).cloned().expect("known fixture hash");
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, map)),
            Value::Object(fields) => fields.values_mut().for_each(|v| walk(v, map)),
            _ => {}
        }
    }
    walk(&mut value, &map);
    value
}

#[tokio::test]
async fn tax_ids_never_appear_in_clear_in_logs_or_events_by_default() {
    let server = Server::start(DEFAULT_POLICY_CONFIG);
    let key = std::fs::read_to_string(server.data.join("installation.key")).expect("key");
    let key = key.trim();
    assert!(!key.is_empty());

    // Stored events with CPFs and a CNPJ, formatted and not.
    let case = fixture("pii-default-hash");
    let (status, body) = post_signed(&server, &case.raw).await;
    assert_eq!((status, body), (200, answer(&[1, 2, 3], 0, 0)));
    // Dead letters carrying a CPF.
    let mixed = fixture("array-unknown-events-mixed");
    let (status, body) = post_signed(&server, &mixed.raw).await;
    assert_eq!((status, body), (200, answer(&[4, 5, 6], 0, 2)));
    // Rejections of bodies carrying tax ids: wrong signature, stale, malformed.
    let pii = &case.raw;
    assert_unauthorized(post_with(&server, pii, "wrong", None).await, "wrong");
    let stale = Some(now_seconds() - 3600);
    assert_unauthorized(post_with(&server, pii, SECRET, stale).await, "stale");
    let mut broken = pii.clone();
    broken.truncate(broken.len() - 3);
    let (status, _) = post_signed(&server, &broken).await;
    assert_eq!(status, 400);

    let mut expected: Vec<Value> = expected_events(&case);
    expected.extend(expected_events(&mixed));
    let expected: Vec<Value> = expected
        .into_iter()
        .enumerate()
        .map(|(n, event)| {
            rehash(
                expected_delivery(event, "klavi", n as u64 + 1, "klavi"),
                key,
            )
        })
        .collect();
    // The fixture key was not used: the hashes really changed.
    assert_ne!(
        expected[0],
        expected_delivery(expected_events(&case)[0].clone(), "klavi", 1, "klavi")
    );
    assert_delivered(&server, &expected).await;

    let delivered = server
        .collect(Filter::default(), None, expected.len())
        .await;
    let delivered =
        serde_json::to_string(&delivered.iter().map(delivered_json).collect::<Vec<_>>())
            .expect("json");
    let logs = server.logs();
    assert!(
        logs.contains("webhook rejected"),
        "the logs were captured: {logs}"
    );
    for tax_id in TAX_IDS {
        assert!(!logs.contains(tax_id), "{tax_id} in the logs:\n{logs}");
        assert!(!delivered.contains(tax_id), "{tax_id} delivered");
    }
    assert!(!logs.contains(SECRET), "secret in the logs");
}

/// What the Admin service shows of a dead-lettered element: its bytes with the declared
/// personal-data keys redacted and every string or number not under one of Klavi's display
/// keys masked, as JSON.
fn redacted(raw: &[u8]) -> Value {
    const DISPLAY: [&str; 15] = [
        "eventid",
        "eventname",
        "eventtype",
        "eventtime",
        "apiversion",
        "linkid",
        "consentid",
        "requestid",
        "analysisid",
        "createdat",
        "expireat",
        "status",
        "product",
        "failurereason",
        "institutioncode",
    ];
    fn walk(value: &mut Value, shown: bool) {
        match value {
            Value::Object(fields) => {
                for (key, inner) in fields.iter_mut() {
                    let key = key.to_lowercase().replace(['_', '-'], "");
                    if key.contains("taxid") {
                        *inner = json!("[redacted]");
                    } else {
                        walk(inner, DISPLAY.contains(&key.as_str()));
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, shown)),
            Value::String(_) | Value::Number(_) if !shown => *value = json!("[redacted]"),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(raw).expect("element json");
    walk(&mut value, false);
    value
}

#[tokio::test]
async fn a_partially_bad_array_stores_the_good_elements_and_dead_letters_the_rest_once() {
    let server = Server::start(CONFIG);
    let case = fixture("array-partially-bad");
    // Six elements: good, no eventId, good, a string, no eventName (its eventId is element 0's),
    // good.
    let unmapped: Vec<UnmappedItem> = case.expected["normalized"]["unmapped"]
        .as_array()
        .expect("unmapped")
        .iter()
        .map(|item| serde_json::from_value(item.clone()).expect("UnmappedItem json"))
        .collect();
    assert_eq!(unmapped.len(), 3);

    let (status, body) = post_signed(&server, &case.raw).await;
    assert_eq!((status, body), (200, answer(&[1, 2, 3], 0, 3)));
    // Klavi retries the same array: nothing new, dead letters included.
    for _ in 0..2 {
        let (status, body) = post_signed(&server, &case.raw).await;
        assert_eq!((status, body), (200, answer(&[], 6, 0)));
    }

    // The good elements, in array order.
    let expected: Vec<Value> = expected_events(&case)
        .into_iter()
        .enumerate()
        .map(|(n, event)| expected_delivery(event, "klavi", n as u64 + 1, "klavi"))
        .collect();
    let ids: Vec<&str> = expected
        .iter()
        .map(|e| e["provenance"]["providerEventId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["1495468585500-01", "1495468585500-03", "1495468585500-06"]
    );
    assert_delivered(&server, &expected).await;

    // The bad elements, in array order, each keyed on its own bytes.
    let letters = server
        .dead_letters(ListDeadLettersRequest {
            include_raw: true,
            ..Default::default()
        })
        .await;
    let listed: Vec<(u64, String, String, String, String, String)> = letters
        .iter()
        .map(|l| {
            (
                l.id,
                l.source.clone(),
                l.adapter.clone(),
                l.provider_event_id.clone(),
                l.provider_event_type.clone(),
                l.reason.clone(),
            )
        })
        .collect();
    let content_id = |raw: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(raw)));
    let expected_letters: Vec<(u64, String, String, String, String, String)> = unmapped
        .iter()
        .zip(1u64..)
        .map(|(item, id)| {
            (
                id,
                "klavi".to_owned(),
                "klavi".to_owned(),
                content_id(&item.raw),
                item.provider_event_type.clone(),
                item.reason.clone(),
            )
        })
        .collect();
    assert_eq!(listed, expected_letters);
    assert_eq!(
        expected_letters
            .iter()
            .map(|l| (l.4.as_str(), l.5.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                "consent_authorised",
                "element 1 has no eventId: not a Klavi event, dead-lettered"
            ),
            (
                "",
                "element 3 is not a JSON object (got a string): not a Klavi event, dead-lettered"
            ),
            (
                "",
                "element 4 (eventId \"1495468585500-01\") has no eventName: not a Klavi event, \
                 dead-lettered"
            ),
        ]
    );
    for (letter, item) in letters.iter().zip(&unmapped) {
        let shown: Value = serde_json::from_slice(&letter.raw).expect("raw json");
        assert_eq!(shown, redacted(&item.raw), "dead letter {}", letter.id);
        assert!(letter.received_at.is_some());
        assert!(letter.resolved_at.is_none());
    }
    assert_eq!(
        serde_json::from_slice::<Value>(&letters[1].raw).expect("json"),
        json!("[redacted]"),
        "a bare string is under no display key"
    );
    let logs = server.logs();
    for tax_id in TAX_IDS {
        assert!(!logs.contains(tax_id), "{tax_id} in the logs:\n{logs}");
    }
}

#[tokio::test]
async fn the_requests_tax_id_stays_apart_from_the_subjects() {
    let server = Server::start(CONFIG);
    let case = fixture("seed-product-request-received");
    let (status, body) = post_signed(&server, &case.raw).await;
    assert_eq!((status, body["accepted"].clone()), (200, json!(1)));
    let events = server.collect(Filter::default(), None, 1).await;
    let references = events[0].references.as_ref().expect("references");
    let Some(Payload::DataRequest(request)) = &events[0].payload else {
        panic!("not a data request: {:?}", events[0].payload);
    };
    let subject: Vec<i32> = references.tax_ids.iter().map(|t| t.kind).collect();
    assert_eq!(subject, [TaxIdKind::BrCpf as i32]);
    let requested = request.request_tax_id.as_ref().expect("request tax id");
    assert_eq!(requested.kind, TaxIdKind::BrCpf as i32);
    let subject_value = references.tax_ids[0].id.as_ref().expect("id").value.clone();
    let requested_value = requested.id.as_ref().expect("id").value.clone();
    assert!(subject_value.starts_with("hmac-sha256:"), "{subject_value}");
    assert!(
        requested_value.starts_with("hmac-sha256:"),
        "{requested_value}"
    );
    // 25872252137 (the subject) and 12345678901 (the request): two people, two hashes.
    assert_ne!(subject_value, requested_value);
    let delivered = serde_json::to_string(&delivered_json(&events[0])).expect("json");
    for id in TAX_IDS {
        assert!(!delivered.contains(id), "{id} in clear: {delivered}");
    }
}
