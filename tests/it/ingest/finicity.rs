//! Finicity / Mastercard Connect webhooks through the real binary: signed over HTTP, read back
//! over gRPC.

use std::collections::HashSet;

use serde_json::{Value, json};
use tributary_model::v1::event::Payload;
use tributary_model::v1::{
    ConnectionStatus, Filter, ListDeadLettersRequest, subscribe_request::Start,
};

use crate::support::{
    self, Fixture, Server, delivered_json, expected_delivery, fixtures, hmac_hex,
};

/// The partner secret of the fixtures (`plugins/finicity/fixtures/adapter-config.json`).
const SECRET: &str = "fixture-partner-secret";

/// Finicity as a source whose secret and personal-data hashes match the fixtures'.
/// The failed-verification budget is off: these tests send many unsigned webhooks on purpose.
const CONFIG: &str = r#"
[http]
failed_verifications_per_second = 0
[sources.finicity]
adapter = "finicity"
config = { secret = "fixture-partner-secret", personal_data = { hash_key = "fixture-installation-key" } }
"#;

/// The 15 Connect event types that map to a canonical event (all but `ping`).
const MAPPED_TYPES: [&str; 15] = [
    "accountsDeleted",
    "added",
    "adding",
    "credentialsUpdated",
    "discovered",
    "done",
    "institutionNotFound",
    "institutionNotSupported",
    "institutionSupported",
    "invalidCredentials",
    "mfa",
    "mfaUpdated",
    "processing",
    "started",
    "unableToConnect",
];

/// POSTs `body` signed with the fixture secret in `X-Finicity-Signature`.
async fn post_signed(server: &Server, body: &[u8]) -> (u16, Value) {
    let signature = hmac_hex(SECRET, body);
    server
        .post("finicity", body, &[("X-Finicity-Signature", &signature)])
        .await
}

/// POSTs a fixture with exactly the headers of its `*.request.json`.
async fn post_as_recorded(server: &Server, fixture: &Fixture) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = fixture.request["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().expect("header value")))
                .collect()
        })
        .unwrap_or_default();
    server.post("finicity", &fixture.raw, &headers).await
}

fn fixture(name: &str) -> Fixture {
    support::fixture("finicity", name)
}

/// Fixtures signed with the default header and config whose expectation is stored events.
fn mapping_cases() -> Vec<Fixture> {
    let dir = support::repo().join("plugins/finicity/fixtures");
    fixtures("finicity", &[""])
        .into_iter()
        .filter(|f| !dir.join(format!("{}.config.json", f.name)).exists())
        .filter(|f| f.request["headers"]["X-Finicity-Signature"].is_string())
        .filter(|f| f.expected["normalized"]["events"].is_array())
        .collect()
}

async fn assert_nothing_stored(server: &Server) {
    server.assert_no_more(None).await;
}

fn assert_unauthorized((status, body): (u16, Value), case: &str) {
    assert_eq!(status, 401, "{case}: {body}");
    assert_eq!(body["status"], json!(401), "{case}");
    assert_eq!(body["detail"], json!("verification failed"), "{case}");
}

