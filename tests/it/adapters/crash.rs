//! Crash isolation: a panic inside an adapter costs that request a 500 (the provider retries);
//! it is logged with the adapter's name, and every other request is served.

use crate::support::Server;
use crate::support::adapters::panicking_library;

/// A plugin directory holding only the panicking adapter.
async fn panicking_plugins() -> tempfile::TempDir {
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = panicking_library().await;
    std::fs::copy(
        &library,
        plugins.path().join(library.file_name().expect("name")),
    )
    .expect("copy");
    plugins
}

#[tokio::test]
async fn a_panicking_adapter_fails_only_that_request() {
    let plugins = panicking_plugins().await;
    let server = Server::start_with_plugins("", plugins.path());

    let (status, body) = server.post("panicking", br#"{"id": "before"}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post("panicking", br#"{"id": "PANIC"}"#, &[]).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["detail"], "the adapter failed; retry later");

    // Panics and normal requests at the same time: only the panics fail.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let body = if n % 2 == 0 {
            format!(r#"{{"id": "ok-{n}"}}"#)
        } else {
            format!(r#"{{"id": "PANIC-{n}"}}"#)
        };
        let url = server.url("/webhooks/panicking");
        tasks.push(tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            (n, response.status().as_u16())
        }));
    }
    for task in tasks {
        let (n, status) = task.await.expect("task");
        assert_eq!(status, if n % 2 == 0 { 200 } else { 500 }, "request {n}");
    }
    let (status, body) = server.post("panicking", br#"{"id": "after"}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get("/readyz").await.0, 200);

    let logs = server.logs();
    assert!(
        logs.contains("adapter `panicking` panicked: adapter panicked: marker payload"),
        "{logs}"
    );
}

/// An adapter past its time budget costs that request a 503 and stores nothing, not even
/// after the call returns; the webhooks around it are stored with consecutive sequences.
#[tokio::test]
async fn an_adapter_past_its_budget_gets_503_and_its_webhook_is_never_stored() {
    let plugins = panicking_plugins().await;
    let server = Server::start_with_plugins("[plugins]\ncall_timeout_ms = 100\n", plugins.path());

    let (status, body) = server.post("panicking", br#"{"id": "before"}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sequences"], serde_json::json!([1]));
    let (status, body) = server.post("panicking", br#"{"id": "SLEEP"}"#, &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"], "the adapter timed out; retry later");
    // The call returns 2 s after it began: by then the request had given the webhook up.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, body) = server.post("panicking", br#"{"id": "after"}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sequences"], serde_json::json!([2]));
    let events = server
        .collect_all(0, std::time::Duration::from_millis(500))
        .await;
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["before", "after"]);
}

/// Short adapter calls run on the request's worker. One holding it for 50 ms is seen by the
/// watchdog, which sends the source's calls to the blocking pool, so a
/// hung adapter holds no more workers; the hung webhook still gets its 503 and is not stored.
#[tokio::test]
async fn a_hung_call_on_a_worker_sends_the_source_to_the_blocking_pool() {
    let plugins = panicking_plugins().await;
    let server = Server::start_with_plugins("[plugins]\ncall_timeout_ms = 100\n", plugins.path());
    let (status, body) = server.post("panicking", br#"{"id": "before"}"#, &[]).await;
    assert_eq!(status, 200, "{body}");

    let url = server.url("/webhooks/panicking");
    let hung = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"id": "SLEEP"}"#)
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    });
    let warning = "an adapter call has held a request worker for over 50 ms";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server.logs().contains(warning) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let logs = server.logs();
    assert!(logs.contains(warning), "{logs}");
    assert!(logs.contains("source=panicking"), "{logs}");

    let (status, body) = server.post("panicking", br#"{"id": "during"}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hung.await.expect("task"), 503);
    let events = server
        .collect_all(0, std::time::Duration::from_millis(500))
        .await;
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["before", "during"]);
}
