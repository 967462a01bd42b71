//! What an adapter did with one webhook, and how two such outcomes differ.

use tributary_model::plugin_wire::{EncodedAdapterResult, EncodedOutcome};
use tributary_model::v1::{
    Event, EventDiff, RejectionKind, ShadowDifference, UnmappedItem, WebhookRequest,
};
use tributary_plugin_host::HandleError;

use crate::admin::redact::Redactor;
use crate::ingest::complete::{self, Completed, Producer};

/// An adapter's answer to one webhook, as far as it can be compared.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Events (completed as ingest completes them, still encoded), dead-lettered items and
    /// ignored items.
    Normalized(Completed),
    /// Refused: unauthenticated or malformed, with the adapter's reason.
    Rejected { kind: RejectionKind, reason: String },
}

/// Why the candidate gave no comparable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Panic,
    Overload,
    Error,
}

impl Failure {
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Panic => "panic",
            Failure::Overload => "overload",
            Failure::Error => "error",
        }
    }
}

impl Outcome {
    /// The candidate's outcome from its call, completed with the active adapter's `producer`
    /// (so provenance compares equal) as ingest completes events; a result that does not
    /// decode becomes one dead-lettered item, as in ingest.
    pub fn of_candidate(
        source: &str,
        producer: Producer<'_>,
        request: &WebhookRequest,
        result: Result<EncodedAdapterResult, HandleError>,
    ) -> Result<Self, Failure> {
        let undecodable = |error: HandleError| {
            Outcome::Normalized(Completed {
                unmapped: vec![UnmappedItem {
                    reason: error.to_string(),
                    ..UnmappedItem::default()
                }],
                ..Completed::default()
            })
        };
        let result = match result {
            Ok(result) => result,
            Err(error @ HandleError::Undecodable { .. }) => return Ok(undecodable(error)),
            Err(HandleError::Panicked { .. }) => return Err(Failure::Panic),
            Err(HandleError::Busy { .. }) => return Err(Failure::Overload),
            Err(HandleError::Failed { .. }) => return Err(Failure::Error),
        };
        match result.outcome {
            Some(EncodedOutcome::Normalized(normalized)) => {
                match complete::complete(source, producer, request, normalized) {
                    Ok(completed) => Ok(Outcome::Normalized(completed)),
                    Err(error) => Ok(undecodable(HandleError::Undecodable {
                        adapter: producer.adapter.to_owned(),
                        reason: error.to_string(),
                    })),
                }
            }
            Some(EncodedOutcome::Rejection(rejection)) => Ok(Outcome::Rejected {
                kind: if rejection.kind == RejectionKind::Unauthenticated as i32 {
                    RejectionKind::Unauthenticated
                } else {
                    RejectionKind::Malformed
                },
                reason: rejection.reason,
            }),
            None => Err(Failure::Error),
        }
    }
}

/// How `candidate` differs from `active`, values redacted by `redactor`; `None` when they
/// agree. The body is redacted by the caller.
pub fn difference(
    active: &Outcome,
    candidate: &Outcome,
    redactor: &Redactor,
) -> Option<ShadowDifference> {
    let mut kinds = Vec::new();
    let mut events = Vec::new();
    let mut outcome = Vec::new();
    match (active, candidate) {
        (Outcome::Normalized(a), Outcome::Normalized(c)) => {
            let (a_events, c_events) = (decoded(&a.events), decoded(&c.events));
            for index in 0..a_events.len().max(c_events.len()) {
                let (before, after) = (a_events.get(index), c_events.get(index));
                // Both are completed by the same producer: equal events need no field walk.
                if before == after {
                    continue;
                }
                let changes = crate::diff::changes(before, after, Some(redactor));
                if !changes.is_empty() {
                    events.push(EventDiff {
                        event_id: before.or(after).map(|e| e.id.clone()).unwrap_or_default(),
                        original_sequence: 0,
                        changes,
                    });
                }
            }
            if !events.is_empty() {
                kinds.push("event");
            }
            let (a_items, c_items) = (items(&a.unmapped), items(&c.unmapped));
            if lines_differ(&a_items, &c_items, &mut outcome) {
                kinds.push("dead_letter");
            }
            let (a_ignored, c_ignored) = (ignored(&a.ignored), ignored(&c.ignored));
            if lines_differ(&a_ignored, &c_ignored, &mut outcome) {
                kinds.push("ignored");
            }
        }
        (a, c) => {
            let (a, c) = (vec![rejection(a)], vec![rejection(c)]);
            if lines_differ(&a, &c, &mut outcome) {
                kinds.push("rejection");
            }
        }
    }
    if kinds.is_empty() {
        return None;
    }
    Some(ShadowDifference {
        kinds: kinds.into_iter().map(str::to_owned).collect(),
        events,
        outcome,
        ..ShadowDifference::default()
    })
}

