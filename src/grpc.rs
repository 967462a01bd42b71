//! gRPC delivery: `EventStream.Subscribe` (catch-up from the log, then live tail) and the
//! `Adapters` operations (dry-run `Normalize`, `ListAdapters`).

use std::pin::Pin;
use std::time::SystemTime;

use futures_util::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tributary_event_log::LogError;
use tributary_model::v1::{
    AckRequest, AckResponse, AdapterResult, ConfiguredSource, Event, Filter, ListAdaptersRequest,
    ListAdaptersResponse, LoadedAdapter, NormalizeRequest, NormalizeResponse, Rejection,
    RejectionKind, ReloadAdaptersRequest, ReloadAdaptersResponse, SubscribeRequest, WebhookRequest,
    adapter_result::Outcome, subscribe_request::Start,
};
use tributary_model::well_known::Timestamp;

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};

use crate::ingest::{self, Ingest, IngestError};
use crate::metrics::metrics;
use crate::proto::adapters_server::Adapters;
use crate::proto::event_stream_server::EventStream;
use crate::telemetry::{self, Stage};

/// Events buffered per subscription between the log reader and the client. With the read
/// batch below, this bounds a subscription's memory whatever the client does.
pub const SUBSCRIPTION_BUFFER: usize = 256;
/// Events read from the log per round trip.
const READ_BATCH: usize = 256;

/// The gRPC services, sharing the ingest path and a shutdown signal.
#[derive(Clone)]
pub struct Services {
    ingest: Ingest,
    shutdown: watch::Receiver<bool>,
}

impl Services {
    pub fn new(ingest: Ingest, shutdown: watch::Receiver<bool>) -> Self {
        Self { ingest, shutdown }
    }
}

fn matches(filter: &Filter, event: &Event) -> bool {
    let source_ok = filter.sources.is_empty() || filter.sources.contains(&event.source);
    let type_ok = filter.types.is_empty()
        || filter.types.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => event.r#type.starts_with(prefix),
            None => *t == event.r#type,
        });
    source_ok && type_ok
}

/// Maps a log error onto the gRPC status a client can act on.
pub fn log_status(error: LogError) -> Status {
    match error {
        LogError::Invalid(message) => Status::invalid_argument(message),
        LogError::UnknownConsumer(_) | LogError::UnknownDeadLetter(_) => {
            Status::not_found(error.to_string())
        }
        LogError::Storage { .. } | LogError::Closed | LogError::Corrupt { .. } => {
            Status::unavailable(format!("event log: {error}"))
        }
    }
}

