//! The audit log through the real binary: an entry (time, credential, client address, target,
//! outcome) for every admin action and console login, logout and failed login, readable
//! through `Admin/ListAuditEntries`, `tributary audit list` and the console, and still there
//! after kill -9.

use reqwest::header;
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tributary::proto::adapters_client::AdaptersClient;
use tributary::proto::admin_client::AdminClient;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{
    AuditEntry, DeleteConsumerRequest, GetRawWebhookRequest, ListAuditEntriesRequest,
    ListDeadLettersRequest, RedriveDeadLettersRequest, ReloadAdaptersRequest, ReplayRequest,
    ResetConsumerRequest, SubscribeRequest, get_raw_webhook_request, reset_consumer_request,
};

use crate::storage_faults::SmallDisk;
use crate::support::adapters::cli_success;
use crate::support::fixtures::{hmac_hex, unix_now};
use crate::support::{Server, arcadia_webhook};

const OPS: &str = "operators-audit-token-0001";
const OPS2: &str = "operators-audit-token-0002";
const READER: &str = "reader-audit-token-000003";

fn config() -> String {
    format!(
        "[ops]\nhttp_listen = \"127.0.0.1:0\"\n\
         [[grpc.credentials]]\nname = \"ops\"\ntoken = \"{OPS}\"\nadmin = true\npersonal_data = true\n\
         [[grpc.credentials]]\nname = \"ops2\"\ntoken = \"{OPS2}\"\nadmin = true\n\
         [[grpc.credentials]]\nname = \"reader\"\ntoken = \"{READER}\"\n\
         [sources.arcadia]\nadapter = \"arcadia\"\nconfig = {{ verification = {{ disabled = true }} }}\n\
         [sources.klavi]\nadapter = \"klavi\"\nconfig = {{ secret_key = \"klavi-audit-secret\" }}\n"
    )
}

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn entries(channel: &Channel, token: &str) -> Result<Vec<AuditEntry>, Code> {
    AdminClient::new(channel.clone())
        .list_audit_entries(request(ListAuditEntriesRequest::default(), token))
        .await
        .map(|response| response.into_inner().entries)
        .map_err(|status| status.code())
}

/// (credential, client, action, target, outcome) of each entry.
fn summary(entries: &[AuditEntry]) -> Vec<(String, String, String, String, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e.credential.clone(),
                e.client_address.clone(),
                e.action.clone(),
                e.target.clone(),
                e.outcome.clone(),
            )
        })
        .collect()
}

fn console_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn console_login(base: &str, token: &str) -> (u16, Option<String>) {
    let response = console_client()
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("login");
    let cookie = response.headers().get(header::SET_COOKIE).map(|value| {
        let value = value.to_str().expect("ascii");
        value.split(';').next().expect("pair").to_owned()
    });
    (response.status().as_u16(), cookie)
}

