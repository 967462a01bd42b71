//! The page shell (navigation, the message after an action) and formatting helpers.

use std::time::SystemTime;

use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use tributary_model::well_known::Timestamp;

use super::{Console, Operator};

/// A message shown once on the next page, after an action redirected there.
#[derive(Debug, Clone)]
pub struct Flash {
    /// Whether the action did what was asked.
    pub ok: bool,
    /// One line saying what happened.
    pub title: String,
    /// Details, one per line (outcomes of a redrive, a reload's report).
    pub lines: Vec<String>,
}

impl Flash {
    /// A success message.
    pub fn ok(title: impl Into<String>, lines: Vec<String>) -> Self {
        Self {
            ok: true,
            title: title.into(),
            lines,
        }
    }

    /// A failure message.
    pub fn error(title: impl Into<String>) -> Self {
        Self {
            ok: false,
            title: title.into(),
            lines: Vec::new(),
        }
    }
}

/// The pages of the navigation: path and label.
const NAV: [(&str, &str); 10] = [
    ("/console/", "Overview"),
    ("/console/sources", "Sources & adapters"),
    ("/console/shadow", "Shadow rollouts"),
    ("/console/tail", "Live tail"),
    ("/console/search", "Find an event"),
    ("/console/dead-letters", "Dead letters"),
    ("/console/consumers", "Consumers"),
    ("/console/audit", "Audit log"),
    ("/console/replay", "Replay"),
    ("/console/rejections", "Rejections"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tributary" }
            link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// A page without navigation (the login page).
pub fn bare_page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// A console page: navigation with `active` marked, the pending message, then `body`.
pub fn render(
    console: &Console,
    operator: &Operator,
    active: &str,
    title: &str,
    body: Markup,
) -> Response {
    let flash = console.inner.sessions.take_flash(&operator.key);
    let who = operator.principal.name.clone();
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    a class="skip" href="#main" { "Skip to content" }
                    header class="top" {
                        nav aria-label="Console" {
                            span class="brand" { "Tributary" }
                            ul {
                                @for (path, label) in NAV {
                                    li {
                                        @if path == active {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form class="logout" method="post" action="/console/logout" {
                            (csrf_field(operator))
                            span { "Signed in as " strong { (who) } }
                            button type="submit" { "Log out" }
                        }
                    }
                    main id="main" {
                        h1 { (title) }
                        @if let Some(flash) = flash {
                            (flash_box(&flash))
                        }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

fn flash_box(flash: &Flash) -> Markup {
    let class = if flash.ok { "flash ok" } else { "flash error" };
    html! {
        div class=(class) role="status" {
            p { strong { (flash.title) } }
            @if !flash.lines.is_empty() {
                ul { @for line in &flash.lines { li { (line) } } }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(operator: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(operator.csrf); }
}

/// A timestamp as `2024-05-01 12:00:00 UTC`; "—" when absent.
pub fn time(at: Option<&Timestamp>) -> String {
    at.and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// How long ago `at` was: "42 s", "5 min", "3 h", "2 d".
pub fn age(at: Option<&Timestamp>) -> String {
    let Some(at) = at else {
        return "—".to_owned();
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let seconds = now.saturating_sub(at.seconds).max(0);
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86400),
    }
}

/// An error page for a failed read (the operation's message, never a body).
pub fn error_page(
    console: &Console,
    operator: &Operator,
    active: &str,
    (status, message): (axum::http::StatusCode, String),
) -> Response {
    let mut response = render(
        console,
        operator,
        active,
        "Something went wrong",
        html! { p class="flash error" role="alert" { (message) } },
    );
    *response.status_mut() = status;
    response
}
