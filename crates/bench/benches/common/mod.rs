//! Shared by the normalize benches: one bench binary per adapter, because every adapter rlib
//! exports the same `#[no_mangle]` plugin entry points and two cannot link into one binary.
//!
//! Both sides run the same adapter code (verify, then normalize) compiled with the same
//! profile: in-process calls `tributary_plugin_sdk::ffi::run_adapter` on an instance built with
//! `Adapter::new`; the dynamic side loads `lib<adapter>.so` with `tributary_plugin_host`, as the
//! service does (protobuf encode of the request, FFI call under `catch_unwind`, protobuf decode
//! of the result, buffer free). `verify` and `normalize` time the two in-process stages on
//! their own.
//!
//! `in-process+stored`, `dylib+decoded+stored` (the service's path up to session 5) and
//! `dylib+stored` (its path now) end at the bytes the log stores instead (session 6): see
//! [`stored`].

pub mod stored;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use serde_json::{Value, json};
use tributary_plugin_host::{AdapterInstance, Plugin};
use tributary_plugin_sdk::model::v1::adapter_result::Outcome;
use tributary_plugin_sdk::model::v1::{Header, WebhookRequest};
use tributary_plugin_sdk::model::well_known::Timestamp;
use tributary_plugin_sdk::{Adapter, HostContext, Request};

/// Modest runs: the machine is small and shared.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

/// One payload kind of one adapter.
pub struct Case {
    /// Benchmark name, e.g. "arcadia/statement".
    pub name: &'static str,
    pub adapter: &'static str,
    pub fixture: &'static str,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The fixture's body and signed headers, and the adapter's fixture config (secrets).
fn request_and_config(case: &Case) -> (WebhookRequest, Value) {
    let dir = repo().join("plugins").join(case.adapter).join("fixtures");
    let body = std::fs::read(dir.join(format!("{}.raw.json", case.fixture)))
        .unwrap_or_else(|e| panic!("fixture {}: {e}", case.fixture));
    let mut headers = vec![Header {
        name: "content-type".into(),
        value: "application/json".into(),
    }];
    if let Some(Value::Object(map)) =
        read_json(&dir.join(format!("{}.request.json", case.fixture))).map(|r| r["headers"].clone())
    {
        for (name, value) in map {
            headers.push(Header {
                name: name.to_ascii_lowercase(),
                value: value.as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    let config = read_json(&dir.join("adapter-config.json")).unwrap_or_else(|| json!({}));
    let request = WebhookRequest {
        source: case.adapter.into(),
        method: "POST".into(),
        path: format!("/webhooks/{}", case.adapter),
        query: String::new(),
        headers,
        body,
        // The fixtures' receive time: Klavi checks its signed timestamp header against it.
        received_at: Some(Timestamp {
            seconds: tributary_plugin_host::fixtures::FIXTURE_RECEIVED_AT,
            nanos: 0,
        }),
        skip_verification: false,
        ..Default::default()
    };
    (request, config)
}

fn host() -> HostContext {
    HostContext {
        source: "bench".into(),
        installation_key: "00".repeat(32),
    }
}

fn instance<A: Adapter>(config: &Value) -> A {
    let config: A::Config =
        serde_json::from_value(config.clone()).unwrap_or_else(|e| panic!("config: {e}"));
    A::new(config, &host()).unwrap_or_else(|e| panic!("adapter: {e}"))
}

/// The plugin library as `cargo build --release --workspace` leaves it.
fn plugin(adapter: &str) -> std::sync::Arc<Plugin> {
    let crate_name = format!("tributary-adapter-{adapter}");
    let file = tributary_plugin_host::fixtures::built_library(&crate_name);
    Plugin::load(&file).unwrap_or_else(|e| {
        panic!(
            "cannot load {} ({e}); run `cargo build --release --workspace` first",
            file.display()
        )
    })
}

fn assert_one_event(outcome: &Outcome, name: &str) {
    match outcome {
        Outcome::Normalized(n) if n.events.len() == 1 => {}
        other => panic!("{name}: expected one event, got {other:?}"),
    }
}

/// Benchmarks one case in-process and through the dynamic library.
pub fn bench_case<A: Adapter>(c: &mut Criterion, case: &Case) {
    let (request, config) = request_and_config(case);
    let adapter: A = instance(&config);
    let outcome = tributary_plugin_sdk::ffi::run_adapter(&adapter, &Request::new(&request));
    assert_one_event(&outcome, case.name);

    let args =
        json!({"host": {"source": "bench", "installation_key": "00".repeat(32)}, "config": config});
    let dynamic = AdapterInstance::create(plugin(case.adapter), args.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let result = dynamic
        .handle(&request)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_one_event(result.outcome.as_ref().expect("an outcome"), case.name);

    let mut group = c.benchmark_group(case.name);
    group.bench_function("in-process", |b| {
        b.iter(|| {
            tributary_plugin_sdk::ffi::run_adapter(&adapter, &Request::new(black_box(&request)))
        })
    });
    // The two stages of `in-process` on their own: the signature check (HMAC of the body
    // where the fixture config has a secret) and the parse + mapping.
    group.bench_function("verify", |b| {
        b.iter(|| adapter.verify(&Request::new(black_box(&request))))
    });
    group.bench_function("normalize", |b| {
        b.iter(|| adapter.normalize(&Request::new(black_box(&request))))
    });
    group.bench_function("dylib", |b| b.iter(|| dynamic.handle(black_box(&request))));

    let decoded = stored::encode_decoded(tributary_plugin_sdk::ffi::run_adapter(
        &adapter,
        &Request::new(&request),
    ));
    let encoded = dynamic
        .handle_events_encoded(&request)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    stored::assert_same(&decoded, &stored::encode_pending(encoded), case.name);
    group.bench_function("in-process+stored", |b| {
        b.iter(|| {
            stored::encode_decoded(tributary_plugin_sdk::ffi::run_adapter(
                &adapter,
                &Request::new(black_box(&request)),
            ))
        })
    });
    group.bench_function("dylib+decoded+stored", |b| {
        b.iter(|| {
            dynamic
                .handle(black_box(&request))
                .map(|result| result.outcome.map(stored::encode_decoded))
        })
    });
    group.bench_function("dylib+stored", |b| {
        b.iter(|| {
            dynamic
                .handle_events_encoded(black_box(&request))
                .map(stored::encode_pending)
        })
    });
    group.finish();
}
