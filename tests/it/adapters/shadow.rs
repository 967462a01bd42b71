//! Shadow rollout through the real binary: a candidate build of the C example adapter runs
//! beside the active one on a copy of every webhook. Its differences are counted and shown
//! field by field, nothing it makes is stored, its panics and time-outs never reach the
//! provider, and promote swaps it in while abort drops it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use tonic::Code;
use tributary_model::v1::{GetShadowRequest, ReloadAdaptersRequest, ShadowCount, ShadowStatus};

use crate::support::Server;
use crate::support::adapters::{
    adapters, build_quokka, build_quokka_with, cli, normalize, version_of,
};

const TOKEN: &str = "qk-token-long";
const CONFIG: &str =
    "[sources.quokka]\nadapter = \"quokka\"\nconfig = { token = \"qk-token-long\" }\n";

/// The active build (1.0.0) in a plugin directory of its own.
fn plugins() -> tempfile::TempDir {
    let plugins = tempfile::tempdir().expect("tempdir");
    build_quokka(&library(plugins.path()), "1.0.0");
    plugins
}

fn library(dir: &Path) -> PathBuf {
    dir.join(tributary_plugin_host::library_file_name("quokka"))
}

/// A candidate build with `defines`, outside the plugin directory.
fn candidate(dir: &Path, version: &str, defines: &[&str]) -> String {
    let file = library(dir);
    build_quokka_with(&file, version, defines);
    file.to_str().expect("utf-8 path").to_owned()
}

fn webhook(id: &str, kind: &str, reason: Option<&str>) -> Vec<u8> {
    let mut body = json!({"id": id, "kind": kind, "consent": format!("qc_{id}"), "at": 1714564800});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body.to_string().into_bytes()
}

fn shadow_cli(server: &Server, args: &[&str]) -> std::process::Output {
    let url = format!("http://{}", server.grpc);
    let mut all = vec!["adapter", "shadow", args[0], "--server", &url];
    all.extend_from_slice(&args[1..]);
    cli(&all)
}

