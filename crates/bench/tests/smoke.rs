//! Keeps the load tool from rotting: its `--smoke` mode drives the real `tributary` binary
//! (a few hundred signed webhooks from all three providers, one gRPC subscriber), over plain
//! HTTP and over HTTPS (`--tls`), and fails unless every accepted webhook was delivered exactly
//! once. It also writes each scenario's latency per webhook (`--latency-dir`).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn smoke_mode_delivers_every_accepted_webhook_exactly_once() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_tributary-bench"));
    // `cargo build --workspace` (the first step of ./.ci/test) puts the service and its
    // plugins in the same target directory.
    let tributary = bench.with_file_name("tributary");
    assert!(
        tributary.exists(),
        "no {}: run `cargo build --workspace` before the tests (./.ci/test does)",
        tributary.display()
    );
    let latencies = tempfile::tempdir().expect("temp dir");
    let output = Command::new(&bench)
        .arg("--smoke")
        .arg("--latency-dir")
        .arg(latencies.path())
        .arg("--tls")
        .arg("--tributary")
        .arg(&tributary)
        .output()
        .expect("run tributary-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for label in ["smoke", "smoke (TLS)"] {
        assert!(
            stdout.contains(&format!(
                "{label}: sent 300, accepted 300, errors 0, delivered 300, missing 0"
            )),
            "{stdout}"
        );
    }
    for scenario in [
        "smoke--durable--1-sub--max-rate",
        "smoke--TLS---durable--1-sub--max-rate",
    ] {
        let file = latencies.path().join(format!("{scenario}.latency.csv"));
        let csv = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .is_some_and(|l| l.starts_with("# start, µs since the Unix epoch: ")),
            "{csv}"
        );
        assert_eq!(lines.next(), Some("request,intended_us,http_us"));
        let rows: Vec<Vec<u64>> = lines
            .map(|line| {
                line.split(',')
                    .map(|v| v.parse().expect("a number"))
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), 300, "one line per webhook");
        for (n, row) in rows.iter().enumerate() {
            assert_eq!(row[0], n as u64);
            assert!(row[2] > 0, "webhook {n} has no latency: {row:?}");
        }
    }
}
