//! Replay from the console: archived webhooks of a source run again through the adapter loaded
//! now. The form always runs a dry run first (what would change, nothing stored); its result
//! offers the real replay with the same choices, which then stores the changed events.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use tributary_model::v1::{ReplayProgress, ReplayRequest, ReplayedWebhook};

use super::layout::{csrf_field, error_page, render};
use super::tail::parse_time;
use super::{Action, Console, Form, Operator};
use crate::admin::replay::replay;
use crate::app::timestamp;
use crate::error::ServiceError;

const ACTIVE: &str = "/console/replay";
/// Replayed webhooks listed on the result page (the totals count them all).
const SHOWN: usize = 200;

/// `GET /console/replay`.
pub async fn page(State(console): State<Console>, operator: Operator) -> Response {
    let body = html! {
        p { "Runs a source's archived webhooks again through the adapter loaded now (after a fix). "
            "A dry run shows what would change first; nothing is stored until you confirm." }
        (form(&console, &operator, &Form::parse(b""), false))
    };
    render(&console, &operator, ACTIVE, "Replay", body)
}

/// The replay form, filled with `values`; `confirm` makes it the real replay's.
fn form(console: &Console, operator: &Operator, values: &Form, confirm: bool) -> Markup {
    let sources = console.app().sources.all();
    let chosen = values.get("source");
    html! {
        form method="post" action=(ACTIVE) class="filters" id=(if confirm { "replay-confirm" } else { "replay-form" }) {
            (csrf_field(operator))
            @if confirm {
                @for name in ["source", "from", "to", "types"] {
                    input type="hidden" name=(name) value=(values.get(name));
                }
                input type="hidden" name="confirm" value="yes";
                button type="submit" class="danger" { "Replay and store the changes" }
            } @else {
                label for="replay-source" { "Source" }
                select id="replay-source" name="source" required {
                    @for source in &sources {
                        option value=(source.name) selected[chosen == source.name] { (source.name) }
                    }
                }
                label for="replay-from" { "From (UTC)" }
                input id="replay-from" name="from" type="datetime-local" step="1" value=(values.get("from"));
                label for="replay-to" { "Before (UTC)" }
                input id="replay-to" name="to" type="datetime-local" step="1" value=(values.get("to"));
                label for="replay-types" { "Types" }
                input id="replay-types" name="types" type="text" value=(values.get("types")) placeholder="consent.* (empty: all)";
                button type="submit" { "Dry run" }
            }
        }
    }
}

/// `POST /console/replay`: a dry run, or with `confirm=yes` the replay itself.
pub async fn run(State(console): State<Console>, action: Action) -> Response {
    let Action {
        operator,
        form: values,
    } = action;
    let dry_run = values.get("confirm") != "yes";
    let time = |field: &str| -> Result<Option<_>, String> {
        match values.get(field) {
            "" => Ok(None),
            text => parse_time(text).map(|t| Some(timestamp(t.into()))),
        }
    };
    let (from, to) = match (time("from"), time("to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(error), _) | (_, Err(error)) => {
            let answer = (axum::http::StatusCode::BAD_REQUEST, error);
            return error_page(&console, &operator, ACTIVE, answer);
        }
    };
    let request = ReplayRequest {
        source: values.get("source").to_owned(),
        from,
        to,
        types: values
            .get("types")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        dry_run,
    };
    let (progress, mut updates) = tokio::sync::mpsc::channel::<ReplayProgress>(16);
    let app = console.app().clone();
    let running = async move {
        let result = replay(&app, &request, &progress).await;
        drop(progress);
        result
    };
    let collect = async {
        let mut shown = Vec::new();
        while let Some(update) = updates.recv().await {
            if let Some(webhook) = update.webhook
                && shown.len() < SHOWN
            {
                shown.push(webhook);
            }
        }
        shown
    };
    let (result, shown) = tokio::join!(running, collect);
    let totals = match result {
        Ok(totals) => totals,
        Err(error) => return error_page(&console, &operator, ACTIVE, error.http_answer()),
    };
    if !dry_run {
        tracing::info!(credential = %operator.principal.name, source = %values.get("source"), stored = totals.stored, "console: replay");
    }
    let body = html! {
        p id="replay-totals" {
            @if dry_run { "Dry run: " } @else { "Replayed: " }
            (totals.webhooks) " webhooks, "
            @if dry_run { (shown.iter().filter(|w| w.outcome == "changed").count()) " would change, " } @else { (totals.stored) " events stored, " }
            (totals.unchanged) " unchanged events, " (totals.failed) " failed."
        }
        (outcomes(&shown))
        @if dry_run {
            (form(&console, &operator, &values, true))
        }
        p { a href=(ACTIVE) { "New replay" } }
    };
    let title = if dry_run {
        "Replay: dry run"
    } else {
        "Replay: done"
    };
    render(&console, &operator, ACTIVE, title, body)
}

fn outcomes(shown: &[ReplayedWebhook]) -> Markup {
    html! {
        @if shown.is_empty() {
            p id="replay-none" { "No archived webhook of this source in that range." }
        } @else {
            table id="replay-outcomes" {
                thead { tr {
                    th scope="col" { "Archive entry" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Changes" }
                } }
                tbody {
                    @for webhook in shown {
                        tr {
                            td { (webhook.archive_id) }
                            td class="outcome" { (webhook.outcome) }
                            td {
                                @if !webhook.error.is_empty() { (webhook.error) }
                                @for diff in &webhook.diffs {
                                    div { code { (diff.event_id) } ": " (diff.changes.join("; ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
