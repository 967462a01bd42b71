//! Support shared by Tributary's test suites, so each suite does not grow its own copy.
//!
//! - [`pki`]: a private CA with a server and a client certificate, for TLS and mTLS tests.
//! - [`nats`]: real `nats-server` processes (one node or a cluster of three) on free ports.
//! - [`free_port`]: a loopback port nothing listens on, for what must be told its port.
//! - [`c_library`]: a shared library built from C source against the plugin ABI's header.
//! - [`retry`] and [`eventually`]: waiting, bounded, for what a background task or thread
//!   finishes (storage let go, a retention pass run).

pub mod nats;
pub mod pki;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to take). Another process
/// may bind it in between: [`nats`] starts servers again on new ports when that happens.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Builds `lib<name>.so` in `dir` from C `source` with the system compiler (`cc`), the plugin
/// ABI's header (`tributary_plugin.h`) on the include path; mode 0755 whatever the umask.
pub fn c_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c_file = dir.join(format!("{name}.c"));
    std::fs::write(&c_file, source).expect("write C source");
    let library = dir.join(format!("lib{name}.so"));
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-abi/include");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-o"])
        .arg(&library)
        .arg("-I")
        .arg(&include)
        .arg(&c_file)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {name}");
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    library
}

/// Calls `attempt` every 20 ms until it succeeds, or returns its error once `within` has
/// passed: for opening storage that an instance dropped just before still holds until its
/// thread or last task ends.
pub async fn retry<T, E>(
    within: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let started = Instant::now();
    loop {
        match attempt() {
            Err(_) if started.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

/// Waits until `check` answers true, asking every 20 ms; panics with `what` after 20 seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
