//! Durable consumers: one KV entry per consumer (the encoded `Consumer`, lag not stored),
//! changed with compare-and-set on the entry's revision, so acks stay cumulative and never
//! move backwards whichever instance receives them. Same rules as the embedded log.

use std::time::SystemTime;

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tributary_event_log::{LogError, rules};
use tributary_model::v1::{Consumer, Filter};
use tributary_model::well_known::Timestamp;

use crate::Inner;

/// Compare-and-set attempts before giving up on a contended consumer.
const MAX_ATTEMPTS: usize = 16;

/// The KV key of a consumer: names may hold dots (subject separators), so `.` becomes `=2E`
/// (`=` never appears in a valid name).
fn key(name: &str) -> String {
    name.replace('.', "=2E")
}

fn name_of(key: &str) -> String {
    key.replace("=2E", ".")
}

pub(crate) fn now() -> Timestamp {
    rules::timestamp(SystemTime::now())
}

fn encode(consumer: &Consumer) -> Bytes {
    rules::encode_consumer(consumer).into()
}

/// The stored consumer and its revision; `None` when absent or deleted.
async fn load(inner: &Inner, name: &str) -> Result<Option<(Consumer, u64)>, LogError> {
    let entry = inner
        .consumers
        .entry(key(name))
        .await
        .map_err(|e| LogError::storage(format!("cannot read consumer {name}"), e))?;
    let Some(entry) = entry else { return Ok(None) };
    if entry.operation != Operation::Put {
        return Ok(None);
    }
    let consumer = rules::decode_consumer(name, entry.value.as_ref())?;
    Ok(Some((consumer, entry.revision)))
}

pub(crate) async fn open(
    inner: &Inner,
    name: &str,
    after: u64,
    filter: &Filter,
) -> Result<Consumer, LogError> {
    rules::check_consumer_name(name)?;
    for _ in 0..MAX_ATTEMPTS {
        let last = inner.fresh_last().await?;
        if let Some((mut consumer, revision)) = load(inner, name).await? {
            if rules::refilter_consumer(&mut consumer, filter) {
                match inner
                    .consumers
                    .update(key(name), encode(&consumer), revision)
                    .await
                {
                    Ok(_) => {}
                    // Changed by another instance meanwhile: decide again on the newer value.
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => {
                        return Err(LogError::storage(
                            format!("cannot store consumer {name}"),
                            e,
                        ));
                    }
                }
            }
            rules::set_lag(&mut consumer, last);
            return Ok(consumer);
        }
        let consumer = rules::new_consumer(name, after, last, now(), filter);
        match inner.consumers.create(key(name), encode(&consumer)).await {
            Ok(_) => return Ok(consumer),
            // Created by another instance meanwhile: read it again.
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(LogError::storage(
                    format!("cannot create consumer {name}"),
                    e,
                ));
            }
        }
    }
    Err(LogError::unavailable(format!(
        "consumer {name} is changing too fast"
    )))
}

/// Moves `name`'s acknowledged sequence: forward only for acks, anywhere for a reset.
pub(crate) async fn move_to(
    inner: &Inner,
    name: &str,
    sequence: u64,
    reset: bool,
) -> Result<Consumer, LogError> {
    if !rules::is_valid_consumer_name(name) {
        // Not a valid KV key, and no consumer can have it.
        return Err(LogError::UnknownConsumer(name.to_owned()));
    }
    let mut last = inner.known_last();
    if sequence > last {
        // Perhaps appended through another instance and not seen here yet.
        last = inner.fresh_last().await?;
    }
    rules::check_ack_target(sequence, last)?;
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut consumer, revision)) = load(inner, name).await? else {
            return Err(LogError::UnknownConsumer(name.to_owned()));
        };
        if rules::move_consumer(&mut consumer, sequence, reset, now()) {
            match inner
                .consumers
                .update(key(name), encode(&consumer), revision)
                .await
            {
                Ok(_) => {}
                // Another ack landed first: decide again on the newer value.
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => {
                    return Err(LogError::storage(
                        format!("cannot store consumer {name}"),
                        e,
                    ));
                }
            }
        }
        rules::set_lag(&mut consumer, inner.known_last().max(last));
        return Ok(consumer);
    }
    Err(LogError::unavailable(format!(
        "consumer {name} is changing too fast"
    )))
}

pub(crate) async fn delete(inner: &Inner, name: &str) -> Result<bool, LogError> {
    if !rules::is_valid_consumer_name(name) || load(inner, name).await?.is_none() {
        return Ok(false);
    }
    inner
        .consumers
        .purge(key(name))
        .await
        .map_err(|e| LogError::storage(format!("cannot delete consumer {name}"), e))?;
    Ok(true)
}

pub(crate) async fn list(inner: &Inner) -> Result<Vec<Consumer>, LogError> {
    let last = inner.fresh_last().await?;
    let keys: Vec<String> = inner
        .consumers
        .keys()
        .await
        .map_err(|e| LogError::storage("cannot list consumers", e))?
        .try_collect()
        .await
        .map_err(|e| LogError::storage("cannot list consumers", e))?;
    let mut names: Vec<String> = keys.iter().map(|k| name_of(k)).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some((mut consumer, _)) = load(inner, &name).await? {
            rules::set_lag(&mut consumer, last);
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
            assert!(rules::is_valid_consumer_name(name));
            assert!(!key(name).contains('.'));
            assert_eq!(name_of(&key(name)), name);
        }
    }
}
