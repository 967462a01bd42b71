//! A `nats-server -js` of each test's own (`-js -sd <temp dir>` on a free loopback port), so
//! tests run in parallel and leave nothing behind. Needs `nats-server` (Debian: `apt-get
//! install nats-server`; or set `NATS_SERVER` to the binary).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_event_log::LogError;
use tributary_event_log_nats::{NatsConfig, NatsLog};

/// One JetStream server, killed when the test ends.
pub struct Nats {
    child: Child,
    pub url: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub fn nats_server_bin() -> PathBuf {
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
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

pub async fn fresh() -> Nats {
    start("")
}

/// A server whose configuration file holds `config` besides its listen address and JetStream
/// store (e.g. an `authorization` or `tls` block).
pub fn start(config: &str) -> Nats {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let store = dir.path().join("jetstream");
    let file = dir.path().join("nats.conf");
    std::fs::write(
        &file,
        format!("listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {store:?} }}\n{config}\n"),
    )
    .expect("server config");
    let log = std::fs::File::create(dir.path().join("nats.log")).expect("server log");
    let child = Command::new(nats_server_bin())
        .arg("-c")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start nats-server (apt-get install nats-server, or set NATS_SERVER)");
    Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        port,
        dir,
    }
}

/// Connects, trying again while the server starts (up to 20 seconds).
pub async fn connect(config: NatsConfig) -> Result<NatsLog, LogError> {
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

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys of KV bucket `bucket` on `nats`, sorted.
pub async fn bucket_keys(nats: &Nats, bucket: &str) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    let client = async_nats::connect(nats.url.as_str())
        .await
        .expect("client");
    let bucket = async_nats::jetstream::new(client)
        .get_key_value(bucket)
        .await
        .expect("bucket");
    let mut keys: Vec<String> = bucket
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("keys");
    keys.sort();
    keys
}
