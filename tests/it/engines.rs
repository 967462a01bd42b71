//! Which embedded engine a data directory gets: fjall for a new one; a directory that holds a
//! redb log keeps it (and every event in it) when the engine is left to `auto`.

use crate::support::{ARCADIA_AUTH, NO_RATE_LIMIT, Server, arcadia_source, arcadia_webhook};

async fn post(server: &Server, id: &str) -> u64 {
    let (status, body) = server
        .post("arcadia", &arcadia_webhook(id), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
    body["sequences"][0].as_u64().expect("one sequence")
}

#[tokio::test]
async fn a_new_data_directory_gets_fjall() {
    let server = Server::start(&format!("{}{NO_RATE_LIMIT}", arcadia_source("")));
    assert_eq!(post(&server, "whk_new").await, 1);
    assert!(server.data.join("fjall").is_dir());
    assert!(!server.data.join("events.redb").exists());
    let logs = server.logs();
    assert!(logs.contains(r#"engine="fjall""#), "{logs}");
}

#[tokio::test]
async fn a_data_directory_with_a_redb_log_keeps_it() {
    let base = format!("{}{NO_RATE_LIMIT}", arcadia_source(""));
    let server = Server::start(&format!("{base}\n[log]\nengine = \"redb\"\n"));
    assert_eq!(post(&server, "whk_before-1").await, 1);
    assert_eq!(post(&server, "whk_before-2").await, 2);
    // The same directory with the engine left to `auto`.
    let config = server.config.clone().expect("config file");
    std::fs::write(&config, &base).expect("rewrite config");
    let server = server.restart();
    let logs = server.logs();
    assert!(logs.contains(r#"engine="redb""#), "{logs}");
    assert!(!server.data.join("fjall").exists());
    assert_eq!(post(&server, "whk_after").await, 3);
    // A retry of a webhook stored before the restart is still a duplicate.
    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_before-1"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicates"], 1);
    let events = server
        .collect_all(0, std::time::Duration::from_millis(500))
        .await;
    let ids: Vec<&str> = events
        .iter()
        .map(|e| {
            e.provenance
                .as_ref()
                .expect("provenance")
                .provider_event_id
                .as_str()
        })
        .collect();
    assert_eq!(ids, ["whk_before-1", "whk_before-2", "whk_after"]);
}
