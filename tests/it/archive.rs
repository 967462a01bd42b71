//! The raw archive through the real binary: every acknowledged webhook is kept byte for byte,
//! sealed at rest, readable only with the admin scope, consistent with its events across
//! kill -9, and replayable through a newer adapter.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tributary::proto::admin_client::AdminClient;
use tributary_model::v1::event::Payload;
use tributary_model::v1::get_raw_webhook_request::Target;
use tributary_model::v1::{
    Event, GetRawWebhookRequest, ListDeadLettersRequest, RawWebhook, ReplayOf, ReplayProgress,
    ReplayRequest,
};

use crate::support::adapters::{build_quokka, build_quokka_with, cli, wait_for_version};
use crate::support::{
    ARCADIA_AUTH, ARCADIA_TOKEN, Server, arcadia_webhook, fixtures, hmac_hex, unix_now,
};

const FINICITY_SECRET: &str = "fixture-partner-secret";
const KLAVI_SECRET: &str = "klavi-fixture-secret";

/// The three bundled providers, each verifying, personal data hashed.
fn providers() -> String {
    format!(
        r#"
[http]
rate_limit_per_second = 0
[sources.arcadia]
adapter = "arcadia"
config = {{ verification = {{ headers = {{ "X-Arcadia-Token" = "{ARCADIA_TOKEN}" }} }} }}
[sources.finicity]
adapter = "finicity"
config = {{ secret = "{FINICITY_SECRET}" }}
[sources.klavi]
adapter = "klavi"
config = {{ secret_key = "{KLAVI_SECRET}" }}
"#
    )
}

async fn raw(server: &Server, target: Target) -> RawWebhook {
    server
        .admin()
        .await
        .get_raw_webhook(GetRawWebhookRequest {
            target: Some(target.clone()),
        })
        .await
        .unwrap_or_else(|status| panic!("{target:?}: {status:?}"))
        .into_inner()
}

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

