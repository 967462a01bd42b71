//! Verification as adapters report it, through the real binary: a source without a secret is
//! "not configured: all refused" (not the red "verification off" banner) in the console and
//! `/readyz?verbose`; secrets rotate with overlap (`verification.secrets` with `not_after`),
//! counted per secret in the metrics; old config keys still verify, with a deprecation
//! warning; raw bodies shown to operators mask every string their adapter did not declare.

use reqwest::redirect::Policy;
use reqwest::{Client, header};
use serde_json::{Value, json};
use tributary_model::v1::ListDeadLettersRequest;

use crate::console::{ADMIN_TOKEN, console_config, console_url};
use crate::support::{Server, hmac_hex, unix_now};

/// A Klavi array of one event, with `event_id`.
fn klavi_body(event_id: &str) -> Vec<u8> {
    json!([{"partnerAppId": "1", "eventId": event_id, "eventType": "API",
        "eventName": "link_created", "eventTime": "2022-06-25T20:08:17.848Z",
        "payload": {"linkId": "l-1"}}])
    .to_string()
    .into_bytes()
}

/// POSTs `body` to `source`, signed with `secret` and stamped now.
async fn post_klavi(server: &Server, source: &str, body: &[u8], secret: &str) -> (u16, Value) {
    let signature = hmac_hex(secret, body);
    let now = unix_now().to_string();
    let headers = [
        ("X-Klavi-Signature", signature.as_str()),
        ("X-Klavi-Timestamp", now.as_str()),
    ];
    server.post(source, body, &headers).await
}

/// An RFC 3339 time `offset` seconds from now.
fn rfc3339_from_now(offset: i64) -> String {
    let now = i64::try_from(unix_now()).expect("seconds");
    jiff::Timestamp::from_second(now + offset)
        .expect("a time")
        .to_string()
}

/// The sample lines of `metrics` whose name is `name` (with labels), as they are.
fn samples<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

/// The console's sources page, logged in with the admin token.
async fn sources_page(server: &Server) -> String {
    let base = console_url(server);
    let http = Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("login");
    let cookie = login
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    http.get(format!("{base}/sources"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("GET sources")
        .text()
        .await
        .expect("page")
}

/// The text of the first element of `page` whose opening tag contains `marker`.
fn element_text<'a>(page: &'a str, marker: &str) -> Option<&'a str> {
    let start = page.find(marker)?;
    let open_end = start + page[start..].find('>')? + 1;
    let close = open_end + page[open_end..].find('<')?;
    Some(&page[open_end..close])
}

/// The HTML of the table row of `source`.
fn row<'a>(page: &'a str, source: &str) -> &'a str {
    let start = page
        .find(&format!("data-source=\"{source}\""))
        .unwrap_or_else(|| panic!("no row for {source}: {page}"));
    let end = start + page[start..].find("</tr>").expect("row end");
    &page[start..end]
}