/// The events decoded; one that does not decode is left out (ingest checked each decodes).
fn decoded(events: &[tributary_event_log::PendingEvent]) -> Vec<Event> {
    events.iter().filter_map(|e| e.event().ok()).collect()
}

fn items(unmapped: &[UnmappedItem]) -> Vec<String> {
    unmapped
        .iter()
        .map(|item| {
            format!(
                "dead letter: id {:?}, type {:?}, reason {:?}",
                item.provider_event_id, item.provider_event_type, item.reason
            )
        })
        .collect()
}

fn ignored(ignored: &[String]) -> Vec<String> {
    ignored
        .iter()
        .map(|why| format!("ignored: {why:?}"))
        .collect()
}

/// The one line describing an outcome's rejection (or that it was accepted).
fn rejection(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Normalized(_) => "accepted".to_owned(),
        Outcome::Rejected { kind, reason } => {
            format!("rejected: {}, reason {reason:?}", kind.as_str_name())
        }
    }
}

/// Appends "- line" for what only `active` has and "+ line" for what only `candidate` has
/// (as multisets, in order); whether anything differed.
fn lines_differ(active: &[String], candidate: &[String], out: &mut Vec<String>) -> bool {
    let mut only_candidate: Vec<&String> = candidate.iter().collect();
    let mut differed = false;
    for line in active {
        match only_candidate.iter().position(|c| *c == line) {
            Some(index) => {
                only_candidate.remove(index);
            }
            None => {
                out.push(format!("- {line}"));
                differed = true;
            }
        }
    }
    for line in only_candidate {
        out.push(format!("+ {line}"));
        differed = true;
    }
    differed
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_event_log::PendingEvent;

    fn normalized(subjects: &[&str], unmapped: &[&str]) -> Outcome {
        Outcome::Normalized(Completed {
            events: subjects
                .iter()
                .map(|s| {
                    PendingEvent::from_event(&Event {
                        id: format!("s:{s}"),
                        subject: (*s).to_owned(),
                        ..Event::default()
                    })
                })
                .collect(),
            unmapped: unmapped
                .iter()
                .map(|reason| UnmappedItem {
                    reason: (*reason).to_owned(),
                    ..UnmappedItem::default()
                })
                .collect(),
            ignored: Vec::new(),
        })
    }

    #[test]
    fn agreement_is_no_difference() {
        let shown = crate::diff::event_redactor(&["none".to_owned()], &[]);
        let a = normalized(&["a"], &["x"]);
        assert_eq!(difference(&a, &normalized(&["a"], &["x"]), &shown), None);
    }

    #[test]
    fn events_dead_letters_and_rejections_are_told_apart() {
        let shown = crate::diff::event_redactor(&["none".to_owned()], &[]);
        let diff = difference(
            &normalized(&["a"], &["x"]),
            &normalized(&["a", "b"], &[]),
            &shown,
        )
        .expect("differs");
        assert_eq!(diff.kinds, ["event", "dead_letter"]);
        assert_eq!(
            diff.events[0].changes,
            [r#"+ id: "s:b""#, r#"+ subject: "b""#]
        );
        assert_eq!(
            diff.outcome,
            [r#"- dead letter: id "", type "", reason "x""#]
        );
        let rejected = Outcome::Rejected {
            kind: RejectionKind::Unauthenticated,
            reason: "bad signature".to_owned(),
        };
        let diff = difference(&normalized(&["a"], &[]), &rejected, &shown).expect("differs");
        assert_eq!(diff.kinds, ["rejection"]);
        assert_eq!(
            diff.outcome,
            [
                "- accepted",
                r#"+ rejected: REJECTION_KIND_UNAUTHENTICATED, reason "bad signature""#
            ]
        );
    }
}
