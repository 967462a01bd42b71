//! Same-run A/B timing of two builds of one adapter through the host (as `dylib` in the
//! criterion benches: request encode, FFI call, result decode), for a busy machine: batches of
//! calls alternate between the two libraries, and the minimum and median batch per call are
//! reported, so load from other processes hits both sides alike.
//!
//! ```sh
//! cargo run --release -p tributary-bench --example adapter_ab -- arcadia \
//!     /tmp/before/libtributary_adapter_arcadia.so target/release/libtributary_adapter_arcadia.so \
//!     seed-statement-new-data-available seed-credential-status-change-success
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use tributary_plugin_host::{AdapterInstance, Plugin};
use tributary_plugin_sdk::model::v1::{Header, WebhookRequest};
use tributary_plugin_sdk::model::well_known::Timestamp;

const BATCH: u32 = 200;
const ROUNDS: usize = 300;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn per_call(batch: Duration) -> f64 {
    batch.as_secs_f64() * 1e6 / f64::from(BATCH)
}

fn stats(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[0], samples[samples.len() / 2])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [adapter, before, after, fixtures @ ..] = args.as_slice() else {
        eprintln!("usage: adapter_ab <adapter> <before.so> <after.so> <fixture>...");
        std::process::exit(2);
    };
    let dir = repo().join("plugins").join(adapter).join("fixtures");
    let config: serde_json::Value = std::fs::read(dir.join("adapter-config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    let args = json!({"host": {"source": "ab", "installation_key": "00".repeat(32)},
                      "config": config})
    .to_string();
    let instance = |file: &str| {
        let plugin = Plugin::load(Path::new(file)).expect("plugin loads");
        AdapterInstance::create(plugin, args.as_bytes()).expect("instance")
    };
    let (a, b) = (instance(before), instance(after));
    println!(
        "{:<45} {:>18} {:>18}",
        "fixture (µs per call)", "before min / med", "after min / med"
    );
    for fixture in fixtures {
        let body = std::fs::read(dir.join(format!("{fixture}.raw.json"))).expect("fixture");
        // Signed fixtures carry their headers (verified as the benches do, at the fixtures'
        // receive time).
        let mut headers = vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }];
        let spec: serde_json::Value = std::fs::read(dir.join(format!("{fixture}.request.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (name, value) in spec["headers"].as_object().into_iter().flatten() {
            headers.push(Header {
                name: name.to_ascii_lowercase(),
                value: value.as_str().unwrap_or_default().to_owned(),
            });
        }
        let request = WebhookRequest {
            source: adapter.clone(),
            method: "POST".into(),
            path: format!("/webhooks/{adapter}"),
            headers,
            body,
            received_at: Some(Timestamp {
                seconds: tributary_plugin_host::fixtures::FIXTURE_RECEIVED_AT,
                nanos: 0,
            }),
            ..Default::default()
        };
        // The adapter's own stage timings differ on every call.
        let outcome = |instance: &AdapterInstance| {
            let mut result = instance.handle(&request).expect("handled");
            result.timings = None;
            result
        };
        assert_eq!(outcome(&a), outcome(&b), "{fixture}: the two builds differ");
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (instance, times) in [(&a, &mut ta), (&b, &mut tb)] {
                let start = Instant::now();
                for _ in 0..BATCH {
                    let _ = black_box(instance.handle(black_box(&request)));
                }
                times.push(per_call(start.elapsed()));
            }
        }
        let ((amin, amed), (bmin, bmed)) = (stats(ta), stats(tb));
        println!("{fixture:<45} {amin:>8.2} / {amed:>7.2} {bmin:>8.2} / {bmed:>7.2}");
    }
}
