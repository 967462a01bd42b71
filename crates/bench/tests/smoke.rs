//! Keeps the load tool from rotting: its `--smoke` mode drives the real `tributary` binary
//! (a few hundred signed webhooks from all three providers, one gRPC subscriber), over plain
//! HTTP and over HTTPS (`--tls`), and fails unless every accepted webhook was delivered exactly
//! once.

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
    let output = Command::new(&bench)
        .arg("--smoke")
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
}