fn removed(requested: u64, first: u64) -> Status {
    Status::out_of_range(format!(
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

/// The deliver span of one event on one subscription: a gRPC server span (the
/// `EventStream/Subscribe` call's), child of the event's ingest context and linked to it, and
/// linked to the subscriber's own trace context when its `Subscribe` call carried one.
fn deliver_span(event: &Event, consumer: &str, subscriber: &SpanContext) -> Option<Stage> {
    if !telemetry::enabled() {
        return None;
    }
    let ingest = telemetry::span_context_of(&event.traceparent, &event.tracestate);
    let parent = if ingest.is_valid() {
        Context::new().with_remote_span_context(ingest.clone())
    } else {
        Context::new()
    };
    Some(Stage::start_linked(
        "tributary.v1.EventStream/Subscribe",
        SpanKind::Server,
        &parent,
        || {
            let mut attributes = vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", "tributary.v1.EventStream"),
                KeyValue::new("rpc.method", "Subscribe"),
                KeyValue::new("tributary.source", event.source.clone()),
                KeyValue::new("tributary.event.type", event.r#type.clone()),
                KeyValue::new("tributary.event.sequence", event.sequence as i64),
            ];
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

type EventStreamResult = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl EventStream for Services {
    type SubscribeStream = EventStreamResult;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let subscriber = if telemetry::enabled() {
            let metadata = request.metadata();
            let value = |key: &str| {
                metadata
                    .get(key)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
            };
            telemetry::span_context_of(value("traceparent"), value("tracestate"))
        } else {
            SpanContext::empty_context()
        };
        let request = request.into_inner();
        let consumer = request.consumer.clone();
        let filter = request.filter.unwrap_or_default();
        let log = std::sync::Arc::clone(self.ingest.log());
        let mut last = log.last_sequence();
        let mut position = match request.start {
            None | Some(Start::FromEarliest(_)) => 0,
            Some(Start::FromLatest(_)) => *last.borrow(),
            Some(Start::AfterSequence(sequence)) => sequence,
            Some(Start::FromTime(time)) => {
                log.sequence_before_time(time).await.map_err(log_status)?
            }
        };
        if !request.consumer.is_empty() {
            // An existing consumer resumes after its last ack; a new one starts at `start`.
            let consumer = log
                .open_consumer(&request.consumer, position)
                .await
                .map_err(log_status)?;
            position = consumer.acked_sequence;
        }
        let first = log.first_sequence().await.map_err(log_status)?;
        if position > 0 && position + 1 < first {
            return Err(removed(position + 1, first));
        }
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _active = ActiveSubscription::new();
            loop {
                let batch = match log.read_after(position, READ_BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = tx.send(Err(log_status(error))).await;
                        return;
                    }
                };
                if batch.is_empty() {
                    tokio::select! {
                        changed = async { last.wait_for(|newest| *newest > position).await.is_ok() } => {
                            if !changed { return; }
                        }
                        _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                            let _ = tx.send(Err(Status::unavailable("server shutting down; reconnect after your last sequence"))).await;
                            return;
                        }
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                if batch[0].sequence > position + 1 && position > 0 {
                    // Retention removed events this subscriber had not read yet.
                    let _ = tx.send(Err(removed(position + 1, batch[0].sequence))).await;
                    return;
                }
                for event in batch {
                    position = event.sequence;
                    if !matches(&filter, &event) {
                        continue;
                    }
                    let span = deliver_span(&event, &consumer, &subscriber);
                    let sent = tx.send(Ok(event)).await;
                    if let Some(span) = span {
                        if sent.is_err() {
                            span.fail("subscriber went away");
                        }
                        span.end();
                    }
                    if sent.is_err() {
                        return;
                    }
                    metrics().events_delivered.inc();
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn ack(&self, request: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        let request = request.into_inner();
        let consumer = self
            .ingest
            .log()
            .ack(&request.consumer, request.sequence)
            .await
            .map_err(log_status)?;
        Ok(Response::new(AckResponse {
            acked_sequence: consumer.acked_sequence,
        }))
    }
}

fn timestamp(time: SystemTime) -> Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

#[tonic::async_trait]
impl Adapters for Services {
    async fn normalize(
        &self,
        request: Request<NormalizeRequest>,
    ) -> Result<Response<NormalizeResponse>, Status> {
        let request = request.into_inner();
        let source =
            self.ingest.sources().get(&request.source).ok_or_else(|| {
                Status::not_found(format!("no source named `{}`", request.source))
            })?;
        let webhook = WebhookRequest {
            source: request.source.clone(),
            method: "POST".to_owned(),
            path: format!("/webhooks/{}", request.source),
            query: request.query,
            headers: request.headers,
            body: request.body,
            received_at: Some(timestamp(SystemTime::now())),
            skip_verification: request.skip_verification,
            ..WebhookRequest::default()
        };
        let outcome = match ingest::normalize(&source, &webhook) {
            Ok(normalized) => Outcome::Normalized(normalized),
            Err(IngestError::Unauthenticated(reason)) => Outcome::Rejection(Rejection {
                kind: RejectionKind::Unauthenticated as i32,
                reason,
            }),
            Err(IngestError::Malformed(reason)) => Outcome::Rejection(Rejection {
                kind: RejectionKind::Malformed as i32,
                reason,
            }),
            Err(error) => return Err(Status::internal(error.to_string())),
        };
        Ok(Response::new(NormalizeResponse {
            result: Some(AdapterResult {
                outcome: Some(outcome),
            }),
        }))
    }

    async fn list_adapters(
        &self,
        _request: Request<ListAdaptersRequest>,
    ) -> Result<Response<ListAdaptersResponse>, Status> {
        let sources = self.ingest.sources();
        let adapters = sources
            .plugins()
            .iter()
            .map(|plugin| LoadedAdapter {
                info: Some(plugin.info().clone()),
                abi_version: plugin.abi_version(),
                file: plugin.file().display().to_string(),
                sha256: plugin.sha256().to_owned(),
                loaded_at: Some(timestamp(plugin.loaded_at())),
                panics: plugin.panics(),
            })
            .collect();
        let load_failures = sources.load_failures();
        let configured = sources
            .all()
            .iter()
            .map(|source| ConfiguredSource {
                name: source.name.clone(),
                adapter: source.adapter.plugin().info().name.clone(),
            })
            .collect();
        Ok(Response::new(ListAdaptersResponse {
            adapters,
            sources: configured,
            load_failures,
        }))
    }

    async fn reload_adapters(
        &self,
        _request: Request<ReloadAdaptersRequest>,
    ) -> Result<Response<ReloadAdaptersResponse>, Status> {
        let sources = std::sync::Arc::clone(self.ingest.sources());
        // Loading runs library initialisers and hashes files: keep it off the async workers.
        let report = tokio::task::spawn_blocking(move || sources.reload())
            .await
            .map_err(|e| Status::internal(format!("reload failed: {e}")))?;
        Ok(Response::new(ReloadAdaptersResponse {
            loaded: report.loaded,
            failed: report.failed,
            swapped: report.swapped,
        }))
    }
}
