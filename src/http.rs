//! The webhook front end: `POST /webhooks/{source}`, plus `/healthz`, `/readyz` and
//! `/metrics`.
//!
//! Answers follow design.md section 2: 2xx only once the webhook is durable; 400/401/404/413/
//! 415/503 as RFC 9457 problem+json; an authentic but unmappable item is accepted and
//! dead-lettered.

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use serde_json::json;
use tributary_model::v1::{Header, WebhookRequest};
use tributary_model::well_known::Timestamp;

use crate::ingest::{Ingest, IngestError};
use crate::metrics::{Reason, SourceLabels, metrics};
use crate::telemetry::{self, Stage};

/// The route of webhooks, also the receive span's name (after the method).
const WEBHOOK_ROUTE: &str = "/webhooks/{source}";

/// Builds the HTTP router.
pub fn router(ingest: Ingest, body_limit: usize) -> Router {
    Router::new()
        .route(WEBHOOK_ROUTE, post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(ingest)
}

/// An RFC 9457 problem response.
fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
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
    State(ingest): State<Ingest>,
    Path(source): Path<String>,
    RawQuery(query): RawQuery,
    version: Version,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
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
    let response = handle(&ingest, &source, query, &headers, body, &span).await;
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
    ingest: &Ingest,
    source: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    span: &Stage,
) -> Response {
    let m = metrics();
    let Some(configured) = ingest.sources().get(source) else {
        // Unknown names are not labels: a caller could make up any number of them.
        m.webhooks_received
            .get_or_create(&SourceLabels {
                source: String::new(),
                adapter: String::new(),
            })
            .inc();
        m.reject("", "", Reason::UnknownSource);
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no source named `{source}`"),
        );
    };
    let adapter = configured.adapter.plugin().info().name.clone();
    drop(configured);
    let labels = SourceLabels {
        source: source.to_owned(),
        adapter,
    };
    m.webhooks_received.get_or_create(&labels).inc();
    let reject = |reason: Reason| m.reject(&labels.source, &labels.adapter, reason);
    if !is_json(headers) {
        reject(Reason::UnsupportedMediaType);
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "webhooks must be sent with Content-Type: application/json",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            reject(Reason::PayloadTooLarge);
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body exceeds the configured limit",
            );
        }
        Err(rejection) => {
            reject(Reason::BadBody);
            return problem(rejection.status(), &rejection.body_text());
        }
    };
    let request = WebhookRequest {
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
        body: body.to_vec(),
        received_at: Some(now()),
        skip_verification: false,
        ..WebhookRequest::default()
    };

    match ingest.ingest(request, span.context()).await {
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
            reject(match &error {
                IngestError::UnknownSource(_) => Reason::UnknownSource,
                IngestError::Unauthenticated(_) => Reason::Unauthenticated,
                IngestError::Malformed(_) => Reason::Malformed,
                IngestError::Adapter(_) | IngestError::EmptyResult => Reason::AdapterFailed,
                IngestError::Log(_) => Reason::StorageUnavailable,
            });
            error_response(source, error)
        }
    }
}

fn error_response(source: &str, error: IngestError) -> Response {
    match error {
        IngestError::UnknownSource(name) => {
            problem(StatusCode::NOT_FOUND, &format!("no source named `{name}`"))
        }
        IngestError::Unauthenticated(reason) => {
            // The reason stays in the log: telling the caller would help an attacker.
            tracing::warn!(%source, %reason, "webhook rejected: verification failed");
            problem(StatusCode::UNAUTHORIZED, "verification failed")
        }
        IngestError::Malformed(reason) => {
            tracing::warn!(%source, %reason, "webhook rejected: malformed");
            problem(StatusCode::BAD_REQUEST, &reason)
        }
        IngestError::Adapter(error) => {
            tracing::error!(%source, %error, "adapter failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the adapter failed; retry later",
            )
        }
        IngestError::EmptyResult => {
            tracing::error!(%source, "adapter returned no outcome");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the adapter failed; retry later",
            )
        }
        IngestError::Log(error) => {
            tracing::error!(%source, %error, "webhook not stored");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry later",
            )
        }
    }
}

async fn ready(State(ingest): State<Ingest>) -> Response {
    match ingest.log().health() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("event log cannot write: {reason}"),
        ),
    }
}

async fn metrics_text(State(ingest): State<Ingest>) -> Response {
    let text = metrics().render(&ingest).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}
