//! The whole path through the real binary: Arcadia seed webhooks over HTTP, read back over gRPC.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_model::v1::event::Payload;
use tributary_model::v1::{
    Filter, ListDeadLettersRequest, OperationStatus, SubscribeRequest, subscribe_request::Start,
};

use crate::support::{
    self, ARCADIA_AUTH, Server, arcadia_source, delivered_json, expected_delivery, fixtures,
    next_event,
};

/// Arcadia as a source verifying the shared header, whose personal-data hashes match the
/// fixtures'.
fn config() -> String {
    arcadia_source(r#"personal_data = { hash_key = "fixture-installation-key" }"#)
}

/// Every example from the Arcadia seed (the bare examples and the scenario walk-throughs).
fn seed_examples() -> Vec<support::Fixture> {
    fixtures("arcadia", &["seed-", "scenario-"])
}

#[tokio::test]
async fn every_arcadia_seed_example_is_delivered_in_order_and_resumable() {
    let server = Server::start(&config());
    let examples = seed_examples();
    assert!(
        examples.len() >= 60,
        "expected all seed examples, found {}",
        examples.len()
    );

    let mut seen = HashSet::new();
    let mut expected = Vec::new();
    for example in &examples {
        let (status, body) = server.post("arcadia", &example.raw, &ARCADIA_AUTH).await;
        assert_eq!(status, 200, "{}: {body}", example.name);
        let events = example.expected["normalized"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut new = 0;
        for event in events {
            let id = event["provenance"]["providerEventId"]
                .as_str()
                .expect("id")
                .to_owned();
            if seen.insert(id) {
                let sequence = expected.len() as u64 + 1;
                expected.push(expected_delivery(event, "arcadia", sequence, "arcadia"));
                new += 1;
            }
        }
        assert_eq!(body["accepted"], json!(new), "{}: {body}", example.name);
        if new == 1 {
            assert_eq!(
                body["sequences"],
                json!([expected.len()]),
                "{}",
                example.name
            );
        }
    }

    let delivered = server
        .collect(Filter::default(), None, expected.len())
        .await;
    for (event, want) in delivered.iter().zip(&expected) {
        assert_eq!(delivered_json(event), *want);
        assert!(event.received_at.is_some());
    }

    // Resume after sequence N: exactly the rest, in order.
    let n = 17;
    let rest = server
        .collect(
            Filter::default(),
            Some(Start::AfterSequence(n)),
            expected.len() - n as usize,
        )
        .await;
    let sequences: Vec<u64> = rest.iter().map(|e| e.sequence).collect();
    let want: Vec<u64> = (n + 1..=expected.len() as u64).collect();
    assert_eq!(sequences, want);
    server
        .assert_no_more(Some(Start::AfterSequence(expected.len() as u64)))
        .await;

    // Filters: by canonical type and by domain prefix.
    let statements = expected
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("statement."))
        })
        .count();
    let got = server
        .collect(
            Filter {
                sources: vec!["arcadia".into()],
                types: vec!["statement.*".into()],
            },
            None,
            statements,
        )
        .await;
    assert!(got.iter().all(|e| e.r#type.starts_with("statement.")));
}

#[tokio::test]
async fn a_retried_webhook_is_stored_once() {
    let server = Server::start(&config());
    let example = &seed_examples()[0];
    let (status, first) = server.post("arcadia", &example.raw, &ARCADIA_AUTH).await;
    assert_eq!((status, first["accepted"].clone()), (200, json!(1)));
    let (status, second) = server.post("arcadia", &example.raw, &ARCADIA_AUTH).await;
    assert_eq!(status, 200);
    assert_eq!(second["accepted"], json!(0));
    assert_eq!(second["duplicates"], json!(1));
    let events = server.collect(Filter::default(), None, 1).await;
    assert_eq!(events[0].sequence, 1);
    server.assert_no_more(Some(Start::AfterSequence(1))).await;
}

#[tokio::test]
async fn a_live_subscriber_receives_new_events() {
    let server = Server::start(&config());
    let examples = seed_examples();
    let collector = {
        let mut stream = server
            .subscribe(SubscribeRequest {
                filter: None,
                start: Some(Start::FromLatest(true)),
                ..Default::default()
            })
            .await;
        tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 3 {
                got.push(
                    next_event(&mut stream, Duration::from_secs(20))
                        .await
                        .sequence,
                );
            }
            got
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for example in examples
        .iter()
        .filter(|e| e.name.starts_with("seed-"))
        .take(3)
    {
        let (status, _) = server.post("arcadia", &example.raw, &ARCADIA_AUTH).await;
        assert_eq!(status, 200);
    }
    assert_eq!(collector.await.expect("collector"), vec![1, 2, 3]);
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_stores_nothing() {
    let server = Server::start(
        r#"
[http]
body_limit = 4096
[sources.arcadia]
adapter = "arcadia"
config = { verification = { headers = { "X-Arcadia-Token" = "t0ken" } } }
content_types = ["application/json"]
"#,
    );
    let seed = &seed_examples()[0];
    let token = [("x-arcadia-token", "t0ken")];
    let client = reqwest::Client::new();

    // 400: not JSON (authentic).
    let (status, body) = server.post("arcadia", b"{not json", &token).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], json!(400));
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("not valid JSON"),
        "{body}"
    );
    // 400: JSON but not an Arcadia envelope.
    let (status, body) = server.post("arcadia", b"{\"hello\": 1}", &token).await;
    assert_eq!(status, 400, "{body}");
    // 401: missing and wrong shared header; the answer says nothing more.
    let (status, body) = server.post("arcadia", &seed.raw, &[]).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (401, json!("verification failed"))
    );
    let (status, _) = server
        .post("arcadia", &seed.raw, &[("x-arcadia-token", "t0kem")])
        .await;
    assert_eq!(status, 401);
    // 404: unknown source.
    let (status, body) = server.post("nope", &seed.raw, &token).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], json!("no source named `nope`"));
    // 413: over the body limit.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(8192));
    let (status, _) = server.post("arcadia", big.as_bytes(), &token).await;
    assert_eq!(status, 413);
    // 415: a type the source's content_types allow-list does not name.
    let response = client
        .post(server.url("/webhooks/arcadia"))
        .header("content-type", "text/plain")
        .header("x-arcadia-token", "t0ken")
        .body(seed.raw.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 415);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ct"),
        "application/problem+json"
    );
    // 405: only POST.
    let response = client
        .get(server.url("/webhooks/arcadia"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 405);

    // Nothing stored so far; then an authentic one is stored as sequence 1.
    server.assert_no_more(None).await;
    let (status, body) = server.post("arcadia", &seed.raw, &token).await;
    assert_eq!((status, body["sequences"].clone()), (200, json!([1])));

    // An authentic but unknown event type is accepted and dead-lettered, not delivered.
    let unknown: Value = json!({"createdAt": "2024-02-21T00:00:00.000+00:00", "data": {"id": "x_1"},
        "errors": [], "eventType": "SOMETHING_NEW", "id": "whk_new-type-1", "resource": "WIDGET"});
    let (status, body) = server
        .post("arcadia", unknown.to_string().as_bytes(), &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["accepted"].clone(), body["dead_lettered"].clone()),
        (json!(0), json!(1))
    );
    let (_, body) = server
        .post("arcadia", unknown.to_string().as_bytes(), &token)
        .await;
    assert_eq!(
        (body["dead_lettered"].clone(), body["duplicates"].clone()),
        (json!(0), json!(1))
    );
    server.assert_no_more(Some(Start::AfterSequence(1))).await;

    let logs = server.logs();
    assert!(!logs.contains("t0ken"), "secret in logs");
    assert!(!logs.contains("t0kem"), "presented secret in logs");
}

