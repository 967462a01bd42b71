//! `tributary events tail` and `events get` through the real binary against a running server,
//! including a tail that outlives a server restart and resumes with no gap or repeat.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::adapters::{cli, cli_success};
use crate::support::{ARCADIA_AUTH, Server, arcadia_source, arcadia_webhook, plugin_dir};

/// A `tributary events tail` child whose stdout lines arrive on a channel.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["events", "tail"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start events tail");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Tail { child, lines }
    }

    /// The next line as JSON (within 20 s).
    fn next_json(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from events tail");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }

    /// Asserts no line arrives within `quiet`.
    fn assert_quiet(&self, quiet: Duration) {
        if let Ok(line) = self.lines.recv_timeout(quiet) {
            panic!("unexpected line: {line}");
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(server: &Server, id: &str) {
    let (status, answer) = server
        .post("arcadia", &arcadia_webhook(id), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn summary(event: &Value) -> (Value, Value, Value) {
    (
        event["sequence"].clone(),
        event["type"].clone(),
        event["provenance"]["providerEventId"].clone(),
    )
}

#[tokio::test]
async fn events_tail_follows_the_stream_across_a_server_restart() {
    let server = Server::start(&arcadia_source(""));
    post(&server, "whk_tail_1").await;
    let url = format!("http://{}", server.grpc);
    let tail = Tail::start(&[
        "--server",
        &url,
        "--from-sequence",
        "1",
        "--type",
        "statement.*",
        "--output",
        "json",
    ]);
    assert_eq!(
        summary(&tail.next_json()),
        (
            json!("1"),
            json!("statement.available"),
            json!("whk_tail_1")
        )
    );
    post(&server, "whk_tail_2").await;
    assert_eq!(summary(&tail.next_json()).0, json!("2"));

    // The server is killed and comes back on the same ports; the tail reconnects by itself
    // and resumes after sequence 2: no repeat, no gap.
    let server = server.restart_on_same_ports(&plugin_dir());
    post(&server, "whk_tail_3").await;
    assert_eq!(
        summary(&tail.next_json()),
        (
            json!("3"),
            json!("statement.available"),
            json!("whk_tail_3")
        )
    );
    tail.assert_quiet(Duration::from_millis(500));
}

#[tokio::test]
async fn events_get_prints_one_event_and_completions_are_generated() {
    let server = Server::start(&arcadia_source(""));
    post(&server, "whk_get_1").await;
    let url = format!("http://{}", server.grpc);
    let line = cli_success(&["events", "get", "1", "--server", &url, "--output", "json"]);
    let event: Value = serde_json::from_str(&line).expect("one JSON line");
    assert_eq!(
        summary(&event),
        (json!("1"), json!("statement.available"), json!("whk_get_1"))
    );
    let pretty = cli_success(&["events", "get", "1", "--server", &url]);
    assert_eq!(
        serde_json::from_str::<Value>(&pretty).expect("indented JSON"),
        event
    );
    assert!(pretty.lines().count() > 10, "indented over many lines");

    let missing = cli(&["events", "get", "9", "--server", &url]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "error: no event 9 yet: the log ends before it"
    );

    let bash = cli_success(&["completions", "bash"]);
    assert!(bash.contains("complete -F _tributary"), "{bash}");
    assert!(bash.contains("tail"), "subcommands are completed");
}
