//! The deliver stage: `EventStream.Subscribe` (catch-up from the log, then live tail, filtered)
//! and `Ack` for durable consumers. Delivery reads only from the log.

pub mod cloudevents;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tonic::{Request, Response, Status};
use tributary_event_log::{EventLog, LogError, StoredEvent, filtered};
use tributary_model::encoded::event_stream_server::EventStream;
use tributary_model::v1::{
    AckRequest, AckResponse, Event, Filter, GetEventRequest, SubscribeRequest,
    subscribe_request::Start,
};
use tributary_model::wire::EncodedEvent;

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};

use crate::app::App;
use crate::auth::Principal;
use crate::error::{ErrorCode, ServiceError};
use crate::ops::metrics::metrics;
use crate::ops::telemetry::{self, Stage};

/// Events read from the log per round trip: the most a subscription holds in memory.
const READ_BATCH: usize = 256;
/// First pause before reading again after the log failed (an election, a reconnect).
const READ_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
/// Least time between two moves of a durable consumer over the events its filter skips.
const ADVANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest pause between such reads.
const READ_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// The `EventStream` gRPC service. Its `Subscribe` sends each event as the log stored it
/// ([`EncodedEvent`]): one encoding, shared by every subscriber.
#[derive(Clone)]
pub struct StreamService {
    app: App,
}

impl StreamService {
    /// Delivers from `app`'s log; live streams end when `app.shutdown` fires.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

use tributary_event_log::filtered::selects as matches;
pub use tributary_event_log::filtered::type_selected;

/// One event on one subscription: the stored encoding, and this delivery's trace context when
/// tracing is on (it replaces the stored ingest context for the subscriber).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub stored: StoredEvent,
    pub trace: Option<(String, String)>,
}

impl Delivery {
    /// The event decoded, as a subscriber sees it (the web console's tail).
    pub fn event(&self) -> Result<Event, Status> {
        let mut event = self.stored.event().map_err(|source| {
            tributary_event_log::LogError::Corrupt {
                key: self.stored.sequence(),
                source,
            }
            .to_status()
        })?;
        if let Some((traceparent, tracestate)) = &self.trace {
            event.traceparent.clone_from(traceparent);
            event.tracestate.clone_from(tracestate);
        }
        Ok(event)
    }

    /// The bytes `Subscribe` sends.
    fn into_wire(self) -> EncodedEvent {
        let encoded = EncodedEvent::new(self.stored.encoded().clone());
        match self.trace {
            Some((traceparent, tracestate)) => encoded.with_trace(traceparent, tracestate),
            None => encoded,
        }
    }
}

fn removed(requested: u64, first: u64) -> Status {
    ErrorCode::OutOfRange.status(format!(
        "sequence {requested} was removed by retention; the earliest available is {first}"
    ))
}

/// Counts a subscription in `tributary_subscriptions_active` while alive.
struct ActiveSubscription;

impl ActiveSubscription {
    fn new() -> Self {
        metrics().subscriptions_active.inc();
        Self
    }
}

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        metrics().subscriptions_active.dec();
    }
}

/// Who reads a subscription, named in its deliver spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// `tributary.v1.EventStream/Subscribe`.
    EventStream,
    /// `tributary.v1.CloudEventStream/Subscribe`.
    CloudEventStream,
    /// The web console's live tail (no gRPC call).
    ConsoleTail,
}

impl Reader {
    /// The span name, and the gRPC service for a gRPC reader.
    fn span(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::EventStream => (
                "tributary.v1.EventStream/Subscribe",
                Some("tributary.v1.EventStream"),
            ),
            Self::CloudEventStream => (
                "tributary.v1.CloudEventStream/Subscribe",
                Some("tributary.v1.CloudEventStream"),
            ),
            Self::ConsoleTail => ("tributary.console/tail", None),
        }
    }
}

