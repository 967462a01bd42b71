//! Durable consumers: one KV entry per consumer (the encoded `Consumer`, lag not stored),
//! changed with compare-and-set on the entry's revision, so acks stay cumulative and never
//! move backwards whichever instance receives them. Same rules as the embedded log.

use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures_util::TryStreamExt;
use prost::Message as _;
use tributary_event_log::LogError;
use tributary_model::v1::Consumer;
use tributary_model::well_known::Timestamp;

use crate::{Inner, storage};

/// Compare-and-set attempts before giving up on a contended consumer.
const MAX_ATTEMPTS: usize = 16;

fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_name(name: &str) -> Result<(), LogError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(LogError::Invalid(format!(
            "consumer names are 1 to 128 characters of A-Z a-z 0-9 . _ - (got {name:?})"
        )))
    }
}

/// The KV key of a consumer: names may hold dots (subject separators), so `.` becomes `=2E`
/// (`=` never appears in a valid name).
fn key(name: &str) -> String {
    name.replace('.', "=2E")
}

fn name_of(key: &str) -> String {
    key.replace("=2E", ".")
}

pub(crate) fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

fn encode(consumer: &Consumer) -> Bytes {
    Consumer {
        name: String::new(),
        lag: 0,
        ..consumer.clone()
    }
    .encode_to_vec()
    .into()
}

/// The stored consumer and its revision; `None` when absent or deleted.
async fn load(inner: &Inner, name: &str) -> Result<Option<(Consumer, u64)>, LogError> {
    let entry = inner
        .consumers
        .entry(key(name))
        .await
        .map_err(|e| storage(format!("cannot read consumer {name}: {e}")))?;
    let Some(entry) = entry else { return Ok(None) };
    if entry.operation != Operation::Put {
        return Ok(None);
    }
    let mut consumer = Consumer::decode(entry.value.as_ref())
        .map_err(|source| LogError::Corrupt { key: 0, source })?;
    consumer.name = name.to_owned();
    Ok(Some((consumer, entry.revision)))
}

pub(crate) async fn open(inner: &Inner, name: &str, after: u64) -> Result<Consumer, LogError> {
    check_name(name)?;
    for _ in 0..MAX_ATTEMPTS {
        let last = inner.fresh_last().await?;
        if let Some((mut consumer, _)) = load(inner, name).await? {
            consumer.lag = last.saturating_sub(consumer.acked_sequence);
            return Ok(consumer);
        }
        let consumer = Consumer {
            name: name.to_owned(),
            acked_sequence: after.min(last),
            lag: 0,
            created_at: Some(now()),
            acked_at: None,
        };
        match inner.consumers.create(key(name), encode(&consumer)).await {
            Ok(_) => {
                return Ok(Consumer {
                    lag: last.saturating_sub(consumer.acked_sequence),
                    ..consumer
                });
            }
            // Created by another instance meanwhile: read it again.
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
            Err(e) => return Err(storage(format!("cannot create consumer {name}: {e}"))),
        }
    }
    Err(storage(format!("consumer {name} is changing too fast")))
}

/// Moves `name`'s acknowledged sequence: forward only for acks, anywhere for a reset.
pub(crate) async fn move_to(
    inner: &Inner,
    name: &str,
    sequence: u64,
    reset: bool,
) -> Result<Consumer, LogError> {
    let mut last = inner.known_last();
    if sequence > last {
        // Perhaps appended through another instance and not seen here yet.
        last = inner.fresh_last().await?;
    }
    if sequence > last {
        return Err(LogError::Invalid(format!(
            "sequence {sequence} is beyond the newest event ({last})"
        )));
    }
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut consumer, revision)) = load(inner, name).await? else {
            return Err(LogError::UnknownConsumer(name.to_owned()));
        };
        if reset || sequence > consumer.acked_sequence {
            consumer.acked_sequence = sequence;
            consumer.acked_at = Some(now());
            match inner
                .consumers
                .update(key(name), encode(&consumer), revision)
                .await
            {
                Ok(_) => {}
                // Another ack landed first: decide again on the newer value.
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(storage(format!("cannot store consumer {name}: {e}"))),
            }
        }
        consumer.lag = inner
            .known_last()
            .max(last)
            .saturating_sub(consumer.acked_sequence);
        return Ok(consumer);
    }
    Err(storage(format!("consumer {name} is changing too fast")))
}

pub(crate) async fn delete(inner: &Inner, name: &str) -> Result<bool, LogError> {
    if !valid_name(name) || load(inner, name).await?.is_none() {
        return Ok(false);
    }
    inner
        .consumers
        .purge(key(name))
        .await
        .map_err(|e| storage(format!("cannot delete consumer {name}: {e}")))?;
    Ok(true)
}

pub(crate) async fn list(inner: &Inner) -> Result<Vec<Consumer>, LogError> {
    let last = inner.fresh_last().await?;
    let keys: Vec<String> = inner
        .consumers
        .keys()
        .await
        .map_err(|e| storage(format!("cannot list consumers: {e}")))?
        .try_collect()
        .await
        .map_err(|e| storage(format!("cannot list consumers: {e}")))?;
    let mut names: Vec<String> = keys.iter().map(|k| name_of(k)).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some((mut consumer, _)) = load(inner, &name).await? {
            consumer.lag = last.saturating_sub(consumer.acked_sequence);
            out.push(consumer);
        }
    }
    Ok(out)
}

/// The lowest acknowledged sequence of all durable consumers (`None` without consumers), for
/// retention.
pub(crate) async fn lowest_ack(inner: &Inner) -> Result<Option<u64>, LogError> {
    Ok(list(inner).await?.iter().map(|c| c.acked_sequence).min())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for name in ["billing", "a.b.c", "x-y_z.1"] {
            assert!(valid_name(name));
            assert!(!key(name).contains('.'));
            assert_eq!(name_of(&key(name)), name);
        }
    }
}