async fn shadow_status(server: &Server) -> Result<ShadowStatus, tonic::Status> {
    adapters(server.grpc)
        .await
        .get_shadow(GetShadowRequest {
            source: "quokka".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The shadow's status once `done` holds (at most 30 s).
async fn status_when(server: &Server, done: impl Fn(&ShadowStatus) -> bool) -> ShadowStatus {
    let started = Instant::now();
    loop {
        let status = shadow_status(server).await.expect("GetShadow");
        if done(&status) {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the shadow did not get there: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(counts: &[ShadowCount], kind: &str) -> u64 {
    counts
        .iter()
        .find(|c| c.kind == kind)
        .map_or(0, |c| c.count)
}

fn metric_line(metrics: &str, name_and_labels: &str) -> Option<String> {
    metrics
        .lines()
        .find(|line| line.starts_with(name_and_labels))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_candidate_that_differs_on_one_field_is_diffed_and_never_stored_then_promoted() {
    let plugins = plugins();
    let candidates = tempfile::tempdir().expect("tempdir");
    let file = candidate(candidates.path(), "2.0.0", &["QUOKKA_MAPS_REASON"]);
    let server = Server::start_with_plugins(CONFIG, plugins.path());

    let out = shadow_cli(&server, &["start", "quokka", &file]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "shadowing source quokka (quokka 1.0.0) with candidate 2.0.0 from {}\n",
            Path::new(&file).display()
        )
    );
    // A second start is refused while one runs.
    let again = shadow_cli(&server, &["start", "quokka", &file]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("source `quokka` already shadows a candidate"),
        "{again:?}"
    );

    let token = [("x-quokka-token", TOKEN)];
    let (status_1, answer_1) = server
        .post("quokka", &webhook("qk_1", "consent.granted", None), &token)
        .await;
    let (status_2, answer_2) = server
        .post(
            "quokka",
            &webhook("qk_2", "consent.revoked", Some("user request")),
            &token,
        )
        .await;
    let (status_3, _) = server
        .post("quokka", &webhook("qk_3", "consent.granted", None), &[])
        .await;
    let (status_4, answer_4) = server
        .post("quokka", &webhook("qk_4", "consent.paused", None), &token)
        .await;
    assert_eq!(
        (status_1, status_2, status_3, status_4),
        (200, 200, 401, 200)
    );
    assert_eq!(answer_1["sequences"], json!([1]));
    assert_eq!(answer_2["sequences"], json!([2]));
    assert_eq!(answer_4["dead_lettered"], json!(1));

    // Four compared: the unauthenticated one, the dead letter and qk_1 agree; qk_2 differs in
    // one field.
    let shadow = status_when(&server, |s| s.compared == 4).await;
    assert_eq!(shadow.differed, 1, "{shadow:?}");
    assert_eq!(
        shadow.differences,
        [ShadowCount {
            kind: "event".into(),
            count: 1
        }]
    );
    assert_eq!(shadow.failures, []);
    assert_eq!(shadow.recent.len(), 1);
    let diff = &shadow.recent[0];
    assert_eq!(diff.kinds, ["event"]);
    assert_eq!(diff.events.len(), 1);
    assert_eq!(diff.events[0].event_id, "quokka:qk_2");
    // `reason` is not among Quokka's display fields: its value is masked, the path shown.
    assert_eq!(
        diff.events[0].changes,
        [r#"+ consent.reason: "[redacted]""#]
    );
    assert_eq!(diff.outcome, Vec::<String>::new());
    assert_eq!(
        String::from_utf8_lossy(&diff.body),
        r#"{"at":"[redacted]","consent":"qc_qk_2","id":"qk_2","kind":"consent.revoked","reason":"[redacted]"}"#
    );

    let out = shadow_cli(&server, &["diff", "quokka"]);
    assert!(out.status.success(), "{out:?}");
    let received = jiff::Timestamp::new(
        diff.received_at.expect("received").seconds,
        diff.received_at.expect("received").nanos,
    )
    .expect("time");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "source quokka: candidate quokka 2.0.0 ({}) beside active 1.0.0\n\
             compared 4, differed 1\n\
             differences: event 1\n\
             candidate failures: none\n\
             \n\
             webhook received {received}: event\n  \
               event quokka:qk_2\n    \
                 + consent.reason: \"[redacted]\"\n",
            Path::new(&file).display()
        )
    );
    let out = shadow_cli(&server, &["diff", "quokka", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["compared"], "4");
    assert_eq!(
        json["recent"][0]["events"][0]["changes"],
        json!([r#"+ consent.reason: "[redacted]""#])
    );
    let (_, metrics) = server.get("/metrics").await;
    assert_eq!(
        metric_line(
            &metrics,
            r#"tributary_adapter_shadow_differences_total{source="quokka",kind="event"}"#
        )
        .as_deref(),
        Some(r#"tributary_adapter_shadow_differences_total{source="quokka",kind="event"} 1"#),
        "{metrics}"
    );

    // Nothing of the candidate's was stored: the events are the active adapter's.
    let stored = server.collect_all(0, Duration::from_millis(300)).await;
    assert_eq!(stored.len(), 2);
    for event in &stored {
        let version = event
            .provenance
            .as_ref()
            .map(|p| p.adapter_version.as_str());
        assert_eq!(version, Some("1.0.0"));
    }
    assert_eq!(reason(&stored[1]), "");

    // Promote: the candidate serves the source, like a reload; the shadow is over.
    let out = shadow_cli(&server, &["promote", "quokka"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "promoted: source quokka is served by quokka 2.0.0 (was 1.0.0); 4 compared, 1 differed\n"
    );
    let (status, answer) = server
        .post(
            "quokka",
            &webhook("qk_5", "consent.revoked", Some("moved away")),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let stored = server.collect_all(2, Duration::from_millis(300)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(reason(&stored[0]), "moved away");
    assert_eq!(
        stored[0]
            .provenance
            .as_ref()
            .map(|p| p.adapter_version.as_str()),
        Some("2.0.0")
    );
    let gone = shadow_status(&server).await.expect_err("no shadow");
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(gone.message(), "source `quokka` has no shadow running");

    // A reload that finds nothing new in the plugin directory keeps the promoted version.
    adapters(server.grpc)
        .await
        .reload_adapters(ReloadAdaptersRequest {})
        .await
        .expect("reload");
    let dry_run = normalize(
        server.grpc,
        "quokka",
        &webhook("qk_6", "consent.granted", None),
        Some(("x-quokka-token", TOKEN)),
    )
    .await;
    assert_eq!(version_of(&dry_run), "2.0.0");
    let listed = crate::support::adapters::list(server.grpc).await;
    let source = listed.sources.iter().find(|s| s.name == "quokka");
    assert_eq!(source.map(|s| s.version.as_str()), Some("2.0.0"));

    // A new library of the adapter deployed to the plugin directory serves the source again.
    build_quokka(&library(plugins.path()), "3.0.0");
    crate::support::adapters::wait_for_version(server.grpc, "quokka", "3.0.0").await;
    let listed = crate::support::adapters::list(server.grpc).await;
    let source = listed.sources.iter().find(|s| s.name == "quokka");
    assert_eq!(source.map(|s| s.version.as_str()), Some("3.0.0"));
}

fn reason(event: &tributary_model::v1::Event) -> String {
    use tributary_model::v1::event::Payload;
    match &event.payload {
        Some(Payload::Consent(consent)) => consent.reason.clone(),
        other => panic!("not a consent event: {other:?}"),
    }
}

#[tokio::test]
async fn a_panicking_or_slow_candidate_never_changes_what_ingest_answers_and_abort_drops_it() {
    let plugins = plugins();
    let candidates = tempfile::tempdir().expect("tempdir");
    let panicking = candidate(candidates.path(), "2.0.0-panics", &["QUOKKA_PANICS"]);
    let server = Server::start_with_plugins(
        &format!("{CONFIG}[shadow]\ncall_timeout_ms = 100\nmax_calls_in_flight = 1\nqueue = 1\n"),
        plugins.path(),
    );
    let token = [("x-quokka-token", TOKEN)];

    shadow_cli(&server, &["start", "quokka", &panicking]);
    for n in 1..=3 {
        let id = format!("qk_{n}");
        let (status, answer) = server
            .post("quokka", &webhook(&id, "consent.granted", None), &token)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["sequences"], json!([n]));
    }
    let shadow = status_when(&server, |s| count(&s.failures, "panic") == 3).await;
    assert_eq!((shadow.compared, shadow.differed), (0, 0), "{shadow:?}");
    assert_eq!(shadow.failures.len(), 1, "{shadow:?}");

    let out = shadow_cli(&server, &["abort", "quokka"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "aborted: candidate 2.0.0-panics dropped; source quokka stays on quokka 1.0.0; 0 compared, 0 differed\n"
    );
    assert_eq!(
        shadow_status(&server).await.expect_err("aborted").code(),
        Code::NotFound
    );

    // A candidate sleeping 2 s per call, with a 100 ms budget, one call at a time and one
    // queued copy: every copy ends as a time-out or an overload, none as an answer.
    let slow_dir = tempfile::tempdir().expect("tempdir");
    let slow = candidate(slow_dir.path(), "2.0.0-slow", &["QUOKKA_SLEEP_MS=2000"]);
    shadow_cli(&server, &["start", "quokka", &slow]);
    for n in 4..=8 {
        let id = format!("qk_{n}");
        let started = Instant::now();
        let (status, answer) = server
            .post("quokka", &webhook(&id, "consent.granted", None), &token)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["sequences"], json!([n]));
        // Answered without waiting for the candidate, which takes 2 s per call.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let shadow = status_when(&server, |s| {
        count(&s.failures, "timeout") + count(&s.failures, "overload") == 5
    })
    .await;
    assert!(count(&shadow.failures, "timeout") >= 1, "{shadow:?}");
    assert!(count(&shadow.failures, "overload") >= 1, "{shadow:?}");
    assert_eq!((shadow.compared, shadow.differed), (0, 0), "{shadow:?}");
    let (_, metrics) = server.get("/metrics").await;
    assert_eq!(
        metric_line(
            &metrics,
            r#"tributary_adapter_shadow_failures_total{source="quokka",kind="panic"}"#
        )
        .as_deref(),
        Some(r#"tributary_adapter_shadow_failures_total{source="quokka",kind="panic"} 3"#)
    );
    shadow_cli(&server, &["abort", "quokka"]);

    // Everything stored is the active adapter's, in order.
    let stored = server.collect_all(0, Duration::from_millis(300)).await;
    assert_eq!(stored.len(), 8);
    assert!(
        stored.iter().all(|e| {
            e.provenance.as_ref().map(|p| p.adapter_version.as_str()) == Some("1.0.0")
        })
    );
}

#[tokio::test]
async fn a_candidate_is_found_by_version_in_the_plugin_directory_and_checked() {
    let plugins = plugins();
    let server = Server::start_with_plugins(CONFIG, plugins.path());
    let out = shadow_cli(&server, &["start", "quokka", "9.9.9"]);
    assert!(!out.status.success());
    let expected = format!(
        "no library in {} provides adapter `quokka` version `9.9.9`",
        plugins.path().display()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&expected),
        "{out:?}"
    );
    let out = shadow_cli(&server, &["start", "nope", "1.0.0"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no source named `nope`"),
        "{out:?}"
    );
    // A candidate file others may write is refused, as a reload refuses it.
    let candidates = tempfile::tempdir().expect("tempdir");
    let writable = candidate(candidates.path(), "2.0.0", &[]);
    std::fs::set_permissions(
        &writable,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    let out = shadow_cli(&server, &["start", "quokka", &writable]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot load the candidate:")
            && stderr.contains("is writable by its group and others (mode 0666)"),
        "{stderr}"
    );
    let out = shadow_cli(&server, &["start", "quokka", "1.0.0"]);
    assert!(out.status.success(), "{out:?}");
}
