//! The HTTP listener with limits on everything a client controls: connections at once, the
//! time to send request headers, the size of the request head, and (in [`deadline`]) the time
//! of a whole request. A client that trickles its headers is disconnected after
//! `header_timeout`; one that trickles its body is answered 408 after `request_timeout`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::ingest::rejections::PeerAddr;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::HttpConfig;
use crate::error::ErrorCode;
use crate::server::per_address::PerAddress;
use crate::server::tls::Tls;

/// The client address of a request (the TCP peer), as a request extension: the webhook
/// front end keys failed verifications by it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// For a request served without a listener of [`serve`]'s (tests calling the router).
    pub const UNKNOWN: ClientAddr = ClientAddr(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
}

/// Limits of the HTTP listener, from `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a connection to send a request's headers.
    pub header_timeout: Duration,
    /// Time for a whole request, body included.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once per client address (0: no per-address cap).
    pub max_connections_per_address: usize,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
}

impl From<&HttpConfig> for Limits {
    fn from(config: &HttpConfig) -> Self {
        Limits {
            header_timeout: Duration::from_secs(config.header_timeout_seconds.max(1)),
            request_timeout: Duration::from_secs(config.request_timeout_seconds.max(1)),
            max_connections: config.max_connections.max(1),
            max_connections_per_address: config.max_connections_per_address,
            max_header_bytes: config.max_header_bytes.max(8 * 1024),
        }
    }
}

/// Answers 408 when the request (reading its body included) takes longer than `limit`. What
/// was already appended stays stored: a provider's retry is then a duplicate, never a loss.
pub async fn deadline(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ErrorCode::RequestTimeout.problem("the request took too long; retry later"),
    }
}

/// `router` answering 408 past the whole-request limit, as [`serve`] runs it.
pub fn with_deadline(router: Router, limits: &Limits) -> Router {
    let limit = limits.request_timeout;
    router.layer(axum::middleware::from_fn(move |request, next| {
        deadline(limit, request, next)
    }))
}

/// The HTTP/1 connection settings of [`serve`]: header-read timeout and request-head cap.
pub fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    http1
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` fires, then
/// lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = with_deadline(router, &limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    let http1 = http1(&limits);
    loop {
        // Accept only while under the connection cap: the rest wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        // Over its address's cap a connection is closed at once, holding no slot.
        let Some(address_permit) = per_address.acquire(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = TowerToHyperService::new(router.clone());
        let client = ClientAddr(peer.ip());
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(client);
                request.extensions_mut().insert(PeerAddr(peer));
                hyper::service::Service::call(&inner, request)
            },
        );
        let http1 = http1.clone();
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            // Errors here are the client's (reset, header or handshake timeout, bad request).
            match acceptor {
                None => {
                    let _ = watcher
                        .watch(http1.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                Some(acceptor) => {
                    // The handshake counts against the header timeout: a client that stalls
                    // it is dropped like one that stalls its headers.
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = watcher
                            .watch(http1.serve_connection(TokioIo::new(stream), service))
                            .await;
                    }
                }
            }
            drop(address_permit);
            drop(permit);
        });
    }
    graceful.shutdown().await;
}
