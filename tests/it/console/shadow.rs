//! The shadow rollout workflow in a real headless Chromium: start a candidate from the console,
//! see its field-level diff, promote it; and a silent source flagged on the overview.
//! Screenshots go to `target/console-screenshots/` (docs/operations.md shows them).

use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::{ADMIN_TOKEN, console_config, console_url};
use crate::support::adapters::{build_quokka, build_quokka_with};
use crate::support::{Server, heavy_turn};

const TOKEN: &str = "qk-token-long";

#[tokio::test]
async fn start_a_shadow_read_its_diff_and_promote_it_in_the_console() {
    let _turn = heavy_turn().await;
    let plugins = tempfile::tempdir().expect("tempdir");
    let file_name = tributary_plugin_host::library_file_name("quokka");
    build_quokka(&plugins.path().join(&file_name), "1.0.0");
    let candidates = tempfile::tempdir().expect("tempdir");
    let candidate = candidates.path().join(&file_name);
    build_quokka_with(&candidate, "2.0.0", &["QUOKKA_MAPS_REASON"]);
    let server = Server::start_with_plugins(
        &console_config(&format!(
            "[sources.quokka]\nadapter = \"quokka\"\nconfig = {{ token = \"{TOKEN}\" }}\n\
             [sources.quokka.expect]\nmax_silence = \"1s\"\n"
        )),
        plugins.path(),
    );
    let browser = Browser::start(1280, 1000).await;
    let base = console_url(&server);
    browser.login(&base, ADMIN_TOKEN).await;

    // No webhook yet and max_silence 1 s: the overview flags the source (ingest unaffected).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    browser.goto(&format!("{base}/")).await;
    let flagged = browser
        .wait_for_text(
            "#out-of-expectation li[data-source=\"quokka\"]",
            "since start-up, no authentic webhook yet (max_silence 1s)",
        )
        .await;
    assert!(flagged.starts_with("quokka: silent for "), "{flagged}");
    browser.screenshot("overview-out-of-expectation").await;

    browser.goto(&format!("{base}/shadow")).await;
    assert_eq!(browser.text("#no-shadows").await, "No shadow is running.");
    browser
        .client
        .find(fantoccini::Locator::Css("input[name=\"candidate\"]"))
        .await
        .expect("candidate field")
        .send_keys(candidate.to_str().expect("utf-8 path"))
        .await
        .expect("type");
    browser
        .submit("form[action=\"/console/shadow/start\"] button")
        .await;
    assert_eq!(
        browser.text(".flash.ok p").await,
        "Shadowing quokka with candidate quokka 2.0.0"
    );

    let token = [("x-quokka-token", TOKEN)];
    for (id, reason) in [("qk_1", None), ("qk_2", Some("user request"))] {
        let mut body =
            json!({"id": id, "kind": "consent.revoked", "consent": "qc_1", "at": 1714564800});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        let (status, answer) = server
            .post("quokka", body.to_string().as_bytes(), &token)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    // The page shows the counts once both are compared.
    let mut compared = String::new();
    for _ in 0..100 {
        browser.goto(&format!("{base}/shadow")).await;
        compared = browser.text("#shadow-quokka td.compared").await;
        if compared == "2 webhooks, 1 differed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(compared, "2 webhooks, 1 differed");
    assert_eq!(
        browser.text("#shadow-quokka td.differences").await,
        "event 1"
    );
    assert_eq!(
        browser.text("#shadow-quokka pre.diff").await,
        "event quokka:qk_2\n  + consent.reason: \"[redacted]\""
    );
    browser.screenshot("shadow").await;

    browser
        .submit("form[action=\"/console/shadow/promote\"] button")
        .await;
    assert_eq!(
        browser.text(".flash.ok p").await,
        "Promoted: quokka is served by quokka 2.0.0"
    );
    assert_eq!(browser.text("#no-shadows").await, "No shadow is running.");
    browser.screenshot("shadow-promoted").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.close().await;
}