#[tokio::test]
async fn every_signed_connect_event_reaches_a_subscriber_exactly_and_in_order() {
    let server = Server::start(CONFIG);
    let cases = mapping_cases();
    let mut types = HashSet::new();
    let mut seen = HashSet::new();
    let mut expected = Vec::new();
    for case in &cases {
        let recorded = case.request["headers"]["X-Finicity-Signature"]
            .as_str()
            .expect("signature");
        assert_eq!(
            recorded.to_lowercase(),
            hmac_hex(SECRET, &case.raw),
            "{}",
            case.name
        );
        let (status, body) = post_signed(&server, &case.raw).await;
        assert_eq!(status, 200, "{}: {body}", case.name);
        let event = case.expected["normalized"]["events"][0].clone();
        types.insert(
            event["provenance"]["providerEventType"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let id = event["provenance"]["providerEventId"]
            .as_str()
            .unwrap()
            .to_owned();
        if seen.insert(id) {
            let sequence = expected.len() as u64 + 1;
            expected.push(expected_delivery(event, "finicity", sequence, "finicity"));
            let want = json!({"accepted": 1, "duplicates": 0, "dead_lettered": 0,
                "ignored": 0, "sequences": [sequence]});
            assert_eq!(body, want, "{}", case.name);
        } else {
            assert_eq!(
                (body["accepted"].clone(), body["duplicates"].clone()),
                (json!(0), json!(1))
            );
        }
    }
    let want_types: HashSet<String> = MAPPED_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(types, want_types, "one signed case per mapped event type");

    let delivered = server
        .collect(Filter::default(), None, expected.len())
        .await;
    for (event, mut want) in delivered.iter().zip(expected.clone()) {
        // An eventId without an epoch prefix has no provider time: the host uses receipt time.
        if want.get("time").is_none() {
            let received = serde_json::to_value(event).unwrap()["receivedAt"].clone();
            assert!(received.is_string(), "{event:?}");
            want["time"] = received;
        }
        assert_eq!(delivered_json(event), want);
        assert!(event.received_at.is_some());
    }
    server
        .assert_no_more(Some(Start::AfterSequence(expected.len() as u64)))
        .await;
}

#[tokio::test]
async fn wrong_missing_and_malformed_signatures_get_401_and_store_nothing() {
    let server = Server::start(CONFIG);
    let started = fixture("started");
    let cases = [
        "signature-wrong-secret",
        "signature-missing",
        "signature-malformed-hex",
        "signature-over-other-body",
        "signature-in-wrong-header",
        "ping-unsigned",
    ];
    for name in cases {
        assert_unauthorized(post_as_recorded(&server, &fixture(name)).await, name);
    }
    let header = "X-Finicity-Signature";
    let wrong = hmac_hex("another-secret", &started.raw);
    let good = hmac_hex(SECRET, &started.raw);
    let truncated = &good[..63];
    let prefixed = format!("sha256={good}");
    let attempts: [(&str, Vec<(&str, &str)>); 5] = [
        ("wrong secret", vec![(header, &wrong)]),
        ("missing", vec![]),
        ("empty", vec![(header, "")]),
        ("63 hex characters", vec![(header, truncated)]),
        ("sha256= prefix", vec![(header, &prefixed)]),
    ];
    for (case, headers) in &attempts {
        let answer = server.post("finicity", &started.raw, headers).await;
        assert_unauthorized(answer, case);
    }
    // The signature covers the exact bytes: one added space fails.
    let mut spaced = started.raw.clone();
    spaced.push(b' ');
    let answer = server.post("finicity", &spaced, &[(header, &good)]).await;
    assert_unauthorized(answer, "body changed after signing");
    assert_nothing_stored(&server).await;

    // The same body correctly signed is then stored as sequence 1.
    let (status, body) = post_signed(&server, &started.raw).await;
    assert_eq!((status, body["sequences"].clone()), (200, json!([1])));
    let logs = server.logs();
    assert!(!logs.contains(SECRET), "secret in logs");
    assert!(!logs.contains(&good), "signature in logs");
}

#[tokio::test]
async fn a_retried_event_id_adds_nothing() {
    let server = Server::start(CONFIG);
    let added = fixture("added");
    let (status, first) = post_signed(&server, &added.raw).await;
    assert_eq!((status, first["sequences"].clone()), (200, json!([1])));
    // Finicity's retry: the same bytes.
    let (status, second) = post_signed(&server, &added.raw).await;
    assert_eq!(status, 200);
    let want = json!({"accepted": 0, "duplicates": 1, "dead_lettered": 0, "ignored": 0,
        "sequences": []});
    assert_eq!(second, want);
    // A different body with the same eventId is the same event.
    let mut changed: Value = serde_json::from_slice(&added.raw).unwrap();
    changed["webhookData"] = json!({"retry": 2});
    let (status, third) = post_signed(&server, changed.to_string().as_bytes()).await;
    assert_eq!((status, third), (200, want));

    let events = server.collect(Filter::default(), None, 1).await;
    let event = added.expected["normalized"]["events"][0].clone();
    assert_eq!(
        delivered_json(&events[0]),
        expected_delivery(event, "finicity", 1, "finicity")
    );
    server.assert_no_more(Some(Start::AfterSequence(1))).await;
}

#[tokio::test]
async fn ping_is_acknowledged_counted_and_not_stored() {
    let server = Server::start(CONFIG);
    let ping = fixture("ping");
    for _ in 0..2 {
        let (status, body) = post_signed(&server, &ping.raw).await;
        assert_eq!(status, 200, "{body}");
        let want = json!({"accepted": 0, "duplicates": 0, "dead_lettered": 0, "ignored": 1,
            "sequences": []});
        assert_eq!(body, want);
    }
    assert_nothing_stored(&server).await;
}

#[tokio::test]
async fn an_unknown_event_type_is_accepted_and_dead_lettered_not_delivered() {
    let server = Server::start(CONFIG);
    for name in ["unknown-event-type", "missing-event-id"] {
        let case = fixture(name);
        let (status, body) = post_signed(&server, &case.raw).await;
        assert_eq!(status, 200, "{name}: {body}");
        let want = json!({"accepted": 0, "duplicates": 0, "dead_lettered": 1, "ignored": 0,
            "sequences": []});
        assert_eq!(body, want, "{name}");
        // A retry is recognised: no second dead letter.
        let (status, body) = post_signed(&server, &case.raw).await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["dead_lettered"].clone(), body["duplicates"].clone()),
            (json!(0), json!(1)),
            "{name}"
        );
    }
    assert_nothing_stored(&server).await;
}

