//! Crash isolation: a panic inside an adapter costs that request a 500 (the provider retries);
//! it is logged with the adapter's name, and every other request is served.

use crate::support::Server;
use crate::support::adapters::panicking_library;

#[tokio::test]
async fn a_panicking_adapter_fails_only_that_request() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = panicking_library().await;
    std::fs::copy(
        &library,
        plugins.path().join(library.file_name().expect("name")),
    )
    .expect("copy");
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
