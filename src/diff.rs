//! Field-level differences between two canonical events, one line per field in proto3 JSON
//! paths: `~ path: before -> after`, `+ path: after` (only in the second), `- path: before`
//! (only in the first). Replay reports its changes this way, and so does a shadowed candidate
//! adapter against the active one, so an operator reads one format for the past and the
//! present.
//!
//! Which fields differ is decided on the events as they are. With a [`Redactor`] the values
//! shown go through the personal-data redaction of raw bodies, so a diff never shows more than
//! a redacted dead letter would (values the redaction withholds are shown as `[withheld]`):
//! the shadow's diffs, kept in memory and shown in the console, are redacted. Replay's are
//! not: they compare stored events, which consumers receive as they are.

use std::collections::BTreeMap;

use serde_json::Value;
use tributary_model::v1::Event;

use crate::admin::redact::Redactor;

/// What a value the redaction withheld is shown as.
const WITHHELD: &str = "[withheld]";

/// Attributes that differ between any two runs of one webhook by construction (the log's
/// position and the delivery's trace, replay's own marks, the adapter's version), and
/// `specversion`, which events stored before Tributary set it lack: never a change in what
/// the adapter made.
const IGNORED: &[&str] = &[
    "sequence",
    "specversion",
    "traceparent",
    "tracestate",
    "rawId",
    "replayOf",
    "provenance.adapterVersion",
];

/// The fields of `after` that differ from `before` (every field of the one present when the
/// other is absent), values redacted by `redactor` when there is one.
pub fn changes(
    before: Option<&Event>,
    after: Option<&Event>,
    redactor: Option<&Redactor>,
) -> Vec<String> {
    let old = before.map(flat).unwrap_or_default();
    let new = after.map(flat).unwrap_or_default();
    let shown = |event: Option<&Event>, all: &BTreeMap<String, String>| match (event, redactor) {
        (Some(event), Some(redactor)) => shown(event, redactor),
        _ => all.clone(),
    };
    let old_shown = shown(before, &old);
    let new_shown = shown(after, &new);
    let show = |map: &BTreeMap<String, String>, path: &str| {
        map.get(path)
            .cloned()
            .unwrap_or_else(|| WITHHELD.to_owned())
    };
    let mut lines = Vec::new();
    for (path, value) in &new {
        match old.get(path) {
            Some(previous) if previous == value => {}
            Some(_) => lines.push(format!(
                "~ {path}: {} -> {}",
                show(&old_shown, path),
                show(&new_shown, path)
            )),
            None => lines.push(format!("+ {path}: {}", show(&new_shown, path))),
        }
    }
    for path in old.keys() {
        if !new.contains_key(path) {
            lines.push(format!("- {path}: {}", show(&old_shown, path)));
        }
    }
    lines
}

/// `event` as path -> JSON value text, without the [`IGNORED`] attributes.
fn flat(event: &Event) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(event) {
        flatten("", &value, &mut out);
    }
    out.retain(|path, _| !IGNORED.contains(&path.as_str()));
    out
}

/// The canonical envelope's keys: Tributary's own, safe to show in a diff whatever the
/// adapter declares (a key the adapter declares personal stays masked).
const ENVELOPE_FIELDS: &[&str] = &[
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "datacontenttype",
    "subject",
    "sequence",
    "receivedAt",
    "rawId",
    "adapter",
    "adapterVersion",
    "providerEventId",
];

/// The redaction of a diff between canonical events: the adapter's personal-data and display
/// fields, plus the envelope's keys.
pub fn event_redactor(personal: &[String], display: &[String]) -> Redactor {
    let mut display = display.to_vec();
    display.extend(ENVELOPE_FIELDS.iter().map(|field| (*field).to_owned()));
    Redactor::new(personal, &display)
}

/// [`flat`] of `event` after redaction; empty when the redaction withholds the whole event.
fn shown(event: &Event, redactor: &Redactor) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(json) = serde_json::to_vec(event) else {
        return out;
    };
    if let Ok(value @ Value::Object(_)) =
        serde_json::from_slice::<Value>(&redactor.redact_json(&json))
    {
        flatten("", &value, &mut out);
    }
    out
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

    fn event(subject: &str, kind: &str, version: &str) -> Event {
        Event {
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
        }
    }

    #[test]
    fn diffs_name_changed_added_and_removed_fields() {
        let shown = event_redactor(&["taxId".to_owned()], &[]);
        let old = event("a", "x.y", "1.0.0");
        let same = changes(Some(&old), Some(&event("a", "x.y", "2.0.0")), Some(&shown));
        assert_eq!(same, Vec::<String>::new());
        assert_eq!(
            changes(Some(&old), Some(&event("b", "", "2.0.0")), Some(&shown)),
            vec![r#"~ subject: "a" -> "b""#, r#"- type: "x.y""#]
        );
        assert_eq!(
            changes(None, Some(&event("a", "", "2.0.0")), Some(&shown)),
            vec![
                r#"+ id: "s:1""#,
                r#"+ provenance.providerEventId: "1""#,
                r#"+ subject: "a""#
            ]
        );
    }

    #[test]
    fn values_go_through_the_redaction() {
        let old = event("alice", "x.y", "1");
        assert_eq!(
            changes(Some(&old), Some(&event("bob", "x.y", "1")), None),
            vec![r#"~ subject: "alice" -> "bob""#]
        );
        let subject_is_personal = event_redactor(&["subject".to_owned()], &[]);
        assert_eq!(
            changes(
                Some(&old),
                Some(&event("bob", "x.y", "1")),
                Some(&subject_is_personal)
            ),
            vec![r#"~ subject: "[redacted]" -> "[redacted]""#]
        );
        let nothing_declared = Redactor::new(&[], &[]);
        assert_eq!(
            changes(
                Some(&old),
                Some(&event("bob", "x.z", "1")),
                Some(&nothing_declared)
            ),
            vec![
                "~ subject: [withheld] -> [withheld]",
                "~ type: [withheld] -> [withheld]"
            ]
        );
    }
}
