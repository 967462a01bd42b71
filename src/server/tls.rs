//! TLS for the listeners (rustls, ring), from PEM files, optionally requiring client
//! certificates (mTLS). The files are re-read on SIGHUP: new connections get the new
//! certificate, open connections and streams keep theirs.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

pub use crate::config::TlsConfig;

/// A listener's TLS settings, swappable while serving.
pub struct Tls {
    config: TlsConfig,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the files; `alpn` are the protocols offered (`h2` for gRPC, `http/1.1`).
    pub fn new(config: &TlsConfig, alpn: &[&[u8]]) -> anyhow::Result<Arc<Self>> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let server_config = server_config(config, &alpn)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            alpn,
            current: RwLock::new(Arc::new(server_config)),
        }))
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }

    /// Re-reads the files. On error the previous certificate keeps serving.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(server_config(&self.config, &self.alpn)?);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn server_config(config: &TlsConfig, alpn: &[Vec<u8>]) -> anyhow::Result<ServerConfig> {
    let certs = read_certs(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file).with_context(|| {
        format!(
            "cannot read a private key from {}",
            config.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &config.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file)? {
                roots
                    .add(cert)
                    .with_context(|| format!("invalid CA certificate in {}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("cannot build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server_config = builder
        .with_single_cert(certs, key)
        .context("the certificate does not match the private key")?;
    server_config.alpn_protocols = alpn.to_vec();
    Ok(server_config)
}

/// Re-reads every listener's files on SIGHUP (the same signal reloads plugins).
pub fn reload_on_sighup(listeners: Vec<(&'static str, Arc<Tls>)>) {
    if listeners.is_empty() {
        return;
    }
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP: certificates will not be reloaded");
        return;
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            for (name, tls) in &listeners {
                match tls.reload() {
                    Ok(()) => tracing::info!(listener = name, "TLS certificate reloaded"),
                    Err(error) => tracing::error!(
                        listener = name,
                        error = format!("{error:#}"),
                        "TLS certificate not reloaded; the previous one keeps serving"
                    ),
                }
            }
        }
    });
}
