//! Finding an event: its own page (`/console/events/<sequence>`: canonical JSON, raw webhook,
//! trace id, replay links) and a search by sequence, event id, provider event id or subject
//! (`/console/search?q=...`).

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tributary_event_log::rules;
use tributary_model::v1::Event;

use super::layout::{error_page, render, time};
use super::{Console, Form, Operator};
use crate::admin::raw::event_at;
use crate::error::ServiceError;

const ACTIVE: &str = "/console/search";
/// The newest events a search by provider event id or subject looks at: a bounded read.
pub const SEARCH_WINDOW: u64 = 10_000;
/// Most matches listed.
const MAX_MATCHES: usize = 50;

/// `GET /console/events/{sequence}`.
pub async fn page(
    State(console): State<Console>,
    operator: Operator,
    Path(sequence): Path<u64>,
) -> Response {
    let event = match event_at(console.app(), sequence).await {
        Ok(event) => event,
        Err(error) => return error_page(&console, &operator, ACTIVE, error.http_answer()),
    };
    let json = serde_json::to_string_pretty(&event).unwrap_or_default();
    let provenance = event.provenance.clone().unwrap_or_default();
    let body = html! {
        (search_form(""))
        dl class="facts" id="event-facts" {
            dt { "Sequence" } dd id="event-sequence" { (event.sequence) }
            dt { "Id" } dd { code id="event-id" { (event.id) } }
            dt { "Type" } dd { code id="event-type" { (event.r#type) } }
            dt { "Source" } dd { (event.source) }
            dt { "Subject" } dd { code { (event.subject) } }
            dt { "Provider event" } dd { code { (provenance.provider_event_id) } " (" (provenance.provider_event_type) ")" }
            dt { "Adapter" } dd { (provenance.adapter) " " (provenance.adapter_version) }
            dt { "Time" } dd { (time(event.time.as_ref())) }
            dt { "Received" } dd { (time(event.received_at.as_ref())) }
            dt { "Trace id" } dd id="event-trace" { code { (trace_id(&event)) } }
            dt { "Raw webhook" }
            dd {
                @if event.raw_id == 0 {
                    "not archived"
                } @else {
                    a id="event-raw" href={"/console/raw/" (event.sequence)} { "archive entry " (event.raw_id) }
                }
            }
            @if let Some(original) = &event.replay_of {
                dt { "Replay of" }
                dd {
                    @if original.sequence > 0 {
                        a id="event-replay-of" href={"/console/events/" (original.sequence)} { "event " (original.sequence) }
                    } @else { code { (original.event_id) } }
                    " (adapter " (original.adapter_version) ")"
                }
            }
            dt { "Dead letters" }
            dd {
                @if event.raw_id > 0 {
                    a id="event-dead-letters" href={"/console/dead-letters?resolved=1&source=" (event.source) "&webhook=" (event.raw_id)} { "of this webhook" }
                    " · "
                }
                a href={"/console/dead-letters?source=" (event.source)} { "of source " (event.source) }
            }
            dt { "Replay" }
            dd { code { "tributary replay --source " (event.source) " --dry-run" } }
        }
        h2 { "Canonical event" }
        pre id="event-json" class="json" tabindex="0" { (json) }
    };
    render(
        &console,
        &operator,
        ACTIVE,
        &format!("Event #{sequence}"),
        body,
    )
}

/// The trace id of the event's ingest (its `traceparent`), or `—`.
fn trace_id(event: &Event) -> String {
    event
        .traceparent
        .split('-')
        .nth(1)
        .filter(|id| id.len() == 32)
        .unwrap_or("—")
        .to_owned()
}

fn search_form(query: &str) -> Markup {
    html! {
        form method="get" action="/console/search" class="filters" role="search" {
            label for="q" { "Find an event" }
            input id="q" name="q" type="search" value=(query)
                placeholder="sequence, event id, provider event id or subject";
            button type="submit" { "Search" }
        }
    }
}

/// `GET /console/search?q=<sequence | event id | provider event id | subject>`: one match
/// opens its page, several are listed.
pub async fn search(
    State(console): State<Console>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let wanted = form.get("q").to_owned();
    let found = match find(&console, &wanted).await {
        Ok(found) => found,
        Err((status, message)) => {
            return error_page(&console, &operator, ACTIVE, (status, message));
        }
    };
    if let [only] = found.as_slice() {
        return Redirect::to(&format!("/console/events/{}", only.sequence)).into_response();
    }
    let body = html! {
        (search_form(&wanted))
        @if wanted.is_empty() {
            p { "A sequence (" code { "54" } "), an event id (" code { "klavi:evt_1" } "), a provider event id or a subject. Provider ids and subjects are looked up among the newest " (SEARCH_WINDOW) " events." }
        } @else if found.is_empty() {
            p id="no-match" { "No event matches " code { (wanted) } "." }
        } @else {
            table id="matches" {
                thead { tr { th scope="col" { "Sequence" } th scope="col" { "Type" } th scope="col" { "Subject" } th scope="col" { "Received" } } }
                tbody {
                    @for event in &found {
                        tr {
                            td { a href={"/console/events/" (event.sequence)} { (event.sequence) } }
                            td { code { (event.r#type) } }
                            td { code { (event.subject) } }
                            td { (time(event.received_at.as_ref())) }
                        }
                    }
                }
            }
        }
    };
    render(&console, &operator, ACTIVE, "Find an event", body)
}

/// The events `wanted` names: by sequence, by event id (`<source>:<provider event id>`), else
/// the newest [`SEARCH_WINDOW`] events whose provider event id or subject is `wanted`.
async fn find(
    console: &Console,
    wanted: &str,
) -> Result<Vec<Event>, (axum::http::StatusCode, String)> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let app = console.app();
    if let Ok(sequence) = wanted.parse::<u64>() {
        return match event_at(app, sequence).await {
            Ok(event) => Ok(vec![event]),
            Err(_) => Ok(Vec::new()),
        };
    }
    if let Some((source, provider_event_id)) = wanted.split_once(':')
        && let Ok(Some(sequence)) = app.log.sequence_of(source, provider_event_id).await
        && let Ok(event) = event_at(app, sequence).await
    {
        return Ok(vec![event]);
    }
    let last = *app.log.last_sequence().borrow();
    let mut after = last.saturating_sub(SEARCH_WINDOW);
    let mut found = Vec::new();
    while after < last && found.len() < MAX_MATCHES {
        let batch = app
            .log
            .read_after(after, 256)
            .await
            .map_err(|error| error.http_answer())?;
        let Some(newest) = batch.last().map(|e| e.sequence) else {
            break;
        };
        after = newest;
        found.extend(
            batch.into_iter().filter(|event| {
                event.subject == wanted || rules::provider_event_id(event) == wanted
            }),
        );
    }
    found.truncate(MAX_MATCHES);
    Ok(found)
}
