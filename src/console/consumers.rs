//! Consumers: each durable consumer's acknowledged sequence, lag and last ack; reset to a
//! sequence or a time, and delete, each after a confirmation page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tributary_model::v1::{
    Consumer, DeleteConsumerRequest, ResetConsumerRequest, reset_consumer_request::Position,
};

use super::layout::{Flash, csrf_field, error_page, render, time};
use super::tail::parse_time;
use super::{Action, Console, Operator};
use crate::app::timestamp;
use crate::error::{OpError, ServiceError};

const ACTIVE: &str = "/console/consumers";

/// `GET /console/consumers`.
pub async fn page(State(console): State<Console>, operator: Operator) -> Response {
    let consumers = match console.inner.admin.consumers().await {
        Ok(listed) => listed.consumers,
        Err(status) => return error_page(&console, &operator, ACTIVE, status.http_answer()),
    };
    let last = *console.app().log.last_sequence().borrow();
    let body = html! {
        p { "Newest sequence in the log: " strong id="newest" { (last) } }
        @if consumers.is_empty() {
            p { "No durable consumers. They are created by the first " code { "Subscribe" } " with a " code { "consumer" } " name." }
        } @else {
            div class="scroll" {
                table id="consumers" {
                    thead { tr {
                        th scope="col" { "Consumer" }
                        th scope="col" class="num" { "Acked sequence" }
                        th scope="col" class="num" { "Lag" }
                        th scope="col" { "Last ack" }
                        th scope="col" { "Reset" }
                        th scope="col" { "Delete" }
                    } }
                    tbody {
                        @for consumer in &consumers {
                            (row(&operator, consumer))
                        }
                    }
                }
            }
        }
    };
    render(&console, &operator, ACTIVE, "Consumers", body)
}

fn row(operator: &Operator, consumer: &Consumer) -> Markup {
    let name = &consumer.name;
    html! {
        tr id={"consumer-" (name)} {
            th scope="row" { (name) }
            td class="num acked" { (consumer.acked_sequence) }
            td class="num lag" { (consumer.lag) }
            td { (time(consumer.acked_at.as_ref())) }
            td {
                form class="inline" method="post" action="/console/consumers/reset" {
                    (csrf_field(operator))
                    input type="hidden" name="name" value=(name);
                    label for={"seq-" (name)} { "After sequence" }
                    input id={"seq-" (name)} name="sequence" type="number" min="0" inputmode="numeric";
                    label for={"time-" (name)} { "or from time (UTC)" }
                    input id={"time-" (name)} name="time" type="datetime-local" step="1";
                    button type="submit" { "Reset…" }
                }
            }
            td {
                form class="inline" method="post" action="/console/consumers/delete" {
                    (csrf_field(operator))
                    input type="hidden" name="name" value=(name);
                    button type="submit" class="danger" { "Delete…" }
                }
            }
        }
    }
}

/// A confirmation page that re-posts `fields` with `confirm=yes`.
fn confirm(
    console: &Console,
    operator: &Operator,
    action: &str,
    question: Markup,
    fields: &[(&str, &str)],
    label: &str,
) -> Response {
    let body = html! {
        div class="confirm" role="alertdialog" aria-labelledby="confirm-question" {
            p id="confirm-question" { (question) }
            form method="post" action=(action) {
                (csrf_field(operator))
                @for (name, value) in fields {
                    input type="hidden" name=(name) value=(value);
                }
                input type="hidden" name="confirm" value="yes";
                button type="submit" class="danger" autofocus { (label) }
                " "
                a href=(ACTIVE) { "Cancel" }
            }
        }
    };
    render(console, operator, ACTIVE, "Please confirm", body)
}

async fn find(console: &Console, name: &str) -> Result<Option<Consumer>, OpError> {
    let listed = console.inner.admin.consumers().await?;
    Ok(listed.consumers.into_iter().find(|c| c.name == name))
}

