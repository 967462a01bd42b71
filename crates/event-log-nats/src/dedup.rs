//! Dedup beyond JetStream's duplicate window: a KV bucket (`<stream>_DEDUP`) with one key per
//! stored item and `max_age` = the dedup horizon. `append` reads the keys before publishing
//! (a key present is a duplicate, nothing is published) and writes them once JetStream
//! acknowledged the messages, duplicates included (so a retry repairs a key a crash lost). A
//! write that fails (the bucket electing a leader) does not fail the append: the key is
//! queued and a background task writes it (`repair`).
//! Within the window the `Nats-Msg-Id` header still decides, which also covers two instances
//! racing on the same item; events and dead letters have separate key spaces, like their
//! streams.

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tributary_event_log::LogError;

use crate::Inner;

/// KV requests in flight per append.
const PARALLEL: usize = 32;
/// Longer escaped provider ids are replaced by their SHA-256 (subjects have a length limit).
const MAX_PLAIN_ID: usize = 128;

/// Which key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Event,
    DeadLetter,
}

/// A KV-safe token: `A-Z a-z 0-9 _ -` stay, every other byte becomes `=XX` (upper-case hex),
/// so distinct texts give distinct tokens and none holds a `.`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

/// [`escape`]d text; `=E` for empty text (never stored: the log refuses empty ids), or, when
/// the escaped text is longer than [`MAX_PLAIN_ID`], `=Z` and the text's SHA-256 in hex. No
/// escaped text equals either (each `=` it holds is followed by two hex digits).
pub(crate) fn token(text: &str) -> String {
    if text.is_empty() {
        return "=E".into();
    }
    let escaped = escape(text);
    if escaped.len() <= MAX_PLAIN_ID {
        return escaped;
    }
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::from("=Z"), |mut hex, byte| {
            hex.push_str(&format!("{byte:02x}"));
            hex
        })
}

/// The key of (source, provider event id): `e.<source>.<id>` for events, `d.<source>.<id>`
/// for dead letters, each part a [`token`].
pub(crate) fn key(kind: Kind, source: &str, id: &str) -> String {
    let space = match kind {
        Kind::Event => "e",
        Kind::DeadLetter => "d",
    };
    format!("{space}.{}.{}", token(source), token(id))
}

/// Whether each key was already recorded; all false without a dedup bucket.
pub(crate) async fn seen(inner: &Inner, keys: &[String]) -> Result<Vec<bool>, LogError> {
    let Some(bucket) = &inner.dedup else {
        return Ok(vec![false; keys.len()]);
    };
    let results: Vec<_> = futures_util::stream::iter(keys.to_vec())
        .map(|key| async move { bucket.get(key).await })
        .buffered(PARALLEL)
        .collect()
        .await;
    results
        .into_iter()
        .map(|found| {
            found.map(|value| value.is_some()).map_err(|e| {
                LogError::storage(
                    format!("cannot read KV bucket {}", inner.config.dedup_bucket()),
                    e,
                )
            })
        })
        .collect()
}

/// The sequence recorded for event key `key`; `None` when the key is absent or there is no
/// bucket (a zero dedup horizon: JetStream's message ids cannot be looked up).
pub(crate) async fn recorded_sequence(inner: &Inner, key: &str) -> Result<Option<u64>, LogError> {
    let Some(bucket) = &inner.dedup else {
        return Ok(None);
    };
    let value = bucket.get(key).await.map_err(|e| {
        LogError::storage(
            format!("cannot read KV bucket {}", inner.config.dedup_bucket()),
            e,
        )
    })?;
    // Written by `remember`; anything else is not a sequence of ours.
    Ok(value.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
}

/// Records the keys of items JetStream acknowledged (value: the stream sequence). A key that
/// cannot be written now is queued for [`repair`]: the item is stored, and until the key is
/// written JetStream's duplicate window (days) dedups it, so the append still succeeds.
pub(crate) async fn remember(inner: &Inner, stored: Vec<(String, u64)>) {
    let failed = write(inner, stored).await;
    if failed.is_empty() {
        return;
    }
    tracing::warn!(
        keys = failed.len(),
        bucket = %inner.config.dedup_bucket(),
        "cannot record dedup keys yet; writing them in the background"
    );
    inner.queue_unrecorded(failed);
}

/// Writes what [`remember`] queued; returns how many keys are still waiting.
pub(crate) async fn repair(inner: &Inner) -> usize {
    let queued = inner.take_unrecorded();
    if queued.is_empty() {
        return 0;
    }
    let count = queued.len();
    let failed = write(inner, queued).await;
    let waiting = failed.len();
    if waiting < count {
        tracing::info!(
            written = count - waiting,
            waiting,
            "dedup keys recorded in the background"
        );
    }
    inner.queue_unrecorded(failed);
    waiting
}

/// Writes `stored` into the dedup bucket; returns the entries whose write failed.
async fn write(inner: &Inner, stored: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let Some(bucket) = &inner.dedup else {
        return Vec::new();
    };
    let results: Vec<_> = futures_util::stream::iter(stored)
        .map(|(key, sequence)| async move {
            let written = bucket
                .put(key.as_str(), Bytes::from(sequence.to_string()))
                .await;
            (key, sequence, written)
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    results
        .into_iter()
        .filter_map(|(key, sequence, written)| match written {
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%error, "cannot write a dedup key");
                Some((key, sequence))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kv_safe_and_distinct() {
        assert_eq!(key(Kind::Event, "arcadia", "whk_1"), "e.arcadia.whk_1");
        assert_eq!(key(Kind::DeadLetter, "arcadia", "whk_1"), "d.arcadia.whk_1");
        assert_eq!(key(Kind::Event, "s", "a.b"), "e.s.a=2Eb");
        assert_eq!(key(Kind::Event, "s", "a=2Eb"), "e.s.a=3D2Eb");
        assert_eq!(key(Kind::Event, "a.b", "c"), "e.a=2Eb.c");
        assert_ne!(key(Kind::Event, "a.b", "c"), key(Kind::Event, "a", "b.c"));
        assert_eq!(key(Kind::Event, "s", "é"), "e.s.=C3=A9");
        let long = "x".repeat(300);
        let hashed = key(Kind::Event, "s", &long);
        assert!(hashed.starts_with("e.s.=Z"), "{hashed}");
        assert_eq!(hashed.len(), "e.s.=Z".len() + 64);
        assert_ne!(hashed, key(Kind::Event, "s", &"x".repeat(301)));
        let plain = "x".repeat(MAX_PLAIN_ID);
        assert_eq!(key(Kind::Event, "s", &plain), format!("e.s.{plain}"));
        for id in ["a b", "a\r\nb", "*", ">", "%61", "", long.as_str()] {
            let key = key(Kind::DeadLetter, "src", id);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=.".contains(&b)),
                "{key}"
            );
            assert_eq!(key.matches('.').count(), 2, "{key}");
            assert!(!key.ends_with('.') && !key.contains(".."), "{key}");
        }
    }
}
