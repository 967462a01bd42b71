//! Verification secrets with one spelling for every adapter, `verification.secrets`, and
//! rotation with overlap.
//!
//! ```toml
//! [sources.acme.config.verification]
//! secrets = [
//!   { secret = "new-secret", label = "2026-12" },
//!   { secret = "old-secret", label = "2026-06", not_after = "2026-12-31T00:00:00Z" },
//! ]
//! # or, for local testing only: disabled = true
//! ```
//!
//! An entry is a bare string or a table with `secret`, an optional `label` (a non-secret name
//! the operator chooses, shown in metrics and the console) and an optional `not_after` (RFC
//! 3339): each secret verifies until its `not_after`, so an old and a new one both verify while
//! a provider rotates, and the old one stops by itself. Which one verified each webhook is
//! reported to the host ([`SecretInfo`]: position and label, never the value).
//!
//! [`Secrets`] holds them prepared (an HMAC key, a token, a public key...) and reports the
//! source's [`VerificationState`]: on, not configured (every webhook refused: fail closed) or
//! switched off explicitly.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};
use tributary_model::v1::{InstanceInfo, SecretInfo, VerificationState};
use tributary_model::well_known::Timestamp;

use crate::Request;
use crate::verify::DISABLED_SWITCH;

/// Most secrets one source may list.
pub const MAX_SECRETS: usize = 16;
/// Longest label: it becomes a metric label value.
pub const MAX_LABEL_LEN: usize = 64;

/// One entry of `verification.secrets`: `"value"` or `{secret, label, not_after}`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEntry {
    /// The secret, token or key, as the adapter reads it.
    pub secret: String,
    /// The operator's name for it; empty when none was given.
    pub label: String,
    /// Until when it verifies (inclusive); `None`: no end.
    pub not_after: Option<Timestamp>,
}

impl SecretEntry {
    /// An entry without label or end, as an old config key gives one.
    pub fn bare(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
            ..Self::default()
        }
    }
}

/// Without the secret.
impl fmt::Debug for SecretEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretEntry")
            .field("label", &self.label)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for SecretEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            secret: String,
            #[serde(default)]
            label: String,
            #[serde(default)]
            not_after: Option<String>,
        }

        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = SecretEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret (string) or a table {secret, label, not_after (RFC 3339)}")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(SecretEntry::bare(text))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let table = Table::deserialize(MapAccessDeserializer::new(map))?;
                let not_after = match table.not_after {
                    None => None,
                    Some(text) => Some(crate::convert::timestamp(&text).ok_or_else(|| {
                        de::Error::custom(format!(
                            "not_after {text:?} is not an RFC 3339 time such as \
                             \"2026-12-31T00:00:00Z\""
                        ))
                    })?),
                };
                Ok(SecretEntry {
                    secret: table.secret,
                    label: table.label,
                    not_after,
                })
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

/// The `verification` table of an adapter whose only verification settings are its secrets:
/// `{"secrets": [...]}`, or `{"disabled": true}` to switch verification off (local testing).
///
/// A bare string (`verification = "none"`) is refused with a message naming the spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Accept webhooks without checking them. Only for local testing.
    pub disabled: bool,
    /// The secrets, tokens or keys that verify webhooks; any one valid entry verifies.
    pub secrets: Vec<SecretEntry>,
}

impl<'de> Deserialize<'de> for Verification {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(default)]
            disabled: bool,
            #[serde(default)]
            secrets: Vec<SecretEntry>,
        }

        struct TableVisitor;

        impl<'de> Visitor<'de> for TableVisitor {
            type Value = Verification;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table such as {\"secrets\": [\"...\"]} or {\"disabled\": true}")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "verification = {text:?} is not accepted: list the secrets in \
                     verification.secrets, or switch verification off with \
                     {{\"disabled\": true}} (TOML: verification = {{ disabled = true }})"
                )))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let table = Table::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Verification {
                    disabled: table.disabled,
                    secrets: table.secrets,
                })
            }
        }

        deserializer.deserialize_any(TableVisitor)
    }
}

/// The start-up warning for an old config key still read: `adapter: the config key `old` is
/// deprecated and still read: move its value to `new``.
pub fn deprecated_key_warning(adapter: &str, old: &str, new: &str) -> String {
    format!(
        "{adapter}: the config key `{old}` is deprecated and still read: move its value to \
         `{new}`"
    )
}

