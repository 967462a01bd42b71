//! Dead letters: an authentic webhook the adapter cannot map is stored as a dead letter; after
//! the adapter is fixed (a newer build hot-reloaded into the plugin directory) a redrive turns
//! it into events and marks it resolved.
use serde_json::json;
use tributary_model::v1::event::Payload;
use tributary_model::v1::{ConsentStatus, ListDeadLettersRequest, RedriveDeadLettersRequest};

use crate::support::adapters::{build_quokka, build_quokka_with, cli_success, wait_for_version};
use crate::support::{Server, hmac_hex, unix_now};

#[tokio::test]
async fn a_dead_letter_is_redriven_through_the_fixed_adapter() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = plugins
        .path()
        .join(tributary_plugin_host::library_file_name("quokka"));
    build_quokka(&library, "1.0.0");
    let server = Server::start_with_plugins(
        "[sources.quokka]\nadapter = \"quokka\"\nconfig = { token = \"qk-token\" }\n",
        plugins.path(),
    );
    let token = [("x-quokka-token", "qk-token")];
    let body =
        json!({"id": "qk_evt_7", "kind": "consent.expired", "consent": "qc_7", "at": 1714564800});
    let body = body.to_string();

    let (status, answer) = server.post("quokka", body.as_bytes(), &token).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].clone(), answer["dead_lettered"].clone()),
        (json!(0), json!(1))
    );

    let listed = server
        .dead_letters(ListDeadLettersRequest {
            include_raw: true,
            ..Default::default()
        })
        .await;
    assert_eq!(listed.len(), 1);
    let letter = &listed[0];
    assert_eq!(
        (
            letter.id,
            letter.source.as_str(),
            letter.provider_event_id.as_str()
        ),
        (1, "quokka", "qk_evt_7")
    );
    assert_eq!(
        (letter.provider_event_type.as_str(), letter.reason.as_str()),
        ("consent.expired", "unknown kind")
    );
    assert_eq!(
        (letter.adapter.as_str(), letter.adapter_version.as_str()),
        ("quokka", "1.0.0")
    );
    // Quokka declares which fields are safe to show (id, kind, consent): every other value is
    // masked.
    let raw: serde_json::Value = serde_json::from_slice(&letter.raw).expect("raw json");
    assert_eq!(
        raw,
        json!({"at": "[redacted]", "consent": "qc_7", "id": "qk_evt_7", "kind": "consent.expired"})
    );

    // Redriven through the same (unfixed) adapter: still dead, with its reason.
    let mut admin = server.admin().await;
    let outcomes = admin
        .redrive_dead_letters(RedriveDeadLettersRequest {
            ids: vec![1],
            ..RedriveDeadLettersRequest::default()
        })
        .await
        .expect("redrive")
        .into_inner()
        .outcomes;
    assert_eq!(outcomes.len(), 1);
    assert!(!outcomes[0].resolved);
    assert_eq!(outcomes[0].reason, "unknown kind");

    // The fixed adapter is dropped into the plugin directory and hot-reloaded.
    build_quokka_with(&library, "2.0.0", &["QUOKKA_MAPS_EXPIRED"]);
    wait_for_version(server.grpc, "quokka", "2.0.0").await;

    // The CLI redrives every unresolved dead letter.
    let url = format!("http://{}", server.grpc);
    let output = cli_success(&["dead-letters", "redrive", "--server", &url]);
    let outcome: serde_json::Value = serde_json::from_str(&output).expect("one JSON line");
    assert_eq!(
        outcome,
        json!({"id": "1", "resolved": true, "sequences": ["1"]})
    );

    let events = server.collect(Default::default(), None, 1).await;
    let event = &events[0];
    assert_eq!(
        (event.sequence, event.r#type.as_str()),
        (1, "consent.expired")
    );
    assert_eq!(
        event
            .provenance
            .as_ref()
            .map(|p| p.adapter_version.as_str()),
        Some("2.0.0")
    );
    match &event.payload {
        Some(Payload::Consent(consent)) => {
            assert_eq!(consent.status, ConsentStatus::Expired as i32);
            assert_eq!(consent.consent_id, "qc_7");
        }
        other => panic!("unexpected payload {other:?}"),
    }

    // Resolved: gone from the default listing, kept with its outcome otherwise.
    let unresolved = server.dead_letters(ListDeadLettersRequest::default()).await;
    assert!(unresolved.is_empty());
    let all = server
        .dead_letters(ListDeadLettersRequest {
            include_resolved: true,
            ..Default::default()
        })
        .await;
    assert_eq!(all.len(), 1);
    assert!(all[0].resolved_at.is_some());
    assert_eq!(
        (all[0].resolved_sequences.clone(), all[0].redrive_attempts),
        (vec![1], 2)
    );
    assert!(all[0].raw.is_empty(), "raw only on request");

    // The provider retrying the original webhook adds nothing.
    let (status, answer) = server.post("quokka", body.as_bytes(), &token).await;
    assert_eq!((status, answer["duplicates"].clone()), (200, json!(1)));
}

#[tokio::test]
async fn dead_letter_listings_redact_personal_data() {
    let server = Server::start(
        "[sources.klavi]\nadapter = \"klavi\"\nconfig = { secret_key = \"klavi-redrive-secret\" }\n",
    );
    let body = json!([{"partnerAppId": "1", "eventId": "e-1", "eventType": "analysis",
        "eventName": "analysis_finished", "eventTime": "2022-06-25T20:08:17.848Z",
        "payload": {"personalTaxId": "25872252137", "linkId": "l-1"}}]);
    let body = body.to_string();
    let signature = hmac_hex("klavi-redrive-secret", body.as_bytes());
    let now = unix_now().to_string();
    let signed = [
        ("X-Klavi-Signature", signature.as_str()),
        ("X-Klavi-Timestamp", now.as_str()),
    ];
    let (status, answer) = server.post("klavi", body.as_bytes(), &signed).await;
    assert_eq!((status, answer["dead_lettered"].clone()), (200, json!(1)));
    let listed = server
        .dead_letters(ListDeadLettersRequest {
            include_raw: true,
            ..Default::default()
        })
        .await;
    let raw: serde_json::Value = serde_json::from_slice(&listed[0].raw).expect("json");
    assert_eq!(raw["payload"]["personalTaxId"], json!("[redacted]"));
    assert_eq!(raw["payload"]["linkId"], json!("l-1"));

    // One webhook's dead letters, by its raw-archive id (the console's event page links so).
    let raw_id = listed[0].raw_id;
    assert!(raw_id > 0, "archived");
    let of_webhook = |raw_id| ListDeadLettersRequest {
        raw_id,
        ..Default::default()
    };
    let ids = |letters: Vec<tributary_model::v1::DeadLetter>| -> Vec<u64> {
        letters.iter().map(|letter| letter.id).collect()
    };
    assert_eq!(
        ids(server.dead_letters(of_webhook(raw_id)).await),
        [listed[0].id]
    );
    assert_eq!(
        ids(server.dead_letters(of_webhook(raw_id + 1)).await),
        Vec::<u64>::new()
    );
}
