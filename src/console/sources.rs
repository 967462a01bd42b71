//! Sources & adapters: each source's adapter, its verification state as the adapter reports it
//! (switched off is shown first and loudly; not configured means every webhook is refused),
//! its secrets' labels and ends, and its start-up warnings; each loaded plugin (file,
//! version, SHA-256, ABI, panics), libraries that failed to load, and a reload button.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tributary_model::v1::{ConfiguredSource, VerificationState};

use super::layout::{Flash, csrf_field, render, time};
use super::{Action, Console, Operator};

/// The source's verification state, as its adapter reports it (never read from a warning).
fn state(source: &ConfiguredSource) -> VerificationState {
    VerificationState::try_from(source.verification).unwrap_or(VerificationState::Unspecified)
}

/// The badge naming a source's verification state: red only when switched off.
fn state_badge(source: &ConfiguredSource) -> Markup {
    let (class, text) = match state(source) {
        VerificationState::On => ("badge ok", "verification on"),
        VerificationState::NotConfigured => ("badge warn", "not configured: all refused"),
        VerificationState::Disabled => ("badge bad", "verification off"),
        VerificationState::Unspecified => ("badge", "verification unknown"),
    };
    html! { span class=(class) data-verification=(text) { (text) } }
}

/// The configured secrets: position, label and end, never a value.
fn secrets(source: &ConfiguredSource) -> Markup {
    html! {
        @if !source.secrets.is_empty() {
            ul class="secrets" {
                @for secret in &source.secrets {
                    li {
                        "#" (secret.index)
                        @if !secret.label.is_empty() { " " code { (secret.label) } }
                        @if let Some(end) = &secret.not_after {
                            " until " (time(Some(end)))
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/sources`.
pub async fn page(State(console): State<Console>, operator: Operator) -> Response {
    let (console, operator) = (&console, &operator);
    let list = console.inner.adapters.list();
    let plugin = |name: &str| {
        list.adapters
            .iter()
            .find(|a| a.info.as_ref().is_some_and(|i| i.name == name))
    };
    let flagged: Vec<_> = list
        .sources
        .iter()
        .filter(|s| state(s) == VerificationState::Disabled)
        .map(|s| s.name.clone())
        .collect();
    let refusing: Vec<_> = list
        .sources
        .iter()
        .filter(|s| state(s) == VerificationState::NotConfigured)
        .map(|s| s.name.clone())
        .collect();
    let body = html! {
        @if !flagged.is_empty() {
            div class="flash error" role="alert" id="unverified" {
                p { strong { "Verification is switched off for: " (flagged.join(", ")) } }
                p { "Anyone who can reach the webhook endpoint can inject events into these sources. "
                    "Configure their verification secrets before exposing them." }
            }
        }
        @if !refusing.is_empty() {
            div class="flash warning" role="status" id="not-configured" {
                p { strong { "Verification is not configured for: " (refusing.join(", ")) } }
                p { "Every webhook to these sources is refused (401) until their "
                    code { "verification.secrets" } " are set." }
            }
        }
        @if !list.load_failures.is_empty() {
            div class="flash error" role="alert" {
                p { strong { "Plugin libraries that failed to load" } " (the previous version, if any, keeps serving):" }
                ul { @for failure in &list.load_failures { li { code { (failure) } } } }
            }
        }
        section aria-labelledby="h-sources" {
            h2 id="h-sources" { "Sources" }
            div class="scroll" {
                table {
                    thead { tr {
                        th scope="col" { "Source" }
                        th scope="col" { "Adapter" }
                        th scope="col" { "Version" }
                        th scope="col" { "Verification" }
                        th scope="col" { "Start-up warnings" }
                    } }
                    tbody {
                        @for source in &list.sources {
                            @let warned = state(source) == VerificationState::Disabled;
                            tr class=[warned.then_some("warned")] data-source=(source.name) {
                                th scope="row" { (source.name) }
                                td { (source.adapter) }
                                td { (plugin(&source.adapter).and_then(|p| p.info.as_ref()).map(|i| i.version.as_str()).unwrap_or("—")) }
                                td { (state_badge(source)) (secrets(source)) }
                                td {
                                    @if source.warnings.is_empty() { "none" }
                                    // Red only for a source that accepts unchecked webhooks.
                                    @for warning in &source.warnings { p class=(if warned { "warning-text" } else { "warning-text mild" }) { (warning) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-adapters" {
            h2 id="h-adapters" { "Loaded adapters" }
            div class="scroll" {
                table {
                    thead { tr {
                        th scope="col" { "Adapter" }
                        th scope="col" { "Version" }
                        th scope="col" { "ABI" }
                        th scope="col" { "Plugin file" }
                        th scope="col" { "SHA-256" }
                        th scope="col" { "Loaded" }
                        th scope="col" class="num" { "Panics" }
                    } }
                    tbody {
                        @for adapter in &list.adapters {
                            @let info = adapter.info.clone().unwrap_or_default();
                            tr {
                                th scope="row" { (info.name) br; small { (info.provider) } }
                                td { (info.version) }
                                td { (adapter.abi_version) }
                                td { code class="path" { (adapter.file) } }
                                td { code class="hash" title=(adapter.sha256) { (adapter.sha256) } }
                                td { (time(adapter.loaded_at.as_ref())) }
                                td.num.bad[adapter.panics > 0] { (adapter.panics) }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/console/sources/reload" {
            (csrf_field(operator))
            button type="submit" { "Reload adapters" }
            " "
            span class="note" { "Rescans the plugin directory and swaps in new or rebuilt libraries (also done on file changes and SIGHUP)." }
        }
    };
    render(
        console,
        operator,
        "/console/sources",
        "Sources & adapters",
        body,
    )
}

/// `POST /console/sources/reload`: the `ReloadAdapters` call; its report is shown.
pub async fn reload(State(console): State<Console>, action: Action) -> Response {
    let reloaded = console.inner.adapters.reload().await;
    let label = if reloaded.is_ok() { "ok" } else { "failed" };
    action
        .operator
        .audit_or_log(&console, "adapters.reload", "", label)
        .await;
    let flash = match reloaded {
        Ok(report) => {
            let mut lines = Vec::new();
            lines.extend(report.loaded.iter().map(|l| format!("loaded: {l}")));
            lines.extend(report.swapped.iter().map(|s| format!("swapped: {s}")));
            lines.extend(report.failed.iter().map(|f| format!("failed: {f}")));
            let title = if report.loaded.is_empty() && report.failed.is_empty() {
                "Reloaded: nothing changed".to_owned()
            } else {
                format!(
                    "Reloaded: {} loaded, {} failed",
                    report.loaded.len(),
                    report.failed.len()
                )
            };
            Flash {
                ok: report.failed.is_empty(),
                title,
                lines,
            }
        }
        Err(status) => Flash::error(format!("Reload failed: {}", status.message())),
    };
    tracing::info!(credential = %action.operator.principal.name, "console: adapters reloaded");
    console.inner.sessions.flash(&action.operator.key, flash);
    Redirect::to("/console/sources").into_response()
}
