//! The one error type of the client.

use std::path::PathBuf;

/// Why connecting or consuming failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server address is not a valid URI (`http://host:port` or `https://host:port`).
    #[error("invalid server address `{address}`: {source}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it was refused.
        source: tonic::transport::Error,
    },
    /// A CA or client certificate file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS settings were refused.
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    /// The first connection failed (later ones are retried by the stream).
    #[error("cannot connect: {0}")]
    Connect(tonic::transport::Error),
    /// The token cannot be sent as an HTTP header value (it is not printed).
    #[error("the token is not a valid header value")]
    InvalidToken,
    /// The server answered with an error that retrying does not fix (authentication, scope,
    /// a sequence removed by retention, ...), or retries were exhausted.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(Box<tonic::Status>),
}

impl Error {
    /// The gRPC status, when the server answered with one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Status(status) => Some(status),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status(Box::new(status))
    }
}
