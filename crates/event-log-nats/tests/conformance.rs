//! The backend conformance suite against NATS JetStream. Each test gets a `nats-server` of its
//! own (`-js -sd <temp dir>` on a free loopback port), so tests run in parallel and leave
//! nothing behind. Needs `nats-server` (Debian: `apt-get install nats-server`; or set
//! `NATS_SERVER` to the binary).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_event_log::conformance::{Capabilities, Store};
use tributary_event_log::{LogError, Retention};
use tributary_event_log_nats::{NatsConfig, NatsLog};

/// One JetStream server, killed when the test ends.
struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

async fn fresh() -> Nats {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("nats.log")).expect("server log");
    let child = Command::new(nats_server_bin())
        .arg("-js")
        .arg("-sd")
        .arg(dir.path().join("jetstream"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start nats-server (apt-get install nats-server, or set NATS_SERVER)");
    Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Store for Nats {
    type Log = NatsLog;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dedup_spans_dead_letters: false,
            contiguous_appends: false,
        }
    }

    async fn open(&self, retention: Retention) -> Result<NatsLog, LogError> {
        let config = NatsConfig {
            stream: "CONFORMANCE".into(),
            subject_prefix: "conformance".into(),
            retention,
            connect_timeout: Duration::from_secs(20),
            ..NatsConfig::new(vec![self.url.clone()])
        };
        // The server may still be starting JetStream: try again until it answers.
        let started = Instant::now();
        loop {
            match NatsLog::connect(config.clone()).await {
                Ok(log) => return Ok(log),
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

tributary_event_log::conformance_tests!(fresh());
