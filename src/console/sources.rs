//! Sources & adapters: each source's adapter and its start-up warnings (verification switched
//! off is shown first and loudly), each loaded plugin (file, version, SHA-256, ABI, panics),
//! libraries that failed to load, and a reload button.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{Flash, csrf_field, render, time};
use super::{Action, Console, Operator};

/// Whether a start-up warning says webhooks are not verified (the adapters' shared wording:
/// "webhook verification is switched off").
fn unverified(warning: &str) -> bool {
    let warning = warning.to_ascii_lowercase();
    warning.contains("verification") && (warning.contains("off") || warning.contains("disabled"))
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
        .filter(|s| s.warnings.iter().any(|w| unverified(w)))
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
                        th scope="col" { "Start-up warnings" }
                    } }
                    tbody {
                        @for source in &list.sources {
                            @let warned = !source.warnings.is_empty();
                            tr class=[warned.then_some("warned")] data-source=(source.name) {
                                th scope="row" {
                                    (source.name)
                                    @if source.warnings.iter().any(|w| unverified(w)) {
                                        " " span class="badge bad" { "verification off" }
                                    }
                                }
                                td { (source.adapter) }
                                td { (plugin(&source.adapter).and_then(|p| p.info.as_ref()).map(|i| i.version.as_str()).unwrap_or("—")) }
                                td {
                                    @if source.warnings.is_empty() { "none" }
                                    @for warning in &source.warnings { p class="warning-text" { (warning) } }
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_adapters_wording_of_verification_off_is_recognised() {
        assert!(super::unverified(
            "arcadia: webhook verification is switched off (verification.disabled = true): \
             anyone who can reach the endpoint can inject events"
        ));
        assert!(!super::unverified("klavi: max_age_seconds is large"));
    }
}
