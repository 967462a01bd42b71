//! NATS JetStream for tests: real nats-server processes on free loopback ports, each with its
//! own store in a temporary directory, killed on drop. Needs `nats-server` (Debian: `apt-get
//! install nats-server`; or set `NATS_SERVER` to the binary).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::free_port;

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
    /// Its `server_name` (`n1`, `n2`...).
    pub name: String,
    /// The client port.
    pub port: u16,
    /// The monitoring (HTTP) port: `/healthz`, `/jsz`.
    pub monitor: u16,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log file (stderr), shown when it does not get healthy.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// A single JetStream server, ready to use.
    pub fn start() -> Nats {
        Nats::start_with("")
    }

    /// A single JetStream server whose configuration also holds `extra` (e.g. an
    /// `authorization` or `tls` block), ready to use.
    pub fn start_with(extra: &str) -> Nats {
        with_free_ports(|| {
            let mut node = Nats::configure("n1", None, extra);
            node.spawn();
            node.await_healthy(Duration::from_secs(20))?;
            Ok(node)
        })
    }

    /// Writes the config of a node; `cluster` is (own route port, every route port), `extra`
    /// is appended as given.
    fn configure(name: &str, cluster: Option<(u16, &[u16])>, extra: &str) -> Nats {
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
        text.push_str(extra);
        text.push('\n');
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
    pub fn wait_healthy(&mut self, within: Duration) {
        if let Err(why) = self.await_healthy(within) {
            panic!(
                "nats-server {} not healthy after {within:?}:\n{}",
                self.name,
                why.log()
            );
        }
    }

    /// [`Nats::wait_healthy`], telling a server that exited (e.g. a port taken since it was
    /// picked) from one that did not get healthy in time.
    fn await_healthy(&mut self, within: Duration) -> Result<(), NotHealthy> {
        let started = std::time::Instant::now();
        let log = |node: &Nats| std::fs::read_to_string(&node.log).unwrap_or_default();
        loop {
            if let Some((200, _)) = http_get(self.monitor, "/healthz") {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|child| child.try_wait().ok().flatten().is_some());
            if exited {
                return Err(NotHealthy::Exited(log(self)));
            }
            if started.elapsed() > within {
                return Err(NotHealthy::TimedOut(log(self)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
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

    /// Freezes the server (SIGSTOP): its sockets stay open, it answers nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`Nats::freeze`]d server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("nats-server running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {}", self.name);
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

/// Why a server did not get healthy; both carry its log.
enum NotHealthy {
    Exited(String),
    TimedOut(String),
}

impl NotHealthy {
    fn log(&self) -> &str {
        match self {
            NotHealthy::Exited(log) | NotHealthy::TimedOut(log) => log,
        }
    }
}

/// Starts servers with `start`, again with newly picked ports when one exited: nats-server
/// needs its ports written in its config (a cluster's routes name each other's), so they are
/// picked free beforehand, and a test running in parallel can bind one before the server does.
fn with_free_ports<T>(mut start: impl FnMut() -> Result<T, NotHealthy>) -> T {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match start() {
            Ok(started) => return started,
            Err(NotHealthy::Exited(_)) if attempts < 3 => continue,
            Err(why) => panic!(
                "nats-server not healthy (attempt {attempts}):\n{}",
                why.log()
            ),
        }
    }
}

/// Three nats-server processes on loopback joined by cluster routes.
pub struct NatsCluster {
    /// The nodes, `n1` to `n3`.
    pub nodes: Vec<Nats>,
}

impl NatsCluster {
    /// Three nodes, each healthy and current in the JetStream meta group.
    pub fn start() -> NatsCluster {
        with_free_ports(|| {
            let routes = [free_port(), free_port(), free_port()];
            let mut nodes: Vec<Nats> = (0..3)
                .map(|i| Nats::configure(&format!("n{}", i + 1), Some((routes[i], &routes)), ""))
                .collect();
            for node in &mut nodes {
                node.spawn();
            }
            for node in &mut nodes {
                node.await_healthy(Duration::from_secs(30))?;
            }
            let cluster = NatsCluster { nodes };
            cluster.wait_meta_current(Duration::from_secs(30));
            Ok(cluster)
        })
    }

    /// Waits until the JetStream meta group has a leader and both other servers are current in
    /// it: before that, a replicated stream cannot be placed ("no suitable peers for
    /// placement"), although every server already answers `/healthz`.
    fn wait_meta_current(&self, within: Duration) {
        let started = std::time::Instant::now();
        loop {
            let current = self.nodes.iter().any(|node| {
                let Some((200, body)) = http_get(node.monitor, "/jsz") else {
                    return false;
                };
                let jsz: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let meta = &jsz["meta_cluster"];
                let replicas = meta["replicas"].as_array().map_or(&[][..], Vec::as_slice);
                meta["leader"].as_str().is_some_and(|l| !l.is_empty())
                    && replicas.len() == 2
                    && replicas.iter().all(|r| r["current"] == Value::Bool(true))
            });
            if current {
                return;
            }
            assert!(
                started.elapsed() < within,
                "the JetStream meta group was not current after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node leading `stream`'s Raft group, asked of the running nodes; `None` while
    /// there is none.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let leader = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .find_map(|n| {
                n.jsz_stream(stream)["cluster"]["leader"]
                    .as_str()
                    .map(str::to_owned)
            })?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// Waits until `stream` has a leader and every replica is current (after a node
    /// rejoined); panics after `within`.
    pub fn wait_stream_current(&self, stream: &str, within: Duration) {
        let started = std::time::Instant::now();
        loop {
            let view = self
                .stream_leader(stream)
                .map(|leader| self.nodes[leader].jsz_stream(stream))
                .unwrap_or(Value::Null);
            let replicas = view["cluster"]["replicas"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let current = replicas.iter().filter(|r| r["current"] == true).count();
            if view["cluster"]["leader"].is_string() && replicas.len() == 2 && current == 2 {
                return;
            }
            assert!(
                started.elapsed() < within,
                "stream {stream} not current after {within:?}: {view}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
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
