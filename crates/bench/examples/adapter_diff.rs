//! Differential check of two builds of one adapter: every fixture body, every corpus file of
//! the adapter's fuzz target, and thousands of mutations of the fixture bodies (each value
//! replaced by values of other JSON types, keys repeated, bodies cut short) go through both
//! libraries, under the adapter's fixture config and one with masked personal data, plus the
//! signed fixtures verified (as given and tampered); any difference in the result is printed.
//!
//! For a change that must not change behaviour (a faster parser, say):
//!
//! ```sh
//! cp target/release/libtributary_adapter_arcadia.so /tmp/before/   # built from the base
//! # ... change, rebuild ...
//! cargo run --release -p tributary-bench --example adapter_diff -- arcadia \
//!     /tmp/before/libtributary_adapter_arcadia.so target/release/libtributary_adapter_arcadia.so
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};
use tributary_plugin_host::{AdapterInstance, Plugin};
use tributary_plugin_sdk::model::v1::{Header, WebhookRequest};
use tributary_plugin_sdk::model::well_known::Timestamp;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn request(adapter: &str, body: Vec<u8>) -> WebhookRequest {
    WebhookRequest {
        source: adapter.into(),
        method: "POST".into(),
        path: format!("/webhooks/{adapter}"),
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body,
        skip_verification: true,
        ..Default::default()
    }
}

/// Values of every JSON type, and numbers and strings of the shapes mappers convert.
fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-7),
        json!(18_446_744_073_709_551_615_u64),
        json!(1.5),
        json!(-0.000_000_000_5),
        json!(1e300),
        json!(""),
        json!("12.50"),
        json!("2023-02-30"),
        json!("2024-02-21T00:00:00.000+00:00"),
        json!("x\u{e9}\n\"y"),
        json!([]),
        json!([1, "a", null, {"id": "crd_1"}]),
        json!({}),
        json!({"id": 5, "name": ["n"], "serviceType": "water"}),
    ]
}