#[tokio::test]
async fn events_survive_a_restart_and_sequences_continue() {
    let server = Server::start(&config());
    let examples = seed_examples();
    let seeds: Vec<_> = examples
        .iter()
        .filter(|e| e.name.starts_with("seed-"))
        .collect();
    for example in &seeds[..4] {
        assert_eq!(
            server.post("arcadia", &example.raw, &ARCADIA_AUTH).await.0,
            200
        );
    }
    let before = server.collect(Filter::default(), None, 4).await;

    let server = server.restart();
    let after = server.collect(Filter::default(), None, 4).await;
    assert_eq!(before, after);
    // A retry after the restart is still recognised.
    let (_, body) = server.post("arcadia", &seeds[0].raw, &ARCADIA_AUTH).await;
    assert_eq!(body["duplicates"], json!(1));
    let (_, body) = server.post("arcadia", &seeds[4].raw, &ARCADIA_AUTH).await;
    assert_eq!(body["sequences"], json!([5]));
}

#[tokio::test]
async fn health_and_readiness() {
    let server = Server::start(&config());
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn the_download_token_is_typed_for_the_consumer_and_never_logged_nor_shown_in_dead_letters() {
    // Debug logging everywhere: the token must not appear even there.
    let server = Server::start_with_env(&config(), &[("RUST_LOG", "debug")]);
    let token = "dltok-5f1c9e2ab7d34c0e9a61b8f2";
    let seed = support::fixture("arcadia", "seed-download-status-change-success");
    let mut webhook: Value = serde_json::from_slice(&seed.raw).expect("json");
    webhook["data"]["token"] = json!(token);
    let body = serde_json::to_vec(&webhook).expect("encode");
    let (status, answer) = server.post("arcadia", &body, &ARCADIA_AUTH).await;
    assert_eq!(
        (status, answer),
        (
            200,
            json!({"accepted": 1, "duplicates": 0, "dead_lettered": 0, "ignored": 0,
                "sequences": [1]})
        )
    );
    // The same download under an event type the adapter does not know: a dead letter.
    webhook["id"] = json!("whk_6a2b7c3d-0e1f-4a5b-8c9d-0e1f2a3b4c5d");
    webhook["eventType"] = json!("EXPIRED");
    let unknown = serde_json::to_vec(&webhook).expect("encode");
    let (status, answer) = server.post("arcadia", &unknown, &ARCADIA_AUTH).await;
    assert_eq!((status, answer["dead_lettered"].clone()), (200, json!(1)));

    let events = server.collect(Filter::default(), None, 1).await;
    match &events[0].payload {
        Some(Payload::Export(export)) => {
            assert_eq!(
                (
                    export.id.as_str(),
                    export.status,
                    export.method.as_str(),
                    export.token.as_str()
                ),
                (
                    "dwl_8ed41615-edd4-d81d-bf47-c4ef75edf0d8",
                    OperationStatus::Succeeded as i32,
                    "IN_BROWSER",
                    token
                )
            );
        }
        other => panic!("not an export: {other:?}"),
    }

    let letters = server
        .dead_letters(ListDeadLettersRequest {
            include_raw: true,
            ..Default::default()
        })
        .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (
            letters[0].provider_event_id.as_str(),
            letters[0].reason.as_str()
        ),
        (
            "whk_6a2b7c3d-0e1f-4a5b-8c9d-0e1f2a3b4c5d",
            "no mapping for Arcadia resource \"DOWNLOAD\" with eventType \"EXPIRED\""
        )
    );
    let shown: Value = serde_json::from_slice(&letters[0].raw).expect("raw json");
    assert_eq!(shown["data"]["token"], json!("[redacted]"));
    assert_eq!(shown["data"]["downloadMethod"], json!("IN_BROWSER"));
    assert!(!String::from_utf8_lossy(&letters[0].raw).contains(token));

    let logs = server.logs();
    assert!(logs.contains("DEBUG"), "debug logs were captured: {logs}");
    assert!(!logs.contains(token), "the token was logged:\n{logs}");
}