#[tokio::test]
async fn every_admin_action_and_console_login_is_on_record() {
    let mut server = Server::start(&config());
    let channel = server.channel().await;
    let mut admin = AdminClient::new(channel.clone());

    let (status, _) = server
        .post("arcadia", &arcadia_webhook("whk_audit"), &[])
        .await;
    assert_eq!(status, 200);
    let body = json!([{"partnerAppId": "1", "eventId": "e-1", "eventType": "analysis",
        "eventName": "analysis_finished", "eventTime": "2022-06-25T20:08:17.848Z",
        "payload": {"personalTaxId": "25872252137", "linkId": "l-1"}}])
    .to_string();
    let signature = hmac_hex("klavi-audit-secret", body.as_bytes());
    let now = unix_now().to_string();
    let signed = [
        ("X-Klavi-Signature", signature.as_str()),
        ("X-Klavi-Timestamp", now.as_str()),
    ];
    let (status, _) = server.post("klavi", body.as_bytes(), &signed).await;
    assert_eq!(status, 200);

    // A durable consumer to reset and delete.
    drop(
        EventStreamClient::new(channel.clone())
            .subscribe(request(
                SubscribeRequest {
                    consumer: "audit-1".into(),
                    ..SubscribeRequest::default()
                },
                OPS,
            ))
            .await
            .expect("subscribe"),
    );
    admin
        .reset_consumer(request(
            ResetConsumerRequest {
                name: "audit-1".into(),
                position: Some(reset_consumer_request::Position::AfterSequence(0)),
            },
            OPS,
        ))
        .await
        .expect("reset");
    admin
        .delete_consumer(request(
            DeleteConsumerRequest {
                name: "audit-1".into(),
            },
            OPS,
        ))
        .await
        .expect("delete");
    admin
        .redrive_dead_letters(request(RedriveDeadLettersRequest::default(), OPS))
        .await
        .expect("redrive");
    AdaptersClient::new(channel.clone())
        .reload_adapters(request(ReloadAdaptersRequest::default(), OPS))
        .await
        .expect("reload");
    let mut progress = admin
        .replay(request(
            ReplayRequest {
                source: "arcadia".into(),
                dry_run: true,
                ..ReplayRequest::default()
            },
            OPS,
        ))
        .await
        .expect("replay")
        .into_inner();
    while progress.message().await.expect("progress").is_some() {}
    let raw = |token| {
        request(
            GetRawWebhookRequest {
                target: Some(get_raw_webhook_request::Target::Sequence(1)),
            },
            token,
        )
    };
    admin.get_raw_webhook(raw(OPS)).await.expect("raw read");
    let denied = admin
        .get_raw_webhook(raw(OPS2))
        .await
        .expect_err("no scope");
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .list_dead_letters(request(
            ListDeadLettersRequest {
                include_raw: true,
                unredacted: true,
                ..ListDeadLettersRequest::default()
            },
            OPS,
        ))
        .await
        .expect("unredacted");

    // The console: a login, a failed one, a logout.
    let base = format!("http://{}/console", server.ops_http.expect("ops"));
    let (status, cookie) = console_login(&base, OPS).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session");
    let (status, _) = console_login(&base, "not-a-valid-token-000000").await;
    assert_eq!(status, 401);
    let page = console_client()
        .get(format!("{base}/audit"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("audit page");
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.expect("body");
    for action in ["consumer.reset", "raw.read", "console.login_failed"] {
        assert!(page.contains(action), "{action} on the console's page");
    }
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = &page[start..start + 64];
    let logout = console_client()
        .post(format!("{base}/logout"))
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status().as_u16(), 303);

    let local = "127.0.0.1".to_owned();
    let row = |credential: &str, action: &str, target: &str, outcome: &str| {
        (
            credential.to_owned(),
            local.clone(),
            action.to_owned(),
            target.to_owned(),
            outcome.to_owned(),
        )
    };
    let expected = vec![
        row("ops", "consumer.reset", "audit-1", "ok"),
        row("ops", "consumer.delete", "audit-1", "ok"),
        row("ops", "dead_letters.redrive", "unresolved after id 0", "ok"),
        row("ops", "adapters.reload", "", "ok"),
        row("ops", "replay", "arcadia", "ok"),
        row("ops", "raw.read", "sequence 1", "ok"),
        row("ops2", "raw.read", "sequence 1", "permission_denied"),
        row("ops", "dead_letters.read_unredacted", "after id 0", "ok"),
        row("ops", "console.login", "", "ok"),
        row("", "console.login_failed", "", "unauthenticated"),
        row("ops", "console.logout", "", "ok"),
    ];
    let listed = entries(&channel, OPS)
        .await
        .expect("admin reads the audit log");
    assert_eq!(summary(&listed), expected);
    let ids: Vec<u64> = listed.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=11).collect::<Vec<u64>>());
    assert!(listed.iter().all(|e| e.time.is_some()));
    assert_eq!(entries(&channel, READER).await, Err(Code::PermissionDenied));

    // The CLI, with its token in a file.
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{OPS}\n")).expect("token file");
    let server_url = format!("http://{}", server.grpc);
    let printed = cli_success(&[
        "audit",
        "list",
        "--server",
        &server_url,
        "--token-file",
        token_file.to_str().expect("utf-8"),
    ]);
    let lines: Vec<serde_json::Value> = printed
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 11, "{printed}");
    assert_eq!(lines[0]["action"], "consumer.reset");
    assert_eq!(lines[10]["action"], "console.logout");

    // Durable: the same entries after kill -9, and new ones continue the ids.
    server.kill9();
    server.respawn();
    let channel = server.channel().await;
    let after = entries(&channel, OPS).await.expect("after a restart");
    assert_eq!(summary(&after), expected);
}

/// Writes into `dir` until its disk refuses another page.
fn fill_up(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    for chunk in [vec![7u8; 1024 * 1024], vec![7u8; 4096]] {
        while file.write_all(&chunk).is_ok() {}
    }
    let _ = file.sync_all();
    filler
}

/// Personal data leaves only once its read is on record: with the audit log's disk full, a raw
/// read and an unredacted dead-letter listing are refused, while an action already done still
/// answers and logs the entry it could not write. With space back, the log continues.
#[tokio::test]
async fn personal_data_reads_are_refused_while_the_audit_log_cannot_be_written() {
    // Room for the plugin cache (each loaded library is copied into the data directory).
    let disk = SmallDisk::mount("128m");
    let data = disk.path.join("data");
    let config_file = disk.dir.path().join("tributary.toml");
    std::fs::write(&config_file, config()).expect("write config");
    let server = Server::spawn(&data, Some(&config_file), disk.dir.path(), &[]);
    let channel = server.channel().await;
    let mut admin = AdminClient::new(channel.clone());
    let (status, _) = server
        .post("arcadia", &arcadia_webhook("whk_audit_full"), &[])
        .await;
    assert_eq!(status, 200);
    let raw = || {
        request(
            GetRawWebhookRequest {
                target: Some(get_raw_webhook_request::Target::Sequence(1)),
            },
            OPS,
        )
    };

    let filler = fill_up(&disk.path);
    let refused = admin.get_raw_webhook(raw()).await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(refused.message(), "the audit log cannot be written");
    let refused = admin
        .list_dead_letters(request(
            ListDeadLettersRequest {
                include_raw: true,
                unredacted: true,
                ..ListDeadLettersRequest::default()
            },
            OPS,
        ))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(refused.message(), "the audit log cannot be written");
    AdaptersClient::new(channel.clone())
        .reload_adapters(request(ReloadAdaptersRequest::default(), OPS))
        .await
        .expect("a reload answers without its entry");
    assert!(
        server.logs().contains("audit entry not written"),
        "{}",
        server.logs()
    );

    std::fs::remove_file(&filler).expect("free space");
    let read = admin.get_raw_webhook(raw()).await.expect("raw read");
    assert_eq!(read.into_inner().source, "arcadia");
    let listed = entries(&channel, OPS).await.expect("entries");
    let local = "127.0.0.1".to_owned();
    assert_eq!(
        summary(&listed),
        [(
            "ops".to_owned(),
            local,
            "raw.read".to_owned(),
            "sequence 1".to_owned(),
            "ok".to_owned()
        )]
    );
    assert_eq!(listed[0].id, 1);
}
