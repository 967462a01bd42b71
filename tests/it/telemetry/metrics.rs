//! `GET /metrics`: parses as Prometheus/OpenMetrics text, and the counters move exactly as the
//! webhooks sent say they must.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tributary_model::v1::{SubscribeRequest, subscribe_request::Start};

use crate::support::{Server, arcadia_webhook, next_event};

const CONFIG: &str = r#"
[sources.arcadia]
adapter = "arcadia"
config = { verification = { headers = { "X-Arcadia-Token" = "t0ken" } } }
content_types = ["application/json"]
"#;

const TOKEN: [(&str, &str); 1] = [("x-arcadia-token", "t0ken")];

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A strict parser of the text exposition format (Prometheus 0.0.4 / OpenMetrics 1.0 text):
/// panics on any line that is neither a comment nor `name{label="value",...} value`.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "content after # EOF: {line:?}");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&kind) && is_name(name),
                "bad comment line {line:?}"
            );
            if kind == "TYPE" {
                let kind = parts.next().unwrap_or_default();
                assert!(
                    [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "unknown",
                        "stateset",
                        "gaugehistogram"
                    ]
                    .contains(&kind),
                    "bad type {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(is_name(key), "bad label name in {line:?}");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, 'n')) => value.push('\n'),
                                Some((_, c)) => value.push(c),
                                None => panic!("bad escape in {line:?}"),
                            },
                            Some((i, '"')) => break i,
                            Some((_, c)) => value.push(c),
                            None => panic!("unterminated label value in {line:?}"),
                        }
                    };
                    labels.insert(key.to_owned(), value);
                    rest = &after[end + 1..];
                    rest = rest.strip_prefix(',').unwrap_or(rest);
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

async fn scrape(server: &Server) -> Vec<Sample> {
    let response = reqwest::get(server.url("/metrics")).await.expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse(&response.text().await.expect("body"))
}

/// The value of the sample `name` with exactly these labels; 0 when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| *v)
        .unwrap_or(0.0)
}

const ARCADIA: [(&str, &str); 2] = [("source", "arcadia"), ("adapter", "arcadia")];

fn rejected(reason: &str) -> [(&'static str, String); 3] {
    [
        ("source", "arcadia".to_owned()),
        ("adapter", "arcadia".to_owned()),
        ("reason", reason.to_owned()),
    ]
}

fn rejected_count(samples: &[Sample], labels: &[(&str, String); 3]) -> f64 {
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    value(samples, "tributary_webhooks_rejected_total", &labels)
}

#[tokio::test]
async fn counters_move_exactly_as_the_webhooks_say() {
    let server = Server::start(CONFIG);
    let before = scrape(&server).await;
    assert_eq!(
        value(&before, "tributary_webhooks_received_total", &ARCADIA),
        0.0
    );
    assert!(value(&before, "tributary_plugins_loaded", &[]) >= 3.0);
    assert_eq!(value(&before, "tributary_log_healthy", &[]), 1.0);

    // Accepted, then the same again: a duplicate.
    let first = arcadia_webhook("whk_metrics-1");
    assert_eq!(server.post("arcadia", &first, &TOKEN).await.0, 200);
    let (status, body) = server.post("arcadia", &first, &TOKEN).await;
    assert_eq!((status, body["duplicates"].clone()), (200, json!(1)));
    // Rejected: unauthenticated (twice), malformed, unsupported media type, unknown source.
    assert_eq!(server.post("arcadia", &first, &[]).await.0, 401);
    assert_eq!(
        server
            .post("arcadia", &first, &[("x-arcadia-token", "wrong")])
            .await
            .0,
        401
    );
    assert_eq!(server.post("arcadia", b"{not json", &TOKEN).await.0, 400);
    let response = reqwest::Client::new()
        .post(server.url("/webhooks/arcadia"))
        .header("content-type", "text/plain")
        .body(first.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 415);
    assert_eq!(server.post("nope", &first, &TOKEN).await.0, 404);
    // Authentic but unmappable: dead-lettered.
    let unknown = json!({"createdAt": "2024-02-21T00:00:00.000+00:00", "data": {"id": "x_1"},
        "errors": [], "eventType": "SOMETHING_NEW", "id": "whk_metrics-unknown", "resource": "WIDGET"});
    let (status, body) = server
        .post("arcadia", unknown.to_string().as_bytes(), &TOKEN)
        .await;
    assert_eq!((status, body["dead_lettered"].clone()), (200, json!(1)));

    // A durable consumer that read the one event without acknowledging it: lag 1; its stream
    // is an active subscription while open.
    let mut stream = server
        .subscribe(SubscribeRequest {
            consumer: "metrics-consumer".into(),
            start: Some(Start::FromEarliest(true)),
            ..Default::default()
        })
        .await;
    let event = next_event(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(event.sequence, 1);

    let after = scrape(&server).await;
    let count = |name: &str| value(&after, name, &ARCADIA);
    // 7 reached the arcadia source (the unknown-source one is counted under source="").
    assert_eq!(count("tributary_webhooks_received_total"), 7.0);
    assert_eq!(count("tributary_webhooks_accepted_total"), 3.0);
    assert_eq!(count("tributary_events_accepted_total"), 1.0);
    assert_eq!(count("tributary_duplicates_total"), 1.0);
    assert_eq!(count("tributary_dead_letters_total"), 1.0);
    assert_eq!(count("tributary_ignored_total"), 0.0);
    assert_eq!(
        rejected_count(&after, &rejected("unauthenticated")),
        2.0,
        "{after:?}"
    );
    assert_eq!(rejected_count(&after, &rejected("malformed")), 1.0);
    assert_eq!(
        rejected_count(&after, &rejected("unsupported_media_type")),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tributary_webhooks_rejected_total",
            &[
                ("source", ""),
                ("adapter", ""),
                ("reason", "unknown_source")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tributary_webhooks_received_total",
            &[("source", ""), ("adapter", "")]
        ),
        1.0
    );
    // Histograms: verify ran for the 6 requests with a JSON content type; normalize for the 4
    // that passed it; 3 appends (1 + 1 duplicate + 1 dead letter items).
    let adapter = [("adapter", "arcadia")];
    assert_eq!(
        value(&after, "tributary_verify_duration_seconds_count", &adapter),
        6.0
    );
    assert_eq!(
        value(
            &after,
            "tributary_normalize_duration_seconds_count",
            &adapter
        ),
        4.0
    );
    assert_eq!(
        value(&after, "tributary_append_duration_seconds_count", &[]),
        3.0
    );
    assert_eq!(value(&after, "tributary_append_batch_items_sum", &[]), 3.0);
    assert_eq!(value(&after, "tributary_log_last_sequence", &[]), 1.0);
    assert_eq!(value(&after, "tributary_subscriptions_active", &[]), 1.0);
    assert_eq!(value(&after, "tributary_events_delivered_total", &[]), 1.0);
    assert_eq!(
        value(
            &after,
            "tributary_consumer_lag_events",
            &[("consumer", "metrics-consumer")]
        ),
        1.0
    );
    assert!(!server.logs().contains("t0ken"));
}
