//! The real `tributary` binary on free ports with its own data directory, talked to over real
//! HTTP and gRPC.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio_stream::StreamExt;
use tonic::Streaming;
use tonic::transport::Channel;
use tributary::proto::admin_client::AdminClient;
use tributary::proto::event_stream_client::EventStreamClient;
use tributary_model::v1::{
    DeadLetter, Event, Filter, ListDeadLettersRequest, SubscribeRequest, subscribe_request::Start,
};

use super::plugin_dir;

/// How long [`Server::assert_no_more`] waits for an event that must not come.
const QUIET: Duration = Duration::from_millis(300);

/// `tributary serve` on free loopback ports with `data` as its data directory, as every test
/// runs it: `RUST_LOG=info`, and neither `TRIBUTARY_CONFIG` nor any `OTEL_*` variable of the
/// test process passed on. Without `--plugin-dir` it loads no plugins.
pub fn serve_command(data: &Path, config: Option<&Path>) -> Command {
    serve_command_on(data, config, "127.0.0.1:0", "127.0.0.1:0")
}

/// [`serve_command`] listening on the given addresses.
fn serve_command_on(data: &Path, config: Option<&Path>, http: &str, grpc: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .arg("serve")
        .args(["--http-listen", http, "--grpc-listen", grpc])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .env_remove("TRIBUTARY_CONFIG");
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
}

/// A running server. Killed on drop; its data directory survives in `data` for restarts.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// The operators' HTTP listener, when `[ops] http_listen` is configured.
    pub ops_http: Option<SocketAddr>,
    pub data: PathBuf,
    pub stderr: PathBuf,
    pub config: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
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
        Server::spawn_on(
            data,
            config,
            logs,
            extra,
            env,
            ("127.0.0.1:0", "127.0.0.1:0"),
        )
    }

    fn spawn_on(
        data: &Path,
        config: Option<&Path>,
        logs: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        (http, grpc): (&str, &str),
    ) -> Server {
        let stderr_path = logs.join(format!("stderr-{}.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .expect("stderr file");
        let mut command = serve_command_on(data, config, http, grpc);
        command
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
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
            ops_http: ready
                .split_whitespace()
                .find_map(|part| part.strip_prefix("ops_http="))
                .and_then(|a| a.parse().ok()),
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

    /// Stops this server (SIGKILL) and starts another on the same data directory, config,
    /// plugin directory and ports, so clients that keep the addresses reconnect to it.
    pub fn restart_on_same_ports(mut self, plugins: &Path) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let logs = self.stderr.parent().expect("log dir").to_path_buf();
        let (http, grpc) = (self.http.to_string(), self.grpc.to_string());
        let extra = ["--plugin-dir", plugins.to_str().expect("utf-8 path")];
        let mut next = Server::spawn_on(
            &self.data,
            self.config.as_deref(),
            &logs,
            &extra,
            &[],
            (&http, &grpc),
        );
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

    /// `GET path` over HTTP: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(self.url(path)).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// A plain-text channel to the gRPC port, for any service's client.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("gRPC connect")
    }

    pub async fn client(&self) -> EventStreamClient<Channel> {
        EventStreamClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("gRPC connect")
    }

    /// A client of the Admin service (consumers, dead letters).
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("admin")
    }

    /// The dead letters the Admin service lists for `request`.
    pub async fn dead_letters(&self, request: ListDeadLettersRequest) -> Vec<DeadLetter> {
        self.admin()
            .await
            .list_dead_letters(request)
            .await
            .expect("list")
            .into_inner()
            .dead_letters
    }

    /// Subscribes over a client of its own; the stream keeps the connection.
    pub async fn subscribe(&self, request: SubscribeRequest) -> Streaming<Event> {
        self.client()
            .await
            .subscribe(request)
            .await
            .expect("subscribe")
            .into_inner()
    }

    /// Subscribes and collects exactly `count` events (panics after 20 s without them).
    pub async fn collect(&self, filter: Filter, start: Option<Start>, count: usize) -> Vec<Event> {
        let mut stream = self
            .subscribe(SubscribeRequest {
                filter: Some(filter),
                start,
                ..Default::default()
            })
            .await;
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                Ok(Some(Ok(event))) => events.push(event),
                other => panic!("after {} of {count} events: {other:?}", events.len()),
            }
        }
        events
    }

    /// Asserts that no further event arrives within 300 ms after the given start.
    pub async fn assert_no_more(&self, start: Option<Start>) {
        let mut stream = self
            .subscribe(SubscribeRequest {
                filter: None,
                start,
                ..Default::default()
            })
            .await;
        if let Ok(Some(item)) = tokio::time::timeout(QUIET, stream.next()).await {
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
        let mut stream = self
            .subscribe(SubscribeRequest {
                start: Some(Start::AfterSequence(after)),
                ..Default::default()
            })
            .await;
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
