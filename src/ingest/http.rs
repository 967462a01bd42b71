//! The webhook front end: `POST /webhooks/{source}`, the first stage of the data path.
//!
//! Answers follow design.md section 2: 2xx only once the webhook is durable; every other
//! answer is an [`ErrorCode`] rendered as RFC 9457 problem+json; an authentic but unmappable
//! item is accepted and dead-lettered.

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use tributary_model::v1::{Header, WebhookRequest};

use crate::app::{App, timestamp};
use crate::error::{ErrorCode, ServiceError};
use crate::ingest::rejections::PeerAddr;
use crate::ingest::{IngestError, ingest};
use crate::ops::metrics::{SourceLabels, metrics};
use crate::ops::telemetry::{self, Stage};
use crate::rate_limit::Refusal;
use crate::server::http::ClientAddr;

/// The route of webhooks, also the receive span's name (after the method).
const WEBHOOK_ROUTE: &str = "/webhooks/{source}";

/// The webhook routes (the operational ones are [`crate::ops::health_router`] and [`crate::ops::metrics_router`]).
pub fn router(app: App, body_limit: usize) -> Router {
    Router::new()
        .route(WEBHOOK_ROUTE, post(receive))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `POST /webhooks/{source}`, inside the receive span (an HTTP server span continuing the
/// caller's W3C trace context, if any). Only the route, path, method, protocol and status are
/// recorded: never a header value, the query string or the body.
async fn receive(
    State(app): State<App>,
    Path(source): Path<String>,
    RawQuery(query): RawQuery,
    version: Version,
    headers: HeaderMap,
    body: Request,
) -> Response {
    // Set by the accept loop on every request.
    let client = body
        .extensions()
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr::UNKNOWN);
    let peer = body
        .extensions()
        .get::<PeerAddr>()
        .map(|PeerAddr(address)| *address);
    let parent = telemetry::extract_http(&headers);
    let span = Stage::start_linked(
        "POST /webhooks/{source}",
        SpanKind::Server,
        &parent,
        || {
            vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("http.route", WEBHOOK_ROUTE),
                KeyValue::new("url.path", format!("/webhooks/{source}")),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("network.protocol.name", "http"),
                KeyValue::new("network.protocol.version", protocol_version(version)),
                KeyValue::new("tributary.source", source.clone()),
            ]
        },
        Vec::new,
    );
    // The span is the current context while handling: log lines carry its ids.
    let response = handle(&app, &source, query, (client, peer), &headers, body, &span)
        .with_context(span.context().clone())
        .await;
    let status = response.status();
    span.record(|| {
        let mut attributes = vec![KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        )];
        if status.is_client_error() || status.is_server_error() {
            attributes.push(KeyValue::new("error.type", status.as_str().to_owned()));
        }
        attributes
    });
    if status.is_server_error() {
        // Per the HTTP semantic conventions a server span fails on 5xx only.
        span.fail("server error");
    }
    span.end();
    response
}