/// The deliver span of one event on one subscription: for a gRPC reader a server span (its
/// `Subscribe` call's), child of the event's ingest context and linked to it, and linked to
/// the subscriber's own trace context when its call carried one.
fn deliver_span(
    event: &StoredEvent,
    reader: Reader,
    consumer: &str,
    subscriber: &SpanContext,
) -> Option<Stage> {
    if !telemetry::enabled() {
        return None;
    }
    let ingest = telemetry::span_context_of(event.traceparent(), event.tracestate());
    let parent = if ingest.is_valid() {
        Context::new().with_remote_span_context(ingest.clone())
    } else {
        Context::new()
    };
    let (name, service) = reader.span();
    let kind = match service {
        Some(_) => SpanKind::Server,
        None => SpanKind::Internal,
    };
    Some(Stage::start_linked(
        name,
        kind,
        &parent,
        || {
            let mut attributes = Vec::with_capacity(7);
            if let Some(service) = service {
                attributes.extend([
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", service),
                    KeyValue::new("rpc.method", "Subscribe"),
                ]);
            }
            attributes.extend([
                KeyValue::new("tributary.source", event.source().to_owned()),
                KeyValue::new("tributary.event.type", event.event_type().to_owned()),
                KeyValue::new("tributary.event.sequence", event.sequence() as i64),
            ]);
            if !consumer.is_empty() {
                attributes.push(KeyValue::new("tributary.consumer", consumer.to_owned()));
            }
            attributes
        },
        || {
            let mut links = Vec::new();
            if ingest.is_valid() {
                links.push(Link::new(
                    ingest.clone(),
                    vec![KeyValue::new("tributary.link", "ingest")],
                    0,
                ));
            }
            if subscriber.is_valid() {
                links.push(Link::new(
                    subscriber.clone(),
                    vec![KeyValue::new("tributary.link", "subscriber")],
                    0,
                ));
            }
            links
        },
    ))
}

/// A subscription's events, decoded.
pub type EventStreamResult = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;
/// A subscription's deliveries, as read from the log.
pub type DeliveryStream = Pin<Box<dyn Stream<Item = Result<Delivery, Status>> + Send>>;
/// What `Subscribe` streams: the stored bytes.
pub type WireStream = Pin<Box<dyn Stream<Item = Result<EncodedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl EventStream for StreamService {
    type SubscribeStream = WireStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let subscriber = subscriber_context(&request);
        let principal = Principal::of(&request)?;
        let deliveries = self
            .open_deliveries(
                &principal,
                request.into_inner(),
                Reader::EventStream,
                subscriber,
            )
            .await?;
        Ok(Response::new(Box::pin(
            deliveries.map(|delivery| delivery.map(Delivery::into_wire)),
        )))
    }

    async fn ack(&self, request: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        let principal = Principal::of(&request)?;
        let request = request.into_inner();
        principal.require_consumer(&request.consumer)?;
        let log = self.app.log.as_ref();
        let consumer = log
            .ack(&request.consumer, request.sequence)
            .await
            .map_err(|error| error.to_status())?;
        // A filtered consumer moves on over the events after this one that it never receives.
        let consumer = filtered::advance(log, consumer)
            .await
            .map_err(|error| error.to_status())?;
        Ok(Response::new(AckResponse {
            acked_sequence: consumer.acked_sequence,
        }))
    }

    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<EncodedEvent>, Status> {
        let principal = Principal::of(&request)?;
        let sequence = request.into_inner().sequence;
        if sequence == 0 {
            return Err(ErrorCode::InvalidArgument.status("sequences start at 1"));
        }
        let log = self.app.log.as_ref();
        let stored = log
            .read_stored_after(sequence - 1, 1)
            .await
            .map_err(|error| error.to_status())?
            .into_iter()
            .find(|event| event.sequence() == sequence);
        let Some(stored) = stored else {
            let last = *log.last_sequence().borrow();
            let why = if sequence > last {
                format!("no event {sequence} yet: the log ends before it")
            } else {
                format!("event {sequence} is not in the log (removed by retention)")
            };
            return Err(ErrorCode::NotFound.status(why));
        };
        // Authorized by what the event is, so a scoped credential needs no filter to read
        // the events it may read.
        principal.require_readable(&Filter {
            sources: vec![stored.source().to_owned()],
            types: vec![stored.event_type().to_owned()],
        })?;
        Ok(Response::new(EncodedEvent::new(stored.encoded().clone())))
    }
}

impl StreamService {
    /// [`open_deliveries`](Self::open_deliveries), decoded (the web console's live tail).
    pub async fn open(
        &self,
        principal: &Principal,
        request: SubscribeRequest,
        reader: Reader,
        subscriber: SpanContext,
    ) -> Result<EventStreamResult, Status> {
        let deliveries = self
            .open_deliveries(principal, request, reader, subscriber)
            .await?;
        Ok(Box::pin(deliveries.map(|delivery| delivery?.event())))
    }

