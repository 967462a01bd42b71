//! docs/writing-an-adapter.md cannot rot: its `sh` blocks (scaffold -> build -> fixture runner ->
//! the crate's own test) run here, in order, in a fresh directory outside the repository. The
//! build shares the workspace's target directory so compiled dependencies are reused.

use std::path::Path;
use std::process::Command;

use crate::support;

/// The tutorial's `sh` blocks, in order.
fn tutorial_commands(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_tutorial_scaffolds_builds_and_passes_its_fixtures() {
    // A cargo build of a new crate: the cores are its for minutes.
    let _turn = support::heavy_turn_blocking();
    let doc = std::fs::read_to_string(support::repo().join("docs/writing-an-adapter.md"))
        .expect("tutorial");
    let commands = tutorial_commands(&doc);
    assert!(commands.len() >= 2, "the tutorial has its sh blocks");
    let script = format!("set -euxo pipefail\n{}", commands.concat());
    assert!(script.contains("tributary adapter new"));
    assert!(script.contains("tributary adapter test"));

    let binary = Path::new(env!("CARGO_BIN_EXE_tributary"));
    let bin_dir = binary.parent().expect("bin dir");
    let target_dir = bin_dir.parent().expect("target dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = tempfile::tempdir().expect("tempdir");
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tutorial failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok       consent-granted"), "{stdout}");
    assert!(stdout.contains("1 fixtures, 0 failed"), "{stdout}");
    assert!(stdout.contains("test golden_fixtures ... ok"), "{stdout}");
}