/// `entries` plus the secret an old config key (`old`) holds, if any: refused when both are
/// set (which one did the operator mean?). Pushes the deprecation warning when `old` is used.
pub fn merge_legacy(
    adapter: &str,
    entries: Vec<SecretEntry>,
    old: &str,
    legacy: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<SecretEntry>, String> {
    let Some(legacy) = legacy else {
        return Ok(entries);
    };
    if !entries.is_empty() {
        return Err(format!(
            "`{old}` and `verification.secrets` are both set: keep only verification.secrets"
        ));
    }
    warnings.push(deprecated_key_warning(adapter, old, "verification.secrets"));
    Ok(vec![SecretEntry::bare(legacy)])
}

/// Whether `label` can be a metric label value: 1 to [`MAX_LABEL_LEN`] characters of
/// `A-Z a-z 0-9 _ - . :`.
pub fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// A source's secrets, each prepared as the adapter checks it (`K`: an HMAC key, a token, a
/// public key), with its position, label and end; and whether verification is switched off.
pub struct Secrets<K> {
    keys: Vec<(K, SecretInfo)>,
    disabled: bool,
}

/// Without the keys.
impl<K> fmt::Debug for Secrets<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("secrets", &self.infos())
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl<K> Secrets<K> {
    /// Prepares `entries` with `prepare` (whose errors are prefixed with the entry's position,
    /// never its value). Refuses empty secrets, more than [`MAX_SECRETS`], labels that are not
    /// [`is_label`] or used twice, and `disabled` together with secrets.
    pub fn new(
        entries: Vec<SecretEntry>,
        disabled: bool,
        mut prepare: impl FnMut(&str) -> Result<K, String>,
    ) -> Result<Self, String> {
        if disabled && !entries.is_empty() {
            return Err(format!(
                "{DISABLED_SWITCH} cannot be combined with verification secrets: remove one of \
                 them"
            ));
        }
        if entries.len() > MAX_SECRETS {
            return Err(format!(
                "verification.secrets: at most {MAX_SECRETS} entries"
            ));
        }
        let mut keys: Vec<(K, SecretInfo)> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let at = format!("verification.secrets[{index}]");
            if entry.secret.trim().is_empty() {
                return Err(format!("{at}: the secret must not be empty"));
            }
            if !entry.label.is_empty() {
                if !is_label(&entry.label) {
                    return Err(format!(
                        "{at}: label {:?} must be 1 to {MAX_LABEL_LEN} characters of A-Z a-z \
                         0-9 _ - . :",
                        entry.label
                    ));
                }
                if keys.iter().any(|(_, info)| info.label == entry.label) {
                    return Err(format!("{at}: label {:?} is used twice", entry.label));
                }
            }
            let key = prepare(&entry.secret).map_err(|e| format!("{at}: {e}"))?;
            keys.push((
                key,
                SecretInfo {
                    index: index as u32,
                    label: entry.label,
                    not_after: entry.not_after,
                },
            ));
        }
        Ok(Self { keys, disabled })
    }

    /// On, not configured (no secret: every webhook is refused) or switched off.
    pub fn state(&self) -> VerificationState {
        if self.disabled {
            VerificationState::Disabled
        } else if self.keys.is_empty() {
            VerificationState::NotConfigured
        } else {
            VerificationState::On
        }
    }

    /// Whether verification is switched off explicitly.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Whether no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The secrets' positions, labels and ends, in order.
    pub fn infos(&self) -> Vec<SecretInfo> {
        self.keys.iter().map(|(_, info)| info.clone()).collect()
    }

    /// What the adapter reports to the host ([`crate::Adapter::instance_info`]).
    pub fn instance_info(&self) -> InstanceInfo {
        InstanceInfo {
            verification: self.state() as i32,
            secrets: self.infos(),
        }
    }

    /// The secrets still valid at `at` (`not_after` not passed), in order, with their info.
    pub fn valid_at<'s>(&'s self, at: &Timestamp) -> impl Iterator<Item = (&'s K, &'s SecretInfo)> {
        let at = (at.seconds, at.nanos);
        self.keys
            .iter()
            .filter(move |(_, info)| {
                info.not_after
                    .as_ref()
                    .is_none_or(|end| at <= (end.seconds, end.nanos))
            })
            .map(|(key, info)| (key, info))
    }

    /// The first secret valid at `at` for which `matches` holds (each `matches` call must
    /// compare in constant time), as reported to the host.
    pub fn find(&self, at: &Timestamp, mut matches: impl FnMut(&K) -> bool) -> Option<SecretInfo> {
        self.valid_at(at)
            .find(|(key, _)| matches(key))
            .map(|(_, info)| info.clone())
    }

    /// Start-up warnings for secrets already expired at `now`.
    pub fn expired_warnings(&self, adapter: &str, now: &Timestamp) -> Vec<String> {
        let now = (now.seconds, now.nanos);
        self.keys
            .iter()
            .filter(|(_, info)| {
                info.not_after
                    .as_ref()
                    .is_some_and(|end| (end.seconds, end.nanos) < now)
            })
            .map(|(_, info)| {
                format!(
                    "{adapter}: {} is past its not_after and no longer verifies: remove it",
                    describe(info)
                )
            })
            .collect()
    }
}

/// `verification.secrets[1] (label 2026-06)`: how messages name a secret.
pub fn describe(info: &SecretInfo) -> String {
    if info.label.is_empty() {
        format!("verification.secrets[{}]", info.index)
    } else {
        format!(
            "verification.secrets[{}] (label {})",
            info.index, info.label
        )
    }
}

