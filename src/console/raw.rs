//! The raw webhook an event came from, decrypted from the raw archive: what the provider
//! actually sent, next to the canonical event. Personal data in clear, so only for a session
//! whose credential has the personal_data scope (403 for other administrators).

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use tributary_model::v1::get_raw_webhook_request::Target;

use super::layout::{error_page, render, time};
use super::{Console, Operator};
use crate::admin::raw::raw_webhook;
use crate::error::ServiceError;

/// `GET /console/raw/{sequence}`.
pub async fn page(
    State(console): State<Console>,
    operator: Operator,
    Path(sequence): Path<u64>,
) -> Response {
    let active = "/console/tail";
    let target = format!("sequence {sequence}");
    if let Err(error) = operator.principal.require_personal_data() {
        operator
            .audit_or_log(&console, "raw.read", target, "permission_denied")
            .await;
        return error_page(&console, &operator, active, error.http_answer());
    }
    let found = raw_webhook(console.app(), Target::Sequence(sequence)).await;
    let label = match &found {
        Ok(_) => "ok",
        Err(error) => error.error_code().label(),
    };
    // Personal data is shown only once the read is on record.
    if let Err(error) = operator.audit(&console, "raw.read", target, label).await {
        tracing::error!(%error, "audit entry not written: raw read refused");
        return error_page(
            &console,
            &operator,
            active,
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The audit log cannot be written.".to_owned(),
            ),
        );
    }
    let raw = match found {
        Ok(raw) => raw,
        Err(error) => {
            return error_page(&console, &operator, active, error.http_answer());
        }
    };
    let body_text = serde_json::from_slice::<serde_json::Value>(&raw.body)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&raw.body).into_owned());
    let body = html! {
        p { a href="/console/tail" { "← Live tail" } }
        dl class="facts" {
            dt { "Source" } dd { (raw.source) }
            dt { "Adapter" } dd { (raw.adapter) " " (raw.adapter_version) }
            dt { "Received" } dd { (time(raw.received_at.as_ref())) }
            dt { "Request" } dd { code { (raw.method) " " (raw.path) @if !raw.query.is_empty() { "?" (raw.query) } } }
            dt { "Archive entry" } dd { (raw.archive_id) }
            dt { "Events" } dd { (raw.sequences.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
            @if !raw.withheld.is_empty() {
                dt { "Withheld (credentials)" } dd { (raw.withheld.join(", ")) }
            }
        }
        h2 { "Headers" }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
            tbody {
                @for header in &raw.headers {
                    tr { td { code { (header.name) } } td { code { (header.value) } } }
                }
            }
        }
        h2 { "Body" }
        p class="note" { "As received, personal data in clear: it is shown only to credentials with the personal_data scope." }
        pre id="raw-body" class="json" tabindex="0" { (body_text) }
    };
    let title = format!("Raw webhook of event #{sequence}");
    render(&console, &operator, active, &title, body)
}
