//! The state every front end shares: the sources (adapters) and the event log.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tributary_event_log::EventLog;

use crate::archive::Archive;
use crate::rate_limit::{LogSampler, WebhookRateLimit};
use crate::sources::Sources;

/// Shared by the HTTP front end, the gRPC services and the admin operations. Cheap to clone.
#[derive(Clone)]
pub struct App {
    /// The loaded adapters and the sources built on them; swapped by hot reload.
    pub sources: Arc<Sources>,
    /// Where events become durable, and where delivery reads them.
    pub log: Arc<dyn EventLog>,
    /// Becomes `true` when the service is shutting down (live streams end).
    pub shutdown: watch::Receiver<bool>,
    /// Limits on what clients control.
    pub limits: Arc<Limits>,
    /// Seals webhooks for the raw archive; `None` when the archive is off.
    pub archive: Option<Arc<Archive>>,
    /// Where admin actions and console logins are recorded.
    pub audit: Arc<crate::audit::AuditLog>,
    /// The last rejected webhooks per source, in memory.
    pub rejections: Arc<crate::ingest::rejections::Rejections>,
}

/// Limits shared by the front ends (`[http]` and `[grpc]` settings).
pub struct Limits {
    /// Authentic webhooks per second per source, failed verifications per client address.
    pub rate: WebhookRateLimit,
    /// At most so many rejected-webhook log lines a second.
    pub rejection_log: LogSampler,
    /// Budget of one adapter call.
    pub adapter_timeout: Duration,
    /// Permits for open `Subscribe` streams.
    pub subscriptions: Arc<Semaphore>,
    /// Durable consumers that may exist.
    pub max_consumers: usize,
    /// Held from the check of the consumer caps to the consumer's creation, so concurrent
    /// subscribes cannot both pass the check for the last free place.
    pub consumer_creation: tokio::sync::Mutex<()>,
}

/// `time` as a protobuf timestamp (one conversion for the whole service).
pub use tributary_event_log::rules::timestamp;