#[tokio::test]
async fn a_source_without_a_secret_is_not_configured_all_refused_not_flagged_as_off() {
    let server = Server::start(&console_config(
        "[sources.klavi]\nadapter = \"klavi\"\n\
         [sources.open]\nadapter = \"klavi\"\nconfig = { verification = { disabled = true } }\n\
         [sources.signed]\nadapter = \"klavi\"\n\
         config = { verification = { secrets = [\"s3cret\"] } }\n",
    ));

    // Fail closed: every webhook to the source without a secret is refused.
    let body = klavi_body("e-refused");
    assert_eq!(post_klavi(&server, "klavi", &body, "anything").await.0, 401);

    let page = sources_page(&server).await;
    // The red banner names only the source whose verification is switched off.
    assert_eq!(
        element_text(&page, "id=\"unverified\"").map(|_| ()),
        Some(())
    );
    assert!(
        page.contains("<strong>Verification is switched off for: open</strong>"),
        "{page}"
    );
    assert!(
        page.contains("<strong>Verification is not configured for: klavi</strong>"),
        "{page}"
    );
    let badge = |source: &str| {
        element_text(row(&page, source), "class=\"badge")
            .unwrap_or_else(|| panic!("no badge for {source}"))
            .to_owned()
    };
    assert_eq!(badge("klavi"), "not configured: all refused");
    assert_eq!(badge("open"), "verification off");
    assert_eq!(badge("signed"), "verification on");
    assert!(!row(&page, "klavi").contains("badge bad"), "{page}");
    assert!(!row(&page, "klavi").contains("class=\"warned\""), "{page}");
    assert!(
        row(&page, "klavi").contains("<p class=\"warning-text mild\">klavi: no secret configured"),
        "the warning is not red: {page}"
    );

    // /readyz: still ready, and with details each source's state as a value.
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
    assert_eq!(
        server.get("/readyz?verbose").await,
        (
            200,
            "[+] log ok\n\
             [!] source klavi: verification not configured: all refused\n\
             [-] source open: verification off: nothing is checked\n\
             [+] source signed: verification on\n\
             ready\n"
                .to_owned()
        )
    );

    // The metrics carry the same value.
    let ops = server.ops_http.expect("ops listener");
    let metrics = reqwest::get(format!("http://{ops}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    let mut states = samples(&metrics, "tributary_source_verification");
    states.sort_unstable();
    assert_eq!(
        states,
        [
            "tributary_source_verification{source=\"klavi\",adapter=\"klavi\",state=\"not_configured\"} 1",
            "tributary_source_verification{source=\"open\",adapter=\"klavi\",state=\"disabled\"} 1",
            "tributary_source_verification{source=\"signed\",adapter=\"klavi\",state=\"on\"} 1",
        ]
    );
}

#[tokio::test]
async fn secrets_rotate_with_overlap_and_the_old_one_stops_at_its_not_after() {
    let until_later = rfc3339_from_now(3600);
    let ended = rfc3339_from_now(-60);
    let server = Server::start(&format!(
        "[sources.klavi]\nadapter = \"klavi\"\n\
         [[sources.klavi.config.verification.secrets]]\nsecret = \"new-secret\"\nlabel = \"2026-12\"\n\
         [[sources.klavi.config.verification.secrets]]\nsecret = \"old-secret\"\nlabel = \"2026-06\"\n\
         not_after = \"{until_later}\"\n\
         [sources.rotated]\nadapter = \"klavi\"\n\
         [[sources.rotated.config.verification.secrets]]\nsecret = \"new-secret\"\n\
         [[sources.rotated.config.verification.secrets]]\nsecret = \"old-secret\"\nlabel = \"2026-06\"\n\
         not_after = \"{ended}\"\n"
    ));

    // During the overlap both secrets verify.
    let (status, answer) = post_klavi(&server, "klavi", &klavi_body("e-old"), "old-secret").await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(1)));
    let (status, answer) = post_klavi(&server, "klavi", &klavi_body("e-new"), "new-secret").await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(1)));
    let (status, _) = post_klavi(&server, "klavi", &klavi_body("e-new-2"), "new-secret").await;
    assert_eq!(status, 200);
    assert_eq!(
        post_klavi(&server, "klavi", &klavi_body("e-x"), "other")
            .await
            .0,
        401
    );

    // Past its not_after the old secret is refused; the new one still verifies.
    assert_eq!(
        post_klavi(&server, "rotated", &klavi_body("e-late"), "old-secret")
            .await
            .0,
        401
    );
    let (status, answer) =
        post_klavi(&server, "rotated", &klavi_body("e-late"), "new-secret").await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(1)));

    // The metrics say which secret verified (position and label, never the secret), and
    // until when each verifies.
    let (_, metrics) = server.get("/metrics").await;
    let mut verified = samples(&metrics, "tributary_webhooks_verified_total");
    verified.sort_unstable();
    assert_eq!(
        verified,
        [
            "tributary_webhooks_verified_total{source=\"klavi\",index=\"0\",label=\"2026-12\"} 2",
            "tributary_webhooks_verified_total{source=\"klavi\",index=\"1\",label=\"2026-06\"} 1",
            "tributary_webhooks_verified_total{source=\"rotated\",index=\"0\",label=\"\"} 1",
        ]
    );
    let end = |offset: i64| i64::try_from(unix_now()).expect("seconds") + offset;
    let mut not_after = samples(&metrics, "tributary_verification_secret_not_after_seconds");
    not_after.sort_unstable();
    assert_eq!(not_after.len(), 2, "{not_after:?}");
    let value = |line: &str| -> i64 {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a value")
    };
    assert!(not_after[0].starts_with(
        "tributary_verification_secret_not_after_seconds{source=\"klavi\",index=\"1\",label=\"2026-06\"}"
    ));
    assert!((end(3600) - 10..=end(3600)).contains(&value(not_after[0])));
    assert!(not_after[1].starts_with(
        "tributary_verification_secret_not_after_seconds{source=\"rotated\",index=\"1\",label=\"2026-06\"}"
    ));
    assert!((end(-60) - 10..=end(-60)).contains(&value(not_after[1])));
    assert!(!metrics.contains("old-secret") && !metrics.contains("new-secret"));

    // The expired secret is named at start-up, by position and label only.
    let logs = server.logs();
    assert!(
        logs.contains(
            "klavi: verification.secrets[1] (label 2026-06) is past its not_after and no longer \
             verifies: remove it"
        ),
        "{logs}"
    );
    assert!(!logs.contains("old-secret"), "a secret in the logs");
}

