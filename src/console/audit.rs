//! The audit log page: the newest entries first (admin actions and console logins), read-only.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{error_page, render, time};
use super::{Console, Operator};

/// Entries shown per page.
const PAGE: usize = 200;
const ACTIVE: &str = "/console/audit";

/// `GET /console/audit`.
pub async fn page(
    State(console): State<Console>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    // `?before=<id>`: the page of entries older than that id.
    let before = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "before")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(u64::MAX);
    let entries = match console.app().audit.newest(before, PAGE).await {
        Ok(entries) => entries,
        Err(error) => {
            tracing::error!(%error, "audit log not read");
            return error_page(
                &console,
                &operator,
                ACTIVE,
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The audit log cannot be read.".to_owned(),
                ),
            );
        }
    };
    let oldest = entries.last().map(|entry| entry.id);
    let body = html! {
        p class="note" { "Every admin action and console login, logout and failed login; read-only (retention: " code { "[audit] max_age_days" } ")." }
        table id="audit" {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Credential" }
                th scope="col" { "Client" } th scope="col" { "Action" } th scope="col" { "Target" }
                th scope="col" { "Outcome" }
            } }
            tbody {
                @for entry in &entries {
                    tr {
                        td { (entry.id) }
                        td { (time(entry.time.as_ref())) }
                        td { (entry.credential) }
                        td { (entry.client_address) }
                        td { code { (entry.action) } }
                        td { (entry.target) }
                        td { (entry.outcome) }
                    }
                }
            }
        }
        @if let Some(oldest) = oldest.filter(|id| *id > 1) {
            p { a href={ "/console/audit?before=" (oldest) } { "Older entries →" } }
        }
    };
    render(&console, &operator, ACTIVE, "Audit log", body)
}
