//! Support shared by Tributary's test suites, so each suite does not grow its own copy.
//!
//! - [`pki`]: a private CA with a server and a client certificate, for TLS and mTLS tests.
//! - [`nats`]: real `nats-server` processes (one node or a cluster of three) on free ports.
//! - [`free_port`]: a loopback port nothing listens on, for what must be told its port.
//! - [`c_library`]: a shared library built from C source against the plugin ABI's header.

pub mod nats;
pub mod pki;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

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
