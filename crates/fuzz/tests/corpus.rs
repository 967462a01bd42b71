//! Keeps the fuzz targets from rotting without cargo-fuzz: every committed corpus file runs
//! through its target on every `cargo test`, and the seeds taken from the adapters' golden
//! fixtures stay in step with them.
//!
//! `TRIBUTARY_WRITE_FUZZ_SEEDS=1 cargo test -p tributary-fuzz` (re)writes the seeds.

use std::collections::BTreeMap;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::{Value, json};
use tributary_fuzz::{TARGETS, format_input};
use tributary_model::v1::AdapterResult;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir(target: &str) -> PathBuf {
    crate_dir().join("corpus").join(target)
}

#[test]
fn every_corpus_file_runs_clean_through_its_target() {
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "{}: only {} seeds",
            dir.display(),
            files.len()
        );
        for file in files {
            let data = fs::read(&file).expect("corpus file");
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{target}: {}: {message}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A fixture case's request file: headers and query.
fn request_spec(dir: &Path, case: &str) -> (Vec<(String, String)>, String) {
    let path = dir.join(format!("{case}.request.json"));
    let Ok(text) = fs::read(&path) else {
        return (Vec::new(), String::new());
    };
    let spec: Value = serde_json::from_slice(&text).expect("request.json");
    let headers = spec
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let query = spec
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (headers, query)
}

/// `{"l1": {"l2": ... "bottom"}}`, 40 levels: the depth regression.
fn nested_40() -> Value {
    (1..=40).rev().fold(
        json!("bottom"),
        |inner, level| json!({ format!("l{level}"): inner }),
    )
}

/// Every seed, by target and file name.
fn seeds() -> BTreeMap<(String, String), Vec<u8>> {
    let mut seeds = BTreeMap::new();
    let plugins = crate_dir().join("../../plugins");
    for (adapter, plugin) in [
        ("arcadia", "arcadia"),
        ("finicity", "finicity"),
        ("klavi", "klavi"),
        ("standard_webhooks", "standard-webhooks"),
    ] {
        let dir = plugins.join(plugin).join("fixtures");
        let mut cases: Vec<String> = fs::read_dir(&dir)
            .expect("fixtures dir")
            .filter_map(|e| {
                let name = e.expect("entry").file_name().into_string().ok()?;
                name.strip_suffix(".raw.json").map(str::to_owned)
            })
            .collect();
        cases.sort();
        for case in cases {
            let body = fs::read(dir.join(format!("{case}.raw.json"))).expect("raw body");
            let (headers, query) = request_spec(&dir, &case);
            seeds.insert(
                (adapter.to_owned(), case.clone()),
                format_input(&headers, &query, &body),
            );
            let expected: Value = serde_json::from_slice(
                &fs::read(dir.join(format!("{case}.expected.json"))).expect("expected"),
            )
            .expect("expected JSON");
            let result: AdapterResult =
                serde_json::from_value(expected).expect("expected is an AdapterResult");
            seeds.insert(
                ("plugin_result".to_owned(), format!("{adapter}-{case}")),
                result.encode_to_vec(),
            );
        }
    }
    // The HTTP target: one request per fixture, the first Arcadia one also to the source
    // without verification, and a few connection shapes.
    let mut first_arcadia = None;
    for ((target, name), bytes) in seeds.clone() {
        if !["arcadia", "finicity", "klavi"].contains(&target.as_str()) {
            continue;
        }
        let body = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(&bytes[..], |at| &bytes[at + 2..]);
        first_arcadia.get_or_insert_with(|| body.to_vec());
        seeds.insert(
            ("http".to_owned(), format!("{target}-{name}")),
            http_post(&target, body),
        );
    }
    let arcadia = first_arcadia.expect("an Arcadia fixture");
    seeds.insert(
        ("http".to_owned(), "locked-source".to_owned()),
        http_post("locked", &arcadia),
    );
    let mut pipelined = http_post("arcadia", &arcadia);
    pipelined.extend(http_post("arcadia", b"{}"));
    pipelined.extend(http_post("nowhere", b"{}"));
    seeds.insert(("http".to_owned(), "pipelined".to_owned()), pipelined);
    seeds.insert(
        ("http".to_owned(), "truncated-body".to_owned()),
        http_post("klavi", b"[]")[..60].to_vec(),
    );
    seeds.insert(
        ("http".to_owned(), "get-and-garbage".to_owned()),
        b"GET /webhooks/arcadia HTTP/1.1\r\nhost: fuzz\r\n\r\n\x00\xff garbage\r\n\r\n".to_vec(),
    );
    // The depth bug (a result the host could not decode), in each adapter's free-form field.
    let arcadia = json!({"id": "whk_deep", "eventType": "STATUS_CHANGE", "resource": "ACCOUNT",
        "createdAt": "2024-02-21T00:00:00.000+00:00", "errors": [],
        "data": {"id": "act_1", "status": "NEW_ACCOUNT", "customData": nested_40()}});
    let finicity = json!({"customerId": "1", "eventType": "started",
        "eventId": "1495468585434-0e73d1719173766fe4dfe1a8", "payload": {},
        "webhookData": nested_40()});
    for (adapter, body) in [("arcadia", arcadia), ("finicity", finicity)] {
        seeds.insert(
            (adapter.to_owned(), "regression-depth-40".to_owned()),
            format_input(&[], "", body.to_string().as_bytes()),
        );
    }
    seeds
}

/// One JSON webhook as a client writes it on the wire.
fn http_post(source: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /webhooks/{source} HTTP/1.1\r\nhost: fuzz\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Byte equality, except for encoded results: their `Struct` maps encode in hash order, so
/// they are compared decoded.
fn same_seed(target: &str, committed: Option<Vec<u8>>, expected: &[u8]) -> bool {
    let Some(committed) = committed else {
        return false;
    };
    if target != "plugin_result" {
        return committed == expected;
    }
    match (
        AdapterResult::decode(committed.as_slice()),
        AdapterResult::decode(expected),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[test]
fn seeds_are_in_step_with_the_fixtures() {
    let write = std::env::var_os("TRIBUTARY_WRITE_FUZZ_SEEDS").is_some();
    let mut stale = Vec::new();
    for ((target, name), bytes) in seeds() {
        let path = corpus_dir(&target).join(&name);
        if write {
            fs::create_dir_all(path.parent().expect("parent")).expect("corpus dir");
            fs::write(&path, &bytes).expect("write seed");
        } else if !same_seed(&target, fs::read(&path).ok(), &bytes) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz seeds missing or stale (run TRIBUTARY_WRITE_FUZZ_SEEDS=1 cargo test -p \
         tributary-fuzz and commit crates/fuzz/corpus):\n{}",
        stale.join("\n")
    );
}
