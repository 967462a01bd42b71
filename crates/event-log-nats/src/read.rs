//! Reading by sequence and by time. JetStream 2.9 has no batch get, so a range is read with
//! pipelined single-message gets from the stream leader (always current, unlike direct gets
//! served by followers); a consumer per read would cost a Raft proposal in a cluster.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message as _;
use tributary_event_log::{LogError, StoredEvent, rules};
use tributary_model::fields::event::SEQUENCE as EVENT_SEQUENCE_FIELD;
use tributary_model::v1::Event;
use tributary_model::well_known::Timestamp;

use crate::Inner;

/// Gets in flight per read.
const PARALLEL_GETS: usize = 64;

/// The message at `sequence`, `None` when there is none (removed by retention or deleted).
pub(crate) async fn get(stream: &Stream, sequence: u64) -> Result<Option<StreamMessage>, LogError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(LogError::storage(
            format!(
                "cannot read sequence {sequence} of {}",
                stream.cached_info().config.name
            ),
            e,
        )),
    }
}

/// The first message at or after `sequence` on `filter`.
pub(crate) async fn first_at_or_after(
    stream: &Stream,
    filter: &str,
    sequence: u64,
) -> Result<Option<StreamMessage>, LogError> {
    let request = stream
        .raw_message_builder()
        .sequence(sequence)
        .next_by_subject(filter.to_owned());
    match request.send().await {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(LogError::storage(
            format!(
                "cannot read {} from sequence {sequence}",
                stream.cached_info().config.name
            ),
            e,
        )),
    }
}

/// Up to `max` messages with a sequence in `after + 1 ..= last`, in order, skipping removed
/// ones like the embedded log does.
pub(crate) async fn messages_after(
    stream: &Stream,
    filter: &str,
    after: u64,
    last: u64,
    max: usize,
) -> Result<Vec<StreamMessage>, LogError> {
    if max == 0 || after >= last {
        return Ok(Vec::new());
    }
    let mut start = after + 1;
    loop {
        let end = last.min(start.saturating_add(max as u64 - 1));
        let results: Vec<_> = futures_util::stream::iter(start..=end)
            .map(|sequence| get(stream, sequence))
            .buffered(PARALLEL_GETS)
            .collect()
            .await;
        let mut messages = Vec::with_capacity(results.len());
        for result in results {
            if let Some(message) = result? {
                messages.push(message);
            }
        }
        if !messages.is_empty() || end >= last {
            return Ok(messages);
        }
        // The whole window was removed: jump to the first message after it.
        match first_at_or_after(stream, filter, end + 1).await? {
            Some(message) if message.sequence <= last => start = message.sequence,
            _ => return Ok(Vec::new()),
        }
    }
}

pub(crate) fn decode_event(message: &StreamMessage) -> Result<Event, LogError> {
    let mut event =
        Event::decode(message.payload.as_ref()).map_err(|source| LogError::Corrupt {
            key: message.sequence,
            source,
        })?;
    event.sequence = message.sequence;
    Ok(event)
}

pub(crate) async fn events_after(
    inner: &Inner,
    after: u64,
    max: usize,
) -> Result<Vec<Event>, LogError> {
    let filter = inner.config.events_filter();
    let messages = messages_after(&inner.events, &filter, after, inner.known_last(), max).await?;
    messages.iter().map(decode_event).collect()
}

/// [`events_after`] without decoding the payloads: each message's bytes with the stream
/// sequence appended as `Event.sequence` (protobuf keeps the last value of a field).
pub(crate) async fn stored_events_after(
    inner: &Inner,
    after: u64,
    max: usize,
) -> Result<Vec<StoredEvent>, LogError> {
    let filter = inner.config.events_filter();
    let messages = messages_after(&inner.events, &filter, after, inner.known_last(), max).await?;
    messages
        .iter()
        .map(|message| {
            let mut encoded = Vec::with_capacity(message.payload.len() + 11);
            encoded.extend_from_slice(&message.payload);
            prost::encoding::uint64::encode(EVENT_SEQUENCE_FIELD, &message.sequence, &mut encoded);
            StoredEvent::decode(Bytes::from(encoded)).map_err(|source| LogError::Corrupt {
                key: message.sequence,
                source,
            })
        })
        .collect()
}

/// The sequence just before the first event stored at or after `time` (binary search on the
/// messages' stored times), or the newest sequence when there is none.
pub(crate) async fn sequence_before_time(inner: &Inner, time: Timestamp) -> Result<u64, LogError> {
    let target = rules::unix_nanos(&time);
    let state = stream_info(&inner.events).await?.state;
    inner.saw(state.last_sequence);
    if state.messages == 0 {
        return Ok(state.last_sequence);
    }
    let filter = inner.config.events_filter();
    let (mut low, mut high) = (state.first_sequence, state.last_sequence + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        match first_at_or_after(&inner.events, &filter, middle).await? {
            Some(m) if m.time.unix_timestamp_nanos() < target => low = m.sequence + 1,
            _ => high = middle,
        }
    }
    if low > state.last_sequence {
        return Ok(state.last_sequence);
    }
    Ok(
        match first_at_or_after(&inner.events, &filter, low).await? {
            Some(m) => m.sequence - 1,
            None => state.last_sequence,
        },
    )
}

pub(crate) async fn first_sequence(inner: &Inner) -> Result<u64, LogError> {
    let info = stream_info(&inner.events).await?;
    inner.saw(info.state.last_sequence);
    Ok(first_stored(&info.state))
}

/// The oldest stored sequence of a stream; `last + 1` when it holds no message (JetStream's
/// `first_sequence` of an emptied stream is not meaningful for that).
/// The stream's current info (state, config), asked of its leader; an error names the stream.
pub(crate) async fn stream_info(
    stream: &Stream,
) -> Result<async_nats::jetstream::stream::Info, LogError> {
    stream.get_info().await.map_err(|e| {
        let name = &stream.cached_info().config.name;
        LogError::storage(format!("cannot read stream {name}"), e)
    })
}

pub(crate) fn first_stored(state: &async_nats::jetstream::stream::State) -> u64 {
    if state.messages == 0 {
        state.last_sequence + 1
    } else {
        state.first_sequence
    }
}
