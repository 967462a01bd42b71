//! The log's rules, written once for every backend: what a valid request is, how a durable
//! consumer moves, what a redrive records on its dead letter, and the time conversions the
//! backends share. A backend only decides where things are stored; the conformance suite
//! checks that the results match.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use tributary_model::v1::{ArchiveEntry, Consumer, DeadLetter, Event, Filter};
use tributary_model::well_known::Timestamp;

use crate::{AppendRequest, LogError, PendingEvent, Reseal, ResealOutcome, SourceName};

/// Longest durable consumer name, in bytes.
pub const MAX_CONSUMER_NAME: usize = 128;

/// The provider's event id of `event` (its dedup key within the source); empty when missing.
pub fn provider_event_id(event: &Event) -> &str {
    event
        .provenance
        .as_ref()
        .map(|p| p.provider_event_id.as_str())
        .unwrap_or_default()
}

/// The key `event` is deduplicated on within its source: its provider event id, or, for a
/// replay, the provider event id and the replaying adapter's version (so a replay does not
/// collide with the original, and replaying again with the same version adds nothing).
pub fn dedup_key(event: &Event) -> std::borrow::Cow<'_, str> {
    let replay_version = match (&event.replay_of, &event.provenance) {
        (Some(_), Some(provenance)) => Some(provenance.adapter_version.as_str()),
        _ => None,
    };
    dedup_key_of(provider_event_id(event), replay_version)
}

/// [`dedup_key`] from its parts: the provider event id and, for a replay (with a provenance),
/// the replaying adapter's version. Shared with [`PendingEvent::dedup_key`].
pub(crate) fn dedup_key_of<'a>(
    provider_event_id: &'a str,
    replay_version: Option<&str>,
) -> std::borrow::Cow<'a, str> {
    match replay_version {
        Some(version) => format!("{provider_event_id}#replay@{version}").into(),
        None => provider_event_id.into(),
    }
}

/// Refuses an append a backend must not store: without a valid source name, or with an item
/// that has no provider event id (nothing to deduplicate on). Returns the checked source.
pub fn validate_append(request: &AppendRequest) -> Result<SourceName, LogError> {
    let source = SourceName::new(&request.source)?;
    let missing = request
        .events
        .iter()
        .any(|e| e.provider_event_id().is_empty())
        || request
            .dead_letters
            .iter()
            .any(|d| d.provider_event_id.is_empty());
    if missing {
        return Err(LogError::Invalid(
            "every event and dead letter needs a provider event id".into(),
        ));
    }
    Ok(source)
}

/// Refuses redriven events without provider event ids (checked after the dead letter is
/// found, so an unknown id is reported first).
pub fn validate_redrive_events(events: &[PendingEvent]) -> Result<(), LogError> {
    if events.iter().any(|e| e.provider_event_id().is_empty()) {
        return Err(LogError::Invalid(
            "redriven events need provider event ids".into(),
        ));
    }
    Ok(())
}

/// Refuses a [`Reseal`] whose new seal is incomplete (checked before anything is read).
pub fn validate_reseal(reseal: &Reseal) -> Result<(), LogError> {
    if reseal.key_id.is_empty() || reseal.nonce.is_empty() || reseal.ciphertext.is_empty() {
        return Err(LogError::Invalid(
            "a new seal needs a key id, a nonce and a ciphertext".into(),
        ));
    }
    Ok(())
}

/// Puts `reseal`'s seal on the stored `entry` when it is still sealed as the caller read it
/// (`from_key_id`, `from_nonce`); `Changed` otherwise, the entry untouched.
pub fn apply_reseal(entry: &mut ArchiveEntry, reseal: &Reseal) -> ResealOutcome {
    if entry.key_id != reseal.from_key_id || entry.nonce != reseal.from_nonce {
        return ResealOutcome::Changed;
    }
    entry.key_id.clone_from(&reseal.key_id);
    entry.nonce.clone_from(&reseal.nonce);
    entry.ciphertext.clone_from(&reseal.ciphertext);
    ResealOutcome::Rewritten
}

/// Puts `reseal`'s seal on dead letter `letter`'s raw item (`raw_key_id`, `raw_nonce`, `raw`)
/// when it is still sealed as the caller read it; `Changed` otherwise (also for an item
/// stored in clear), the letter untouched.
pub fn apply_dead_letter_reseal(letter: &mut DeadLetter, reseal: &Reseal) -> ResealOutcome {
    if letter.raw_key_id.is_empty()
        || letter.raw_key_id != reseal.from_key_id
        || letter.raw_nonce != reseal.from_nonce
    {
        return ResealOutcome::Changed;
    }
    letter.raw_key_id.clone_from(&reseal.key_id);
    letter.raw_nonce.clone_from(&reseal.nonce);
    letter.raw.clone_from(&reseal.ciphertext);
    ResealOutcome::Rewritten
}

