//! Rejections: the last webhooks this instance refused, and why (the in-memory rejection log),
//! filtered by source in the query string (`?source=arcadia`). Header values that may carry a
//! secret are shown redacted; the body never, only its size and SHA-256.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};
use tributary_model::v1::{ListRejectionsRequest, RejectedWebhook};

use super::layout::{render, time};
use super::{Console, Form, Operator};
use crate::ingest::rejections::UNKNOWN_SOURCES;

const ACTIVE: &str = "/console/rejections";

/// `GET /console/rejections?source=<name>`.
pub async fn page(
    State(console): State<Console>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let source = form.get("source").to_owned();
    let listed = console.inner.admin.rejections(&ListRejectionsRequest {
        source: source.clone(),
        limit: 200,
    });
    let mut names: Vec<String> = console
        .app()
        .sources
        .all()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    names.push(UNKNOWN_SOURCES.to_owned());
    let body = html! {
        p { "The last webhooks this instance answered with an error, newest first, kept in memory ("
            code { "[http] rejections_kept" } " per source). Header values that may carry a secret are redacted; the body is never kept, only its size and SHA-256." }
        form method="get" action=(ACTIVE) class="filters" {
            label for="source" { "Source" }
            select id="source" name="source" {
                option value="" selected[source.is_empty()] { "All sources" }
                @for name in &names {
                    option value=(name) selected[*name == source] { (name) }
                }
            }
            button type="submit" { "Filter" }
        }
        @if listed.rejections.is_empty() {
            p id="no-rejections" { "None." }
        } @else {
            div class="scroll" {
                table id="rejections" {
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "Source" }
                        th scope="col" { "Client" }
                        th scope="col" { "Answer" }
                        th scope="col" { "Reason" }
                        th scope="col" { "Headers" }
                        th scope="col" { "Body" }
                    } }
                    tbody {
                        @for rejection in &listed.rejections {
                            (row(rejection))
                        }
                    }
                }
            }
        }
    };
    render(&console, &operator, ACTIVE, "Rejections", body)
}

fn row(rejection: &RejectedWebhook) -> Markup {
    html! {
        tr class="rejection" {
            td { (time(rejection.received_at.as_ref())) }
            td class="source" { (rejection.source) }
            td class="client" { (rejection.client_address) }
            td class="answer" { (rejection.status) " " code { (rejection.code) } }
            td class="why" { (rejection.reason) }
            td class="headers" {
                ul {
                    @for header in &rejection.headers {
                        li { code { (header.name) ": " (header.value) } }
                    }
                }
            }
            td class="body" {
                (rejection.body_size) " bytes"
                @if !rejection.body_sha256.is_empty() {
                    br; "SHA-256 " code class="hash" { (rejection.body_sha256) }
                }
            }
        }
    }
}
