//! What ingest tells the observers beside the data path: a shadowed candidate (the active
//! adapter's outcome to compare with) and provider health (the verification verdict).

use tributary_model::v1::RejectionKind;

use super::IngestError;
use super::adapter_call::Answered;
use crate::sources::shadow::Outcome;

/// What the active adapter did, for a shadowed candidate; `None` when it gave no answer (it
/// timed out, failed or panicked): nothing to compare.
pub fn shadow_outcome(result: &Answered) -> Option<Outcome> {
    match result {
        Ok((_, completed)) => Some(Outcome::Normalized(completed.clone())),
        Err(IngestError::Unauthenticated(reason)) => Some(Outcome::Rejected {
            kind: RejectionKind::Unauthenticated,
            reason: reason.clone(),
        }),
        Err(IngestError::Malformed(reason)) => Some(Outcome::Rejected {
            kind: RejectionKind::Malformed,
            reason: reason.clone(),
        }),
        Err(_) => None,
    }
}

/// Reports to provider health whether the webhook was authentic (accepted) or refused as
/// unauthenticated; other answers say nothing about the provider.
pub fn report_health(source: &str, result: &Answered) {
    match result {
        Ok(_) => crate::health::tracker().verified(source, true),
        Err(IngestError::Unauthenticated(_)) => crate::health::tracker().verified(source, false),
        Err(_) => {}
    }
}