    /// Opens a subscription for `principal` (the gRPC `Subscribe`, and the web console's live
    /// tail): checks its scopes, takes a `grpc.max_subscriptions` permit, resolves the start
    /// and streams events as they are read from the log. `subscriber` is the caller's trace
    /// context (empty when it has none).
    pub async fn open_deliveries(
        &self,
        principal: &Principal,
        request: SubscribeRequest,
        reader: Reader,
        subscriber: SpanContext,
    ) -> Result<DeliveryStream, Status> {
        let filter = request.filter.clone().unwrap_or_default();
        principal.require_readable(&filter)?;
        principal.require_filter_size(&filter)?;
        if !request.consumer.is_empty() {
            principal.require_consumer(&request.consumer)?;
        }
        // The credential's quota first: a team over its own is refused without taking one of
        // the places every team shares.
        let credential_permit = principal.take_subscription()?;
        let permit = Arc::clone(&self.app.limits.subscriptions)
            .try_acquire_owned()
            .map_err(|_| {
                ErrorCode::ResourceExhausted
                    .status("too many open subscriptions (grpc.max_subscriptions); retry later")
            })?;
        let log = Arc::clone(&self.app.log);
        let position = if request.consumer.is_empty() {
            start_position(log.as_ref(), &request).await?
        } else {
            // Checked and created under one lock: the caps hold under concurrent subscribes.
            let _creating = self.app.limits.consumer_creation.lock().await;
            self.limit_consumers(principal, &request.consumer).await?;
            start_position(log.as_ref(), &request).await?
        };
        let last = log.last_sequence();
        Ok(Subscription {
            log,
            filter: request.filter.unwrap_or_default(),
            consumer: request.consumer,
            reader,
            subscriber,
            position,
            pending: Vec::new().into_iter(),
            skipped: false,
            advanced_at: None,
            last,
            shutdown: self.app.shutdown.clone(),
            ended: false,
            read_failures: 0,
            _active: ActiveSubscription::new(),
            _permit: permit,
            _credential_permit: credential_permit,
        }
        .into_stream())
    }

    /// Refuses to create durable consumer `name` when `grpc.max_consumers` exist already (each
    /// pins retention), or the credential's `max_consumers`; an existing one may always
    /// resume. The caller holds `consumer_creation` until the consumer is created.
    async fn limit_consumers(&self, principal: &Principal, name: &str) -> Result<(), Status> {
        let consumers = self
            .app
            .log
            .consumers()
            .await
            .map_err(|error| error.to_status())?;
        let exists = consumers.iter().any(|consumer| consumer.name == name);
        if exists {
            return Ok(());
        }
        principal
            .require_consumer_quota(consumers.iter().map(|consumer| consumer.name.as_str()))?;
        if consumers.len() >= self.app.limits.max_consumers {
            return Err(ErrorCode::ResourceExhausted.status(format!(
                "{} durable consumers exist (grpc.max_consumers); delete unused ones with \
                 `tributary consumers delete`",
                consumers.len()
            )));
        }
        Ok(())
    }
}

/// How often every filtered durable consumer is moved over the events it skips, so they stop
/// holding retention back while none of its subscriptions is open.
const ADVANCE_CONSUMERS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Moves every filtered durable consumer over the events it never receives
/// ([`filtered::advance_all`]) every 10 seconds, until shutdown.
pub async fn advance_consumers_task(app: App) {
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ADVANCE_CONSUMERS_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = filtered::advance_all(app.log.as_ref()).await {
            tracing::debug!(%error, "cannot advance the filtered consumers");
        }
    }
}

/// The subscriber's own trace context, when its `Subscribe` call carried one.
fn subscriber_context(request: &Request<SubscribeRequest>) -> SpanContext {
    if !telemetry::enabled() {
        return SpanContext::empty_context();
    }
    let metadata = request.metadata();
    let value = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    telemetry::span_context_of(value("traceparent"), value("tracestate"))
}

