//! The `--tls` mode: a self-signed certificate made at run time (rcgen, ECDSA P-256), written
//! as PEM files for the servers' `[http.tls]`, and the matching rustls client and server
//! configurations (ring, rustls' safe default protocol versions, so TLS 1.3, ALPN `http/1.1`;
//! the client resumes no sessions).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// ALPN protocol both sides offer: the service's HTTP listener speaks HTTP/1.1 only.
const ALPN: &[u8] = b"http/1.1";

/// A certificate and key on disk, and a client that trusts exactly that certificate.
pub struct Tls {
    /// PEM certificate (`[http.tls] cert_file`).
    pub cert_file: PathBuf,
    /// PEM private key, PKCS#8 (`[http.tls] key_file`), readable by its owner only.
    pub key_file: PathBuf,
    /// Client configuration for the load generator.
    pub connector: TlsConnector,
    _dir: tempfile::TempDir,
}

impl Tls {
    /// Generates a certificate for `127.0.0.1` and `localhost`.
    pub fn generate() -> anyhow::Result<Self> {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .context("cannot generate a certificate")?;
        let dir = tempfile::tempdir().context("cannot create a temp directory")?;
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, certified.cert.pem()).context("cannot write the cert")?;
        write_private(&key_file, certified.signing_key.serialize_pem())?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certified.cert.der().clone())
            .context("the generated certificate is not a valid trust anchor")?;
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN.to_vec()];
        // Every handshake is a full one (certificate signature included): the worst case, and
        // what a provider whose client keeps no session cache costs. It matters only with
        // --requests-per-connection; keep-alive connections shake hands once.
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            cert_file,
            key_file,
            connector: TlsConnector::from(Arc::new(client)),
            _dir: dir,
        })
    }
}

/// The server side for the no-op baseline: the same files, the same provider and protocol
/// versions as the service's `[http.tls]` (src/server/tls.rs).
pub fn acceptor(cert_file: &Path, key_file: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {}", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("cannot read {}", key_file.display()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate does not match the key")?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn write_private(path: &Path, contents: String) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated files load as the service would load them, and a handshake with the
    /// client configuration succeeds.
    #[tokio::test]
    async fn generated_certificate_serves_a_handshake() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tls = Tls::generate().expect("generate");
        let acceptor = acceptor(&tls.cert_file, &tls.key_file).expect("acceptor");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut stream = acceptor.accept(tcp).await.expect("server handshake");
            stream.write_all(b"ok").await.expect("write");
            stream.shutdown().await.expect("shutdown");
        });
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
        let mut stream = tls
            .connector
            .connect(name, tcp)
            .await
            .expect("client handshake");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        assert_eq!(answer, b"ok");
        server.await.expect("server task");
    }
}
