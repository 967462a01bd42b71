//! The webhook front end: `POST /webhooks/{source}`, plus `/healthz` and `/readyz`.
//!
//! Answers follow design.md section 2: 2xx only once the webhook is durable; 400/401/404/413/
//! 415/503 as RFC 9457 problem+json; an authentic but unmappable item is accepted and
//! dead-lettered.

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tributary_model::v1::{Header, WebhookRequest};
use tributary_model::well_known::Timestamp;

use crate::ingest::{Ingest, IngestError};

/// Builds the HTTP router.
pub fn router(ingest: Ingest, body_limit: usize) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
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

async fn receive(
    State(ingest): State<Ingest>,
    Path(source): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if ingest.sources().get(&source).is_none() {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no source named `{source}`"),
        );
    }
    if !is_json(&headers) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "webhooks must be sent with Content-Type: application/json",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body exceeds the configured limit",
            );
        }
        Err(rejection) => return problem(rejection.status(), &rejection.body_text()),
    };
    let request = WebhookRequest {
        source: source.clone(),
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
    };

    match ingest.ingest(request).await {
        Ok(accepted) => {
            tracing::info!(
                %source,
                accepted = accepted.accepted,
                duplicates = accepted.duplicates,
                dead_lettered = accepted.dead_lettered,
                ignored = accepted.ignored,
                "webhook stored"
            );
            (StatusCode::OK, axum::Json(accepted)).into_response()
        }
        Err(error) => error_response(&source, error),
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