/// The sequence after which a subscription starts: its requested start, or a durable
/// consumer's last ack (a new consumer is created at the requested start). Refuses a start
/// that retention already removed.
async fn start_position(log: &dyn EventLog, request: &SubscribeRequest) -> Result<u64, Status> {
    let mut position = match request.start {
        None | Some(Start::FromEarliest(_)) => 0,
        Some(Start::FromLatest(_)) => *log.last_sequence().borrow(),
        Some(Start::AfterSequence(sequence)) => sequence,
        Some(Start::FromTime(time)) => log
            .sequence_before_time(time)
            .await
            .map_err(|error| error.to_status())?,
    };
    if !request.consumer.is_empty() {
        let filter = request.filter.clone().unwrap_or_default();
        let consumer = log
            .open_consumer(&request.consumer, position, &filter)
            .await
            .map_err(|error| error.to_status())?;
        position = consumer.acked_sequence;
    }
    let first = log
        .first_sequence()
        .await
        .map_err(|error| error.to_status())?;
    if position > 0 && position.saturating_add(1) < first {
        return Err(removed(position.saturating_add(1), first));
    }
    Ok(position)
}

/// One subscription's reader: reads batches after its position from the log, and when caught
/// up waits on the log's `last_sequence` watch. It is the response stream itself, polled by
/// the connection that sends it: no task or channel between the log and the client, so an
/// event costs a subscriber no extra wake-up. Holding one batch at most bounds its memory
/// whatever the client does.
struct Subscription {
    log: Arc<dyn EventLog>,
    filter: Filter,
    consumer: String,
    reader: Reader,
    subscriber: SpanContext,
    position: u64,
    /// The read batch's events not yet looked at.
    pending: std::vec::IntoIter<StoredEvent>,
    /// Whether events its filter does not select were passed over since its durable consumer
    /// was last advanced.
    skipped: bool,
    /// When it last advanced its consumer: at most once per [`ADVANCE_EVERY`], so a busy log
    /// does not cost a commit per batch.
    advanced_at: Option<std::time::Instant>,
    last: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    /// Set once the stream ended with an error: nothing follows it.
    ended: bool,
    /// Reads failed in a row (storage unavailable), for the pause before the next one.
    read_failures: u32,
    _active: ActiveSubscription,
    _permit: OwnedSemaphorePermit,
    _credential_permit: OwnedSemaphorePermit,
}

impl Subscription {
    /// The subscription as a stream of deliveries.
    fn into_stream(self) -> DeliveryStream {
        Box::pin(futures_util::stream::unfold(self, |mut this| async move {
            let item = this.next().await?;
            Some((item, this))
        }))
    }

    /// The next delivery, an error that ends the stream, or `None` when the log went away.
    async fn next(&mut self) -> Option<Result<Delivery, Status>> {
        if self.ended {
            return None;
        }
        loop {
            for stored in self.pending.by_ref() {
                self.position = stored.sequence();
                if matches(&self.filter, &stored) {
                    return Some(Ok(self.delivery(stored)));
                }
                self.skipped = true;
            }
            let batch = match self.log.read_stored_after(self.position, READ_BATCH).await {
                Ok(batch) => {
                    self.read_failures = 0;
                    batch
                }
                // The log is electing a leader or reconnecting: pause and read the same
                // position again (no gap, no duplicate) rather than end the stream.
                Err(error @ LogError::Storage { .. }) => {
                    if !self.pause_after_read_failure(&error).await {
                        return self.end(Status::unavailable(
                            "server shutting down; reconnect after your last sequence",
                        ));
                    }
                    continue;
                }
                Err(error) => return self.end(error.to_status()),
            };
            let position = self.position;
            let Some(first) = batch.first() else {
                let advance_in = self.advance_consumer().await;
                let (last, shutdown) = (&mut self.last, &mut self.shutdown);
                // Some(true): newer events (or time to advance the consumer); Some(false): the
                // log went away; None: shutdown.
                let newer = tokio::select! {
                    changed = last.wait_for(|newest| *newest > position) => Some(changed.is_ok()),
                    _ = shutdown.wait_for(|stop| *stop) => None,
                    () = tokio::time::sleep(advance_in.unwrap_or_default()), if advance_in.is_some() => Some(true),
                };
                match newer {
                    Some(true) => continue,
                    Some(false) => return None,
                    None => {
                        return self
                            .end(ErrorCode::ShuttingDown.status(
                                "server shutting down; reconnect after your last sequence",
                            ));
                    }
                }
            };
            if first.sequence() > position.saturating_add(1)
                && position > 0
                && !self.gap_acknowledged(first.sequence()).await
            {
                // Retention removed events this subscriber had not read yet.
                let removed = removed(position.saturating_add(1), first.sequence());
                return self.end(removed);
            }
            self.pending = batch.into_iter();
        }
    }