/// The exact value of a metadata field: a number, or the JSON text of one a double cannot hold.
fn metadata_field(event: &tributary_model::v1::Event, key: &str) -> Value {
    let metadata = event.partner_metadata.as_ref().expect("partner metadata");
    serde_json::to_value(&metadata.fields[key]).expect("json")
}

#[tokio::test]
async fn amounts_and_metadata_numbers_arrive_exactly_and_out_of_range_amounts_are_dead_letters() {
    let server = Server::start(&config());
    let mapped = [
        "statement-exact-huge-and-many-decimal-amounts",
        "account-custom-data-big-ids",
    ];
    let refused = [
        (
            "statement-amount-beyond-i64-dead-letter",
            "whk_exact-0003",
            "STATEMENT `totalCharges` has a whole part beyond the 64-bit range (units): the \
             canonical decimal cannot hold it exactly, and numbers are never rounded",
        ),
        (
            "statement-amount-too-many-decimals-dead-letter",
            "whk_exact-0002",
            "STATEMENT `accountData[0].meterData[0].totalCharges` has a non-zero digit past the \
             9th decimal place: the canonical decimal cannot hold it exactly, and numbers are \
             never rounded",
        ),
    ];
    let mut expected = Vec::new();
    for name in mapped {
        let fixture = support::fixture("arcadia", name);
        let (status, body) = server.post("arcadia", &fixture.raw, &ARCADIA_AUTH).await;
        assert_eq!(
            (status, body["accepted"].clone()),
            (200, json!(1)),
            "{name}"
        );
        let event = fixture.expected["normalized"]["events"][0].clone();
        expected.push(expected_delivery(
            event,
            "arcadia",
            expected.len() as u64 + 1,
            "arcadia",
        ));
    }
    for (name, _, _) in refused {
        let fixture = support::fixture("arcadia", name);
        let (status, body) = server.post("arcadia", &fixture.raw, &ARCADIA_AUTH).await;
        assert_eq!(
            (
                status,
                body["accepted"].clone(),
                body["dead_lettered"].clone()
            ),
            (200, json!(0), json!(1)),
            "{name}"
        );
    }

    let events = server.collect(Filter::default(), None, 2).await;
    for (event, want) in events.iter().zip(&expected) {
        assert_eq!(delivered_json(event), *want);
    }
    let Some(Payload::Statement(statement)) = &events[0].payload else {
        panic!("not a statement: {:?}", events[0].payload);
    };
    let money = |m: &Option<tributary_model::v1::Money>| {
        m.as_ref()
            .map(|m| (m.units, m.nanos, m.currency_code.clone()))
    };
    assert_eq!(
        money(&statement.amount_due),
        Some((12_345_678_901_234_567, 890_000_000, "USD".into()))
    );
    assert_eq!(
        money(&statement.total_charges),
        Some((i64::MAX, 999_999_999, "USD".into()))
    );
    assert_eq!(
        money(&statement.outstanding_balance),
        Some((0, -123_456_789, "USD".into()))
    );
    let line = &statement.accounts[0];
    assert_eq!(money(&line.amount_due), Some((1500, 0, "USD".into())));
    assert_eq!(money(&line.total_charges), Some((0, 1, "USD".into())));
    assert_eq!(
        money(&line.outstanding_balance),
        Some((i64::MIN, 0, "USD".into()))
    );
    let usage = line.meters[0].total_usage.as_ref().expect("usage");
    assert_eq!(
        (usage.units, usage.nanos, usage.unit.as_str()),
        (619, 123_456_789, "kWh")
    );

    assert_eq!(
        metadata_field(&events[1], "partnerAccountId"),
        json!("98765432109876543210")
    );
    assert_eq!(
        metadata_field(&events[1], "beyondDouble"),
        json!("9007199254740993")
    );
    assert_eq!(
        metadata_field(&events[1], "amount"),
        json!("12345678901234567.89")
    );
    assert_eq!(metadata_field(&events[1], "ratio"), json!(0.5));
    server.assert_no_more(Some(Start::AfterSequence(2))).await;

    let letters = server.dead_letters(ListDeadLettersRequest::default()).await;
    let mut got: Vec<(String, String)> = letters
        .iter()
        .map(|l| (l.provider_event_id.clone(), l.reason.clone()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = refused
        .iter()
        .map(|(_, id, reason)| ((*id).to_owned(), (*reason).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn deletions_are_typed_by_outcome_and_file_names_follow_the_personal_data_policy() {
    let server = Server::start(&config());
    let cases = [
        ("seed-deletion-status-change-success", "deletion.completed"),
        (
            "deletion-status-change-failure-account-target",
            "deletion.failed",
        ),
        ("deletion-status-change-in-progress", "deletion.in_progress"),
        (
            "deletion-status-change-unknown-status",
            "deletion.status_changed",
        ),
        ("seed-file-status-change-queued", "file.status_changed"),
    ];
    for (name, _) in cases {
        let fixture = support::fixture("arcadia", name);
        let (status, body) = server.post("arcadia", &fixture.raw, &ARCADIA_AUTH).await;
        assert_eq!(
            (status, body["accepted"].clone()),
            (200, json!(1)),
            "{name}"
        );
    }
    let events = server.collect(Filter::default(), None, cases.len()).await;
    let got: Vec<(&str, Option<i32>)> = events
        .iter()
        .map(|e| {
            let status = match &e.payload {
                Some(Payload::Deletion(deletion)) => Some(deletion.status),
                _ => None,
            };
            (e.r#type.as_str(), status)
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "deletion.completed",
                Some(OperationStatus::Succeeded as i32)
            ),
            ("deletion.failed", Some(OperationStatus::Failed as i32)),
            (
                "deletion.in_progress",
                Some(OperationStatus::InProgress as i32)
            ),
            (
                "deletion.status_changed",
                Some(OperationStatus::Unspecified as i32)
            ),
            ("file.status_changed", None),
        ]
    );
    // Only the final success matches a filter on deletion.completed.
    let completed = server
        .collect(
            Filter {
                types: vec!["deletion.completed".into()],
                ..Default::default()
            },
            None,
            1,
        )
        .await;
    assert_eq!(completed[0].sequence, 1);

    let Some(Payload::File(file)) = &events[4].payload else {
        panic!("not a file: {:?}", events[4].payload);
    };
    let name = file.name.as_ref().expect("file name");
    assert_eq!(
        (
            file.file_name.as_str(),
            name.treatment,
            name.value.starts_with("hmac-sha256:")
        ),
        (
            "",
            tributary_model::v1::PersonalDataTreatment::Hashed as i32,
            true
        )
    );
    let delivered = serde_json::to_string(&delivered_json(&events[4])).expect("json");
    assert!(!delivered.contains("example-file-name"), "{delivered}");
}
