//! Connecting: address, TLS, bearer token, and the metadata every call carries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tributary_model::grpc::event_stream_client::EventStreamClient;

use crate::ack::AckBatch;
use crate::backoff::Backoff;
use crate::call::{CallMetadata, Raw};
use crate::error::Error;

/// A connection to a Tributary server. Cheap to clone; every subscription shares the one
/// HTTP/2 connection, which reconnects by itself.
#[derive(Clone)]
pub struct Client {
    pub(crate) raw: Raw,
    pub(crate) backoff: Backoff,
    pub(crate) acks: AckBatch,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("backoff", &self.backoff)
            .field("acks", &self.acks)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client of `address` (`http://host:port`, or `https://` for TLS).
    pub fn builder(address: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            address: address.into(),
            token: None,
            ca_file: None,
            identity: None,
            domain: None,
            backoff: Backoff::default(),
            acks: AckBatch::default(),
        }
    }
}

/// Settings of a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    address: String,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
    domain: Option<String>,
    backoff: Backoff,
    acks: AckBatch,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("ClientBuilder")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Sends `authorization: Bearer <token>` on every call (the server's
    /// `[[grpc.credentials]]`). An empty token sends none.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts the CA certificates of this PEM file for the server's certificate (TLS).
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Presents this client certificate and key (PEM files) when the server asks (mTLS).
    pub fn identity(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.identity = Some((cert.as_ref().to_path_buf(), key.as_ref().to_path_buf()));
        self
    }

    /// The name the server's certificate must carry, when it is not the address's host.
    pub fn domain_name(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// How streams reconnect (default: 100 ms doubling to 10 s, forever).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How durable consumers batch their acks (default: 100 events or 1 s).
    pub fn ack_batch(mut self, acks: AckBatch) -> Self {
        self.acks = acks;
        self
    }

    /// Connects now, so a wrong address or TLS setting fails here.
    pub async fn connect(self) -> Result<Client, Error> {
        let endpoint = self.endpoint()?;
        let channel = endpoint.connect().await.map_err(Error::Connect)?;
        self.client(channel)
    }

    /// A client that connects on its first call (and a stream that retries until the server
    /// is there).
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        self.client(channel)
    }

    fn client(self, channel: Channel) -> Result<Client, Error> {
        let token = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let authorization = match token {
            Some(token) => Some(
                AsciiMetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| Error::InvalidToken)?,
            ),
            None => None,
        };
        let raw = EventStreamClient::with_interceptor(channel, CallMetadata::new(authorization));
        Ok(Client {
            raw,
            backoff: self.backoff,
            acks: self.acks,
        })
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let invalid = |source| Error::InvalidAddress {
            address: self.address.clone(),
            source,
        };
        let mut endpoint = Endpoint::from_shared(self.address.clone())
            .map_err(invalid)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // A server that vanished without closing the connection is noticed within ~40 s
            // even on an idle stream.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let tls = self.address.starts_with("https://")
            || self.ca_file.is_some()
            || self.identity.is_some();
        if tls {
            endpoint = endpoint.tls_config(self.tls()?).map_err(Error::Tls)?;
        }
        Ok(endpoint)
    }

    fn tls(&self) -> Result<ClientTlsConfig, Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let mut tls = ClientTlsConfig::new();
        #[cfg(feature = "native-roots")]
        {
            tls = tls.with_native_roots();
        }
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        Ok(tls)
    }
}
