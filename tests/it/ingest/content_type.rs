//! The `Content-Type` of a webhook through the real binary: any type, or none, reaches the
//! adapter (which alone decides whether the body is its provider's); a source's
//! `content_types` allow-list turns other types away with 415.

use serde_json::{Value, json};
use tributary_model::v1::Filter;

use crate::support::{Server, delivered_json, expected_delivery, fixture, hmac_hex};

/// The Finicity partner secret of its fixtures.
const SECRET: &str = "fixture-partner-secret";

/// Finicity as a source whose secret and personal-data hashes match the fixtures', plus
/// `extra` lines of its `[sources.finicity]` table.
fn config(extra: &str) -> String {
    format!(
        "[sources.finicity]\nadapter = \"finicity\"\n\
         config = {{ secret = \"{SECRET}\", personal_data = {{ hash_key = \"fixture-installation-key\" }} }}\n{extra}"
    )
}

/// POSTs `body` signed as Finicity signs it, with `content_type` (`None`: no header at all).
async fn post(server: &Server, body: &[u8], content_type: Option<&str>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .post(server.url("/webhooks/finicity"))
        .header("X-Finicity-Signature", hmac_hex(SECRET, body))
        .body(body.to_vec());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let answer_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, answer_type, json)
}

/// The one event a fixture maps to, as the server delivers it at `sequence`.
fn delivery(name: &str, sequence: u64) -> Value {
    let expected = fixture("finicity", name).expected["normalized"]["events"][0].clone();
    assert!(expected.is_object(), "{name} maps to an event");
    expected_delivery(expected, "finicity", sequence, "finicity")
}

#[tokio::test]
async fn any_content_type_or_none_reaches_the_adapter() {
    let server = Server::start(&config(""));
    let cases = [
        ("added", Some("text/plain")),
        ("adding", None),
        ("discovered", Some("application/json; charset=utf-8")),
        ("started", Some("application/x-www-form-urlencoded")),
    ];
    for (sequence, (name, content_type)) in (1_u64..).zip(cases) {
        let raw = fixture("finicity", name).raw;
        let (status, _, body) = post(&server, &raw, content_type).await;
        assert_eq!(status, 200, "{name} as {content_type:?}: {body}");
        assert_eq!(
            body,
            json!({"accepted": 1, "duplicates": 0, "dead_lettered": 0, "ignored": 0,
                   "sequences": [sequence]}),
            "{name}"
        );
    }
    let delivered = server.collect(Filter::default(), None, cases.len()).await;
    for (sequence, (event, (name, _))) in (1_u64..).zip(delivered.iter().zip(cases)) {
        assert_eq!(delivered_json(event), delivery(name, sequence), "{name}");
    }
    server
        .assert_no_more(Some(
            tributary_model::v1::subscribe_request::Start::AfterSequence(cases.len() as u64),
        ))
        .await;

    // Still the adapter's call: an authentic body that is not Finicity's is malformed, and a
    // wrong signature is unauthenticated, whatever the type.
    let (status, _, body) = post(&server, b"plain words", Some("text/plain")).await;
    assert_eq!(status, 400, "{body}");
    let raw = fixture("finicity", "done").raw;
    let response = reqwest::Client::new()
        .post(server.url("/webhooks/finicity"))
        .header("content-type", "text/plain")
        .header("X-Finicity-Signature", hmac_hex("another-secret", &raw))
        .body(raw)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn an_allow_list_turns_other_types_away_with_415() {
    let server = Server::start(&config(
        "content_types = [\"application/json\", \"Application/Vnd.Finicity+JSON\"]\n",
    ));
    let raw = fixture("finicity", "added").raw;
    for refused in [
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, answer_type, body) = post(&server, &raw, refused).await;
        assert_eq!(status, 415, "{refused:?}: {body}");
        assert_eq!(answer_type, "application/problem+json");
        assert_eq!(
            (body["status"].clone(), body["detail"].clone()),
            (
                json!(415),
                json!(
                    "this source accepts Content-Type application/json, \
                     application/vnd.finicity+json"
                )
            ),
            "{refused:?}"
        );
    }
    server.assert_no_more(None).await;
    // Listed types, with parameters and in any case, are accepted.
    let (status, _, body) = post(&server, &raw, Some("APPLICATION/JSON; charset=utf-8")).await;
    assert_eq!(
        (status, body["sequences"].clone()),
        (200, json!([1])),
        "{body}"
    );
    let (status, _, body) = post(
        &server,
        &fixture("finicity", "adding").raw,
        Some("application/vnd.finicity+json"),
    )
    .await;
    assert_eq!(
        (status, body["sequences"].clone()),
        (200, json!([2])),
        "{body}"
    );
    let delivered = server.collect(Filter::default(), None, 2).await;
    assert_eq!(delivered_json(&delivered[0]), delivery("added", 1));
    assert_eq!(delivered_json(&delivered[1]), delivery("adding", 2));
}