/// `POST /console/consumers/reset` (`name`, `sequence` or `time`, then `confirm=yes`).
pub async fn reset(State(console): State<Console>, action: Action) -> Response {
    let Action { operator, form } = action;
    let name = form.get("name").to_owned();
    let (sequence, at) = (form.get("sequence"), form.get("time"));
    let position = if !sequence.is_empty() {
        match sequence.parse::<u64>() {
            Ok(sequence) => Position::AfterSequence(sequence),
            Err(_) => return bad(&console, &operator, "the sequence must be a whole number"),
        }
    } else if !at.is_empty() {
        match parse_time(at) {
            Ok(at) => Position::ToTime(timestamp(at.into())),
            Err(error) => return bad(&console, &operator, &error),
        }
    } else {
        return bad(&console, &operator, "give a sequence or a time to reset to");
    };
    if form.get("confirm") != "yes" {
        let current = match find(&console, &name).await {
            Ok(Some(consumer)) => consumer,
            Ok(None) => return bad(&console, &operator, &format!("no consumer named `{name}`")),
            Err(status) => {
                return error_page(&console, &operator, ACTIVE, status.http_answer());
            }
        };
        let target = match &position {
            Position::AfterSequence(sequence) => format!("after sequence {sequence}"),
            Position::ToTime(_) => format!("to the first event at or after {at} UTC"),
        };
        let question = html! {
            "Reset consumer " strong { (name) } " (acknowledged up to " (current.acked_sequence)
            ", lag " (current.lag) ") " (target) "? Its next "
            code { "Subscribe" } " resumes from there: moving back delivers events again, moving forward skips them."
        };
        let fields = [
            ("name", name.as_str()),
            ("sequence", sequence),
            ("time", at),
        ];
        return confirm(
            &console,
            &operator,
            "/console/consumers/reset",
            question,
            &fields,
            "Reset consumer",
        );
    }
    let outcome = console
        .inner
        .admin
        .reset(ResetConsumerRequest {
            name: name.clone(),
            position: Some(position),
        })
        .await;
    let label = match &outcome {
        Ok(_) => "ok".to_owned(),
        Err(error) => crate::error::ServiceError::error_code(error)
            .label()
            .to_owned(),
    };
    operator
        .audit_or_log(&console, "consumer.reset", name.clone(), label)
        .await;
    let flash = match outcome {
        Ok(consumer) => {
            tracing::info!(credential = %operator.principal.name, consumer = %name, acked = consumer.acked_sequence, "console: consumer reset");
            Flash::ok(
                format!(
                    "Consumer {name} reset: acknowledged up to {}, lag {}",
                    consumer.acked_sequence, consumer.lag
                ),
                Vec::new(),
            )
        }
        Err(status) => Flash::error(format!("Reset failed: {}", status.message())),
    };
    console.inner.sessions.flash(&operator.key, flash);
    Redirect::to(ACTIVE).into_response()
}

/// `POST /console/consumers/delete` (`name`, then `confirm=yes`).
pub async fn delete(State(console): State<Console>, action: Action) -> Response {
    let Action { operator, form } = action;
    let name = form.get("name").to_owned();
    if form.get("confirm") != "yes" {
        let question = html! {
            "Delete consumer " strong { (name) } "? Its position is lost and retention no longer "
            "keeps events for it; a later " code { "Subscribe" } " with this name starts afresh."
        };
        return confirm(
            &console,
            &operator,
            "/console/consumers/delete",
            question,
            &[("name", name.as_str())],
            "Delete consumer",
        );
    }
    let outcome = console
        .inner
        .admin
        .delete(DeleteConsumerRequest { name: name.clone() })
        .await;
    let label = match &outcome {
        Ok(_) => "ok".to_owned(),
        Err(error) => crate::error::ServiceError::error_code(error)
            .label()
            .to_owned(),
    };
    operator
        .audit_or_log(&console, "consumer.delete", name.clone(), label)
        .await;
    let flash = match outcome {
        Ok(done) if done.deleted => {
            tracing::info!(credential = %operator.principal.name, consumer = %name, "console: consumer deleted");
            Flash::ok(format!("Consumer {name} deleted"), Vec::new())
        }
        Ok(_) => Flash::error(format!("There was no consumer named {name}")),
        Err(status) => Flash::error(format!("Delete failed: {}", status.message())),
    };
    console.inner.sessions.flash(&operator.key, flash);
    Redirect::to(ACTIVE).into_response()
}

fn bad(console: &Console, operator: &Operator, message: &str) -> Response {
    error_page(
        console,
        operator,
        ACTIVE,
        (StatusCode::BAD_REQUEST, message.to_owned()),
    )
}