/// Every mutation of `value`: each node replaced by each odd value.
fn mutations(value: &Value, out: &mut Vec<Value>, root: &Value, path: &mut Vec<PathStep>) {
    for odd in odd_values() {
        let mut copy = root.clone();
        if let Some(slot) = at(&mut copy, path) {
            *slot = odd;
            out.push(copy);
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(PathStep::Key(key.clone()));
                mutations(child, out, root, path);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                mutations(child, out, root, path);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at<'v>(value: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    let mut current = value;
    for step in path {
        current = match step {
            PathStep::Key(k) => current.get_mut(k.as_str())?,
            PathStep::Index(i) => current.get_mut(*i)?,
        };
    }
    Some(current)
}

/// Texts that differ from serializing a `Value`: repeated keys, escaped keys, odd spacing,
/// cut-off bodies, trailing bytes, invalid UTF-8.
fn text_mutations(raw: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let mut out = Vec::new();
    for cut in [1, 2, 10, raw.len() / 2, raw.len().saturating_sub(1)] {
        out.push(raw[..cut.min(raw.len())].to_vec());
    }
    let mut trailing = raw.to_vec();
    trailing.extend_from_slice(b" x");
    out.push(trailing);
    let mut invalid = raw.to_vec();
    if let Some(pos) = invalid.iter().position(|&b| b == b'"') {
        invalid.insert(pos + 1, 0xff);
    }
    out.push(invalid);
    for (from, to) in [
        ("\"id\"", "\"id\":\"dup\",\"id\""),
        ("\"data\"", "\"data\":{\"id\":\"first\"},\"data\""),
        ("\"resource\"", "\"resource\":\"CREDENTIAL\",\"resource\""),
        ("\"resource\"", "\"\\u0072esource\""),
        ("\"amountDue\"", "\"amountDue\":1,\"amountDue\""),
        ("\"accountData\"", "\"accountData\":[],\"accountData\""),
        ("\"currencyCode\"", "\"currency\\u0043ode\""),
        ("STATEMENT", "STATEMENT\\u0000"),
        (":", ": 1e400, \"zz\":"),
        ("\"", "\"\\ud800"),
    ] {
        if text.contains(from) {
            out.push(text.replacen(from, to, 1).into_bytes());
            // Every occurrence, too.
            out.push(text.replace(from, to).into_bytes());
        }
    }
    // Nesting around serde_json's limit of 128 levels, inside the top object and inside `data`.
    for depth in 124..=130 {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        out.push(
            text.replacen('{', &format!("{{\"deep\":{deep},"), 1)
                .into_bytes(),
        );
        out.push(
            text.replacen("\"data\" : {", &format!("\"data\" : {{\"deep\":{deep},"), 1)
                .into_bytes(),
        );
    }
    out
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [adapter, before, after] = args.as_slice() else {
        eprintln!("usage: adapter_diff <adapter> <before.so> <after.so>");
        return ExitCode::from(2);
    };
    let load = |file: &str| Plugin::load(Path::new(file)).expect("plugin loads");
    let (before, after) = (load(before), load(after));
    let host = json!({"source": "diff", "installation_key": "00".repeat(32)});
    let fixtures = repo().join("plugins").join(adapter).join("fixtures");
    // The adapter's fixture config (secrets), then the same with masked personal data (and,
    // for Arcadia, a default currency). Requests skip verification, except the signed
    // fixtures below.
    let base: Value = std::fs::read(fixtures.join("adapter-config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    let mut masked = base.clone();
    masked["personal_data"] = json!({"default": "mask", "fields": {"meter_number": "keep"}});
    if adapter == "arcadia" {
        masked["default_currency"] = json!("EUR");
    }
    let configs = [base, masked];
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&fixtures)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".raw.json"))
        .collect();
    entries.sort();
    for path in &entries {
        let raw = std::fs::read(path).expect("read");
        if let Ok(value) = serde_json::from_slice::<Value>(&raw) {
            let mut mutated = Vec::new();
            mutations(&value, &mut mutated, &value, &mut Vec::new());
            bodies.extend(mutated.iter().map(|v| v.to_string().into_bytes()));
        }
        bodies.extend(text_mutations(&raw));
        bodies.push(raw);
    }
    let corpus = repo().join("crates/fuzz/corpus").join(adapter);
    for entry in std::fs::read_dir(&corpus).into_iter().flatten().flatten() {
        let data = std::fs::read(entry.path()).expect("corpus");
        // The fuzz input's body follows the first empty line, if any.
        let body = match data.windows(2).position(|w| w == b"\n\n") {
            Some(i) => data[i + 2..].to_vec(),
            None => data.clone(),
        };
        bodies.push(body);
        bodies.push(data);
    }

    // The fixtures with signed headers, verified (skip_verification off), as given and with
    // the signature's last digit changed.
    let mut signed: Vec<WebhookRequest> = Vec::new();
    for path in &entries {
        let spec = path.to_string_lossy().replace(".raw.json", ".request.json");
        let Some(spec) = std::fs::read(&spec)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            continue;
        };
        let mut req = request(adapter, std::fs::read(path).expect("read"));
        req.skip_verification = false;
        req.received_at = Some(Timestamp {
            seconds: tributary_plugin_host::fixtures::FIXTURE_RECEIVED_AT,
            nanos: 0,
        });
        req.query = spec["query"].as_str().unwrap_or_default().to_owned();
        for (name, value) in spec["headers"].as_object().into_iter().flatten() {
            req.headers.push(Header {
                name: name.to_ascii_lowercase(),
                value: value.as_str().unwrap_or_default().to_owned(),
            });
        }
        let mut tampered = req.clone();
        for header in &mut tampered.headers {
            if let Some(last) = header.value.pop() {
                header.value.push(if last == '0' { '1' } else { '0' });
            }
        }
        signed.push(req);
        signed.push(tampered);
    }

    let mut differences = 0;
    let mut runs = 0;
    for config in &configs {
        let args = json!({"host": host, "config": config}).to_string();
        let old = AdapterInstance::create(before.clone(), args.as_bytes()).expect("before");
        let new = AdapterInstance::create(after.clone(), args.as_bytes()).expect("after");
        let requests = bodies
            .iter()
            .map(|body| request(adapter, body.clone()))
            .chain(signed.iter().cloned());
        for req in requests {
            let body = &req.body;
            let (mut a, mut b) = (old.handle(&req), new.handle(&req));
            // The adapter's own stage timings differ on every call.
            for result in [&mut a, &mut b].into_iter().flatten() {
                result.timings = None;
            }
            runs += 1;
            let same = match (&a, &b) {
                (Ok(a), Ok(b)) => a == b,
                (Err(a), Err(b)) => a.to_string() == b.to_string(),
                _ => false,
            };
            if !same {
                differences += 1;
                if differences <= 10 {
                    println!(
                        "DIFFERENT for body {:?}\n  before: {a:?}\n  after:  {b:?}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
        }
    }
    println!("{runs} runs, {differences} different");
    if differences == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
