//! Overview: per source, webhooks per second over the last hour and what became of them
//! (stored, duplicates, dead-lettered, rejected by reason, error rate); the log's size and
//! oldest sequence; consumers' lag. The live part is re-rendered every few seconds and pushed
//! over Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use maud::{Markup, html};
use tributary_model::v1::ListDeadLettersRequest;

use super::history::{self, STEP};
use super::layout::{render, time};
use super::plot::{self, display_name};
use super::{Console, LIVE_INTERVAL, Operator};

/// The plots' span: one hour.
const SPAN: f64 = 3600.0;
/// When this process started serving (the console is created at start-up): the counters
/// since then are what the page shows.
pub static STARTED: std::sync::LazyLock<std::time::SystemTime> =
    std::sync::LazyLock::new(std::time::SystemTime::now);

/// The window of the "recent" error rate.
const ERROR_WINDOW: Duration = Duration::from_secs(300);

/// `GET /console/`.
pub async fn page(State(console): State<Console>, operator: Operator) -> Response {
    let live = live_part(&console).await;
    let unresolved = console
        .inner
        .admin
        .dead_letters(ListDeadLettersRequest {
            limit: 1000,
            ..ListDeadLettersRequest::default()
        })
        .await
        .map(|page| page.dead_letters.len());
    let failures = console.app().sources.load_failures().len();
    let warned = console
        .inner
        .adapters
        .list()
        .sources
        .iter()
        .filter(|s| !s.warnings.is_empty())
        .count();
    let body = html! {
        @if warned > 0 || failures > 0 {
            p class="flash warning" role="alert" {
                @if warned > 0 { (warned) " source(s) have start-up warnings (e.g. verification off). " }
                @if failures > 0 { (failures) " plugin library(ies) failed to load. " }
                a href="/console/sources" { "See Sources & adapters" }
            }
        }
        p {
            "Unresolved dead letters: "
            @match unresolved {
                Ok(1000) => { a href="/console/dead-letters" { strong { "1000 or more" } } }
                Ok(count) => { a href="/console/dead-letters" { strong { (count) } } }
                Err(status) => { "unknown (" (status.message()) ")" }
            }
        }
        div id="overview-live" data-live="/console/overview/live" aria-live="off" {
            (live)
        }
        p class="note" {
            "Rates are sampled every " (STEP.as_secs()) " s from the counters of "
            code { "/metrics" } " (since the process started, "
            (time(Some(&crate::app::timestamp(*STARTED)))) "); this page updates by itself. An error rate needs "
            (history::MIN_REQUESTS) " webhooks in its window."
        }
    };
    render(&console, &operator, "/console/", "Overview", body)
}

/// `GET /console/overview/live`: the live part, re-rendered every few seconds (SSE).
pub async fn live(State(console): State<Console>, operator: Operator) -> Response {
    let session_end = operator.session_end(&console);
    let shutdown = console.app().shutdown.clone();
    let stream = futures_util::stream::unfold(
        (console, shutdown, true),
        |(console, mut shutdown, first)| async move {
            if !first {
                tokio::select! {
                    () = tokio::time::sleep(LIVE_INTERVAL) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                }
            }
            let html = live_part(&console).await.into_string();
            let event = SseEvent::default().event("overview").data(html);
            Some((Ok::<_, Infallible>(event), (console, shutdown, false)))
        },
    );
    sse(futures_util::StreamExt::take_until(stream, session_end))
}

/// A Server-Sent Events response with keep-alive comments.
pub fn sse(stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn live_part(console: &Console) -> Markup {
    let app = console.app();
    let samples = console.inner.history.with_now(app).await;
    let rates = history::rates(&samples);
    let errors = history::error_rates(&samples, ERROR_WINDOW);
    let lags = history::lags(&samples);
    let totals = history::totals(app);
    let last = *app.log.last_sequence().borrow();
    let first = app.log.first_sequence().await;
    let health = app.log.health();
    let file_size = console.inner.log_file.as_deref().map(disk_bytes);
    html! {
        (super::provider_health::flags(console))
        section aria-labelledby="h-traffic" {
            h2 id="h-traffic" { "Webhooks" }
            (plot::lines("plot-rates", "Webhooks per second, per source", "webhooks/s", SPAN, &rates))
            div class="scroll" {
                table {
                    caption { "Per source, since the process started" }
                    thead { tr {
                        th scope="col" { "Source" }
                        th scope="col" class="num" { "Received" }
                        th scope="col" class="num" { "Accepted" }
                        th scope="col" class="num" { "Events stored" }
                        th scope="col" class="num" { "Duplicates" }
                        th scope="col" class="num" { "Dead-lettered" }
                        th scope="col" class="num" { "Ignored" }
                        th scope="col" { "Rejected, by reason" }
                        th scope="col" class="num" { "Error rate (5 min)" }
                    } }
                    tbody {
                        @for (source, t) in &totals {
                            tr {
                                th scope="row" { (display_name(source)) }
                                td class="num" { (t.received) }
                                td class="num" { (t.accepted) }
                                td class="num" { (t.events) }
                                td class="num" { (t.duplicates) }
                                td class="num" { (t.dead_lettered) }
                                td class="num" { (t.ignored) }
                                td {
                                    @if t.rejected.is_empty() { "none" }
                                    @for (reason, count) in &t.rejected {
                                        span class="reason" { code { (reason) } " " (count) } " "
                                    }
                                }
                                td class="num" {
                                    @match errors.get(source).copied().flatten() {
                                        Some(rate) => { (format!("{:.1} %", rate * 100.0)) }
                                        None => { span title=(format!("fewer than {} webhooks in the window", history::MIN_REQUESTS)) { "—" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-log" {
            h2 id="h-log" { "Event log" }
            dl class="facts" {
                dt { "Newest sequence" } dd id="log-last" { (last) }
                dt { "Oldest retained sequence" }
                dd id="log-first" {
                    @match &first {
                        Ok(first) if *first <= last => { (first) }
                        Ok(_) => { "none stored" }
                        Err(error) => { "unknown: " (error) }
                    }
                }
                dt { "Events retained" }
                dd { @match &first { Ok(first) if *first <= last => { (last - first + 1) } _ => { "0" } } }
                @if let Some(bytes) = file_size {
                    dt { "Log size on disk" } dd { (format_bytes(bytes)) }
                }
                dt { "Health" }
                dd {
                    @match &health {
                        Ok(()) => { span class="ok" { "can write" } }
                        Err(reason) => { span class="bad" { "cannot write: " (reason) } }
                    }
                }
            }
        }
        section aria-labelledby="h-lag" {
            h2 id="h-lag" { "Consumers' lag" }
            (plot::lines("plot-lag", "Durable consumers' lag", "events behind", SPAN, &lags))
            p { a href="/console/consumers" { "Consumers: reset or delete" } }
        }
    }
}

/// Bytes of `path`: a file's length, or every file's under a directory (the log-structured
/// engine's journal, tables and blob files).
fn disk_bytes(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_bytes(&e.path())).sum())
        .unwrap_or(0)
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