#[tokio::test]
async fn the_au_signature_header_works_when_configured() {
    let server = Server::start(
        &CONFIG.replace("secret = ", "signature_header = \"X-Signature\", secret = "),
    );
    // Signed, but in the default header: not what this source reads.
    let wrong_header = fixture("signature-au-expects-its-header");
    assert_unauthorized(
        post_as_recorded(&server, &wrong_header).await,
        "X-Finicity-Signature on an AU source",
    );
    assert_nothing_stored(&server).await;

    let case = fixture("signature-au-header");
    let signature = hmac_hex(SECRET, &case.raw);
    assert_eq!(case.request["headers"]["X-Signature"], json!(signature));
    let (status, body) = server
        .post("finicity", &case.raw, &[("x-signature", &signature)])
        .await;
    assert_eq!(
        (status, body["sequences"].clone()),
        (200, json!([1])),
        "{body}"
    );
    let events = server.collect(Filter::default(), None, 1).await;
    let event = case.expected["normalized"]["events"][0].clone();
    assert_eq!(
        delivered_json(&events[0]),
        expected_delivery(event, "finicity", 1, "finicity")
    );
}

#[tokio::test]
async fn processing_is_its_own_connection_type_and_balances_are_exact() {
    let server = Server::start(CONFIG);
    for name in ["processing", "added-exact-balances-and-big-webhook-data"] {
        let (status, body) = post_signed(&server, &fixture(name).raw).await;
        assert_eq!(
            (status, body["accepted"].clone()),
            (200, json!(1)),
            "{name}"
        );
    }
    let events = server.collect(Filter::default(), None, 2).await;
    let Some(Payload::Connection(connection)) = &events[0].payload else {
        panic!("not a connection: {:?}", events[0].payload);
    };
    assert_eq!(
        (events[0].r#type.as_str(), connection.status),
        ("connection.processing", ConnectionStatus::Processing as i32)
    );
    let Some(Payload::Account(accounts)) = &events[1].payload else {
        panic!("not accounts: {:?}", events[1].payload);
    };
    let balances: Vec<(i64, i32)> = accounts
        .accounts
        .iter()
        .map(|a| {
            a.balance
                .as_ref()
                .map(|b| (b.units, b.nanos))
                .expect("balance")
        })
        .collect();
    assert_eq!(
        balances,
        [
            (12_345_678_901_234_567, 890_000_000),
            (0, -1),
            (22_327, 300_000_000)
        ]
    );
    let metadata =
        serde_json::to_value(events[1].partner_metadata.as_ref().expect("metadata")).expect("json");
    assert_eq!(
        metadata,
        json!({"loanApplicationId": "12345678901234567890123", "beyondDouble": "9007199254740993",
            "score": 712.0, "rate": 0.0425, "nested": {"id": "18446744073709551615"}})
    );

    // A balance no Money can hold is a dead letter with the reason, never rounded.
    let refused = fixture("added-balance-too-many-decimals-dead-letter");
    let (status, body) = post_signed(&server, &refused.raw).await;
    assert_eq!((status, body["dead_lettered"].clone()), (200, json!(1)));
    let letters = server.dead_letters(ListDeadLettersRequest::default()).await;
    assert_eq!(
        letters
            .iter()
            .map(|l| l.reason.as_str())
            .collect::<Vec<_>>(),
        [
            "accounts[0].balance has a non-zero digit past the 9th decimal place: the canonical \
          decimal cannot hold it exactly, and numbers are never rounded"
        ]
    );
}
