//! The Python package (clients/python) against the real server, through `driver.py` in the venv
//! that `.ci/python-venv` prepares (`target/py-venv`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::{TOKEN, credentials, example_line, post_statements, restart, start_server, wait_acked};
use crate::support::collector::{grpc_collector, otel_env};
use crate::support::repo;

/// The venv's interpreter; the tests cannot run without it (also the CloudEvents client's).
pub(crate) fn python() -> PathBuf {
    let python = repo().join("target/py-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./.ci/python-venv (./.ci/test does) to create the Python venv",
        python.display()
    );
    python
}

/// A Python process whose stdout lines arrive on a channel; killed on drop.
pub(super) struct Script {
    child: Child,
    lines: Receiver<String>,
}

impl Script {
    pub(super) fn start(script: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Script {
        let mut child = Command::new(python())
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Script { child, lines }
    }

    /// The next line printed (panics after 30 s or when the script ended).
    pub(super) fn line(&self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line from the script within 30 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the script ended"),
        }
    }

    /// The next `count` lines.
    pub(super) fn lines(&self, count: usize) -> Vec<String> {
        (0..count).map(|_| self.line()).collect()
    }

    /// Waits for the script to exit; its exit code.
    fn exit_code(mut self) -> Option<i32> {
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver(args: &[&str]) -> Script {
    Script::start(repo().join("tests/it/clients/driver.py"), args, &[])
}

fn events(sequences: std::ops::RangeInclusive<u64>) -> Vec<String> {
    sequences
        .map(|s| format!("event {s} statement.available -"))
        .collect()
}

#[tokio::test]
async fn python_stream_survives_a_server_restart_with_no_gap_and_no_duplicate() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "py-stream", 0..3).await;
    let address = format!("http://{grpc}");
    let script = driver(&["--address", &address, "--token", TOKEN, "--count", "5"]);
    assert_eq!(script.lines(3), events(1..=3));

    let server = restart(server);
    post_statements(&server, "py-stream", 3..5).await;
    assert_eq!(
        script.lines(3),
        [events(4..=5), vec!["done".to_owned()]].concat()
    );
    assert_eq!(script.exit_code(), Some(0));
}

#[tokio::test]
async fn python_durable_consumer_skips_redeliveries_and_resumes_after_a_restart() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "py-durable", 0..3).await;
    let address = format!("http://{grpc}");
    let consume = |count: &str| {
        driver(&[
            "--address",
            &address,
            "--token",
            TOKEN,
            "--consumer",
            "billing-py",
            "--count",
            count,
            "--ack-events",
            "3",
        ])
    };
    let script = consume("5");
    assert_eq!(script.lines(3), events(1..=3));
    // A batch is 3 events: 3 is acked; 4 then waits for the next batch.
    wait_acked(&server, "billing-py", 3).await;
    post_statements(&server, "py-durable", 3..4).await;
    assert_eq!(script.lines(1), events(4..=4));
    // The server restarts and resumes after 3: 4 comes again and is not handed out twice.
    let server = restart(server);
    post_statements(&server, "py-durable", 4..5).await;
    assert_eq!(
        script.lines(2),
        [events(5..=5), vec!["done".to_owned()]].concat()
    );
    assert_eq!(script.exit_code(), Some(0));
    wait_acked(&server, "billing-py", 5).await;

    // A new process resumes after the last ack.
    post_statements(&server, "py-durable", 5..6).await;
    let script = consume("1");
    assert_eq!(
        script.lines(2),
        [events(6..=6), vec!["done".to_owned()]].concat()
    );
    wait_acked(&server, "billing-py", 6).await;
}

#[tokio::test]
async fn python_tokens_are_sent_and_refusals_raise() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "py-auth", 0..1).await;
    let address = format!("http://{grpc}");
    let script = driver(&["--address", &address, "--count", "1"]);
    assert_eq!(script.line(), "error UNAUTHENTICATED");
    assert_eq!(script.exit_code(), Some(2));
    let script = driver(&[
        "--address",
        &address,
        "--token",
        "wrong-token-0123456789",
        "--count",
        "1",
    ]);
    assert_eq!(script.line(), "error UNAUTHENTICATED");
    let args = [
        "--address",
        &address,
        "--token",
        TOKEN,
        "--consumer",
        "lending",
        "--count",
        "1",
    ];
    let script = driver(&args);
    assert_eq!(script.line(), "error PERMISSION_DENIED");
    let script = driver(&["--address", &address, "--token", TOKEN, "--count", "1"]);
    assert_eq!(
        script.lines(2),
        [events(1..=1), vec!["done".to_owned()]].concat()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_consumers_span_is_a_child_of_the_delivery_and_reflection_works() {
    let (collector, endpoint) = grpc_collector().await;
    let (server, grpc) = start_server("", &otel_env(&endpoint, "grpc"));
    post_statements(&server, "py-trace", 0..1).await;
    let address = format!("http://{grpc}");
    let args = [
        "--address",
        &address,
        "--count",
        "1",
        "--trace-endpoint",
        &endpoint,
        "--reflection",
    ];
    let script = driver(&args);
    // grpcio-reflection speaks v1alpha only.
    let services = script.line();
    for service in ["grpc.health.v1.Health", "tributary.v1.EventStream"] {
        assert!(services.split(' ').any(|s| s == service), "{services}");
    }
    let line = script.line();
    let trace_id = line
        .strip_prefix("event 1 statement.available ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert_eq!(script.line(), "done");

    let spans = collector.wait_for(&trace_id, 6).await;
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} in {spans:#?}"))
    };
    let receive = named("POST /webhooks/{source}");
    let deliver = named("tributary.v1.EventStream/Subscribe");
    let process = named("process statement.available");
    assert!(receive.parent_span_id.is_empty());
    assert_eq!(process.parent_span_id, deliver.span_id);
    assert_eq!(process.kind, SpanKind::Consumer as i32);
}

#[tokio::test]
async fn the_python_example_consumes_statements() {
    let (server, grpc) = start_server(&credentials(), &[]);
    post_statements(&server, "py-example", 0..2).await;
    let address = format!("http://{grpc}");
    let script = Script::start(
        repo().join("clients/python/examples/consume.py"),
        &[],
        &[("TRIBUTARY_ADDRESS", &address), ("TRIBUTARY_TOKEN", TOKEN)],
    );
    assert_eq!(script.lines(2), [example_line(1), example_line(2)]);
    wait_acked(&server, "billing", 2).await;
}
