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

/// Ready while the log can write. Sources out of their expectations (`[sources.X.expect]`)
/// are listed after "ready", one line each: a provider going quiet is worth a look, not a
/// reason to take the instance out of rotation.
async fn ready(State(app): State<App>) -> Response {
    match app.log.health() {
        Ok(()) => {
            let mut body = "ready".to_owned();
            let sources = app.sources.all();
            let report = crate::health::tracker().report(sources.iter().map(|s| s.name.as_str()));
            for health in report {
                for violation in &health.violations {
                    body.push_str(&format!(
                        "\nsource {} out of expectation: {}",
                        health.source, violation.detail
                    ));
                }
            }
            (StatusCode::OK, body).into_response()
        }
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
