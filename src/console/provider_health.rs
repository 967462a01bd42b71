//! The overview's provider-health flags: sources out of an expectation of their
//! `[sources.X.expect]` table (silent too long, too many verification failures or dead
//! letters), the same report `/readyz` lists and the gauges export.

use maud::{Markup, html};

use super::Console;

/// A warning listing each source out of expectation; nothing when all are within.
pub fn flags(console: &Console) -> Markup {
    let sources = console.app().sources.all();
    let report = crate::health::tracker().report(sources.iter().map(|s| s.name.as_str()));
    let flagged: Vec<_> = report
        .into_iter()
        .filter(|health| !health.violations.is_empty())
        .collect();
    html! {
        @if !flagged.is_empty() {
            div class="flash warning" role="alert" id="out-of-expectation" {
                p { strong { "Sources out of expectation" } " ([sources.X.expect]; ingest is unaffected):" }
                ul {
                    @for health in &flagged {
                        @for violation in &health.violations {
                            li data-source=(health.source) { strong { (health.source) } ": " (violation.detail) }
                        }
                    }
                }
            }
        }
    }
}
