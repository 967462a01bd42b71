//! Operating the service: Prometheus metrics (also over OTLP), OpenTelemetry traces, JSON logs
//! that correlate with them, and the health endpoints.

pub mod log_format;
pub mod metrics;
pub mod otlp_metrics;
pub mod telemetry;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::error::ErrorCode;

/// `/healthz` (the process runs) and `/readyz` (the log can write), for load balancers.
/// `/readyz?verbose` also lists each check and each source's verification state, as its
/// adapter reports it (on, not configured: all refused, off); only the log decides the
/// status.
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

async fn ready(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let verbose = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    match app.log.health() {
        Ok(()) if verbose => (StatusCode::OK, details(&app, "[+] log ok")).into_response(),
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => {
            let reason = format!("event log cannot write: {reason}");
            if verbose {
                let detail = details(&app, &format!("[-] log: {reason}"));
                ErrorCode::StorageUnavailable.problem(&detail)
            } else {
                ErrorCode::StorageUnavailable.problem(&reason)
            }
        }
    }
}

/// The `/readyz?verbose` lines: the log's line, then one per source with its verification
/// state ("[+]" on, "[!]" not configured or unknown, "[-]" switched off), then the verdict.
fn details(app: &App, log_line: &str) -> String {
    let mut lines = vec![log_line.to_owned()];
    for source in app.sources.all().iter() {
        let state = source.adapter.instance_info().verification;
        let (mark, text) = match metrics::verification_state_label(state) {
            "on" => ("[+]", "verification on"),
            "not_configured" => ("[!]", "verification not configured: all refused"),
            "disabled" => ("[-]", "verification off: nothing is checked"),
            _ => ("[!]", "verification unknown"),
        };
        lines.push(format!("{mark} source {}: {text}", source.name));
    }
    let verdict = if log_line.starts_with("[+]") {
        "ready"
    } else {
        "not ready"
    };
    lines.push(verdict.to_owned());
    lines.join("\n") + "\n"
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