    /// Caught up after passing over events its filter does not select: moves the durable
    /// consumer over them ([`filtered::advance`] stops at the first event it would still
    /// receive, so an unacknowledged delivery is never passed). At most once per
    /// [`ADVANCE_EVERY`]: returns how long to wait before trying again when it is too early. A
    /// failure is only logged: the next ack, listing or periodic pass moves it.
    async fn advance_consumer(&mut self) -> Option<std::time::Duration> {
        if !self.skipped || self.consumer.is_empty() {
            return None;
        }
        if let Some(at) = self.advanced_at {
            let since = at.elapsed();
            if since < ADVANCE_EVERY {
                return Some(ADVANCE_EVERY - since);
            }
        }
        self.skipped = false;
        self.advanced_at = Some(std::time::Instant::now());
        let result = match self.durable().await {
            Ok(Some(consumer)) => filtered::advance(self.log.as_ref(), consumer)
                .await
                .map(drop),
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::debug!(%error, consumer = %self.consumer, "cannot advance the consumer");
        }
        None
    }

    /// This subscription's durable consumer as stored now (none without one, or once deleted).
    async fn durable(&self) -> Result<Option<tributary_model::v1::Consumer>, LogError> {
        if self.consumer.is_empty() {
            return Ok(None);
        }
        let consumers = self.log.consumers().await?;
        Ok(consumers.into_iter().find(|c| c.name == self.consumer))
    }

    /// Whether the events removed before `first` were all acknowledged by this subscription's
    /// durable consumer: moved over as events its filter does not select, possibly before this
    /// subscription read them. Such a gap loses it nothing.
    async fn gap_acknowledged(&self, first: u64) -> bool {
        match self.durable().await {
            Ok(Some(consumer)) => consumer.acked_sequence.saturating_add(1) >= first,
            _ => false,
        }
    }

    /// Waits before reading again after a storage failure: 100 ms doubling up to 2 s. False
    /// when the server is shutting down meanwhile.
    async fn pause_after_read_failure(&mut self, error: &LogError) -> bool {
        self.read_failures = self.read_failures.saturating_add(1);
        if self.read_failures == 1 {
            tracing::warn!(%error, position = self.position, "cannot read the log; retrying");
        }
        let pause = READ_RETRY_FIRST
            .saturating_mul(1 << self.read_failures.min(5).saturating_sub(1))
            .min(READ_RETRY_MAX);
        let shutdown = &mut self.shutdown;
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    /// `stored` as this subscription delivers it, with its deliver span recorded.
    fn delivery(&self, stored: StoredEvent) -> Delivery {
        let span = deliver_span(&stored, self.reader, &self.consumer, &self.subscriber);
        // The consumer continues the trace under this delivery (the stored event keeps the
        // ingest context; the deliver span links to it).
        let trace = span
            .as_ref()
            .and_then(|span| telemetry::inject(span.context()));
        if let Some(span) = span {
            span.end();
        }
        metrics().events_delivered.inc();
        Delivery { stored, trace }
    }

    /// Ends the stream with `status`.
    fn end(&mut self, status: Status) -> Option<Result<Delivery, Status>> {
        self.ended = true;
        Some(Err(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_select_exact_names_prefixes_and_domains() {
        let types = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(type_selected("consent.granted", &[]));
        assert!(type_selected("consent.granted", &types(&["consent.*"])));
        assert!(type_selected("consent.granted", &types(&["consent."])));
        assert!(type_selected("consent.granted", &types(&["cons*"])));
        assert!(type_selected(
            "consent.granted",
            &types(&["bill.paid", "consent.granted"])
        ));
        assert!(!type_selected("consent.granted", &types(&["consent"])));
        assert!(!type_selected("consentx.granted", &types(&["consent.*"])));
        assert!(!type_selected("consentx.granted", &types(&["consent."])));
    }
}
