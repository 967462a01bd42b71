//! Live tail: events as they are appended, filtered by source and type (a domain prefix such
//! as `consent.*` too), each expandable to its canonical JSON; pause and resume; jump to a
//! sequence or a time. The stream is a `Subscribe` of the logged-in credential
//! ([`StreamService::open`](crate::stream::StreamService::open)) sent as Server-Sent Events:
//! each event's `id` is its sequence, so a browser that reconnects resumes after the last one.

use std::convert::Infallible;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use maud::html;
use opentelemetry::trace::SpanContext;
use tributary_model::v1::{Filter, SubscribeRequest, subscribe_request::Start};

use super::layout::render;
use super::overview::sse;
use super::{Console, Form, Operator};
use crate::app::timestamp;
use crate::error::ServiceError;
use crate::stream::Reader;

/// Events the tail opens on by default: the newest ones, so it is never empty on a log that
/// holds events.
const RECENT: u64 = 50;

/// `GET /console/tail`.
pub async fn page(
    State(console): State<Console>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let sources = console.app().sources.all();
    let chosen = form.get("source");
    let from = match form.get("from") {
        "" => "recent",
        other => other,
    };
    let body = html! {
        form id="tail-form" class="filters" method="get" action="/console/tail" {
            div {
                label for="tail-source" { "Source" }
                select id="tail-source" name="source" {
                    option value="" selected[chosen.is_empty()] { "All sources" }
                    @for source in &sources {
                        option value=(source.name) selected[chosen == source.name] { (source.name) }
                    }
                }
            }
            div {
                label for="tail-type" { "Type" }
                input id="tail-type" name="type" type="text" value=(form.get("type"))
                    placeholder="consent.* or statement.available" aria-describedby="tail-type-help";
                small id="tail-type-help" { "Exact types or domain prefixes ending in *, comma-separated." }
            }
            div {
                label for="tail-from" { "Start" }
                select id="tail-from" name="from" {
                    option value="recent" selected[from == "recent"] { "The last " (RECENT) " events" }
                    option value="latest" selected[from == "latest"] { "New events only" }
                    option value="earliest" selected[from == "earliest"] { "Earliest in the log" }
                    option value="sequence" selected[from == "sequence"] { "At sequence…" }
                    option value="time" selected[from == "time"] { "At time (UTC)…" }
                }
            }
            div {
                label for="tail-sequence" { "Sequence" }
                input id="tail-sequence" name="sequence" type="number" min="1" value=(form.get("sequence"));
            }
            div {
                label for="tail-time" { "Time (UTC)" }
                input id="tail-time" name="time" type="datetime-local" step="1" value=(form.get("time"));
            }
            div class="buttons" {
                button type="submit" { "Apply" }
                button type="button" id="tail-pause" aria-pressed="false" { "Pause" }
                button type="button" id="tail-clear" { "Clear" }
            }
        }
        p id="tail-status" role="status" aria-live="polite" { "Connecting…" }
        noscript { p class="flash error" { "The live tail needs JavaScript (Server-Sent Events)." } }
        ol id="tail-events" class="events" data-stream="/console/tail/stream" {}
    };
    render(&console, &operator, "/console/tail", "Live tail", body)
}

/// Where the stream starts: the browser's `Last-Event-ID` (a reconnect), else the form's
/// choice. Errors are for the operator.
fn start(form: &Form, headers: &HeaderMap, last: u64) -> Result<Option<Start>, String> {
    if let Some(last) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Ok(Some(Start::AfterSequence(last)));
    }
    Ok(Some(match form.get("from") {
        "" | "recent" => Start::AfterSequence(last.saturating_sub(RECENT)),
        "latest" => Start::FromLatest(true),
        "earliest" => Start::FromEarliest(true),
        "after" => Start::AfterSequence(
            form.get("sequence")
                .parse()
                .map_err(|_| "give the sequence to resume after".to_owned())?,
        ),
        "sequence" => {
            let sequence: u64 = form
                .get("sequence")
                .parse()
                .map_err(|_| "give a sequence number".to_owned())?;
            Start::AfterSequence(sequence.saturating_sub(1))
        }
        "time" => Start::FromTime(timestamp(parse_time(form.get("time"))?.into())),
        other => return Err(format!("unknown start `{other}`")),
    }))
}

