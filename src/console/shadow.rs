//! Shadow rollouts: start a candidate adapter beside a source's active one, watch how often and
//! where it differs (the last differing webhooks with their field-level diffs, redacted), then
//! promote or abort it. The same `AdaptersService` calls as the gRPC shadow RPCs and
//! `tributary adapter shadow`.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tributary_model::v1::{ShadowCount, ShadowStatus};

use super::layout::{Flash, csrf_field, render, time};
use super::{Action, Console, Operator};

const ACTIVE: &str = "/console/shadow";

/// `GET /console/shadow`.
pub async fn page(State(console): State<Console>, operator: Operator) -> Response {
    let adapters = &console.inner.adapters;
    let shadows = adapters.shadows();
    let sources = adapters.list().sources;
    let body = html! {
        p class="note" {
            "A candidate runs on a copy of every webhook of its source, off the request path, "
            "within its own time budget: its output is never stored and its failures are never "
            "answered to the provider. Its result is compared with the active adapter's "
            "(every event field, dead letters, rejections)."
        }
        section aria-labelledby="h-start" {
            h2 id="h-start" { "Start a shadow" }
            form method="post" action="/console/shadow/start" class="inline-form" {
                (csrf_field(&operator))
                label { "Source " select name="source" {
                    @for source in &sources { option value=(source.name) { (source.name) } }
                } }
                " "
                label { "Candidate " input type="text" name="candidate" size="48" required
                    placeholder="/srv/tributary/candidates/libquokka.so, or a version"; }
                " "
                button type="submit" { "Start shadow" }
            }
        }
        @if shadows.is_empty() {
            p id="no-shadows" { "No shadow is running." }
        }
        @for shadow in &shadows { (shadow_section(&operator, shadow)) }
    };
    render(&console, &operator, ACTIVE, "Shadow rollouts", body)
}

fn counts(counts: &[ShadowCount]) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|c| format!("{} {}", c.kind, c.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shadow_section(operator: &Operator, shadow: &ShadowStatus) -> Markup {
    let id = format!("shadow-{}", shadow.source);
    html! {
        section aria-labelledby=(format!("h-{id}")) id=(id) class="shadow" {
            h2 id=(format!("h-{id}")) { "Source " (shadow.source) }
            div class="scroll" {
                table {
                    tbody {
                        tr { th scope="row" { "Active" } td { (shadow.adapter) " " (shadow.active_version) } }
                        tr { th scope="row" { "Candidate" } td { (shadow.adapter) " " (shadow.candidate_version) " " code class="path" { (shadow.candidate_file) } } }
                        tr { th scope="row" { "Since" } td { (time(shadow.started_at.as_ref())) } }
                        tr { th scope="row" { "Compared" } td class="compared" { (shadow.compared) " webhooks, " (shadow.differed) " differed" } }
                        tr { th scope="row" { "Differences" } td class="differences" { (counts(&shadow.differences)) } }
                        tr { th scope="row" { "Candidate failures" } td.bad[!shadow.failures.is_empty()] { (counts(&shadow.failures)) } }
                    }
                }
            }
            div class="actions" {
                form method="post" action="/console/shadow/promote" {
                    (csrf_field(operator))
                    input type="hidden" name="source" value=(shadow.source);
                    button type="submit" { "Promote " (shadow.candidate_version) }
                }
                form method="post" action="/console/shadow/abort" {
                    (csrf_field(operator))
                    input type="hidden" name="source" value=(shadow.source);
                    button type="submit" class="secondary" { "Abort" }
                }
            }
            h3 { "Last differing webhooks" }
            @if shadow.recent.is_empty() { p { "None yet." } }
            @for difference in &shadow.recent {
                details class="difference" open {
                    summary {
                        (time(difference.received_at.as_ref())) ": " (difference.kinds.join(", "))
                    }
                    pre class="diff" {
                        @for event in &difference.events {
                            "event " (event.event_id) "\n"
                            @for change in &event.changes {
                                span class=(line_class(change)) { "  " (change) } "\n"
                            }
                        }
                        @for line in &difference.outcome {
                            span class=(line_class(line)) { (line) } "\n"
                        }
                    }
                    p class="note" { "Body (redacted): " code { (String::from_utf8_lossy(&difference.body)) } }
                }
            }
        }
    }
}

/// The style of one diff line, by its first character.
fn line_class(line: &str) -> &'static str {
    match line.chars().next() {
        Some('+') => "added",
        Some('-') => "removed",
        _ => "changed",
    }
}

/// `POST /console/shadow/start` (`source`, `candidate`).
pub async fn start(State(console): State<Console>, action: Action) -> Response {
    let (source, candidate) = (action.form.get("source"), action.form.get("candidate"));
    let flash = match console.inner.adapters.start_shadow(source, candidate).await {
        Ok(shadow) => Flash::ok(
            format!(
                "Shadowing {} with candidate {} {}",
                shadow.source, shadow.adapter, shadow.candidate_version
            ),
            vec![format!("loaded from {}", shadow.candidate_file)],
        ),
        Err(error) => Flash::error(format!("Not started: {}", error.message())),
    };
    tracing::info!(credential = %action.operator.principal.name, source, "console: shadow started");
    done(&console, &action, flash)
}

/// `POST /console/shadow/promote` (`source`).
pub async fn promote(State(console): State<Console>, action: Action) -> Response {
    let source = action.form.get("source");
    let flash = match console.inner.adapters.promote_shadow(source).await {
        Ok(shadow) => Flash::ok(
            format!(
                "Promoted: {} is served by {} {}",
                shadow.source, shadow.adapter, shadow.candidate_version
            ),
            vec![format!(
                "{} compared, {} differed",
                shadow.compared, shadow.differed
            )],
        ),
        Err(error) => Flash::error(format!("Not promoted: {}", error.message())),
    };
    tracing::info!(credential = %action.operator.principal.name, source, "console: shadow promoted");
    done(&console, &action, flash)
}

/// `POST /console/shadow/abort` (`source`).
pub async fn abort(State(console): State<Console>, action: Action) -> Response {
    let source = action.form.get("source");
    let flash = match console.inner.adapters.abort_shadow(source) {
        Ok(shadow) => Flash::ok(
            format!(
                "Aborted: candidate {} dropped; {} stays on {}",
                shadow.candidate_version, shadow.source, shadow.active_version
            ),
            Vec::new(),
        ),
        Err(error) => Flash::error(format!("Not aborted: {}", error.message())),
    };
    tracing::info!(credential = %action.operator.principal.name, source, "console: shadow aborted");
    done(&console, &action, flash)
}

fn done(console: &Console, action: &Action, flash: Flash) -> Response {
    console.inner.sessions.flash(&action.operator.key, flash);
    Redirect::to(ACTIVE).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn diff_lines_are_styled_by_their_sign() {
        assert_eq!(super::line_class("+ a: 1"), "added");
        assert_eq!(super::line_class("- a: 1"), "removed");
        assert_eq!(super::line_class("~ a: 1 -> 2"), "changed");
    }
}
