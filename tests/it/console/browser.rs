//! The console in a real headless Chromium, against the real binary: logging in, a webhook
//! appearing in the live tail, a dead letter redriven after the fixed adapter is reloaded, a
//! consumer reset, and a source with verification off flagged. Screenshots of each page go to
//! `target/console-screenshots/` (docs/operations.md shows them).

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{AckRequest, SubscribeRequest, subscribe_request::Start};

use super::driver::Browser;
use super::{ADMIN_TOKEN, CONSUMER_TOKEN, console_config, console_url};
use crate::support::adapters::{build_quokka, build_quokka_with};
use crate::support::{ARCADIA_AUTH, Server, arcadia_source, arcadia_webhook, heavy_turn};

/// A source whose adapter verifies nothing: the console must flag it.
const UNVERIFIED_SOURCE: &str = "\n[sources.local-test]\nadapter = \"arcadia\"\nconfig = { verification = { disabled = true } }\n";

async fn post_arcadia(server: &Server, id: &str) -> u64 {
    let (status, answer) = server
        .post("arcadia", &arcadia_webhook(id), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["sequences"][0].as_u64().expect("one event stored")
}

#[tokio::test]
async fn log_in_see_a_webhook_live_and_the_unverified_source_flagged() {
    let _turn = heavy_turn().await;
    let server = Server::start(&console_config(&format!(
        "{}{UNVERIFIED_SOURCE}",
        arcadia_source("")
    )));
    let base = console_url(&server);
    for n in 1..=3 {
        post_arcadia(&server, &format!("whk_console_{n}")).await;
    }
    let browser = Browser::start(1280, 1000).await;

    // Not logged in: the login page.
    browser.goto(&format!("{base}/")).await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/console/login");
    // A wrong token is refused, and a consumer credential too.
    browser.login(&base, "not-the-operators-token-at-all").await;
    assert_eq!(
        browser.text(".flash.error").await,
        "That token is not valid."
    );
    browser.screenshot("login-refused").await;
    browser.login(&base, CONSUMER_TOKEN).await;
    assert_eq!(
        browser.text(".flash.error").await,
        "That credential has no admin scope."
    );
    // The browser logs the two refusals (and nothing else so far).
    let errors = browser.console_errors().await;
    let refused = |status: &str| {
        format!(
            "{base}/login - Failed to load resource: the server responded with a status of {status}"
        )
    };
    assert_eq!(
        errors,
        [refused("401 (Unauthorized)"), refused("403 (Forbidden)")]
    );
    let landed = browser.login(&base, ADMIN_TOKEN).await;
    assert_eq!(landed, format!("{base}/"));
    assert_eq!(browser.text("h1").await, "Overview");
    assert_eq!(browser.text("#log-last").await, "3");
    assert_eq!(browser.text("#log-first").await, "1");
    // The live part is pushed again every 2 s: wait for one update with the counts.
    browser
        .wait_for_text("#overview-live table", "arcadia 3 3 3 0 0 0 none")
        .await;

    // Sources: verification off is flagged, first and on its row.
    browser.goto(&format!("{base}/sources")).await;
    assert_eq!(
        browser.text("#unverified p strong").await,
        "Verification is switched off for: local-test"
    );
    assert_eq!(
        browser.text("tr[data-source=\"local-test\"] .badge").await,
        "verification off"
    );
    assert_eq!(
        browser.text("tr[data-source=\"arcadia\"] .badge").await,
        "verification on",
        "the verified source is not flagged"
    );
    browser.screenshot("sources").await;

    // Live tail: a webhook POSTed now is listed within a second.
    browser.goto(&format!("{base}/tail")).await;
    browser.wait_for_text("#tail-status", "Live").await;
    let sequence = post_arcadia(&server, "whk_console_live").await;
    assert_eq!(sequence, 4);
    let posted = Instant::now();
    let row = format!("li.event[data-sequence=\"{sequence}\"]");
    let appeared = browser.wait_for(&row, Duration::from_secs(5)).await;
    let took = appeared.map(|_| posted.elapsed());
    assert!(
        took.is_some_and(|took| took <= Duration::from_secs(1)),
        "the webhook took {took:?} to appear in the live tail"
    );
    // Its canonical JSON opens.
    browser.click(&format!("{row} summary")).await;
    let shown: serde_json::Value =
        serde_json::from_str(&browser.text(&format!("{row} pre.json")).await).expect("JSON");
    assert_eq!(
        (
            shown["sequence"].clone(),
            shown["source"].clone(),
            shown["type"].clone()
        ),
        (json!("4"), json!("arcadia"), json!("statement.available"))
    );
    assert_eq!(
        shown["provenance"]["providerEventId"],
        json!("whk_console_live")
    );
    browser.screenshot("live-tail").await;

    // A type filter: statements are not consents.
    let field = browser
        .client
        .find(Locator::Css("#tail-type"))
        .await
        .expect("type field");
    field.send_keys("consent.*").await.expect("type");
    browser.click("#tail-form button[type=submit]").await;
    browser.wait_for_text("#tail-status", "Live").await;
    post_arcadia(&server, "whk_console_filtered").await;
    assert_eq!(
        browser
            .wait_for("li.event", Duration::from_millis(700))
            .await,
        None,
        "a statement passed the consent.* filter"
    );

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");

    // Back to the overview: by now the plot has a few samples (one every 10 s).
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for_text("#overview-live table", "arcadia 5 5 5 0 0 0 none")
        .await;
    // A line once two samples are 10 s apart (pushed by the live update).
    let drawn = browser
        .wait_for("#plot-rates polyline", Duration::from_secs(20))
        .await;
    assert!(drawn.is_some(), "the rates plot draws a line");
    browser.screenshot("overview").await;

    // Readable at a phone's width.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    browser.goto(&format!("{base}/")).await;
    browser.screenshot("overview-phone").await;
    browser.close().await;
}

#[tokio::test]
async fn a_dead_letter_is_redriven_from_the_console_after_the_fixed_adapter_is_reloaded() {
    let _turn = heavy_turn().await;
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = plugins
        .path()
        .join(tributary_plugin_host::library_file_name("quokka"));
    build_quokka(&library, "1.0.0");
    let server = Server::start_with_plugins(
        &console_config(
            "[sources.quokka]\nadapter = \"quokka\"\nconfig = { token = \"qk-token\" }\n",
        ),
        plugins.path(),
    );
    let body =
        json!({"id": "qk_evt_9", "kind": "consent.expired", "consent": "qc_9", "at": 1714564800});
    let (status, answer) = server
        .post(
            "quokka",
            body.to_string().as_bytes(),
            &[("x-quokka-token", "qk-token")],
        )
        .await;
    assert_eq!((status, answer["dead_lettered"].clone()), (200, json!(1)));

    let browser = Browser::start(1280, 900).await;
    let base = console_url(&server);
    browser.login(&base, ADMIN_TOKEN).await;
    browser.goto(&format!("{base}/dead-letters")).await;
    let row = browser.text("#dead-letter-1").await;
    assert!(
        row.starts_with("#1 quokka quokka 1.0.0 consent.expired unknown kind"),
        "{row}"
    );
    browser.screenshot("dead-letters").await;
    browser.click("#dead-letter-1 a").await;
    assert_eq!(browser.text("h1").await, "Dead letter #1");
    assert_eq!(
        browser.text("#dead-letter-body").await,
        "{\n  \"at\": \"[redacted]\",\n  \"consent\": \"qc_9\",\n  \"id\": \"qk_evt_9\",\n  \"kind\": \"consent.expired\"\n}",
        "only the fields quokka declares safe are in clear"
    );

    // The fixed adapter replaces the library; the console's reload button loads it (the
    // directory watcher may have been first: either way 2.0.0 serves).
    build_quokka_with(&library, "2.0.0", &["QUOKKA_MAPS_EXPIRED"]);
    let started = Instant::now();
    loop {
        browser.goto(&format!("{base}/sources")).await;
        browser
            .submit("form[action=\"/console/sources/reload\"] button")
            .await;
        browser.wait_for_text("h1", "Sources").await;
        if browser
            .text("tr[data-source=\"quokka\"]")
            .await
            .contains("2.0.0")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "2.0.0 never loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshot("sources-reloaded").await;

    browser.goto(&format!("{base}/dead-letters")).await;
    browser.click("#select-1").await;
    browser.click("button[value=\"selected\"]").await;
    let flash = browser
        .wait_for_text(".flash.ok", "Redriven 1: 1 resolved, 0 still dead")
        .await;
    assert!(flash.contains("#1: resolved, events 1"), "{flash}");
    assert_eq!(browser.text("#no-dead-letters").await, "No dead letters.");
    browser.screenshot("dead-letters-redriven").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.close().await;

    // The event is in the log, mapped by 2.0.0.
    let mut stream = authenticated(&server, ADMIN_TOKEN)
        .await
        .subscribe(SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    let event = crate::support::next_event(&mut stream, Duration::from_secs(5)).await;
    let json = crate::support::delivered_json(&event);
    assert_eq!(
        (
            json["type"].clone(),
            json["provenance"]["adapterVersion"].clone()
        ),
        (json!("consent.expired"), json!("2.0.0"))
    );
}

/// An `EventStream` client sending `token`.
async fn authenticated(
    server: &Server,
    token: &str,
) -> EventStreamClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        impl tonic::service::Interceptor + use<>,
    >,
> {
    let header: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    EventStreamClient::with_interceptor(
        server.channel().await,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        },
    )
}

#[tokio::test]
async fn resetting_a_consumer_in_the_console_changes_its_lag() {
    let _turn = heavy_turn().await;
    let server = Server::start(&console_config(&arcadia_source("")));
    for n in 1..=3 {
        post_arcadia(&server, &format!("whk_reset_{n}")).await;
    }
    // The billing team's consumer reads and acknowledges all three.
    let mut client = authenticated(&server, CONSUMER_TOKEN).await;
    let mut stream = client
        .subscribe(SubscribeRequest {
            consumer: "billing-invoices".into(),
            start: Some(Start::FromEarliest(true)),
            ..SubscribeRequest::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut last = 0;
    while last < 3 {
        last = stream.next().await.expect("event").expect("ok").sequence;
    }
    client
        .ack(AckRequest {
            consumer: "billing-invoices".into(),
            sequence: 3,
        })
        .await
        .expect("ack");
    drop(stream);

    let browser = Browser::start(1280, 800).await;
    let base = console_url(&server);
    browser.login(&base, ADMIN_TOKEN).await;
    browser.goto(&format!("{base}/consumers")).await;
    let row = "#consumer-billing-invoices";
    assert_eq!(browser.text(&format!("{row} .acked")).await, "3");
    assert_eq!(browser.text(&format!("{row} .lag")).await, "0");
    let field = browser
        .client
        .find(Locator::Css("#seq-billing-invoices"))
        .await
        .expect("sequence field");
    field.send_keys("1").await.expect("type");
    browser
        .click(&format!(
            "{row} form[action=\"/console/consumers/reset\"] button"
        ))
        .await;
    assert_eq!(
        browser.wait_for_text("h1", "Please confirm").await,
        "Please confirm"
    );
    assert_eq!(
        browser.text("#confirm-question").await,
        "Reset consumer billing-invoices (acknowledged up to 3, lag 0) after sequence 1? \
         Its next Subscribe resumes from there: moving back delivers events again, moving \
         forward skips them."
    );
    browser.screenshot("consumer-reset-confirm").await;
    browser.click(".confirm button[type=submit]").await;
    assert_eq!(
        browser
            .wait_for_text(".flash.ok", "Consumer billing-invoices reset")
            .await,
        "Consumer billing-invoices reset: acknowledged up to 1, lag 2"
    );
    assert_eq!(browser.text(&format!("{row} .acked")).await, "1");
    assert_eq!(browser.text(&format!("{row} .lag")).await, "2");
    browser.screenshot("consumers").await;

    // Delete, confirmed.
    browser
        .click(&format!(
            "{row} form[action=\"/console/consumers/delete\"] button"
        ))
        .await;
    browser.click(".confirm button[type=submit]").await;
    browser
        .wait_for_text(".flash.ok", "Consumer billing-invoices deleted")
        .await;
    assert!(
        browser.client.find(Locator::Css(row)).await.is_err(),
        "the row is gone"
    );
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.close().await;
}

#[tokio::test]
async fn the_rejection_log_shows_why_webhooks_were_refused() {
    let _turn = heavy_turn().await;
    // The raw page at the end needs the personal_data scope.
    let config = console_config(&arcadia_source("")).replacen(
        "admin = true\n",
        "admin = true\npersonal_data = true\n",
        1,
    );
    let server = Server::start(&config);
    for n in 1..=2 {
        let (status, _) = server
            .post(
                "arcadia",
                &arcadia_webhook(&format!("whk_refused_{n}")),
                &[("X-Arcadia-Token", "a-token-from-the-wrong-environment")],
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, _) = server.post("arcadai", b"{}", &[]).await;
    assert_eq!(status, 404);
    let browser = Browser::start(1280, 900).await;
    let base = console_url(&server);
    browser.login(&base, ADMIN_TOKEN).await;

    browser.goto(&format!("{base}/rejections")).await;
    assert_eq!(browser.text("h1").await, "Rejections");
    let sources = browser
        .client
        .find_all(Locator::Css("tr.rejection td.source"))
        .await
        .expect("rows");
    let mut names = Vec::new();
    for cell in sources {
        names.push(cell.text().await.expect("text"));
    }
    assert_eq!(names, ["arcadai", "arcadia", "arcadia"], "newest first");
    browser.screenshot("rejections").await;

    // The filter lives in the query string: the select submits it.
    browser
        .client
        .find(Locator::Css("#source option[value=\"arcadia\"]"))
        .await
        .expect("option")
        .click()
        .await
        .expect("select");
    browser.submit("form.filters button").await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.query(), Some("source=arcadia"));
    let rows = browser
        .client
        .find_all(Locator::Css("tr.rejection"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        browser.text("tr.rejection td.answer").await,
        "401 unauthenticated"
    );
    let why = browser.text("tr.rejection td.why").await;
    assert!(why.starts_with("verification failed: "), "{why}");
    let headers = browser.text("tr.rejection td.headers").await;
    assert!(headers.contains("x-arcadia-token: [redacted]"), "{headers}");
    assert!(!headers.contains("wrong-environment"), "{headers}");
    let body = browser.text("tr.rejection td.body").await;
    assert!(
        body.starts_with("SHA-256 ") || body.contains(" bytes"),
        "{body}"
    );
    // The raw webhook of a stored event (docs/operations.md shows it).
    let sequence = post_arcadia(&server, "whk_raw_shown").await;
    browser.goto(&format!("{base}/raw/{sequence}")).await;
    assert_eq!(
        browser.text("h1").await,
        format!("Raw webhook of event #{sequence}")
    );
    let raw: serde_json::Value =
        serde_json::from_str(&browser.text("#raw-body").await).expect("the body as JSON");
    assert_eq!(raw["id"], json!("whk_raw_shown"));
    browser.screenshot("raw").await;
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}

#[tokio::test]
async fn an_event_is_found_by_search_and_shown_on_its_page() {
    let _turn = heavy_turn().await;
    let server = Server::start(&console_config(&arcadia_source("")));
    for n in 1..=3 {
        post_arcadia(&server, &format!("whk_find_{n}")).await;
    }
    let browser = Browser::start(1280, 1000).await;
    let base = console_url(&server);
    browser.login(&base, ADMIN_TOKEN).await;

    // The tail opens on the newest events, not on an empty page.
    browser.goto(&format!("{base}/tail")).await;
    browser.wait_for_text("#tail-status", "Live").await;
    for sequence in 1..=3 {
        let row = format!("li.event[data-sequence=\"{sequence}\"]");
        assert!(
            browser
                .wait_for(&row, Duration::from_secs(5))
                .await
                .is_some(),
            "event {sequence} listed on opening"
        );
    }
    // Its filters live in the query string.
    browser
        .goto(&format!(
            "{base}/tail?source=arcadia&type=statement.*&from=earliest"
        ))
        .await;
    let typed = browser
        .client
        .find(Locator::Css("#tail-type"))
        .await
        .expect("type field")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(typed.as_deref(), Some("statement.*"));

    // A sequence opens its event page.
    browser.goto(&format!("{base}/search?q=2")).await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/console/events/2");
    assert_eq!(browser.text("h1").await, "Event #2");
    assert_eq!(browser.text("#event-sequence").await, "2");
    let shown: serde_json::Value =
        serde_json::from_str(&browser.text("#event-json").await).expect("canonical JSON");
    assert_eq!(
        (&shown["sequence"], &shown["source"], &shown["type"]),
        (
            &json!("2"),
            &json!("arcadia"),
            &json!("statement.available")
        )
    );
    let trace = browser.text("#event-trace").await;
    assert!(
        trace == "—" || (trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit())),
        "{trace}"
    );
    let raw = browser
        .client
        .find(Locator::Css("#event-raw"))
        .await
        .expect("raw link")
        .attr("href")
        .await
        .expect("href");
    assert_eq!(raw.as_deref(), Some("/console/raw/2"));
    browser.screenshot("event").await;

    // An event id, and a provider event id, find the event too.
    let id = shown["id"].as_str().expect("id").to_owned();
    let provider = shown["provenance"]["providerEventId"]
        .as_str()
        .expect("provider event id")
        .to_owned();
    browser.goto(&format!("{base}/search?q=3")).await;
    let third: serde_json::Value =
        serde_json::from_str(&browser.text("#event-json").await).expect("JSON");
    let third_id = third["id"].as_str().expect("id").to_owned();
    let by_id = format!("{base}/search?q={}", third_id.replace(':', "%3A"));
    browser.goto(&by_id).await;
    assert_eq!(browser.text("#event-sequence").await, "3");
    browser.goto(&format!("{base}/search?q={provider}")).await;
    assert_eq!(
        browser.text("#event-sequence").await,
        "2",
        "{id} {provider}"
    );
    // Nothing found: said so, with the search box kept.
    browser
        .goto(&format!("{base}/search?q=no-such-thing"))
        .await;
    assert_eq!(
        browser.text("#no-match").await,
        "No event matches no-such-thing."
    );
    browser.screenshot("search").await;

    // Dead letters filtered by source and reason, kept in the query string.
    browser
        .goto(&format!(
            "{base}/dead-letters?source=arcadia&reason=unknown"
        ))
        .await;
    let kept = browser
        .client
        .find(Locator::Css("#filter-source"))
        .await
        .expect("source filter")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(kept.as_deref(), Some("arcadia"));
    assert_eq!(browser.text("#no-dead-letters").await, "No dead letters.");
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}

#[tokio::test]
async fn a_replay_runs_dry_first_then_on_confirmation() {
    let _turn = heavy_turn().await;
    let server = Server::start(&console_config(&arcadia_source("")));
    for n in 1..=2 {
        post_arcadia(&server, &format!("whk_replay_{n}")).await;
    }
    let browser = Browser::start(1280, 900).await;
    let base = console_url(&server);
    browser.login(&base, ADMIN_TOKEN).await;
    browser.goto(&format!("{base}/replay")).await;
    browser.submit("#replay-form button").await;
    assert_eq!(browser.text("h1").await, "Replay: dry run");
    assert_eq!(
        browser.text("#replay-totals").await,
        "Dry run: 2 webhooks, 0 would change, 2 unchanged events, 0 failed."
    );
    let outcomes = browser
        .client
        .find_all(Locator::Css("#replay-outcomes td.outcome"))
        .await
        .expect("outcomes");
    let mut seen = Vec::new();
    for cell in outcomes {
        seen.push(cell.text().await.expect("text"));
    }
    assert_eq!(seen, ["unchanged", "unchanged"], "every entry an outcome");
    browser.screenshot("replay-dry-run").await;
    browser.submit("#replay-confirm button").await;
    assert_eq!(browser.text("h1").await, "Replay: done");
    assert_eq!(
        browser.text("#replay-totals").await,
        "Replayed: 2 webhooks, 0 events stored, 2 unchanged events, 0 failed."
    );
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
}
