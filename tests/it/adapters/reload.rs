//! Hot reload: a rebuilt library dropped into the plugin directory is swapped in while
//! webhooks flow (no request fails), and a broken one leaves the previous version serving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tributary_model::v1::{Filter, NormalizeRequest};

use crate::support::adapters::{adapters, build_quokka, list, normalize, version_of};
use crate::support::{self, NO_RATE_LIMIT, Server};

/// The token the Quokka source expects in `x-quokka-token`.
const TOKEN: &str = "quokka-reload-token";

/// The header that authenticates a webhook to the Quokka source of [`CONFIG`].
const AUTH: (&str, &str) = ("x-quokka-token", TOKEN);

/// The Quokka source, verifying [`TOKEN`].
const CONFIG: &str = r#"
[sources.quokka]
adapter = "quokka"
config = { token = "quokka-reload-token" }
"#;

fn webhook(n: usize) -> Vec<u8> {
    format!(r#"{{"id": "qk_evt_{n}", "kind": "consent.granted", "consent": "qc_{n}", "at": 1714564800}}"#)
        .into_bytes()
}

/// Polls the dry run until the source reports `version` (or fails after 20 s).
async fn wait_for_version(server: &Server, version: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = normalize(server.grpc, "quokka", &webhook(0), Some(AUTH)).await;
        if version_of(&response) == version {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} never served:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuilt_plugin_is_swapped_in_under_load_without_failing_a_request() {
    let _turn = support::heavy_turn().await;
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = plugins.path().join("libquokka.so");
    build_quokka(&library, "1.0.0");
    // Four workers post as fast as they can: no rate limit.
    let server = Arc::new(Server::start_with_plugins(
        &format!("{CONFIG}{NO_RATE_LIMIT}"),
        plugins.path(),
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    // Set once the new version serves; the requests started after it are listed.
    let swapped = Arc::new(AtomicBool::new(false));
    let after_swap = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (server, stop, sent) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&sent));
        let (swapped, after_swap) = (Arc::clone(&swapped), Arc::clone(&after_swap));
        load.push(tokio::spawn(async move {
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                if swapped.load(Ordering::SeqCst) {
                    after_swap.lock().expect("list").push(format!("qk_evt_{n}"));
                }
                let (status, body) = server.post("quokka", &webhook(n), &[AUTH]).await;
                assert_eq!(status, 200, "request {n} failed during the swap: {body}");
                sent.fetch_add(1, Ordering::Relaxed);
                n += 4;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sent.load(Ordering::Relaxed);

    // "Rebuild": a new version replaces the file (built elsewhere, renamed into place).
    let staging = tempfile::tempdir().expect("tempdir");
    let rebuilt = staging.path().join("libquokka.so");
    build_quokka(&rebuilt, "2.0.0");
    std::fs::rename(&rebuilt, &library).expect("replace the library");
    wait_for_version(&server, "2.0.0").await;
    swapped.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("no request failed");
    }
    let total = sent.load(Ordering::Relaxed);
    assert!(
        before > 0 && total > before,
        "webhooks flowed before and after: {before} / {total}"
    );

    // Every webhook was stored once; the early ones by 1.0.0, every one sent after the new
    // version served by 2.0.0. (Requests in flight during the swap may be handled by either,
    // and may be stored in either order.)
    let events = server.collect(Filter::default(), None, total).await;
    let versions: HashMap<String, String> = events
        .iter()
        .filter_map(|e| {
            let provenance = e.provenance.as_ref()?;
            Some((
                provenance.provider_event_id.clone(),
                provenance.adapter_version.clone(),
            ))
        })
        .collect();
    assert_eq!(versions.len(), total, "one event per webhook");
    let first = events[0].provenance.as_ref().expect("provenance");
    assert_eq!(first.adapter_version, "1.0.0");
    let after_swap = after_swap.lock().expect("list").clone();
    assert!(!after_swap.is_empty(), "webhooks were sent after the swap");
    for id in &after_swap {
        assert_eq!(
            versions.get(id).map(String::as_str),
            Some("2.0.0"),
            "{id} was sent after 2.0.0 served, so no request went back to the old version"
        );
    }

    let listed = list(server.grpc).await;
    let quokka = &listed.adapters[0];
    assert_eq!(
        quokka.info.as_ref().map(|i| i.version.as_str()),
        Some("2.0.0")
    );
    assert_eq!(quokka.file, library.display().to_string());
    let logs = server.logs();
    assert!(logs.contains("plugins reloaded"), "{logs}");
}

#[tokio::test]
async fn a_broken_library_leaves_the_previous_version_serving() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = plugins.path().join("libquokka.so");
    build_quokka(&library, "1.0.0");
    let server = Server::start_with_plugins(CONFIG, plugins.path());
    let sha_before = list(server.grpc).await.adapters[0].sha256.clone();

    // A truncated / garbage file lands on the same name.
    let staging = tempfile::tempdir().expect("tempdir");
    let broken = staging.path().join("libquokka.so");
    std::fs::write(&broken, b"\x7fELF truncated by a failed copy").expect("write");
    std::fs::rename(&broken, &library).expect("replace");

    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .logs()
        .contains("plugin not reloaded; the previous version keeps serving")
    {
        assert!(
            Instant::now() < deadline,
            "failure not logged:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server
            .logs()
            .contains(&format!("{}: not a loadable library", library.display()))
    );
    let (status, body) = server.post("quokka", &webhook(1), &[AUTH]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        version_of(&normalize(server.grpc, "quokka", &webhook(1), Some(AUTH)).await),
        "1.0.0"
    );
    assert_eq!(list(server.grpc).await.adapters[0].sha256, sha_before);

    // A good build afterwards is picked up.
    build_quokka(&library, "1.0.1");
    wait_for_version(&server, "1.0.1").await;
    let (status, body) = server.post("quokka", &webhook(2), &[AUTH]).await;
    assert_eq!(status, 200, "{body}");
}

/// With no `[sources]`, a library dropped into the directory is served under its adapter's name
/// with an empty config: the new source fails closed (401 for every webhook) until an operator
/// configures its token, but it exists and its adapter runs.
#[tokio::test]
async fn a_new_library_in_the_directory_becomes_a_source_without_a_restart() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_plugins("", plugins.path());
    let (status, _) = server.post("quokka", &webhook(1), &[AUTH]).await;
    assert_eq!(status, 404);
    build_quokka(&plugins.path().join("libquokka.so"), "1.0.0");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.post("quokka", &webhook(1), &[AUTH]).await;
        if status != 404 {
            assert_eq!(
                (status, body["detail"].clone()),
                (401, json!("verification failed")),
                "served, and failing closed without a configured token"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never loaded:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = server.logs();
    assert!(
        logs.contains("source=quokka reason=no token configured"),
        "{logs}"
    );
    // The new adapter maps webhooks: a dry run without verification.
    let dry = adapters(server.grpc)
        .await
        .normalize(NormalizeRequest {
            source: "quokka".into(),
            body: webhook(1),
            skip_verification: true,
            ..Default::default()
        })
        .await
        .expect("dry run")
        .into_inner();
    assert_eq!(version_of(&dry), "1.0.0");
}
