//! A small driver for profiling the plugin boundary (`perf record`, `valgrind --tool=callgrind`):
//! runs one fixture of the arcadia adapter `N` times in one mode and nothing else, so
//! instruction counts of two runs subtract to the cost of one part.
//!
//! Modes: `in-process` (the adapter called directly, as the benches' in-process side),
//! `dylib` (through the library with the host, the result decoded whole, as the service
//! called it up to session 5), `none` (set-up only: the baseline to subtract). Ending at the
//! bytes the log stores (session 6): `in-process-stored` (the adapter's events completed and
//! encoded), `dylib-decoded-stored` (the result decoded whole, the events completed and
//! encoded again: the service's path up to session 5) and `dylib-stored` (the plugin's
//! encoded events read for their head, the host's fields appended: the service's path now).
//!
//! ```sh
//! cargo build --release --workspace
//! cargo build --release -p tributary-bench --example boundary_profile
//! valgrind --tool=callgrind target/release/examples/boundary_profile dylib 2000 \
//!     target/release/libtributary_adapter_arcadia.so seed-statement-new-data-available
//! ```

#[path = "../benches/common/stored.rs"]
mod stored;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tributary_plugin_host::{AdapterInstance, Plugin};
use tributary_plugin_sdk::model::v1::{Header, WebhookRequest};
use tributary_plugin_sdk::model::well_known::Timestamp;
use tributary_plugin_sdk::{Adapter, HostContext, Request};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, count, library, fixture] = args.as_slice() else {
        eprintln!("usage: boundary_profile <in-process|dylib|none> <N> <library.so> <fixture>");
        std::process::exit(2);
    };
    let count: u32 = count.parse().expect("N is a number");
    let dir = repo().join("plugins/arcadia/fixtures");
    let config: Value = std::fs::read(dir.join("adapter-config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    let body = std::fs::read(dir.join(format!("{fixture}.raw.json"))).expect("fixture");
    let request = WebhookRequest {
        source: "arcadia".into(),
        method: "POST".into(),
        path: "/webhooks/arcadia".into(),
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body,
        received_at: Some(Timestamp {
            seconds: tributary_plugin_host::fixtures::FIXTURE_RECEIVED_AT,
            nanos: 0,
        }),
        ..Default::default()
    };
    let host = HostContext {
        source: "profile".into(),
        installation_key: "00".repeat(32),
    };
    let adapter = tributary_adapter_arcadia::Arcadia::new(
        serde_json::from_value(config.clone()).expect("config"),
        &host,
    )
    .expect("adapter");
    let create_args =
        json!({"host": {"source": "profile", "installation_key": "00".repeat(32)}, "config": config})
            .to_string();
    let plugin = Plugin::load(Path::new(library)).expect("plugin loads");
    let dynamic = AdapterInstance::create(plugin, create_args.as_bytes()).expect("instance");
    // Warm both paths once, whatever the mode.
    let _ = tributary_plugin_sdk::ffi::run_adapter(&adapter, &Request::new(&request));
    let _ = dynamic.handle(&request).expect("handle");
    // And both stored forms, checked to be the same event.
    stored::assert_same(
        &stored::encode_decoded(tributary_plugin_sdk::ffi::run_adapter(
            &adapter,
            &Request::new(&request),
        )),
        &stored::encode_pending(dynamic.handle_events_encoded(&request).expect("handle")),
        fixture,
    );
    match mode.as_str() {
        "in-process" => {
            for _ in 0..count {
                black_box(tributary_plugin_sdk::ffi::run_adapter(
                    &adapter,
                    &Request::new(black_box(&request)),
                ));
            }
        }
        "dylib" => {
            for _ in 0..count {
                let _ = black_box(dynamic.handle(black_box(&request)));
            }
        }
        "in-process-stored" => {
            for _ in 0..count {
                black_box(stored::encode_decoded(
                    tributary_plugin_sdk::ffi::run_adapter(
                        &adapter,
                        &Request::new(black_box(&request)),
                    ),
                ));
            }
        }
        "dylib-decoded-stored" => {
            for _ in 0..count {
                let _ = black_box(
                    dynamic
                        .handle(black_box(&request))
                        .map(|result| result.outcome.map(stored::encode_decoded)),
                );
            }
        }
        "dylib-stored" => {
            for _ in 0..count {
                let _ = black_box(
                    dynamic
                        .handle_events_encoded(black_box(&request))
                        .map(stored::encode_pending),
                );
            }
        }
        "none" => {}
        other => panic!("unknown mode {other}"),
    }
}
