//! The servers under test, as child processes: the real `tributary serve` (or the no-op
//! baseline, `tributary-bench noop-server`) on port 0, with CPU and memory read from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    /// Webhook front end.
    pub http: SocketAddr,
    /// gRPC event stream (none for the baseline).
    pub grpc: Option<SocketAddr>,
    /// Where the server's stderr goes.
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `tributary serve` on `data_dir` (a fresh one when `None`) with `config_toml`,
    /// plugins from `plugin_dir`, logging at `log_level`.
    pub fn tributary(
        binary: &Path,
        plugin_dir: &Path,
        config_toml: &str,
        log_level: &str,
        data_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temp directory")?;
        let config = dir.path().join("tributary.toml");
        std::fs::write(&config, config_toml).context("cannot write the config")?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--grpc-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.map_or_else(|| dir.path().join("data"), Path::to_path_buf))
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", log_level)
            .env_remove("TRIBUTARY_CONFIG");
        Self::spawn(command, dir, "tributary ready ")
            .with_context(|| format!("cannot start {}", binary.display()))
    }

    /// Starts the no-op baseline: this executable's `noop-server` subcommand, over TLS with
    /// `tls` (certificate and key files).
    pub fn noop(tls: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temp directory")?;
        let exe = std::env::current_exe().context("cannot locate tributary-bench")?;
        let mut command = Command::new(exe);
        command.arg("noop-server");
        if let Some((cert, key)) = tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
        }
        Self::spawn(command, dir, "noop ready ")
    }

    fn spawn(mut command: Command, dir: tempfile::TempDir, ready: &str) -> anyhow::Result<Self> {
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with(ready) => break line,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    bail!("the server exited before it was ready:\n{log}");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let address = |key: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(key))
                .and_then(|a| a.parse().ok())
        };
        let Some(http) = address("http=") else {
            let _ = child.kill();
            bail!("no http= address in {line:?}");
        };
        Ok(Self {
            http,
            grpc: address("grpc="),
            child,
            stderr: stderr_path,
            _dir: dir,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes the process caused to be written to storage so far (`/proc/<pid>/io` `write_bytes`:
/// what reached the block layer, page-cache writeback included; needs the same user or root).
pub fn io_write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, usually 100).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU time of `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_cpu_ticks(&stat)? as f64 / ticks)
}

/// utime + stime of a `/proc/.../stat` line, in clock ticks.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// What the threads of one name (`/proc/<pid>/task/*/comm`) did: CPU time in clock ticks and
/// context switches (voluntary and involuntary).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadUse {
    pub ticks: u64,
    pub switches: u64,
}

impl ThreadUse {
    /// What was used between `before` and `self`.
    pub fn since(self, before: ThreadUse) -> ThreadUse {
        ThreadUse {
            ticks: self.ticks.saturating_sub(before.ticks),
            switches: self.switches.saturating_sub(before.switches),
        }
    }
}

/// Per thread name, the CPU and context switches of `pid`'s live threads so far. At a low
/// rate a webhook's CPU is mostly its hand-offs between threads, which a context-switch count
/// shows without the noise of timing. Threads that exited are not counted (the tokio blocking
/// pool keeps idle threads for 10 s, longer than a fixed-rate scenario's gaps).
pub fn thread_use(pid: u32) -> std::collections::BTreeMap<String, ThreadUse> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let (Some(comm), Some(status), Some(stat)) = (read("comm"), read("status"), read("stat"))
        else {
            continue; // exited while being read
        };
        let entry: &mut ThreadUse = by_name.entry(comm.trim().to_owned()).or_default();
        entry.ticks += stat_cpu_ticks(&stat).unwrap_or(0);
        entry.switches += context_switches(&status).unwrap_or(0);
    }
    by_name
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_value(&status, field)
}

/// Voluntary plus involuntary context switches in a `/proc/.../status` text.
pub fn context_switches(status: &str) -> Option<u64> {
    Some(
        status_value(status, "voluntary_ctxt_switches")?
            + status_value(status, "nonvoluntary_ctxt_switches")?,
    )
}

/// The number after `field:` in a `/proc/.../status` text (a unit after it is ignored).
fn status_value(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Samples `VmRSS` of `pid` every `every` until dropped.
pub struct RssSampler {
    handle: tokio::task::JoinHandle<Vec<(f64, u64)>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start(pid: u32, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Some(rss) = status_kib(pid, "VmRSS") {
                            samples.push((start.elapsed().as_secs_f64(), rss));
                        }
                    }
                    _ = stopped.changed() => return samples,
                }
            }
        });
        Self { handle, stop }
    }

    /// Stops and returns `(seconds since start, RSS KiB)` samples.
    pub async fn finish(self) -> Vec<(f64, u64)> {
        let _ = self.stop.send(true);
        self.handle.await.unwrap_or_default()
    }
}

/// A file name for scenario `name`'s files.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A `perf record -g` of one server process for one scenario (`--perf-dir`).
pub struct Profile {
    child: Child,
}

impl Profile {
    /// Starts recording `pid` into `dir/<scenario name>.perf.data`.
    pub fn start(pid: u32, dir: &Path, scenario: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = dir.join(format!("{}.perf.data", file_stem(scenario)));
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                "999",
                "-g",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start `perf record` (is perf installed?)")?;
        // perf needs a moment to attach before the load starts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self { child })
    }

    /// Stops recording (SIGINT, so perf writes its file) and waits for it.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .context("cannot signal perf")?;
        if !status.success() {
            bail!("cannot signal perf ({status})");
        }
        self.child.wait().context("perf did not finish")?;
        Ok(())
    }
}