#[tokio::test]
async fn old_config_keys_still_verify_and_log_their_deprecation() {
    let server = Server::start(
        "[sources.klavi]\nadapter = \"klavi\"\nconfig = { secret_key = \"legacy-secret\" }\n\
         [sources.finicity]\nadapter = \"finicity\"\nconfig = { secret = \"legacy-partner\" }\n",
    );
    let (status, answer) =
        post_klavi(&server, "klavi", &klavi_body("e-legacy"), "legacy-secret").await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(1)));
    let ping = br#"{"eventType":"ping","eventId":"p-1","payload":{}}"#;
    let signature = hmac_hex("legacy-partner", ping);
    let (status, _) = server
        .post(
            "finicity",
            ping,
            &[("X-Finicity-Signature", signature.as_str())],
        )
        .await;
    assert_eq!(status, 200);
    let logs = server.logs();
    for (adapter, key) in [("klavi", "secret_key"), ("finicity", "secret")] {
        let warning = format!(
            "{adapter}: the config key `{key}` is deprecated and still read: move its value to \
             `verification.secrets`"
        );
        assert!(logs.contains(&warning), "{warning} not in {logs}");
    }
    assert!(!logs.contains("legacy-secret") && !logs.contains("legacy-partner"));
}

#[tokio::test]
async fn raw_bodies_mask_every_string_their_adapter_did_not_declare() {
    let server = Server::start(
        "[sources.klavi]\nadapter = \"klavi\"\n\
         config = { verification = { secrets = [\"s3cret\"] } }\n",
    );
    // No eventName: dead-lettered, so its raw body is listed to an operator.
    let body = json!([{"eventId": "e-raw", "eventType": "API", "nickname": "Bob's savings",
        "payload": {"linkId": "l-1", "personalTaxId": "25872252137", "note": "call Ana",
                    "count": 3, "ok": true}}])
    .to_string();
    let (status, answer) = post_klavi(&server, "klavi", body.as_bytes(), "s3cret").await;
    assert_eq!((status, answer["dead_lettered"].clone()), (200, json!(1)));
    let listed = server
        .dead_letters(ListDeadLettersRequest {
            include_raw: true,
            ..Default::default()
        })
        .await;
    let shown: Value = serde_json::from_slice(&listed[0].raw).expect("json");
    assert_eq!(
        shown,
        json!({"eventId": "e-raw", "eventType": "API", "nickname": "[redacted]",
            "payload": {"linkId": "l-1", "personalTaxId": "[redacted]", "note": "[redacted]",
                        "count": "[redacted]", "ok": true}})
    );
}
