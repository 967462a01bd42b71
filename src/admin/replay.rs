//! Replay: archived webhooks of a source run again through the adapter loaded now (after it was
//! fixed or extended). The events that differ from their originals are stored as new events
//! marked `replay_of`; identical ones are not stored again, and the log's dedup key for a
//! replay includes the adapter version, so replaying twice with one version adds nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::sync::mpsc;
use tributary_event_log::{AppendRequest, PendingEvent, rules};
use tributary_model::v1::{
    ArchiveEntry, Event, EventDiff, ReplayOf, ReplayProgress, ReplayRequest, ReplayedWebhook,
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
        let changes = diff(original.as_ref(), &event);
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

/// Attributes that differ between any original and its replay by construction, and
/// `specversion`, which events stored before Tributary set it lack (an envelope attribute the
/// host fills, never a change in what the adapter made).
const IGNORED: &[&str] = &[
    "sequence",
    "specversion",
    "traceparent",
    "tracestate",
    "rawId",
    "replayOf",
    "provenance.adapterVersion",
];

/// The fields of `new` that differ from `original` (every field when there is none), one line
/// each, in proto3 JSON paths.
fn diff(original: Option<&Event>, new: &Event) -> Vec<String> {
    let flat = |event: &Event| {
        let mut out = BTreeMap::new();
        if let Ok(value) = serde_json::to_value(event) {
            flatten("", &value, &mut out);
        }
        out.retain(|path, _| !IGNORED.contains(&path.as_str()));
        out
    };
    let new = flat(new);
    let old = original.map(flat).unwrap_or_default();
    let mut changes = Vec::new();
    for (path, value) in &new {
        match old.get(path) {
            Some(before) if before == value => {}
            Some(before) => changes.push(format!("~ {path}: {before} -> {value}")),
            None => changes.push(format!("+ {path}: {value}")),
        }
    }
    for (path, value) in &old {
        if !new.contains_key(path) {
            changes.push(format!("- {path}: {value}"));
        }
    }
    changes
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                flatten(&join(key), value, out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(&join(&index.to_string()), item, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::v1::Provenance;

    #[test]
    fn diffs_name_changed_added_and_removed_fields() {
        let event = |subject: &str, kind: &str, version: &str| Event {
            id: "s:1".into(),
            subject: subject.into(),
            r#type: kind.into(),
            sequence: 4,
            provenance: Some(Provenance {
                provider_event_id: "1".into(),
                adapter_version: version.into(),
                ..Provenance::default()
            }),
            ..Event::default()
        };
        let old = event("a", "x.y", "1.0.0");
        assert_eq!(
            diff(Some(&old), &event("a", "x.y", "2.0.0")),
            Vec::<String>::new()
        );
        assert_eq!(
            diff(Some(&old), &event("b", "", "2.0.0")),
            vec![r#"~ subject: "a" -> "b""#, r#"- type: "x.y""#]
        );
        assert_eq!(
            diff(None, &event("a", "", "2.0.0")),
            vec![
                r#"+ id: "s:1""#,
                r#"+ provenance.providerEventId: "1""#,
                r#"+ subject: "a""#
            ]
        );
    }
}
