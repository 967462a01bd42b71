//! Where the CLI finds a running server: `--server` (a URL or a bare `host:port`), else the
//! server's own config file (`--config` / `TRIBUTARY_CONFIG`), else `127.0.0.1:50051`.
//!
//! Read from the config file, the admin commands go to `ops.grpc_listen` when it is set (the
//! admin services are only served there then, as in `deploy/tributary.toml`), the others to
//! `grpc.listen`; a wildcard listen address (`0.0.0.0`, `::`) is reached on loopback, and
//! `[grpc.tls]` makes the CLI speak TLS, trusting the certificates of its `cert_file`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig};

use crate::config::{Config, Overrides};

/// The address used without `--server` and `--config`: the default `grpc.listen`.
pub const DEFAULT_SERVER: &str = "127.0.0.1:50051";

/// Which of the server's gRPC services a command calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// `EventStream` and `CloudEventStream`: always on `grpc.listen`.
    Stream,
    /// `Admin` and `Adapters`: on `ops.grpc_listen` when set, else on `grpc.listen`.
    Admin,
}

/// A resolved server address.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URI the channel connects to (`http://` or `https://`).
    pub uri: String,
    /// The TLS settings read from the config file, when its gRPC listener uses TLS.
    pub tls: Option<ClientTlsConfig>,
}

/// Resolves where `plane` is served: `server` when given, else from the config file at
/// `config`, else [`DEFAULT_SERVER`].
pub fn resolve(
    server: Option<&str>,
    config: Option<&Path>,
    plane: Plane,
) -> anyhow::Result<Endpoint> {
    if let Some(server) = server {
        return Ok(Endpoint {
            uri: with_scheme(server, false),
            tls: None,
        });
    }
    let Some(path) = config else {
        return Ok(Endpoint {
            uri: with_scheme(DEFAULT_SERVER, false),
            tls: None,
        });
    };
    let config = Config::load(Some(path), &Overrides::default())
        .with_context(|| format!("cannot find the server's address in {}", path.display()))?;
    from_config(&config, plane)
}

/// Where `plane` is served according to `config`.
pub fn from_config(config: &Config, plane: Plane) -> anyhow::Result<Endpoint> {
    if plane == Plane::Admin
        && let Some(ops) = config.ops.grpc_listen
    {
        // The operators' listener is plain gRPC (bind it to loopback or a private network).
        return Ok(Endpoint {
            uri: format!("http://{}", reachable(ops)),
            tls: None,
        });
    }
    let address = reachable(config.grpc.listen);
    let Some(tls) = &config.grpc.tls else {
        return Ok(Endpoint {
            uri: format!("http://{address}"),
            tls: None,
        });
    };
    let pem = std::fs::read(&tls.cert_file).with_context(|| {
        format!(
            "cannot read grpc.tls.cert_file {} (the CLI trusts the server's certificates)",
            tls.cert_file.display()
        )
    })?;
    let client = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name(address.ip().to_string());
    Ok(Endpoint {
        uri: format!("https://{address}"),
        tls: Some(client),
    })
}

/// `server` as a URI: a bare `host:port` gets `http://` (`https://` with `tls`), like
/// `TRIBUTARY_ADDRESS` of the Python client.
pub fn with_scheme(server: &str, tls: bool) -> String {
    if server.contains("://") {
        server.to_owned()
    } else if tls {
        format!("https://{server}")
    } else {
        format!("http://{server}")
    }
}

/// A listen address as a client reaches it: a wildcard address on loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        toml::from_str(toml).expect("config")
    }

    #[test]
    fn bare_addresses_get_a_scheme() {
        assert_eq!(
            with_scheme("127.0.0.1:50051", false),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            with_scheme("example.com:443", true),
            "https://example.com:443"
        );
        assert_eq!(with_scheme("https://h:1", false), "https://h:1");
    }

    #[test]
    fn admin_goes_to_the_ops_listener_when_set() {
        let both =
            config("[grpc]\nlisten = \"0.0.0.0:6000\"\n[ops]\ngrpc_listen = \"127.0.0.1:6001\"\n");
        let admin = from_config(&both, Plane::Admin).expect("admin");
        assert_eq!(admin.uri, "http://127.0.0.1:6001");
        let stream = from_config(&both, Plane::Stream).expect("stream");
        assert_eq!(stream.uri, "http://127.0.0.1:6000");
        let main_only = config("[grpc]\nlisten = \"[::]:6000\"\n");
        let admin = from_config(&main_only, Plane::Admin).expect("admin");
        assert_eq!(admin.uri, "http://[::1]:6000");
    }

    #[test]
    fn without_server_or_config_the_default_port() {
        let endpoint = resolve(None, None, Plane::Admin).expect("default");
        assert_eq!(endpoint.uri, "http://127.0.0.1:50051");
        let endpoint = resolve(Some("10.0.0.2:7000"), None, Plane::Admin).expect("server");
        assert_eq!(endpoint.uri, "http://10.0.0.2:7000");
    }
}
