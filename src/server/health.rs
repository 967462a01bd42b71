//! gRPC health, with `Watch` streams counted as subscriptions: a watch is held open like a
//! `Subscribe`, so each one takes a `grpc.max_subscriptions` permit for as long as it lasts.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use crate::error::ErrorCode;

/// The health service of a [`HealthReporter`], with watches limited.
pub struct CountedHealth {
    inner: HealthService,
    subscriptions: Arc<Semaphore>,
}

impl CountedHealth {
    /// Serves `reporter`'s statuses; each `Watch` takes one of `subscriptions`.
    pub fn new(reporter: HealthReporter, subscriptions: Arc<Semaphore>) -> Self {
        Self {
            inner: HealthService::from_health_reporter(reporter),
            subscriptions,
        }
    }
}

/// A `Watch` stream holding its subscription permit.
pub struct CountedWatch {
    inner: tonic_health::server::WatchStream,
    _permit: OwnedSemaphorePermit,
}

impl Stream for CountedWatch {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[tonic::async_trait]
impl Health for CountedHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = CountedWatch;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let permit = Arc::clone(&self.subscriptions)
            .try_acquire_owned()
            .map_err(|_| {
                ErrorCode::ResourceExhausted
                    .status("too many open subscriptions (grpc.max_subscriptions); retry later")
            })?;
        let inner = self.inner.watch(request).await?.into_inner();
        Ok(Response::new(CountedWatch {
            inner,
            _permit: permit,
        }))
    }
}
