//! A private CA with a server certificate (for `127.0.0.1` and `localhost`) and a client
//! certificate it signed, made fresh for each test: TLS tests trust only this CA, so nothing
//! depends on the machine's roots or on files kept in the repository.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The PEM text of a CA, a server certificate and key, and a client certificate and key.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate both others chain to.
    pub ca: String,
    /// The server's certificate, for `127.0.0.1` and `localhost`.
    pub server_cert: String,
    /// The server's private key (PKCS#8).
    pub server_key: String,
    /// The client's certificate, for the name given to [`Pki::generate`].
    pub client_cert: String,
    /// The client's private key (PKCS#8).
    pub client_key: String,
}

/// Where [`Pki::write_to`] put each PEM file.
#[derive(Clone, Debug)]
pub struct PkiFiles {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `server.pem`.
    pub server_cert: PathBuf,
    /// `server.key`.
    pub server_key: PathBuf,
    /// `client.pem`.
    pub client_cert: PathBuf,
    /// `client.key`.
    pub client_key: PathBuf,
}

impl Pki {
    /// A new CA (ECDSA P-256) and the two certificates it signs; the client certificate names
    /// `client_name`.
    pub fn generate(client_name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = CertificateParams::new(vec![client_name.to_owned()])
            .expect("client params")
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        Pki {
            ca: ca_cert.pem(),
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client_cert.pem(),
            client_key: client_key.serialize_pem(),
        }
    }

    /// Writes the five PEM files into `dir` (which must exist).
    pub fn write_to(&self, dir: &Path) -> PkiFiles {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };
        PkiFiles {
            ca: write("ca.pem", &self.ca),
            server_cert: write("server.pem", &self.server_cert),
            server_key: write("server.key", &self.server_key),
            client_cert: write("client.pem", &self.client_cert),
            client_key: write("client.key", &self.client_key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pki_is_new_and_written_as_generated() {
        let (first, second) = (Pki::generate("a.internal"), Pki::generate("a.internal"));
        assert_ne!(first.ca, second.ca, "a fresh CA every time");
        for (pem, label) in [
            (&first.ca, "CERTIFICATE"),
            (&first.server_cert, "CERTIFICATE"),
            (&first.client_cert, "CERTIFICATE"),
            (&first.server_key, "PRIVATE KEY"),
            (&first.client_key, "PRIVATE KEY"),
        ] {
            assert!(
                pem.starts_with(&format!("-----BEGIN {label}-----")),
                "{pem}"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let files = first.write_to(dir.path());
        let read = |path: &Path| std::fs::read_to_string(path).expect("read");
        assert_eq!(read(&files.ca), first.ca);
        assert_eq!(read(&files.server_cert), first.server_cert);
        assert_eq!(read(&files.server_key), first.server_key);
        assert_eq!(read(&files.client_cert), first.client_cert);
        assert_eq!(read(&files.client_key), first.client_key);
    }
}