/// When the host received `request` (the time secrets are checked against); the wall clock
/// when the host gave none.
pub fn request_time(request: &Request<'_>) -> Timestamp {
    request.received_at().cloned().unwrap_or_else(now)
}

/// The wall clock as a `Timestamp`.
pub fn now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    fn parse(json: &str) -> Result<Verification, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn entries_are_strings_or_tables_with_label_and_not_after() {
        let table = parse(
            r#"{"secrets": ["plain", {"secret": "old", "label": "2026-06",
                 "not_after": "2026-12-31T00:00:00Z"}]}"#,
        )
        .expect("parses");
        assert_eq!(table.secrets[0], SecretEntry::bare("plain"));
        assert_eq!(table.secrets[1].label, "2026-06");
        assert_eq!(table.secrets[1].not_after, Some(at(1_798_675_200)));
        assert!(!format!("{:?}", table.secrets[1]).contains("old"));
        let bad = parse(r#"{"secrets": [{"secret": "x", "not_after": "tomorrow"}]}"#);
        assert!(bad.expect_err("bad time").contains("RFC 3339"));
        assert!(parse(r#"{"secrets": [{"secret": "x", "lable": "a"}]}"#).is_err());
        assert!(parse(r#"{"secrets": [{"label": "a"}]}"#).is_err());
        assert!(parse(r#""none""#).expect_err("string").contains("disabled"));
        assert_eq!(parse(r#"{"disabled": true}"#).map(|v| v.disabled), Ok(true));
    }

    #[test]
    fn each_secret_verifies_until_its_not_after() {
        let entries = vec![
            SecretEntry {
                secret: "new".into(),
                label: "new".into(),
                not_after: None,
            },
            SecretEntry {
                secret: "old".into(),
                label: String::new(),
                not_after: Some(at(100)),
            },
        ];
        let secrets = Secrets::new(entries, false, |s| Ok(s.to_owned())).expect("valid");
        assert_eq!(secrets.state(), VerificationState::On);
        let old = |t| secrets.find(&at(t), |k| k == "old").map(|i| i.index);
        assert_eq!(old(99), Some(1));
        assert_eq!(old(100), Some(1), "inclusive");
        assert_eq!(old(101), None);
        let new = secrets
            .find(&at(101), |k| k == "new")
            .expect("new verifies");
        assert_eq!((new.index, new.label.as_str()), (0, "new"));
        assert_eq!(
            secrets.expired_warnings("acme", &at(50)),
            Vec::<String>::new()
        );
        assert_eq!(
            secrets.expired_warnings("acme", &at(101)),
            vec![
                "acme: verification.secrets[1] is past its not_after and no longer verifies: \
                 remove it"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn states_and_refusals() {
        let none = Secrets::<String>::new(vec![], false, |s| Ok(s.to_owned())).expect("ok");
        assert_eq!(none.state(), VerificationState::NotConfigured);
        let off = Secrets::<String>::new(vec![], true, |s| Ok(s.to_owned())).expect("ok");
        assert_eq!(off.state(), VerificationState::Disabled);
        assert_eq!(
            off.instance_info().verification,
            VerificationState::Disabled as i32
        );
        let new = |entries: Vec<SecretEntry>, disabled| {
            Secrets::new(entries, disabled, |s| {
                if s == "bad" {
                    Err("not a key".to_owned())
                } else {
                    Ok(())
                }
            })
            .map(|_| ())
        };
        assert!(new(vec![SecretEntry::bare("a")], true).is_err());
        assert_eq!(
            new(vec![SecretEntry::bare("a"), SecretEntry::bare(" ")], false),
            Err("verification.secrets[1]: the secret must not be empty".to_owned())
        );
        assert_eq!(
            new(vec![SecretEntry::bare("bad")], false),
            Err("verification.secrets[0]: not a key".to_owned())
        );
        let labelled = |label: &str| SecretEntry {
            secret: "a".into(),
            label: label.into(),
            not_after: None,
        };
        assert!(new(vec![labelled("two words")], false).is_err());
        assert!(new(vec![labelled("x"), labelled("x")], false).is_err());
        assert!(new(vec![SecretEntry::bare("a"); MAX_SECRETS + 1], false).is_err());
    }

    #[test]
    fn legacy_keys_are_merged_with_a_warning() {
        let mut warnings = Vec::new();
        let merged = merge_legacy("acme", vec![], "token", Some("t".into()), &mut warnings);
        assert_eq!(merged, Ok(vec![SecretEntry::bare("t")]));
        assert_eq!(
            warnings,
            vec![deprecated_key_warning(
                "acme",
                "token",
                "verification.secrets"
            )]
        );
        let both = merge_legacy(
            "acme",
            vec![SecretEntry::bare("n")],
            "token",
            Some("t".into()),
            &mut warnings,
        );
        assert!(both.is_err());
    }
}