/// Whether `name` may name a durable consumer: 1 to 128 bytes of `A-Z a-z 0-9 . _ -`, so it
/// is safe as a key in every backend (a NATS KV key, a redb key) and in logs.
pub fn is_valid_consumer_name(name: &str) -> bool {
    (1..=MAX_CONSUMER_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// [`is_valid_consumer_name`] as the error a caller gets.
pub fn check_consumer_name(name: &str) -> Result<(), LogError> {
    if is_valid_consumer_name(name) {
        Ok(())
    } else {
        Err(LogError::Invalid(format!(
            "consumer names are 1 to {MAX_CONSUMER_NAME} characters of A-Z a-z 0-9 . _ - \
             (got {name:?})"
        )))
    }
}

/// Refuses moving a consumer past the newest event: it would acknowledge events that do not
/// exist yet.
pub fn check_ack_target(sequence: u64, last: u64) -> Result<(), LogError> {
    if sequence > last {
        return Err(LogError::Invalid(format!(
            "sequence {sequence} is beyond the newest event ({last})"
        )));
    }
    Ok(())
}

/// A durable consumer created now with `filter`, positioned after `start_after` but never past
/// the newest event `last`.
pub fn new_consumer(
    name: &str,
    start_after: u64,
    last: u64,
    now: Timestamp,
    filter: &Filter,
) -> Consumer {
    let acked_sequence = start_after.min(last);
    Consumer {
        name: name.to_owned(),
        acked_sequence,
        lag: last.saturating_sub(acked_sequence),
        created_at: Some(now),
        acked_at: None,
        filter: stored_filter(filter),
    }
}

/// The filter as a consumer stores it: none when it selects every event, so an unfiltered
/// consumer is stored as before filters were recorded.
pub fn stored_filter(filter: &Filter) -> Option<Filter> {
    (!filter.sources.is_empty() || !filter.types.is_empty()).then(|| filter.clone())
}

/// Gives an existing consumer the filter of the subscription opening it now. Returns whether
/// it changed and so must be stored.
pub fn refilter_consumer(consumer: &mut Consumer, filter: &Filter) -> bool {
    let filter = stored_filter(filter);
    if consumer.filter == filter {
        return false;
    }
    consumer.filter = filter;
    true
}

/// Moves `consumer` to `sequence`: forward only for an ack (acks are cumulative, a late or
/// repeated one changes nothing), anywhere for a reset. Returns whether it changed and so
/// must be stored.
pub fn move_consumer(consumer: &mut Consumer, sequence: u64, reset: bool, now: Timestamp) -> bool {
    if reset || sequence > consumer.acked_sequence {
        consumer.acked_sequence = sequence;
        consumer.acked_at = Some(now);
        true
    } else {
        false
    }
}

/// Sets `consumer.lag` from the newest event `last`.
pub fn set_lag(consumer: &mut Consumer, last: u64) {
    consumer.lag = last.saturating_sub(consumer.acked_sequence);
}

/// A consumer as stored: without its name (the key) and lag (derived on read).
pub fn encode_consumer(consumer: &Consumer) -> Vec<u8> {
    Consumer {
        name: String::new(),
        lag: 0,
        ..consumer.clone()
    }
    .encode_to_vec()
}

/// A stored consumer read back under its key `name` (lag 0 until [`set_lag`]).
pub fn decode_consumer(name: &str, bytes: &[u8]) -> Result<Consumer, LogError> {
    let mut consumer =
        Consumer::decode(bytes).map_err(|source| LogError::Corrupt { key: 0, source })?;
    consumer.name = name.to_owned();
    Ok(consumer)
}

/// Records a redrive on its dead letter: one more attempt, and either the new reason
/// (`still_failing`) or the resolution with the `sequences` appended. Returns whether it is
/// resolved.
pub fn record_redrive(
    letter: &mut DeadLetter,
    still_failing: Option<String>,
    sequences: &[u64],
    now: Timestamp,
) -> bool {
    letter.redrive_attempts += 1;
    match still_failing {
        Some(reason) => {
            letter.reason = reason;
            false
        }
        None => {
            letter.resolved_at = Some(now);
            letter.resolved_sequences = sequences.to_vec();
            true
        }
    }
}

/// `time` as a protobuf timestamp (times before 1970 become the epoch).
pub fn timestamp(time: SystemTime) -> Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        // Below 10^9, so it fits.
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// The timestamp `millis` milliseconds after the epoch.
pub fn timestamp_from_millis(millis: u64) -> Timestamp {
    timestamp(UNIX_EPOCH + Duration::from_millis(millis))
}

/// Milliseconds since the epoch of a (client-given) timestamp, saturating: before 1970 is 0,
/// out of range is `u64::MAX`.
pub fn unix_millis(time: &Timestamp) -> u64 {
    let millis = time
        .seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(time.nanos / 1_000_000));
    u64::try_from(millis).unwrap_or(0)
}

/// Nanoseconds since the epoch of a timestamp (exact: `i128` holds every value).
pub fn unix_nanos(time: &Timestamp) -> i128 {
    i128::from(time.seconds) * 1_000_000_000 + i128::from(time.nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_SOURCE_NAME;
    use tributary_model::v1::Provenance;

    fn event(id: &str) -> Event {
        Event {
            provenance: Some(Provenance {
                provider_event_id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn appends_need_a_source_and_provider_ids() {
        let ok = AppendRequest {
            source: "s".into(),
            events: vec![event("a").into()],
            dead_letters: vec![DeadLetter {
                provider_event_id: "b".into(),
                ..Default::default()
            }],
            archive: None,
        };
        assert_eq!(validate_append(&ok).ok(), SourceName::new("s").ok());
        for source in [
            "",
            "s:x",
            "a.b",
            "a*",
            "has space",
            &"s".repeat(MAX_SOURCE_NAME + 1),
        ] {
            let bad = AppendRequest {
                source: source.to_owned(),
                ..ok.clone()
            };
            assert!(
                matches!(validate_append(&bad), Err(LogError::Invalid(m)) if m.starts_with("source names are")),
                "{source}"
            );
        }
        for bad in [
            AppendRequest {
                events: vec![Event::default().into()],
                ..ok.clone()
            },
            AppendRequest {
                events: vec![event("").into()],
                ..ok.clone()
            },
            AppendRequest {
                dead_letters: vec![DeadLetter::default()],
                ..ok.clone()
            },
        ] {
            assert!(matches!(validate_append(&bad), Err(LogError::Invalid(_))));
        }
        assert!(validate_redrive_events(&[event("a").into()]).is_ok());
        assert!(validate_redrive_events(&[Event::default().into()]).is_err());
    }

    #[test]
    fn consumer_names() {
        let longest = "a".repeat(MAX_CONSUMER_NAME);
        for name in ["billing", "a.b_c-1", "Z9", longest.as_str()] {
            assert!(is_valid_consumer_name(name), "{name}");
        }
        let too_long = "a".repeat(MAX_CONSUMER_NAME + 1);
        for name in ["", "has space", "a/b", "a*", "é", "a>b", too_long.as_str()] {
            assert!(!is_valid_consumer_name(name), "{name}");
            assert!(matches!(
                check_consumer_name(name),
                Err(LogError::Invalid(_))
            ));
        }
    }

    #[test]
    fn consumers_move_forward_unless_reset() {
        let now = timestamp_from_millis(5_000);
        let mut consumer = new_consumer("c", 9, 4, now, &Filter::default());
        assert_eq!((consumer.acked_sequence, consumer.lag), (4, 0));
        assert!(!move_consumer(&mut consumer, 3, false, now));
        assert_eq!(consumer.acked_sequence, 4);
        assert!(move_consumer(&mut consumer, 2, true, now));
        set_lag(&mut consumer, 10);
        assert_eq!((consumer.acked_sequence, consumer.lag), (2, 8));
        let stored = decode_consumer("c", &encode_consumer(&consumer)).expect("decodes");
        assert_eq!(stored, Consumer { lag: 0, ..consumer });
        assert!(check_ack_target(10, 10).is_ok());
        assert!(check_ack_target(11, 10).is_err());
    }

    #[test]
    fn redrives_count_attempts() {
        let now = timestamp_from_millis(1_500);
        let mut letter = DeadLetter::default();
        assert!(!record_redrive(&mut letter, Some("still".into()), &[], now));
        assert_eq!(
            (letter.redrive_attempts, letter.reason.as_str()),
            (1, "still")
        );
        assert!(record_redrive(&mut letter, None, &[7, 8], now));
        assert_eq!(letter.redrive_attempts, 2);
        assert_eq!(letter.resolved_sequences, vec![7, 8]);
        assert_eq!(letter.resolved_at, Some(now));
    }

    #[test]
    fn time_conversions() {
        let t = timestamp_from_millis(1_234);
        assert_eq!((t.seconds, t.nanos), (1, 234_000_000));
        assert_eq!(unix_millis(&t), 1_234);
        assert_eq!(unix_nanos(&t), 1_234_000_000);
        let huge = Timestamp {
            seconds: i64::MAX,
            nanos: 999_999_999,
        };
        assert_eq!(unix_millis(&huge), i64::MAX as u64);
        let negative = Timestamp {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(unix_millis(&negative), 0);
        assert_eq!(timestamp(UNIX_EPOCH - Duration::from_secs(1)).seconds, 0);
    }
}
