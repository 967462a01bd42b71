//! Provider health through the real binary: `[sources.X.expect]` flags a source that went
//! silent or whose signatures fail, on `/readyz` (still 200) and in the gauges.

use std::time::Duration;

use serde_json::json;

use crate::support::Server;
use crate::support::adapters::build_quokka;

const TOKEN: &str = "qk-token-long";

fn server(expect: &str, window: &str) -> (Server, tempfile::TempDir) {
    let plugins = tempfile::tempdir().expect("tempdir");
    build_quokka(
        &plugins
            .path()
            .join(tributary_plugin_host::library_file_name("quokka")),
        "1.0.0",
    );
    let config = format!(
        "[health]\nwindow = \"{window}\"\n\
         [sources.quokka]\nadapter = \"quokka\"\nconfig = {{ token = \"{TOKEN}\" }}\n\
         [sources.quokka.expect]\n{expect}\n"
    );
    (Server::start_with_plugins(&config, plugins.path()), plugins)
}

async fn post(server: &Server, id: &str, authentic: bool) -> u16 {
    let body = json!({"id": id, "kind": "consent.granted", "consent": "qc_1"}).to_string();
    let token = if authentic { TOKEN } else { "forged-token" };
    let (status, _) = server
        .post("quokka", body.as_bytes(), &[("x-quokka-token", token)])
        .await;
    status
}

async fn metric(server: &Server, name_and_labels: &str) -> String {
    let (_, metrics) = server.get("/metrics").await;
    metrics
        .lines()
        .find(|line| line.starts_with(&format!("{name_and_labels} ")))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {name_and_labels} in:\n{metrics}"))
}

#[tokio::test]
async fn a_silent_source_is_flagged_after_its_max_silence() {
    let (server, _plugins) = server("max_silence = \"2s\"", "1h");
    assert_eq!(post(&server, "qk_1", true).await, 200);
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
    assert_eq!(
        metric(
            &server,
            r#"tributary_source_out_of_expectation{source="quokka",expectation="max_silence"}"#
        )
        .await,
        r#"tributary_source_out_of_expectation{source="quokka",expectation="max_silence"} 0"#
    );

    // Forged webhooks are not authentic: they do not end the silence.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(post(&server, "qk_2", false).await, 401);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "flagged, not failing");
    let (ready, detail) = body.split_once('\n').expect("a detail line");
    assert_eq!(ready, "ready");
    assert!(
        detail.starts_with("source quokka out of expectation: silent for ")
            && detail.ends_with("s since the last authentic webhook (max_silence 2s)"),
        "{body}"
    );
    assert_eq!(
        metric(
            &server,
            r#"tributary_source_out_of_expectation{source="quokka",expectation="max_silence"}"#
        )
        .await,
        r#"tributary_source_out_of_expectation{source="quokka",expectation="max_silence"} 1"#
    );
    let silence = metric(
        &server,
        r#"tributary_source_silence_seconds{source="quokka"}"#,
    )
    .await;
    let seconds: f64 = silence
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(seconds >= 2.0, "{silence}");

    // An authentic webhook ends it.
    assert_eq!(post(&server, "qk_3", true).await, 200);
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
}

#[tokio::test]
async fn a_signature_failure_ratio_over_its_maximum_is_flagged() {
    let (server, _plugins) = server("max_verification_failure_ratio = 0.25", "1h");
    for n in 0..3 {
        assert_eq!(post(&server, &format!("qk_{n}"), true).await, 200);
    }
    assert_eq!(post(&server, "qk_forged_1", false).await, 401);
    // 1 of 4: at the maximum, not over it.
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
    assert_eq!(
        metric(
            &server,
            r#"tributary_source_verification_failure_ratio{source="quokka"}"#
        )
        .await,
        r#"tributary_source_verification_failure_ratio{source="quokka"} 0.25"#
    );

    assert_eq!(post(&server, "qk_forged_2", false).await, 401);
    assert_eq!(
        server.get("/readyz").await,
        (
            200,
            "ready\nsource quokka out of expectation: 40.0% of webhooks failed verification \
             over the last 1h (max 25.0%)"
                .to_owned()
        )
    );
    assert_eq!(
        metric(
            &server,
            r#"tributary_source_out_of_expectation{source="quokka",expectation="max_verification_failure_ratio"}"#
        )
        .await,
        r#"tributary_source_out_of_expectation{source="quokka",expectation="max_verification_failure_ratio"} 1"#
    );
    assert_eq!(
        metric(
            &server,
            r#"tributary_source_dead_letter_ratio{source="quokka"}"#
        )
        .await,
        r#"tributary_source_dead_letter_ratio{source="quokka"} 0.0"#
    );
    // A kind Quokka does not map is a dead letter: 1 of 4 stored items.
    let body = json!({"id": "qk_paused", "kind": "consent.paused", "consent": "qc_1"}).to_string();
    let (status, answer) = server
        .post("quokka", body.as_bytes(), &[("x-quokka-token", TOKEN)])
        .await;
    assert_eq!((status, answer["dead_lettered"].clone()), (200, json!(1)));
    assert_eq!(
        metric(
            &server,
            r#"tributary_source_dead_letter_ratio{source="quokka"}"#
        )
        .await,
        r#"tributary_source_dead_letter_ratio{source="quokka"} 0.25"#
    );
}