/// An RFC 3339 time, or a `datetime-local` value (no offset) taken as UTC.
pub fn parse_time(text: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    let civil: jiff::civil::DateTime = text
        .parse()
        .map_err(|_| format!("`{text}` is not a time (2024-05-01T12:00:00Z)"))?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .map_err(|error| error.to_string())
}

/// The filter of the form: one source (or all) and types (comma-separated).
fn filter(form: &Form) -> Filter {
    let source = form.get("source");
    Filter {
        sources: if source.is_empty() {
            Vec::new()
        } else {
            vec![source.to_owned()]
        },
        types: form
            .get("type")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

/// `GET /console/tail/stream?source=&type=&from=&sequence=&time=`: the events as SSE, each
/// `event: event` with its canonical JSON; a failure (e.g. a sequence retention removed) is
/// one `event: problem` and the stream ends.
pub async fn stream(
    State(console): State<Console>,
    operator: Operator,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let last = *console.app().log.last_sequence().borrow();
    let start = match start(&form, &headers, last) {
        Ok(start) => start,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let request = SubscribeRequest {
        filter: Some(filter(&form)),
        start,
        ..SubscribeRequest::default()
    };
    let events = match console
        .inner
        .stream
        .open(
            &operator.principal,
            request,
            Reader::ConsoleTail,
            SpanContext::empty_context(),
        )
        .await
    {
        Ok(events) => events,
        Err(status) => return status.http_answer().into_response(),
    };
    let mut failed = false;
    let stream = events
        .take_while(move |item| {
            // Stop after the first failure (sent as a problem below).
            let go = !failed;
            failed |= item.is_err();
            std::future::ready(go)
        })
        .map(|item| {
            let event = match item {
                Ok(event) => match serde_json::to_string(&event) {
                    Ok(json) => SseEvent::default()
                        .id(event.sequence.to_string())
                        .event("event")
                        .data(json),
                    Err(error) => SseEvent::default()
                        .event("problem")
                        .data(format!("cannot encode event {}: {error}", event.sequence)),
                },
                Err(status) => SseEvent::default().event("problem").data(status.message()),
            };
            Ok::<_, Infallible>(event)
        });
    sse(stream.take_until(operator.session_end(&console)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_rfc3339_or_from_a_datetime_local_field() {
        assert_eq!(
            parse_time("2024-05-01T12:00:00Z").map(|t| t.as_second()),
            Ok(1_714_564_800)
        );
        assert_eq!(
            parse_time("2024-05-01T12:00").map(|t| t.as_second()),
            Ok(1_714_564_800)
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn filters_and_starts_from_the_form() {
        let form =
            Form::parse(b"source=klavi&type=consent.*,+link.created&from=sequence&sequence=5");
        let f = filter(&form);
        assert_eq!(f.sources, ["klavi"]);
        assert_eq!(f.types, ["consent.*", "link.created"]);
        assert_eq!(
            start(&form, &HeaderMap::new(), 90),
            Ok(Some(Start::AfterSequence(4)))
        );
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", "41".parse().expect("header"));
        assert_eq!(
            start(&form, &headers, 90),
            Ok(Some(Start::AfterSequence(41)))
        );
        // By default the last 50 events, then the live ones.
        let plain = Form::parse(b"");
        assert_eq!(
            start(&plain, &HeaderMap::new(), 90),
            Ok(Some(Start::AfterSequence(40)))
        );
        assert_eq!(
            start(&plain, &HeaderMap::new(), 7),
            Ok(Some(Start::AfterSequence(0)))
        );
    }
}
