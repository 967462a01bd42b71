//! The README's "Consume the stream" examples are the example files CI runs: the Rust one
//! (crates/client/examples/consume.rs) is run here against the real server, the Python one in
//! `python.rs`; and the README shows each file's code exactly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{TOKEN, credentials, example_line, post_statements, start_server, wait_acked};
use crate::support::{heavy_turn, repo};

const RUST_EXAMPLE: &str = "crates/client/examples/consume.rs";
const PYTHON_EXAMPLE: &str = "clients/python/examples/consume.py";

/// The code of an example file: from its first line of code on (its header comment is
/// documentation, and the README says the same around the block).
fn code_of(path: &str) -> String {
    let text = std::fs::read_to_string(repo().join(path)).expect("example");
    let lines: Vec<&str> = text.lines().collect();
    let first = if path.ends_with(".py") {
        // After the module docstring.
        let closing = lines
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, l)| l.trim_end().ends_with("\"\"\""))
            .map(|(i, _)| i)
            .expect("docstring");
        closing + 1
    } else {
        lines
            .iter()
            .position(|l| !l.starts_with("//!"))
            .expect("code")
    };
    lines[first..].join("\n").trim().to_owned()
}

/// The README's fenced blocks of `language`.
fn readme_blocks(language: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match current.as_mut() {
            Some(block) if line.trim_end() == "```" => {
                blocks.push(block.join("\n").trim().to_owned());
                current = None;
            }
            Some(block) => block.push(line),
            None if line.trim_end() == format!("```{language}") => current = Some(Vec::new()),
            None => {}
        }
    }
    blocks
}

#[test]
fn the_readme_shows_the_example_files() {
    for (language, path) in [("rust", RUST_EXAMPLE), ("python", PYTHON_EXAMPLE)] {
        let code = code_of(path);
        assert!(
            readme_blocks(language).contains(&code),
            "README.md has no ```{language} block equal to the code of {path}:\n{code}"
        );
    }
}

#[tokio::test]
async fn the_rust_example_consumes_statements() {
    let example = {
        // `cargo test --workspace` built it already (with the features of this test build, so
        // this is a no-op then); after `cargo test --test it` it is built here.
        let _turn = heavy_turn().await;
        let status = Command::new(env!("CARGO"))
            .args([
                "test",
                "--quiet",
                "--workspace",
                "--no-run",
                "--example",
                "consume",
            ])
            .current_dir(repo())
            .status()
            .expect("cargo build");
        assert!(status.success());
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| repo().join("target"));
        target.join("debug/examples/consume")
    };
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "rs-example", 0..2).await;
    let mut child = Command::new(example)
        .env("TRIBUTARY_ADDRESS", format!("http://{grpc}"))
        .env("TRIBUTARY_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the example");
    let stdout = child.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(2)
            .collect::<Result<Vec<_>, _>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .expect("two lines in time")
        .expect("join")
        .expect("read");
    assert_eq!(lines, [example_line(1), example_line(2)]);
    // One second later the unfilled batch is acked.
    wait_acked(&server, "billing", 2).await;
    let _ = child.kill();
    let _ = child.wait();
}
