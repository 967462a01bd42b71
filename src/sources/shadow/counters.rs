//! The shadow's Prometheus counters, registered by `crate::ops::metrics` with the others. A
//! module of their own so the shadow counts without depending on the registry's owner.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// A source and a kind of difference or failure of its shadowed candidate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    /// Source name (configured).
    pub source: String,
    /// A fixed kind: `event`, `dead_letter`, `rejection`, `ignored`; or for failures `panic`,
    /// `timeout`, `overload`, `error`.
    pub kind: String,
}

/// `tributary_adapter_shadow_differences_total`: webhooks on which a candidate differed.
pub static DIFFERENCES: LazyLock<Family<ShadowLabels, Counter>> = LazyLock::new(Family::default);
/// `tributary_adapter_shadow_failures_total`: webhooks a candidate could not answer.
pub static FAILURES: LazyLock<Family<ShadowLabels, Counter>> = LazyLock::new(Family::default);

fn labels(source: &str, kind: &str) -> ShadowLabels {
    ShadowLabels {
        source: source.to_owned(),
        kind: kind.to_owned(),
    }
}

/// Counts a webhook on which the candidate of `source` differed, for one `kind`.
pub fn difference(source: &str, kind: &str) {
    DIFFERENCES.get_or_create(&labels(source, kind)).inc();
}

/// Counts a webhook the candidate of `source` could not answer.
pub fn failure(source: &str, kind: &str) {
    FAILURES.get_or_create(&labels(source, kind)).inc();
}
