//! Test harness: starts the real `tributary` binary on free ports with its own data directory,
//! and talks to it over real HTTP and gRPC.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio_stream::StreamExt;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{Event, Filter, SubscribeRequest, subscribe_request::Start};

/// A running server. Killed on drop; its data directory survives in `data` for restarts.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub data: PathBuf,
    pub stderr: PathBuf,
    pub config: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// The directory cargo built the plugins into (next to the binary).
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tributary"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Server {
    /// Starts a server with `config_toml` (may be empty) in a fresh temp directory.
    pub fn start(config_toml: &str) -> Server {
        Server::start_with_plugins(config_toml, &plugin_dir())
    }

    /// Starts a server loading plugins from `plugins` instead of the build directory.
    pub fn start_with_plugins(config_toml: &str, plugins: &Path) -> Server {
        Server::start_full(config_toml, plugins, &[])
    }

    /// Starts a server with extra environment variables (e.g. `OTEL_*`).
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Server {
        Server::start_full(config_toml, &plugin_dir(), env)
    }

    fn start_full(config_toml: &str, plugins: &Path, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let config = dir.path().join("tributary.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let extra = ["--plugin-dir", plugins.to_str().expect("utf-8 path")];
        let mut server = Server::spawn_with_env(&data, Some(&config), dir.path(), &extra, env);
        server._dir = Some(dir);
        server
    }

    /// Starts a server on an existing data directory (a restart). `extra` flags must include
    /// `--plugin-dir` unless the default (the build directory) is wanted.
    pub fn spawn(data: &Path, config: Option<&Path>, logs: &Path, extra: &[&str]) -> Server {
        Server::spawn_with_env(data, config, logs, extra, &[])
    }

    /// Like [`Server::spawn`], with extra environment variables. `OTEL_*` variables of the
    /// test process are not passed on: only those in `env`.
    pub fn spawn_with_env(
        data: &Path,
        config: Option<&Path>,
        logs: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let stderr_path = logs.join(format!("stderr-{}.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command
            .arg("serve")
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--grpc-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("TRIBUTARY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (name, _) in std::env::vars() {
            if name.starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        if !extra.contains(&"--plugin-dir") {
            command.arg("--plugin-dir").arg(plugin_dir());
        }
        let mut child = command.spawn().expect("start tributary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("tributary ready ") => break line,
                Some(Ok(_)) => continue,
                _ => {
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    panic!("tributary exited before it was ready:\n{log}");
                }
            }
        };
        let address = |key: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|part| part.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {ready:?}"))
        };
        Server {
            http: address("http="),
            grpc: address("grpc="),
            child,
            data: data.to_path_buf(),
            stderr: stderr_path,
            config: config.map(Path::to_path_buf),
            _dir: None,
        }
    }

    /// Stops this server and starts another on the same data directory and config.
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let logs = self.stderr.parent().expect("log dir").to_path_buf();
        let mut next = Server::spawn(&self.data, self.config.as_deref(), &logs, &[]);
        next._dir = self._dir.take();
        next
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// POSTs a JSON body to `/webhooks/{source}` with extra headers; returns status and body.
    pub async fn post(&self, source: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(self.url(&format!("/webhooks/{source}")))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn client(&self) -> EventStreamClient<tonic::transport::Channel> {
        EventStreamClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("gRPC connect")
    }

    /// Subscribes and collects exactly `count` events (panics after 20 s without them).
    pub async fn collect(&self, filter: Filter, start: Option<Start>, count: usize) -> Vec<Event> {
        let mut client = self.client().await;
        let mut stream = client
            .subscribe(SubscribeRequest {
                filter: Some(filter),
                start,
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                Ok(Some(Ok(event))) => events.push(event),
                other => panic!("after {} of {count} events: {other:?}", events.len()),
            }
        }
        events
    }

    /// Asserts that no further event arrives within `wait` after the given start.
    pub async fn assert_no_more(&self, start: Option<Start>, wait: Duration) {
        let mut client = self.client().await;
        let mut stream = client
            .subscribe(SubscribeRequest {
                filter: None,
                start,
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        if let Ok(Some(item)) = tokio::time::timeout(wait, stream.next()).await {
            panic!("unexpected extra item: {item:?}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plugin's fixture: raw body and expected result JSON.
pub struct Fixture {
    pub name: String,
    pub raw: Vec<u8>,
    pub expected: Value,
    pub request: Value,
}

/// The fixtures of `plugins/<adapter>/fixtures` whose names start with one of `prefixes`.
pub fn fixtures(adapter: &str, prefixes: &[&str]) -> Vec<Fixture> {
    let dir = repo().join("plugins").join(adapter).join("fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".raw.json")
                .map(str::to_owned)
        })
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let raw = std::fs::read(dir.join(format!("{name}.raw.json"))).expect("raw");
            let expected: Value = serde_json::from_slice(
                &std::fs::read(dir.join(format!("{name}.expected.json"))).expect("expected"),
            )
            .expect("expected json");
            let request = std::fs::read(dir.join(format!("{name}.request.json")))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            Fixture {
                name,
                raw,
                expected,
                request,
            }
        })
        .collect()
}

/// The canonical JSON of an event as delivered, without the receive time (which varies).
pub fn delivered_json(event: &Event) -> Value {
    let mut json = serde_json::to_value(event).expect("event json");
    if let Some(object) = json.as_object_mut() {
        object.remove("receivedAt");
    }
    json
}

/// What the server should deliver for an adapter's expected event: the fixture event plus the
/// envelope the host completes.
pub fn expected_delivery(mut event: Value, source: &str, sequence: u64, adapter: &str) -> Value {
    let object = event.as_object_mut().expect("event object");
    let provenance = object
        .entry("provenance")
        .or_insert_with(|| serde_json::json!({}));
    let provider_event_id = provenance["providerEventId"]
        .as_str()
        .expect("provider id")
        .to_owned();
    provenance["adapter"] = Value::from(adapter);
    provenance["adapterVersion"] = Value::from(env!("CARGO_PKG_VERSION"));
    object.insert(
        "id".into(),
        Value::from(format!("{source}:{provider_event_id}")),
    );
    object.insert("source".into(), Value::from(source));
    object.insert(
        "datacontenttype".into(),
        Value::from("application/protobuf"),
    );
    object.insert("sequence".into(), Value::from(sequence.to_string()));
    event
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("wait")
    }

    /// Starts a new server process on this one's data directory and config, after the old
    /// process has died (killed or terminated).
    pub fn respawn(&mut self) {
        let logs = self.stderr.parent().expect("log dir").to_path_buf();
        let mut next = Server::spawn(&self.data, self.config.as_deref(), &logs, &[]);
        std::mem::swap(&mut self.child, &mut next.child);
        self.http = next.http;
        self.grpc = next.grpc;
        // `next` now holds the dead child; dropping it is harmless.
    }

    /// Every event after `after`, read until the stream has been idle for `idle`.
    pub async fn collect_all(&self, after: u64, idle: Duration) -> Vec<Event> {
        let mut client = self.client().await;
        let mut stream = client
            .subscribe(SubscribeRequest {
                start: Some(Start::AfterSequence(after)),
                ..Default::default()
            })
            .await
            .expect("subscribe")
            .into_inner();
        let mut events = Vec::new();
        while let Ok(Some(item)) = tokio::time::timeout(idle, stream.next()).await {
            events.push(item.expect("event"));
        }
        events
    }

    /// Resident set size of the server process now, and its peak, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// An Arcadia statement webhook with its own `whk_` id, so it is not a duplicate.
pub fn arcadia_webhook(id: &str) -> Vec<u8> {
    let raw = std::fs::read(
        repo().join("plugins/arcadia/fixtures/seed-statement-new-data-available.raw.json"),
    )
    .expect("seed");
    let mut json: Value = serde_json::from_slice(&raw).expect("json");
    json["id"] = Value::from(id);
    serde_json::to_vec(&json).expect("encode")
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream: real nats-server processes on free loopback ports, each with its own store.

/// The nats-server executable: `$NATS_SERVER`, else `nats-server` on PATH, else Debian's path.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` on 127.0.0.1:`port` over plain HTTP/1.0: status and body (None when refused).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// One nats-server with JetStream (a single node, or a member of a [`NatsCluster`]). Killed on
/// drop; its store survives a [`Nats::kill`] for [`Nats::restart`].
pub struct Nats {
    child: Option<Child>,
    pub name: String,
    pub port: u16,
    pub monitor: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// A single JetStream server, ready to use.
    pub fn start() -> Nats {
        let mut node = Nats::configure("n1", None);
        node.spawn();
        node.wait_healthy(Duration::from_secs(20));
        node
    }

    /// Writes the config of a node; `cluster` is (own route port, every route port).
    fn configure(name: &str, cluster: Option<(u16, &[u16])>) -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let monitor = free_port();
        let store = dir.path().join("jetstream");
        let mut text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
             max_payload: 8MB\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n",
            store.display()
        );
        if let Some((own, all)) = cluster {
            let routes: Vec<String> = all
                .iter()
                .filter(|p| **p != own)
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  name: tributary-test\n  listen: 127.0.0.1:{own}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        let config = dir.path().join("nats.conf");
        std::fs::write(&config, text).expect("write nats config");
        Nats {
            child: None,
            name: name.to_owned(),
            port,
            monitor,
            log: dir.path().join("nats.log"),
            config,
            _dir: dir,
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log");
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (apt-get install nats-server)");
        self.child = Some(child);
    }

    /// Waits until `/healthz` answers 200 (JetStream ready; in a cluster, a meta leader known).
    pub fn wait_healthy(&self, within: Duration) {
        let started = std::time::Instant::now();
        loop {
            if let Some((200, _)) = http_get(self.monitor, "/healthz") {
                return;
            }
            if started.elapsed() > within {
                panic!(
                    "nats-server {} not healthy after {within:?}:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL; its store stays for [`Nats::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports, config and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The stream's entry in `/jsz` as this node sees it (`null` when absent).
    pub fn jsz_stream(&self, stream: &str) -> Value {
        let Some((200, body)) = http_get(self.monitor, "/jsz?accounts=true&streams=true") else {
            return Value::Null;
        };
        let jsz: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| {
                account["stream_detail"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|s| s["name"] == stream)
            .unwrap_or(Value::Null)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three nats-server processes on loopback joined by cluster routes.
pub struct NatsCluster {
    pub nodes: Vec<Nats>,
}

impl NatsCluster {
    pub fn start() -> NatsCluster {
        let routes = [free_port(), free_port(), free_port()];
        let mut nodes: Vec<Nats> = (0..3)
            .map(|i| Nats::configure(&format!("n{}", i + 1), Some((routes[i], &routes))))
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_healthy(Duration::from_secs(30));
        }
        NatsCluster { nodes }
    }

    /// Every node's URL, comma-separated (the form of `log.backend`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(Nats::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Which event log a test's server uses.
pub enum Backend {
    /// The default redb file in the data directory.
    Embedded,
    /// A single JetStream server of the test's own.
    Nats(Nats),
}

impl Backend {
    /// A fresh single-node JetStream for this test.
    pub fn nats() -> Backend {
        Backend::Nats(Nats::start())
    }

    /// `base` (a TOML config) with this backend selected.
    pub fn config(&self, base: &str) -> String {
        match self {
            Backend::Embedded => base.to_owned(),
            Backend::Nats(nats) => nats_config(base, &nats.url()),
        }
    }
}

/// `base` with `log.backend` set to `urls` (appended: `[log]` may follow `[log.retention]`).
pub fn nats_config(base: &str, urls: &str) -> String {
    format!("{base}\n[log]\nbackend = \"{urls}\"\n")
}

/// Asserts the log holds every acknowledged webhook exactly once, with sequences 1..=n and no
/// gap: what "a 2xx means stored" promises after crashes and failovers.
pub fn assert_exactly_once(events: &[Event], acknowledged: &[String]) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1, "no gap in sequences");
        let id = event
            .provenance
            .as_ref()
            .expect("provenance")
            .provider_event_id
            .clone();
        *seen.entry(id).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a webhook was stored twice");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}
