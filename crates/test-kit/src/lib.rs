//! Support shared by Tributary's test suites, so each suite does not grow its own copy.
//!
//! - [`pki`]: a private CA with a server and a client certificate, for TLS and mTLS tests.
//! - [`nats`]: real `nats-server` processes (one node or a cluster of three) on free ports.
//! - [`free_port`]: a loopback port nothing listens on, for what must be told its port.

pub mod nats;
pub mod pki;

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to take). Another process
/// may bind it in between: [`nats`] starts servers again on new ports when that happens.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}