#[tokio::test]
async fn every_seed_webhook_is_archived_byte_for_byte_and_sealed_at_rest() {
    let server = Server::start(&providers());
    let mut checked = 0;
    let sources = [
        ("arcadia", fixtures("arcadia", &["seed-"])),
        ("finicity", fixtures("finicity", &[""])),
        ("klavi", fixtures("klavi", &["seed-", "array-several"])),
    ];
    for (source, examples) in &sources {
        assert!(examples.len() >= 4, "{source}: {} seeds", examples.len());
        // Rejected webhooks are not acknowledged, so not archived.
        for example in examples
            .iter()
            .filter(|e| e.expected.get("rejection").is_none())
        {
            let signature = match *source {
                "finicity" => hmac_hex(FINICITY_SECRET, &example.raw),
                _ => hmac_hex(KLAVI_SECRET, &example.raw),
            };
            let now = unix_now().to_string();
            let headers: Vec<(&str, &str)> = match *source {
                "arcadia" => ARCADIA_AUTH.to_vec(),
                "finicity" => vec![("X-Finicity-Signature", &signature)],
                _ => vec![
                    ("x-klavi-signature", &signature),
                    ("x-klavi-timestamp", &now),
                ],
            };
            let (status, answer) = server.post(source, &example.raw, &headers).await;
            assert_eq!(status, 200, "{source}/{}: {answer}", example.name);
            let Some(sequence) = answer["sequences"][0].as_u64() else {
                continue;
            };
            let kept = raw(&server, Target::Sequence(sequence)).await;
            assert_eq!(kept.body, example.raw, "{source}/{}", example.name);
            assert_eq!(
                (
                    kept.source.as_str(),
                    kept.adapter.as_str(),
                    kept.method.as_str()
                ),
                (*source, *source, "POST")
            );
            assert!(kept.sequences.contains(&sequence), "{kept:?}");
            assert!(kept.received_at.is_some());
            if *source == "arcadia" {
                // The shared token is a credential: withheld, never archived.
                assert_eq!(kept.withheld, ["x-arcadia-token"]);
                assert!(!kept.headers.iter().any(|h| h.value == ARCADIA_TOKEN));
            } else {
                assert!(kept.withheld.is_empty(), "{:?}", kept.withheld);
                assert!(kept.headers.iter().any(|h| h.value == signature));
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} webhooks checked");
    // By event id, and the same entry by its own id.
    let by_id = raw(
        &server,
        Target::EventId("klavi:1495468585434-0e73d1719173766fe4dfe1a1".into()),
    )
    .await;
    assert_eq!(
        by_id,
        raw(&server, Target::ArchiveId(by_id.archive_id)).await
    );

    for (target, code) in [
        (Target::Sequence(9999), Code::NotFound),
        (
            Target::EventId("klavi:no-such-event".into()),
            Code::NotFound,
        ),
        (Target::EventId("no-colon".into()), Code::InvalidArgument),
        (Target::ArchiveId(9999), Code::NotFound),
    ] {
        let status = server
            .admin()
            .await
            .get_raw_webhook(GetRawWebhookRequest {
                target: Some(target.clone()),
            })
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{target:?}: {status:?}");
    }

    // A dead-lettered item (an event type Arcadia may add) holds an account number: its raw
    // item is sealed at rest too, and listed opened (and redacted) to an administrator.
    let unknown = json!({"id": "whk_pii_dead", "eventType": "ACCOUNT_RENAMED", "resource": "ACCOUNT",
        "createdAt": "2024-02-21T00:00:00.000+00:00", "errors": [],
        "data": {"id": "act_1", "accountNumber": "8014539319811710193", "status": "ACTIVE"}});
    let (status, answer) = server
        .post("arcadia", unknown.to_string().as_bytes(), &ARCADIA_AUTH)
        .await;
    assert_eq!(
        (status, answer["dead_lettered"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let letters = server
        .dead_letters(ListDeadLettersRequest {
            include_raw: true,
            ..ListDeadLettersRequest::default()
        })
        .await;
    let letter = letters
        .iter()
        .find(|l| l.provider_event_id == "whk_pii_dead")
        .expect("the unknown type is a dead letter");
    assert!(letter.raw_key_id.is_empty(), "listed opened");
    let listed: serde_json::Value = serde_json::from_slice(&letter.raw).expect("raw JSON");
    assert_eq!(listed["data"]["status"], json!("ACTIVE"));
    assert_ne!(
        listed["data"]["accountNumber"],
        json!("8014539319811710193")
    );
    assert_ne!(letter.raw_id, 0);

    // Sealed at rest: no tax id or account number of the seeds in any data file.
    let mut server = server;
    assert!(server.terminate().success());
    let clear = [
        "25872252137",
        "12345678901",
        "8014539319811710193",
        "7386149723027993238",
    ];
    for (file, bytes) in files(&server.data) {
        for secret in clear {
            assert!(
                !holds_number(&bytes, secret),
                "{file} holds {secret} in clear"
            );
        }
    }
}

#[tokio::test]
async fn raw_webhooks_and_replay_need_the_admin_scope() {
    let server = Server::start(&format!(
        "{}\n[[grpc.credentials]]\nname = \"billing\"\ntoken = \"billing-consumer-token-1\"\n\n\
         [[grpc.credentials]]\nname = \"operators\"\ntoken = \"operators-admin-token-1\"\nadmin = true\n\
         personal_data = true\n",
        providers()
    ));
    let (status, answer) = server
        .post("arcadia", &arcadia_webhook("whk_scoped"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{answer}");
    let admin = |token: &'static str| {
        let channel = server.channel();
        async move {
            let header: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
            AdminClient::with_interceptor(channel.await, move |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", header.clone());
                Ok(request)
            })
        }
    };
    let mut consumer = admin("billing-consumer-token-1").await;
    let denied = consumer
        .get_raw_webhook(GetRawWebhookRequest {
            target: Some(Target::Sequence(1)),
        })
        .await
        .expect_err("a consumer cannot read raw webhooks");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = consumer
        .replay(ReplayRequest {
            source: "arcadia".into(),
            ..ReplayRequest::default()
        })
        .await
        .expect_err("a consumer cannot replay");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let kept = admin("operators-admin-token-1")
        .await
        .get_raw_webhook(GetRawWebhookRequest {
            target: Some(Target::Sequence(1)),
        })
        .await
        .expect("an administrator with the personal_data scope can")
        .into_inner();
    assert_eq!(kept.body, arcadia_webhook("whk_scoped"));
}

#[tokio::test]
async fn kill_9_leaves_no_event_without_its_raw_webhook_and_no_raw_webhook_without_its_events() {
    let _turn = crate::support::heavy_turn().await;
    let mut server = Server::start(&providers());
    let url = server.url("/webhooks/arcadia");
    let posting = tokio::spawn(async move {
        let client = crate::support::load_client();
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    let _ = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header(ARCADIA_AUTH[0].0, ARCADIA_AUTH[0].1)
                        .body(arcadia_webhook(&format!("whk_crash-{worker}-{i}")))
                        .send()
                        .await;
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    posting.abort();
    server.respawn();

    let events = server.collect_all(0, Duration::from_millis(500)).await;
    assert!(!events.is_empty(), "nothing was stored before the kill");
    let mut admin = server.admin().await;
    let mut entries = std::collections::BTreeMap::new();
    for event in &events {
        assert_ne!(
            event.raw_id, 0,
            "event {} has no raw webhook",
            event.sequence
        );
        if let std::collections::btree_map::Entry::Vacant(slot) = entries.entry(event.raw_id) {
            let kept = admin
                .get_raw_webhook(GetRawWebhookRequest {
                    target: Some(Target::ArchiveId(event.raw_id)),
                })
                .await
                .unwrap_or_else(|s| panic!("event {}: raw {}: {s:?}", event.sequence, event.raw_id))
                .into_inner();
            slot.insert(kept);
        }
        let kept = &entries[&event.raw_id];
        assert!(kept.sequences.contains(&event.sequence), "{kept:?}");
        let id = event
            .provenance
            .as_ref()
            .map(|p| p.provider_event_id.clone());
        assert_eq!(Some(kept.body.clone()), id.map(|id| arcadia_webhook(&id)));
    }
    // Entries are numbered from 1 without gaps here (no retention): none lacks its events.
    let newest = *entries.keys().max().expect("entries");
    for id in 1..=newest {
        let kept = admin
            .get_raw_webhook(GetRawWebhookRequest {
                target: Some(Target::ArchiveId(id)),
            })
            .await
            .unwrap_or_else(|s| panic!("raw {id}: {s:?}"))
            .into_inner();
        assert_eq!(kept.sequences.len(), 1, "{kept:?}");
        assert!(
            events
                .iter()
                .any(|e| e.sequence == kept.sequences[0] && e.raw_id == id)
        );
    }
}

async fn replay(server: &Server, request: ReplayRequest) -> Vec<ReplayProgress> {
    let mut stream = server
        .admin()
        .await
        .replay(request)
        .await
        .expect("replay")
        .into_inner();
    let mut out = Vec::new();
    while let Some(progress) = stream.message().await.expect("progress") {
        out.push(progress);
    }
    out
}

fn totals(progress: &[ReplayProgress]) -> (u64, u64, u64, u64, bool) {
    let last = progress.last().expect("a final message");
    (
        last.webhooks,
        last.stored,
        last.duplicates,
        last.unchanged,
        last.done,
    )
}

fn reason(event: &Event) -> &str {
    match &event.payload {
        Some(Payload::Consent(consent)) => consent.reason.as_str(),
        other => panic!("unexpected payload {other:?}"),
    }
}

#[tokio::test]
async fn archived_webhooks_replay_through_a_newer_adapter() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let library = plugins
        .path()
        .join(tributary_plugin_host::library_file_name("quokka"));
    build_quokka(&library, "1.0.0");
    let server = Server::start_with_plugins(
        "[sources.quokka]\nadapter = \"quokka\"\nconfig = { token = \"qk-token-long\" }\n",
        plugins.path(),
    );
    let token = [("x-quokka-token", "qk-token-long")];
    let webhook = |id: &str, kind: &str, reason: Option<&str>| {
        let mut body =
            json!({"id": id, "kind": kind, "consent": format!("qc_{id}"), "at": 1714564800});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        body.to_string()
    };
    let server = &server;
    let post = |body: String| async move {
        let (status, answer) = server.post("quokka", body.as_bytes(), &token).await;
        assert_eq!(status, 200, "{answer}");
    };
    post(webhook("qk_1", "consent.revoked", Some("user request"))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let middle: tributary_model::well_known::Timestamp =
        tributary::app::timestamp(SystemTime::now());
    tokio::time::sleep(Duration::from_millis(100)).await;
    post(webhook("qk_2", "consent.granted", None)).await;
    post(webhook("qk_3", "consent.revoked", Some("fraud suspected"))).await;
    let originals = server.collect_all(0, Duration::from_millis(300)).await;
    assert_eq!(originals.len(), 3);
    assert!(
        originals.iter().all(|e| reason(e).is_empty()),
        "1.0.0 drops the reason"
    );

    // Version 2.0.0 maps the reason; it is hot-reloaded.
    build_quokka_with(&library, "2.0.0", &["QUOKKA_MAPS_REASON"]);
    wait_for_version(server.grpc, "quokka", "2.0.0").await;

    // A dry run from the middle on: the differences, and nothing stored.
    let from = serde_json::to_value(middle).expect("time");
    let from = from.as_str().expect("RFC 3339");
    let url = format!("http://{}", server.grpc);
    let output = cli(&[
        "replay",
        "--server",
        &url,
        "--source",
        "quokka",
        "--from",
        from,
        "--dry-run",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "archive 2: unchanged\narchive 3: changed\nevent quokka:qk_3 (original sequence 3)\n  + consent.reason: \"fraud suspected\"\n"
    );
    // Not on a terminal: no progress lines, only the totals.
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "replayed 2 webhooks (archive entry 3): 0 stored, 0 duplicates, 1 unchanged, 0 failed\n"
    );
    server
        .assert_no_more(Some(
            tributary_model::v1::subscribe_request::Start::AfterSequence(3),
        ))
        .await;

    // The replay stores the changed event, marked as a replay of the original.
    let range = ReplayRequest {
        source: "quokka".into(),
        from: Some(middle),
        ..ReplayRequest::default()
    };
    let progress = replay(server, range.clone()).await;
    assert_eq!(totals(&progress), (2, 1, 0, 1, true));
    let replayed = server.collect_all(3, Duration::from_millis(300)).await;
    assert_eq!(replayed.len(), 1);
    let event = &replayed[0];
    assert_eq!(
        (event.sequence, event.id.as_str(), reason(event)),
        (4, "quokka:qk_3#replay@2.0.0", "fraud suspected")
    );
    assert_eq!(
        event.replay_of,
        Some(ReplayOf {
            event_id: "quokka:qk_3".into(),
            sequence: 3,
            adapter_version: "1.0.0".into(),
        })
    );
    let provenance = event.provenance.as_ref().expect("provenance");
    assert_eq!(
        (
            provenance.provider_event_id.as_str(),
            provenance.adapter_version.as_str()
        ),
        ("qk_3", "2.0.0")
    );
    assert_eq!(event.raw_id, originals[2].raw_id);
    assert_eq!(event.received_at, originals[2].received_at);

    // Again with the same version: nothing new.
    let progress = replay(server, range).await;
    assert_eq!(totals(&progress), (2, 0, 1, 1, true));
    // The whole archive: only the first webhook is new.
    let progress = replay(
        server,
        ReplayRequest {
            source: "quokka".into(),
            ..ReplayRequest::default()
        },
    )
    .await;
    assert_eq!(totals(&progress), (3, 1, 1, 1, true));
    assert_eq!(
        progress
            .iter()
            .filter_map(|p| p.webhook.as_ref())
            .map(|w| (w.archive_id, w.outcome.as_str()))
            .collect::<Vec<_>>(),
        [(1, "stored"), (2, "unchanged"), (3, "duplicate")],
        "one progress message per webhook, each with its outcome"
    );
    let all = server.collect_all(4, Duration::from_millis(300)).await;
    assert_eq!(
        all.iter()
            .map(|e| (e.sequence, e.id.as_str(), reason(e)))
            .collect::<Vec<_>>(),
        [(5, "quokka:qk_1#replay@2.0.0", "user request")]
    );
    // Dead letters are untouched by replay.
    assert!(
        server
            .dead_letters(ListDeadLettersRequest::default())
            .await
            .is_empty()
    );
}

/// Whether `bytes` hold the digits of `number` as a number of their own (not inside a longer
/// one, such as an exact amount that starts with the same digits).
fn holds_number(bytes: &[u8], number: &str) -> bool {
    let digit = |at: Option<&u8>| at.is_some_and(u8::is_ascii_digit);
    bytes.windows(number.len()).enumerate().any(|(at, window)| {
        window == number.as_bytes()
            && !digit(at.checked_sub(1).and_then(|before| bytes.get(before)))
            && !digit(bytes.get(at + number.len()))
    })
}

const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const REKEY_OPS: &str = "operators-rekey-token-0001";
const REKEY_NO_PD: &str = "operators-rekey-token-0002";

/// `tributary archive rekey` against `server` with `token`: (success, stdout, stderr).
fn rekey_cli(server: &Server, token: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["archive", "rekey", "--server", &server.grpc.to_string()])
        .env("TRIBUTARY_TOKEN", token)
        .env_remove("TRIBUTARY_CONFIG")
        .env_remove("TRIBUTARY_SERVER")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run tributary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The dead letters' raw items, opened and unredacted.
async fn dead_letter_raws(server: &Server, token: &str) -> Vec<Vec<u8>> {
    AdminClient::new(server.channel().await)
        .list_dead_letters(with_token(
            ListDeadLettersRequest {
                include_raw: true,
                unredacted: true,
                ..ListDeadLettersRequest::default()
            },
            token,
        ))
        .await
        .expect("dead letters")
        .into_inner()
        .dead_letters
        .into_iter()
        .map(|letter| letter.raw)
        .collect()
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

/// A key rotation end to end on the default embedded log (fjall).
#[tokio::test]
async fn a_key_rotation_rekeys_the_archive_so_the_old_key_can_leave_the_key_file() {
    rotate_archive_keys("").await;
}

#[tokio::test]
async fn a_key_rotation_rekeys_the_archive_on_redb() {
    rotate_archive_keys("[log]\nengine = \"redb\"\n").await;
}

#[tokio::test]
async fn a_key_rotation_rekeys_the_archive_on_jetstream() {
    let nats = crate::support::nats::Nats::start();
    rotate_archive_keys(&crate::support::nats::nats_config("", &nats.url())).await;
}

/// A key rotation end to end, with `log` (TOML) choosing the log: webhooks and a dead letter
/// sealed with key `ka`; `kb` put first; the rekey re-seals everything under the same ids and
/// says `ka` can go; with `kb` alone every raw webhook and the dead letter's raw item still
/// read back byte for byte; a second rekey rewrites nothing; the personal_data scope is
/// needed; the audit log has the calls.
async fn rotate_archive_keys(log: &str) {
    use std::os::unix::fs::PermissionsExt;
    use tributary_model::v1::{KeyIdCount, ListAuditEntriesRequest, RekeyArchiveRequest};

    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("archive.keys");
    let write_keys = |text: String| {
        std::fs::write(&key_file, text).expect("key file");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    write_keys(format!("ka {KEY_A}\n"));
    let mut server = Server::start(&format!(
        "{}\n[archive]\nkey_file = \"{}\"\n\
         [[grpc.credentials]]\nname = \"ops\"\ntoken = \"{REKEY_OPS}\"\nadmin = true\npersonal_data = true\n\
         [[grpc.credentials]]\nname = \"ops-no-pd\"\ntoken = \"{REKEY_NO_PD}\"\nadmin = true\n\
         {log}",
        providers(),
        key_file.display()
    ));
    assert_eq!(
        server.data.join("events.redb").is_file(),
        log.contains("redb"),
        "the log asked for"
    );
    let seeds = fixtures("arcadia", &["seed-"]);
    assert!(seeds.len() >= 10, "{} seeds", seeds.len());
    // (sequence, body) of every stored event.
    let mut stored = Vec::new();
    for seed in &seeds {
        let (status, answer) = server.post("arcadia", &seed.raw, &ARCADIA_AUTH).await;
        assert_eq!(status, 200, "{}: {answer}", seed.name);
        assert_eq!(answer["dead_lettered"], 0, "{}: {answer}", seed.name);
        for sequence in answer["sequences"].as_array().expect("sequences") {
            stored.push((sequence.as_u64().expect("sequence"), seed.raw.clone()));
        }
    }
    // A dead letter: its raw item is sealed with the same key.
    let unmapped = fixtures("arcadia", &["unmapped-unknown-event-type"]);
    let (status, answer) = server
        .post("arcadia", &unmapped[0].raw, &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dead_lettered"], 1, "{answer}");
    let letter_raws = dead_letter_raws(&server, REKEY_OPS).await;
    assert_eq!(letter_raws.len(), 1);
    assert!(!letter_raws[0].is_empty());
    let old_entries = seeds.len() as u64 + 1;
    assert!(stored.len() >= seeds.len(), "{stored:?}");

    // The old key dropped too early: nothing can be re-sealed, each item is named, the run
    // fails, and nothing is lost.
    write_keys(format!("kb {KEY_B}\n"));
    server = server.restart();
    let (ok, stdout, stderr) = rekey_cli(&server, REKEY_OPS);
    assert!(!ok, "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "archive entries: examined {old_entries}, rewritten 0, already current 0, failed {old_entries}, removed meanwhile 0\n\
             dead letters: examined 1, rewritten 0, already current 0, failed 1, removed meanwhile 0, stored in clear 0\n\
             archive entries by key id: ka {old_entries}\n\
             dead letters by key id: ka 1\n"
        )
    );
    let mut expected: Vec<String> = (1..=old_entries)
        .map(|id| format!("archive entry {id}: not re-sealed: archive key `ka` is not configured"))
        .collect();
    expected.push("dead letter 1: not re-sealed: archive key `ka` is not configured".into());
    expected.push(format!(
        "error: {} items could not be re-sealed (listed above); their keys must stay",
        old_entries + 1
    ));
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected);

    // The new key first, the old one still there to open old entries.
    write_keys(format!("kb {KEY_B}\nka {KEY_A}\n"));
    server = server.restart();
    let newer = arcadia_webhook("whk_sealed_with_kb");
    let (status, answer) = server.post("arcadia", &newer, &ARCADIA_AUTH).await;
    assert_eq!(status, 200, "{answer}");
    stored.push((answer["sequences"][0].as_u64().expect("sequence"), newer));
    let total = old_entries + 1;

    // Without the personal_data scope: refused, nothing re-sealed.
    let channel = server.channel().await;
    let denied = AdminClient::new(channel.clone())
        .rekey_archive(with_token(RekeyArchiveRequest::default(), REKEY_NO_PD))
        .await
        .expect_err("rekey decrypts: personal_data is needed");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let (ok, _, stderr) = rekey_cli(&server, REKEY_NO_PD);
    assert!(!ok, "{stderr}");

    let (ok, stdout, stderr) = rekey_cli(&server, REKEY_OPS);
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        format!(
            "archive entries: examined {total}, rewritten {old_entries}, already current 1, failed 0, removed meanwhile 0\n\
             dead letters: examined 1, rewritten 1, already current 0, failed 0, removed meanwhile 0, stored in clear 0\n\
             archive entries by key id: kb {total}\n\
             dead letters by key id: kb 1\n\
             key ka: nothing is sealed with it any more; it can be removed from the key file\n"
        ),
        "{stderr}"
    );
    // Run again: everything is current, nothing is rewritten.
    let again = AdminClient::new(channel.clone())
        .rekey_archive(with_token(RekeyArchiveRequest::default(), REKEY_OPS))
        .await
        .expect("second rekey")
        .into_inner();
    assert_eq!(
        (
            again.examined,
            again.rewritten,
            again.already_current,
            again.failed,
            again.next_after_id
        ),
        (total, 0, total, 0, 0)
    );
    assert_eq!(again.current_key_id, "kb");
    assert_eq!(again.configured_key_ids, ["kb", "ka"]);
    assert_eq!(
        again.by_key_id,
        [KeyIdCount {
            key_id: "kb".into(),
            count: total
        }]
    );
    // In pages of two, resumable: the same walk.
    let mut after = 0;
    let mut examined = 0;
    loop {
        let page = AdminClient::new(channel.clone())
            .rekey_archive(with_token(
                RekeyArchiveRequest {
                    after_id: after,
                    limit: 2,
                    dead_letters: false,
                },
                REKEY_OPS,
            ))
            .await
            .expect("a page")
            .into_inner();
        assert_eq!(page.rewritten, 0);
        examined += page.examined;
        if page.next_after_id == 0 {
            break;
        }
        assert_eq!(page.examined, 2);
        assert!(page.next_after_id > after);
        after = page.next_after_id;
    }
    assert_eq!(examined, total);

    // The audit log has both rekeys and the refusal.
    let audit = AdminClient::new(channel.clone())
        .list_audit_entries(with_token(ListAuditEntriesRequest::default(), REKEY_OPS))
        .await
        .expect("audit")
        .into_inner()
        .entries;
    let rekeys: Vec<(String, String, String)> = audit
        .iter()
        .filter(|e| e.action == "archive.rekey")
        .map(|e| (e.credential.clone(), e.target.clone(), e.outcome.clone()))
        .collect();
    let denied = |target: &str| {
        (
            "ops-no-pd".into(),
            target.into(),
            "permission_denied".into(),
        )
    };
    let done = |target: String| ("ops".into(), target, "ok".into());
    assert_eq!(
        rekeys[..7],
        [
            done(format!(
                "archive after 0: examined {old_entries}, rewritten 0, failed {old_entries}"
            )),
            done("dead letters after 0: examined 1, rewritten 0, failed 1".into()),
            denied("archive after 0"),
            denied("archive after 0"),
            done(format!(
                "archive after 0: examined {total}, rewritten {old_entries}, failed 0"
            )),
            done("dead letters after 0: examined 1, rewritten 1, failed 0".into()),
            done(format!(
                "archive after 0: examined {total}, rewritten 0, failed 0"
            )),
        ]
    );
    drop(channel);

    // The old key leaves the key file: every raw webhook still reads back byte for byte.
    write_keys(format!("kb {KEY_B}\n"));
    server = server.restart();
    let mut admin = AdminClient::new(server.channel().await);
    for (sequence, body) in &stored {
        let kept = admin
            .get_raw_webhook(with_token(
                GetRawWebhookRequest {
                    target: Some(Target::Sequence(*sequence)),
                },
                REKEY_OPS,
            ))
            .await
            .unwrap_or_else(|status| panic!("sequence {sequence}: {status:?}"))
            .into_inner();
        assert_eq!(&kept.body, body, "sequence {sequence}");
    }
    // The dead letter's raw item opens with the new key alone too.
    assert_eq!(dead_letter_raws(&server, REKEY_OPS).await, letter_raws);
    let (sequence, body) = &stored[0];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "raw",
            "get",
            &sequence.to_string(),
            "--body",
            "--server",
            &server.grpc.to_string(),
        ])
        .env("TRIBUTARY_TOKEN", REKEY_OPS)
        .env_remove("TRIBUTARY_CONFIG")
        .env_remove("TRIBUTARY_SERVER")
        .output()
        .expect("raw get");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&out.stdout, body);
    let (ok, stdout, stderr) = rekey_cli(&server, REKEY_OPS);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "archive entries: examined {total}, rewritten 0, already current {total}, failed 0, removed meanwhile 0\n\
             dead letters: examined 1, rewritten 0, already current 1, failed 0, removed meanwhile 0, stored in clear 0\n\
             archive entries by key id: kb {total}\n\
             dead letters by key id: kb 1\n"
        )
    );
}
