//! Dead letters: the list (reason, source, adapter version, age), one letter's detail with its
//! body redacted as the `ListDeadLetters` call redacts it, and redrive of one, a selection or
//! all, with each outcome shown.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use tributary_model::v1::{
    DeadLetter, ListDeadLettersRequest, RedriveDeadLettersRequest, RedriveOutcome,
};

use super::layout::{Flash, age, csrf_field, error_page, render, time};
use super::{Action, Console, Form, Operator};
use crate::error::{OpError, ServiceError};

/// Letters per page of the list.
const PAGE: u32 = 100;
/// Outcomes listed after a redrive (the rest are counted).
const SHOWN_OUTCOMES: usize = 50;

/// `GET /console/dead-letters?resolved=1&after=<id>`.
pub async fn page(
    State(console): State<Console>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let include_resolved = form.get("resolved") == "1";
    let after_id = form.get("after").parse().unwrap_or(0);
    let source = form.get("source").to_owned();
    let reason = form.get("reason").to_owned();
    // One webhook's dead letters (the event page links here with its raw-archive id).
    let raw_id: u64 = form.get("webhook").parse().unwrap_or(0);
    let listed = console
        .inner
        .admin
        .dead_letters(ListDeadLettersRequest {
            after_id,
            limit: PAGE,
            include_resolved,
            include_raw: false,
            unredacted: false,
            source: source.clone(),
            reason: reason.clone(),
            raw_id,
        })
        .await;
    let letters = match listed {
        Ok(listed) => listed.dead_letters,
        Err(status) => {
            return error_page(
                &console,
                &operator,
                "/console/dead-letters",
                status.http_answer(),
            );
        }
    };
    let next = (letters.len() == PAGE as usize)
        .then(|| letters.last().map(|l| l.id))
        .flatten();
    let webhook = if raw_id > 0 {
        raw_id.to_string()
    } else {
        String::new()
    };
    let filter_params: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            [
                ("source", source.as_str()),
                ("reason", reason.as_str()),
                ("webhook", webhook.as_str()),
            ]
            .into_iter()
            .filter(|(_, value)| !value.is_empty()),
        )
        .finish();
    let resolved_param = match (include_resolved, filter_params.is_empty()) {
        (true, true) => "&resolved=1".to_owned(),
        (true, false) => format!("&resolved=1&{filter_params}"),
        (false, true) => String::new(),
        (false, false) => format!("&{filter_params}"),
    };
    let body = html! {
        form method="get" action="/console/dead-letters" class="filters" {
            label for="filter-source" { "Source" }
            input id="filter-source" name="source" value=(source);
            label for="filter-reason" { "Reason contains" }
            input id="filter-reason" name="reason" value=(reason);
            @if include_resolved { input type="hidden" name="resolved" value="1"; }
            @if raw_id > 0 { input type="hidden" name="webhook" value=(raw_id); }
            button type="submit" { "Filter" }
        }
        p {
            @if include_resolved {
                a href="/console/dead-letters" { "Show unresolved only" }
            } @else {
                a href="/console/dead-letters?resolved=1" { "Include resolved ones" }
            }
        }
        @if letters.is_empty() {
            p id="no-dead-letters" { "No dead letters" @if after_id > 0 { " after #" (after_id) } "." }
        } @else {
            form method="post" action="/console/dead-letters/redrive" {
                (csrf_field(&operator))
                div class="scroll" {
                    table id="dead-letters" {
                        caption { "Authentic items the adapter could not map, oldest first" }
                        thead { tr {
                            th scope="col" {
                                input type="checkbox" id="select-all" aria-label="Select every letter on this page";
                            }
                            th scope="col" { "Id" }
                            th scope="col" { "Source" }
                            th scope="col" { "Adapter" }
                            th scope="col" { "Provider type" }
                            th scope="col" { "Reason" }
                            th scope="col" { "Age" }
                            th scope="col" class="num" { "Redrives" }
                            th scope="col" { "State" }
                        } }
                        tbody {
                            @for letter in &letters {
                                @let resolved = letter.resolved_at.is_some();
                                tr id={"dead-letter-" (letter.id)} {
                                    td {
                                        @if !resolved {
                                            input type="checkbox" name="ids" value=(letter.id)
                                                id={"select-" (letter.id)}
                                                aria-label={"Select dead letter " (letter.id)};
                                        }
                                    }
                                    th scope="row" { a href={"/console/dead-letters/" (letter.id)} { "#" (letter.id) } }
                                    td { (letter.source) }
                                    td { (letter.adapter) " " (letter.adapter_version) }
                                    td { code { (letter.provider_event_type) } }
                                    td class="reason-text" { (letter.reason) }
                                    td title=(time(letter.received_at.as_ref())) { (age(letter.received_at.as_ref())) }
                                    td class="num" { (letter.redrive_attempts) }
                                    td {
                                        @if resolved {
                                            span class="ok" { "resolved" }
                                        } @else {
                                            span class="bad" { "unresolved" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                div class="buttons" {
                    button type="submit" name="what" value="selected" { "Redrive selected" }
                    button type="submit" name="what" value="all" { "Redrive all unresolved" }
                }
                p class="note" { "Redrive runs each letter again through the adapter now loaded for its source; what it maps is appended and the letter resolved, otherwise it stays with the new reason." }
            }
            @if let Some(next) = next {
                p { a href={"/console/dead-letters?after=" (next) (resolved_param)} { "Next page" } }
            }
        }
    };
    render(
        &console,
        &operator,
        "/console/dead-letters",
        "Dead letters",
        body,
    )
}

async fn find(console: &Console, id: u64) -> Result<Option<DeadLetter>, OpError> {
    let listed = console
        .inner
        .admin
        .dead_letters(ListDeadLettersRequest {
            after_id: id.saturating_sub(1),
            limit: 1,
            include_resolved: true,
            include_raw: true,
            unredacted: false,
            ..ListDeadLettersRequest::default()
        })
        .await?;
    Ok(listed.dead_letters.into_iter().find(|l| l.id == id))
}

/// `GET /console/dead-letters/{id}`: one letter, its body redacted.
pub async fn detail(
    State(console): State<Console>,
    operator: Operator,
    Path(id): Path<u64>,
) -> Response {
    let active = "/console/dead-letters";
    let letter = match find(&console, id).await {
        Ok(Some(letter)) => letter,
        Ok(None) => {
            let message = format!("No dead letter #{id} (removed by retention, or never stored).");
            return error_page(
                &console,
                &operator,
                active,
                (StatusCode::NOT_FOUND, message),
            );
        }
        Err(status) => return error_page(&console, &operator, active, status.http_answer()),
    };
    let body_text = serde_json::from_slice::<serde_json::Value>(&letter.raw)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&letter.raw).into_owned());
    let resolved = letter.resolved_at.is_some();
    let body = html! {
        p { a href="/console/dead-letters" { "← All dead letters" } }
        dl class="facts" {
            dt { "Source" } dd { (letter.source) }
            dt { "Adapter" } dd { (letter.adapter) " " (letter.adapter_version) }
            dt { "Provider event" } dd { code { (letter.provider_event_id) } " " code { (letter.provider_event_type) } }
            dt { "Reason" } dd class="reason-text" { (letter.reason) }
            dt { "Received" } dd { (time(letter.received_at.as_ref())) " (" (age(letter.received_at.as_ref())) " ago)" }
            dt { "Redrives tried" } dd { (letter.redrive_attempts) }
            dt { "State" }
            dd {
                @if resolved {
                    "resolved " (time(letter.resolved_at.as_ref())) ", events "
                    (letter.resolved_sequences.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
                } @else { "unresolved" }
            }
        }
        h2 { "Body" }
        p class="note" { "Only the fields the adapter declares safe to show are in clear: every other value is masked, personal-data fields always; bodies of adapters that declare neither are withheld." }
        pre id="dead-letter-body" class="json" tabindex="0" { (body_text) }
        @if !resolved {
            form method="post" action="/console/dead-letters/redrive" {
                (csrf_field(&operator))
                input type="hidden" name="ids" value=(letter.id);
                button type="submit" name="what" value="selected" { "Redrive this letter" }
            }
        }
    };
    let title = format!("Dead letter #{id}");
    render(&console, &operator, active, &title, body)
}

/// `POST /console/dead-letters/redrive`: `what=all` redrives every unresolved letter, page by
/// page; `what=selected` the `ids` given. The outcomes are shown on the list.
pub async fn redrive(State(console): State<Console>, action: Action) -> Response {
    let admin = &console.inner.admin;
    let mut outcomes: Vec<RedriveOutcome> = Vec::new();
    let mut failure = None;
    if action.form.get("what") == "all" {
        let mut after_id = 0;
        loop {
            match admin
                .redrive_page(RedriveDeadLettersRequest {
                    after_id,
                    ..RedriveDeadLettersRequest::default()
                })
                .await
            {
                Ok(page) => {
                    outcomes.extend(page.outcomes);
                    if page.next_after_id == 0 {
                        break;
                    }
                    after_id = page.next_after_id;
                }
                Err(status) => {
                    failure = Some(status.message().to_owned());
                    break;
                }
            }
        }
    } else {
        let ids: Result<Vec<u64>, _> = action.form.all("ids").map(str::parse).collect();
        match ids {
            Ok(ids) if ids.is_empty() => failure = Some("select at least one letter".to_owned()),
            Ok(ids) => {
                match admin
                    .redrive_page(RedriveDeadLettersRequest {
                        ids,
                        ..RedriveDeadLettersRequest::default()
                    })
                    .await
                {
                    Ok(page) => outcomes = page.outcomes,
                    Err(status) => failure = Some(status.message().to_owned()),
                }
            }
            Err(_) => failure = Some("invalid dead letter id".to_owned()),
        }
    }
    tracing::info!(
        credential = %action.operator.principal.name,
        redriven = outcomes.len(),
        "console: dead letters redriven"
    );
    let target = if action.form.get("what") == "all" {
        "all unresolved".to_owned()
    } else {
        format!(
            "ids {}",
            action.form.all("ids").collect::<Vec<_>>().join(",")
        )
    };
    let label = if failure.is_some() { "failed" } else { "ok" };
    action
        .operator
        .audit_or_log(&console, "dead_letters.redrive", target, label)
        .await;
    console
        .inner
        .sessions
        .flash(&action.operator.key, summary(&outcomes, failure));
    Redirect::to("/console/dead-letters").into_response()
}

fn summary(outcomes: &[RedriveOutcome], failure: Option<String>) -> Flash {
    let resolved = outcomes.iter().filter(|o| o.resolved).count();
    let mut lines: Vec<String> = outcomes
        .iter()
        .take(SHOWN_OUTCOMES)
        .map(|o| {
            if o.resolved {
                let sequences: Vec<String> = o.sequences.iter().map(u64::to_string).collect();
                format!("#{}: resolved, events {}", o.id, sequences.join(", "))
            } else {
                format!("#{}: still dead: {}", o.id, o.reason)
            }
        })
        .collect();
    if outcomes.len() > SHOWN_OUTCOMES {
        lines.push(format!("… and {} more", outcomes.len() - SHOWN_OUTCOMES));
    }
    let title = format!(
        "Redriven {}: {resolved} resolved, {} still dead",
        outcomes.len(),
        outcomes.len() - resolved
    );
    match failure {
        Some(failure) => Flash {
            ok: false,
            title: format!("{title}; stopped: {failure}"),
            lines,
        },
        None => Flash {
            ok: resolved == outcomes.len(),
            title,
            lines,
        },
    }
}
