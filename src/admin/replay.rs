//! Replay: archived webhooks of a source run again through the adapter loaded now (after it was
//! fixed or extended). The events that differ from their originals are stored as new events
//! marked `replay_of` and reported field by field ([`crate::diff`], the format a shadowed
//! candidate's differences use too); identical ones are not stored again,
//! and the log's dedup key for a replay includes the adapter version, so replaying twice with
//! one version adds nothing.

use tokio::sync::mpsc;
use tributary_event_log::{AppendRequest, PendingEvent, rules};
use tributary_model::v1::{
    ArchiveEntry, EventDiff, ReplayOf, ReplayProgress, ReplayRequest, ReplayedWebhook,
};

use crate::admin::raw::{RawError, event_at};
use crate::app::App;
use crate::archive::Archive;
use crate::ingest::normalize;

/// Archive entries read per page.
const PAGE: usize = 256;

/// Runs `request`, sending each replayed webhook's outcome (with the totals so far) to
/// `progress`, and returns the totals (with `done` set). Stops early, with what was done so
/// far, when the receiver is gone (the caller went away).
pub async fn replay(
    app: &App,
    request: &ReplayRequest,
    progress: &mpsc::Sender<ReplayProgress>,
) -> Result<ReplayProgress, RawError> {
    let archive = app.archive.as_ref().ok_or(RawError::ArchiveOff)?;
    let source = app
        .sources
        .get(&request.source)
        .ok_or_else(|| RawError::NotFound(format!("no source named `{}`", request.source)))?;
    let from = request.from.as_ref().map(rules::unix_nanos);
    let to = request.to.as_ref().map(rules::unix_nanos);
    let mut totals = ReplayProgress::default();
    let mut after = 0;
    'pages: loop {
        let page = app.log.archive_entries(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for entry in page {
            totals.position = entry.id;
            let received = entry.received_at.as_ref().map(rules::unix_nanos);
            let in_range = entry.source == request.source
                && from.is_none_or(|from| received.is_some_and(|r| r >= from))
                && to.is_none_or(|to| received.is_some_and(|r| r < to));
            if !in_range {
                continue;
            }
            let webhook = replay_one(app, archive, &source, &entry, request).await?;
            totals.webhooks += 1;
            totals.stored += webhook.sequences.len() as u64;
            totals.duplicates += u64::from(webhook.duplicates);
            totals.unchanged += u64::from(webhook.unchanged);
            totals.failed += u64::from(!webhook.error.is_empty());
            let report = ReplayProgress {
                webhook: Some(webhook),
                ..totals.clone()
            };
            if progress.send(report).await.is_err() {
                break 'pages;
            }
        }
    }
    totals.done = true;
    Ok(totals)
}

/// One archived webhook through the adapter again. Storage failures are errors; anything about
/// this webhook alone (cannot be opened, the adapter rejects it) is reported in its outcome.
async fn replay_one(
    app: &App,
    archive: &Archive,
    source: &std::sync::Arc<crate::sources::Source>,
    entry: &ArchiveEntry,
    request: &ReplayRequest,
) -> Result<ReplayedWebhook, RawError> {
    let mut outcome = ReplayedWebhook {
        archive_id: entry.id,
        ..ReplayedWebhook::default()
    };
    let raw = match archive.open(entry) {
        Ok(raw) => raw,
        Err(error) => {
            outcome.error = error.to_string();
            outcome.outcome = "failed".to_owned();
            return Ok(outcome);
        }
    };
    let webhook = Archive::replay_request(&raw);
    let normalized = match normalize(source, &webhook, app.limits.adapter_timeout).await {
        Ok(normalized) => normalized,
        Err(error) => {
            outcome.error = error.to_string();
            outcome.outcome = "failed".to_owned();
            return Ok(outcome);
        }
    };
    outcome.dead_lettered = u32::try_from(normalized.unmapped.len()).unwrap_or(u32::MAX);
    let mut changed = Vec::new();
    for mut event in normalized.events {
        if !crate::stream::type_selected(&event.r#type, &request.types) {
            continue;
        }
        let provider_event_id = rules::provider_event_id(&event).to_owned();
        let original = match app
            .log
            .sequence_of(&source.name, &provider_event_id)
            .await?
        {
            Some(sequence) => match event_at(app, sequence).await {
                Ok(original) => Some(original),
                Err(RawError::NotFound(_)) => None,
                Err(error) => return Err(error),
            },
            None => None,
        };
        let changes = crate::diff::changes(original.as_ref(), Some(&event), None);
        if changes.is_empty() {
            outcome.unchanged += 1;
            continue;
        }
        let version = event
            .provenance
            .as_ref()
            .map(|p| p.adapter_version.clone())
            .unwrap_or_default();
        event.replay_of = Some(ReplayOf {
            event_id: event.id.clone(),
            sequence: original.as_ref().map_or(0, |o| o.sequence),
            adapter_version: original
                .as_ref()
                .and_then(|o| o.provenance.as_ref())
                .map_or_else(
                    || entry.adapter_version.clone(),
                    |p| p.adapter_version.clone(),
                ),
        });
        outcome.diffs.push(EventDiff {
            event_id: event.id.clone(),
            original_sequence: original.as_ref().map_or(0, |o| o.sequence),
            changes,
        });
        event.id = format!("{}:{provider_event_id}#replay@{version}", source.name);
        event.raw_id = entry.id;
        changed.push(event);
    }
    if request.dry_run || changed.is_empty() {
        outcome.outcome = settled(&outcome, request.dry_run).to_owned();
        return Ok(outcome);
    }
    let stored = app
        .log
        .append(AppendRequest {
            source: source.name.clone(),
            events: changed.iter().map(PendingEvent::from).collect(),
            dead_letters: Vec::new(),
            archive: None,
        })
        .await?;
    outcome.sequences = stored.sequences;
    outcome.duplicates = u32::try_from(stored.duplicates).unwrap_or(u32::MAX);
    outcome.outcome = settled(&outcome, false).to_owned();
    Ok(outcome)
}

/// The one word saying what happened to a replayed webhook (`ReplayedWebhook.outcome`).
fn settled(outcome: &ReplayedWebhook, dry_run: bool) -> &'static str {
    if !outcome.error.is_empty() {
        "failed"
    } else if !outcome.sequences.is_empty() {
        "stored"
    } else if !outcome.diffs.is_empty() {
        if dry_run { "changed" } else { "duplicate" }
    } else if outcome.unchanged > 0 {
        "unchanged"
    } else if outcome.dead_lettered > 0 {
        "dead_lettered"
    } else {
        "ignored"
    }
}