async fn handle(
    app: &App,
    source: &str,
    query: Option<String>,
    (client, peer): (ClientAddr, Option<std::net::SocketAddr>),
    headers: &HeaderMap,
    body: Request,
    span: &Stage,
) -> Response {
    let m = metrics();
    // The rejection log keeps what a refused request looked like: never its body, only its
    // size and hash once it was read (refusals before reading it have none).
    let configured = app.sources.get(source);
    let known = configured.is_some();
    let note = |code: ErrorCode, reason: &str, body: &[u8]| {
        let status = code.http_status().as_u16();
        app.rejections.record(
            source,
            known,
            peer,
            status,
            code.label(),
            reason,
            headers,
            body,
        );
    };
    let Some(configured) = configured else {
        // Unknown names are not labels: a caller could make up any number of them.
        m.webhooks_received
            .get_or_create(&SourceLabels {
                source: String::new(),
                adapter: String::new(),
            })
            .inc();
        let error = IngestError::UnknownSource(source.to_owned());
        m.reject("", "", error.error_code());
        note(ErrorCode::UnknownSource, &error.public_message(), &[]);
        return ErrorCode::UnknownSource.problem(&error.public_message());
    };
    let adapter = configured.adapter.plugin().info().name.clone();
    // Checked now, answered after the rate limit: the accepted list when this type is not on it.
    let refused_media_type = configured
        .content_types
        .as_ref()
        .filter(|allowed| {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok());
            !allowed.allows(content_type)
        })
        .map(|allowed| allowed.list());
    let labels = SourceLabels {
        source: source.to_owned(),
        adapter,
    };
    m.webhooks_received.get_or_create(&labels).inc();
    let reject = |reason: ErrorCode| m.reject(&labels.source, &labels.adapter, reason);
    // Checked before the body is read or the adapter runs: refusals here cost next to nothing.
    if let Err(refusal) = app.limits.rate.check(client.0, source) {
        reject(ErrorCode::RateLimited);
        if let Refusal::FailedVerifications(_) = refusal {
            sampled_warn(
                app,
                source,
                "webhook refused: too many failed verifications from this address",
            );
        }
        let message = match refusal {
            Refusal::Source(_) => "too many webhooks for this source; retry later",
            Refusal::FailedVerifications(_) => {
                "too many failed verifications from this address; retry later"
            }
        };
        note(ErrorCode::RateLimited, message, &[]);
        let mut response = ErrorCode::RateLimited.problem(message);
        let wait = refusal.wait();
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(seconds.max(1)),
        );
        return response;
    }
    if let Some(accepted) = refused_media_type {
        reject(ErrorCode::UnsupportedMediaType);
        let reason = format!("this source accepts Content-Type {accepted}");
        note(ErrorCode::UnsupportedMediaType, &reason, &[]);
        return ErrorCode::UnsupportedMediaType.problem(&reason);
    }
    let body: Result<Bytes, BytesRejection> = Bytes::from_request(body, &()).await;
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            reject(ErrorCode::PayloadTooLarge);
            note(
                ErrorCode::PayloadTooLarge,
                "body exceeds the configured limit",
                &[],
            );
            return ErrorCode::PayloadTooLarge.problem("body exceeds the configured limit");
        }
        Err(rejection) => {
            reject(ErrorCode::BadBody);
            note(ErrorCode::BadBody, &rejection.body_text(), &[]);
            return ErrorCode::BadBody.problem(&rejection.body_text());
        }
    };
    // Kept for the rejection log's size and hash (shared: the request's own copy is made
    // once below, after the rate limits and the media type passed).
    let raw = body.clone();
    let request = webhook_request(source, query, headers, body);
    let result = ingest(app, configured, request, span.context()).await;
    // Only authentic webhooks spend the source's budget; failed verifications spend the
    // client address's own.
    match &result {
        Err(IngestError::Unauthenticated(_) | IngestError::Malformed(_)) => {
            app.limits.rate.failed(client.0, source)
        }
        Ok(_) => app.limits.rate.authentic(source),
        Err(_) => {}
    }
    match result {
        Ok(accepted) => {
            m.webhooks_accepted.get_or_create(&labels).inc();
            tracing::debug!(
                %source,
                accepted = accepted.accepted,
                duplicates = accepted.duplicates,
                dead_lettered = accepted.dead_lettered,
                ignored = accepted.ignored,
                "webhook stored"
            );
            (StatusCode::OK, axum::Json(accepted)).into_response()
        }
        Err(error) => {
            reject(error.error_code());
            // Operators (admin scope) see the adapter's own reason for a failed verification,
            // which the provider is not told.
            let reason = match &error {
                IngestError::Unauthenticated(_) => error.to_string(),
                _ => error.public_message(),
            };
            note(error.error_code(), &reason, &raw);
            error_response(app, source, &error)
        }
    }
}

/// The webhook as the adapter sees it. Header values that are not visible ASCII are dropped
/// (no provider signs with them).
fn webhook_request(
    source: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> WebhookRequest {
    WebhookRequest {
        source: source.to_owned(),
        method: "POST".to_owned(),
        path: format!("/webhooks/{source}"),
        query: query.unwrap_or_default(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some(Header {
                    name: name.as_str().to_owned(),
                    value: value.to_str().ok()?.to_owned(),
                })
            })
            .collect(),
        body: Vec::from(body),
        received_at: Some(timestamp(SystemTime::now())),
        skip_verification: false,
        ..WebhookRequest::default()
    }
}

/// A warning about a refused webhook, within the rejection log's lines per second.
fn sampled_warn(app: &App, source: &str, message: &'static str) {
    if let Some(suppressed) = app.limits.rejection_log.admit() {
        tracing::warn!(%source, suppressed, "{message}");
    }
}

/// Logs why (server-side only) and answers with the error's code and public message.
fn error_response(app: &App, source: &str, error: &IngestError) -> Response {
    match error {
        IngestError::Unauthenticated(reason) => {
            if let Some(suppressed) = app.limits.rejection_log.admit() {
                tracing::warn!(%source, %reason, suppressed, "webhook rejected: verification failed");
            }
        }
        IngestError::Malformed(reason) => {
            if let Some(suppressed) = app.limits.rejection_log.admit() {
                tracing::warn!(%source, %reason, suppressed, "webhook rejected: malformed");
            }
        }
        IngestError::UnknownSource(_) => {}
        IngestError::Adapter(_) | IngestError::EmptyResult | IngestError::AdapterTimeout => {
            tracing::error!(%source, %error, "adapter failed");
        }
        IngestError::Log(error) => tracing::error!(%source, %error, "webhook not stored"),
        IngestError::Archive(error) => {
            tracing::error!(%source, %error, "webhook not stored: raw archive");
        }
    }
    error.error_code().problem(&error.public_message())
}
