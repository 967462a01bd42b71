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

/// Ready while the log can write. Sources out of their expectations (`[sources.X.expect]`)
/// are listed after "ready", one line each: a provider going quiet is worth a look, not a
/// reason to take the instance out of rotation. `?verbose` also lists each source's
/// verification state.
async fn ready(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let verbose = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    match app.log.health() {
        Ok(()) => {
            let mut body = if verbose {
                details(&app, "[+] log ok").trim_end().to_owned()
            } else {
                "ready".to_owned()
            };
            for line in out_of_expectation(&app) {
                body.push('\n');
                body.push_str(&line);
            }
            if verbose {
                body.push('\n');
            }
            (StatusCode::OK, body).into_response()
        }
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

/// One line per expectation a source is out of.
fn out_of_expectation(app: &App) -> Vec<String> {
    let sources = app.sources.all();
    let report = crate::health::tracker().report(sources.iter().map(|s| s.name.as_str()));
    report
        .iter()
        .flat_map(|health| {
            health.violations.iter().map(move |violation| {
                format!(
                    "source {} out of expectation: {}",
                    health.source, violation.detail
                )
            })
        })
        .collect()
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
