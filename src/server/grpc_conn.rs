//! The gRPC listener's limits on what a client controls before any RPC: connections at once
//! (globally and per client address) and the time to start talking (the TLS handshake, or
//! the first byte of the HTTP/2 preface in clear). A client that holds connections open
//! without speaking is dropped after the time-out and holds no slot for longer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::server::per_address::{AddressPermit, PerAddress};
use crate::server::tls::Tls;

/// Limits of one gRPC listener, from `[grpc]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// Connections at once per client address (0: no per-address cap); more are closed.
    pub max_connections_per_address: usize,
    /// Time for the TLS handshake, or for the first byte in clear.
    pub handshake_timeout: Duration,
}

/// A connection that holds its slots (global and per address) until it is dropped.
pub struct Limited<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
    _address: AddressPermit,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Limited<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Limited<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for Limited<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Connections in clear: served once their first byte arrived within the time-out.
pub fn plain(
    listener: TcpListener,
    limits: Limits,
) -> ReceiverStream<io::Result<Limited<TcpStream>>> {
    incoming(listener, limits, |stream: TcpStream| async move {
        // Waits for a byte without taking it (readiness alone may wake spuriously).
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(stream),
        }
    })
}

/// TLS connections: served once their handshake finished within the time-out.
pub fn tls(
    listener: TcpListener,
    tls: Arc<Tls>,
    limits: Limits,
) -> ReceiverStream<io::Result<Limited<tokio_rustls::server::TlsStream<TcpStream>>>> {
    incoming(listener, limits, move |stream: TcpStream| {
        let acceptor = tls.acceptor();
        async move { acceptor.accept(stream).await.ok() }
    })
}

/// Accepts on `listener` while under the global cap, closes connections over their address's
/// cap, and runs `start` (handshake) for each concurrently within the time-out.
fn incoming<IO, F, Fut>(
    listener: TcpListener,
    limits: Limits,
    start: F,
) -> ReceiverStream<io::Result<Limited<IO>>>
where
    IO: Send + 'static,
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = Option<IO>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    tokio::spawn(async move {
        while !tx.is_closed() {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a gRPC connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(address) = per_address.acquire(peer.ip()) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let started = start(stream);
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(Some(io)) = tokio::time::timeout(limits.handshake_timeout, started).await
                {
                    let _ = tx
                        .send(Ok(Limited {
                            io,
                            _slot: slot,
                            _address: address,
                        }))
                        .await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
