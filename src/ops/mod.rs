//! Operating the service: Prometheus metrics (also over OTLP), OpenTelemetry traces, JSON logs
//! that correlate with them, and the health endpoints.

pub mod log_format;
pub mod metrics;
pub mod otlp_metrics;
pub mod telemetry;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::error::ErrorCode;

/// `/healthz` (the process runs) and `/readyz` (the log can write), for load balancers.
pub fn health_router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(app)
}

/// `/metrics` (Prometheus).
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(app)
}

/// `/metrics` for a port that is not the operators' own: it shows consumer names, lag and
/// versions, so it answers only a request bearing an admin credential's token
/// (`Authorization: Bearer <token>`; 401 otherwise).
pub fn guarded_metrics_router(app: App, auth: crate::auth::Authenticator) -> Router {
    metrics_router(app).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let admitted = auth.bearer_is_admin(
                request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok()),
            );
            async move {
                if admitted {
                    next.run(request).await
                } else {
                    ErrorCode::Unauthenticated.problem("metrics need an admin credential's token")
                }
            }
        },
    ))
}

async fn ready(State(app): State<App>) -> Response {
    match app.log.health() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => {
            ErrorCode::StorageUnavailable.problem(&format!("event log cannot write: {reason}"))
        }
    }
}

async fn metrics_text(State(app): State<App>) -> Response {
    let text = metrics::metrics().render(&app).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}
