//! [`PendingEvent`]: an event on its way into the log, kept as its encoding.
//!
//! An adapter returns its events encoded, and the log stores them encoded: decoding each one
//! into an `Event` to set a few envelope fields, then encoding it again, would be most of what
//! the plugin boundary costs. A pending event keeps the bytes it was given, reads only
//! the fields the host and the log need (its "head"), and stores the envelope fields the host
//! and the log set as encoded fields appended to those bytes: protobuf keeps the last value of
//! a scalar field and merges a message field that occurs again, so the stored bytes decode to
//! the same `Event` as setting the fields on a decoded one would have made.

use std::borrow::Cow;

use prost::Message;
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{self, WireType};
use tributary_model::check::{CheckError, EventHead, check_event_head};
use tributary_model::v1::Event;
use tributary_model::well_known::Timestamp;

use crate::StoredEvent;

use tributary_model::fields::event::{
    DATACONTENTTYPE, ID, PROVENANCE, RAW_ID, RECEIVED_AT, SEQUENCE, SOURCE, SPECVERSION, TIME,
    TRACEPARENT, TRACESTATE,
};
use tributary_model::fields::provenance::{
    ADAPTER as PROVENANCE_ADAPTER, ADAPTER_VERSION as PROVENANCE_ADAPTER_VERSION,
    PROVIDER_EVENT_ID as PROVENANCE_PROVIDER_EVENT_ID,
};

// Of `google.protobuf.Timestamp` (a well-known type, fixed forever).
const TIMESTAMP_SECONDS: u32 = 1;
const TIMESTAMP_NANOS: u32 = 2;

/// The fields of an event the host and the log read ([`EventHead`], owned): read from an
/// encoding by [`check_event_head`] as it checks it, or taken from a decoded event.
#[derive(Debug, Clone, Default, PartialEq)]
struct Head {
    source: String,
    r#type: String,
    has_time: bool,
    traceparent: String,
    tracestate: String,
    sequence: u64,
    has_received_at: bool,
    provenance: Option<ProvenanceHead>,
    has_replay_of: bool,
}

/// The `Provenance` fields the log deduplicates on.
#[derive(Debug, Clone, Default, PartialEq)]
struct ProvenanceHead {
    adapter_version: String,
    provider_event_id: String,
}

impl From<EventHead<'_>> for Head {
    fn from(head: EventHead<'_>) -> Self {
        Self {
            source: head.source.to_owned(),
            r#type: head.r#type.to_owned(),
            has_time: head.has_time,
            traceparent: head.traceparent.to_owned(),
            tracestate: head.tracestate.to_owned(),
            sequence: head.sequence,
            has_received_at: head.has_received_at,
            provenance: head.provenance.map(|p| ProvenanceHead {
                adapter_version: p.adapter_version.to_owned(),
                provider_event_id: p.provider_event_id.to_owned(),
            }),
            has_replay_of: head.has_replay_of,
        }
    }
}

/// Why bytes cannot be a pending event: they do not decode as a `tributary.v1.Event`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnreadableEvent {
    /// The encoding is not a decodable `Event` (checked without decoding it).
    #[error(transparent)]
    Invalid(#[from] CheckError),
    /// Decoding it failed (callers that decode a pending event: the dry run, a rewrite).
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
}

/// Envelope fields set on a pending event, appended (encoded) when it is stored. `None`: left
/// as the encoding has it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Appended {
    id: Option<String>,
    source: Option<String>,
    time: Option<Timestamp>,
    datacontenttype: Option<String>,
    trace: Option<(String, String)>,
    sequence: Option<u64>,
    received_at: Option<Timestamp>,
    adapter: Option<(String, String)>,
    provider_event_id: Option<String>,
    raw_id: Option<u64>,
    specversion: Option<String>,
}

/// An event to append to the log: its encoding as given (an adapter's bytes, or an `Event`
/// encoded by [`PendingEvent::from_event`]) plus the envelope fields set on it since, which
/// are appended as encoded fields when it is stored ([`PendingEvent::encode`]). One type for
/// every way into the log, so ingest, redrive and replay share one append path.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    encoded: Bytes,
    head: Head,
    appended: Appended,
}

impl PendingEvent {
    /// Reads the head of an encoded `tributary.v1.Event` (the fields the log needs); the rest
    /// stays encoded. Bytes that would not decode as an `Event` are refused
    /// ([`check_event_head`]: readers decode what is stored, so nothing undecodable gets in;
    /// the head is read in the same walk).
    pub fn decode(encoded: Bytes) -> Result<Self, UnreadableEvent> {
        let head = Head::from(check_event_head(&encoded)?);
        Ok(Self {
            encoded,
            head,
            appended: Appended::default(),
        })
    }

    /// `event`, encoded (redrive, replay and tests hold decoded events).
    pub fn from_event(event: &Event) -> Self {
        Self {
            encoded: Bytes::from(event.encode_to_vec()),
            head: head_of(event),
            appended: Appended::default(),
        }
    }

    /// The whole event, decoded: the encoding with the fields set since.
    pub fn event(&self) -> Result<Event, prost::DecodeError> {
        Event::decode(self.encode())
    }

    /// The encoding to store: the bytes given, then the fields set since (none appended when
    /// nothing was set, and the bytes are shared, not copied).
    pub fn encode(&self) -> Bytes {
        if self.appended == Appended::default() {
            return self.encoded.clone();
        }
        let mut buf = Vec::with_capacity(self.encoded.len() + self.appended.encoded_len());
        buf.put_slice(&self.encoded);
        self.appended.encode(&mut buf);
        Bytes::from(buf)
    }

    /// [`Self::encode`] with the envelope delivery reads (subscribers share it).
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent::from_parts(
            self.source().to_owned(),
            self.event_type().to_owned(),
            self.traceparent().to_owned(),
            self.tracestate().to_owned(),
            self.sequence(),
            self.encode(),
        )
    }

    /// The source (`Event.source`).
    pub fn source(&self) -> &str {
        self.appended.source.as_deref().unwrap_or(&self.head.source)
    }

    /// The canonical type (`Event.type`): subjects and filters use it.
    pub fn event_type(&self) -> &str {
        &self.head.r#type
    }

    /// `provenance.provider_event_id`: the dedup key within the source; empty when missing.
    pub fn provider_event_id(&self) -> &str {
        match &self.appended.provider_event_id {
            Some(id) => id,
            None => self
                .head
                .provenance
                .as_ref()
                .map_or("", |p| p.provider_event_id.as_str()),
        }
    }

    /// The key the event is deduplicated on within its source ([`crate::rules::dedup_key`]
    /// for an encoded event).
    pub fn dedup_key(&self) -> Cow<'_, str> {
        let has_provenance = self.head.provenance.is_some()
            || self.appended.adapter.is_some()
            || self.appended.provider_event_id.is_some();
        let replay_version =
            (self.head.has_replay_of && has_provenance).then(|| match &self.appended.adapter {
                Some((_, version)) => version.as_str(),
                None => self
                    .head
                    .provenance
                    .as_ref()
                    .map_or("", |p| p.adapter_version.as_str()),
            });
        crate::rules::dedup_key_of(self.provider_event_id(), replay_version)
    }

    /// Whether `Event.time` is set.
    pub fn has_time(&self) -> bool {
        self.appended.time.is_some() || self.head.has_time
    }

    /// `Event.traceparent`.
    pub fn traceparent(&self) -> &str {
        match &self.appended.trace {
            Some((traceparent, _)) => traceparent,
            None => &self.head.traceparent,
        }
    }

    /// `Event.tracestate`.
    pub fn tracestate(&self) -> &str {
        match &self.appended.trace {
            Some((_, tracestate)) => tracestate,
            None => &self.head.tracestate,
        }
    }

    /// `Event.sequence`.
    pub fn sequence(&self) -> u64 {
        self.appended.sequence.unwrap_or(self.head.sequence)
    }

    /// Sets `Event.id`.
    pub fn set_id(&mut self, id: String) {
        self.appended.id = Some(id);
    }

    /// Sets `Event.source`.
    pub fn set_source(&mut self, source: String) {
        self.appended.source = Some(source);
    }

    /// Sets `Event.time`.
    pub fn set_time(&mut self, time: Timestamp) {
        self.appended.time = Some(time);
    }

    /// Sets `Event.received_at`.
    pub fn set_received_at(&mut self, time: Timestamp) {
        self.appended.received_at = Some(time);
    }

    /// Clears `Event.received_at`. Appending cannot unset a message field, so when the
    /// encoding has one the event is decoded, changed and encoded again (rare: adapters leave
    /// the field to the host); that decode is the error.
    pub fn clear_received_at(&mut self) -> Result<(), prost::DecodeError> {
        self.appended.received_at = None;
        if self.head.has_received_at {
            self.rewrite(|event| event.received_at = None)?;
        }
        Ok(())
    }

    /// Sets `provenance.adapter` and `provenance.adapter_version` (the rest of the
    /// provenance stays: an appended message field merges).
    pub fn set_adapter(&mut self, name: String, version: String) {
        self.appended.adapter = Some((name, version));
    }

    /// Sets `provenance.provider_event_id`.
    pub fn set_provider_event_id(&mut self, id: String) {
        self.appended.provider_event_id = Some(id);
    }

    /// Sets `Event.datacontenttype`.
    pub fn set_datacontenttype(&mut self, value: String) {
        self.appended.datacontenttype = Some(value);
    }

    /// Sets `Event.specversion`.
    pub fn set_specversion(&mut self, value: String) {
        self.appended.specversion = Some(value);
    }

    /// Sets `Event.traceparent` and `Event.tracestate`.
    pub fn set_trace(&mut self, traceparent: String, tracestate: String) {
        self.appended.trace = Some((traceparent, tracestate));
    }

    /// Sets `Event.sequence` (the log, on append).
    pub fn set_sequence(&mut self, sequence: u64) {
        self.appended.sequence = Some(sequence);
    }

    /// Sets `Event.raw_id` (the log, with the archive entry's id).
    pub fn set_raw_id(&mut self, raw_id: u64) {
        self.appended.raw_id = Some(raw_id);
    }

    /// Decodes the event, applies `change`, and keeps the canonical encoding of the result.
    fn rewrite(&mut self, change: impl FnOnce(&mut Event)) -> Result<(), prost::DecodeError> {
        let mut event = self.event()?;
        change(&mut event);
        *self = Self::from_event(&event);
        Ok(())
    }
}

impl From<&Event> for PendingEvent {
    fn from(event: &Event) -> Self {
        Self::from_event(event)
    }
}

impl From<Event> for PendingEvent {
    fn from(event: Event) -> Self {
        Self::from_event(&event)
    }
}

/// The head of a decoded event.
fn head_of(event: &Event) -> Head {
    Head {
        source: event.source.clone(),
        r#type: event.r#type.clone(),
        has_time: event.time.is_some(),
        traceparent: event.traceparent.clone(),
        tracestate: event.tracestate.clone(),
        sequence: event.sequence,
        has_received_at: event.received_at.is_some(),
        provenance: event.provenance.as_ref().map(|p| ProvenanceHead {
            adapter_version: p.adapter_version.clone(),
            provider_event_id: p.provider_event_id.clone(),
        }),
        has_replay_of: event.replay_of.is_some(),
    }
}

impl Appended {
    /// Encodes the set fields. Every value is written even when it is the default (an empty
    /// string, a zero), so it replaces what the encoding holds; a timestamp writes both its
    /// fields, so merging it into one already there replaces it whole.
    fn encode(&self, buf: &mut impl BufMut) {
        let string = |tag, value: &Option<String>, buf: &mut _| {
            if let Some(value) = value {
                encoding::string::encode(tag, value, buf);
            }
        };
        string(ID, &self.id, buf);
        string(SOURCE, &self.source, buf);
        if let Some(time) = &self.time {
            encode_timestamp(TIME, time, buf);
        }
        string(DATACONTENTTYPE, &self.datacontenttype, buf);
        if let Some((traceparent, tracestate)) = &self.trace {
            encoding::string::encode(TRACEPARENT, traceparent, buf);
            encoding::string::encode(TRACESTATE, tracestate, buf);
        }
        if let Some(sequence) = &self.sequence {
            encoding::uint64::encode(SEQUENCE, sequence, buf);
        }
        if let Some(time) = &self.received_at {
            encode_timestamp(RECEIVED_AT, time, buf);
        }
        let provenance = self.provenance_len();
        if provenance > 0 {
            encoding::encode_key(PROVENANCE, WireType::LengthDelimited, buf);
            encoding::encode_varint(provenance as u64, buf);
            if let Some((name, version)) = &self.adapter {
                encoding::string::encode(PROVENANCE_ADAPTER, name, buf);
                encoding::string::encode(PROVENANCE_ADAPTER_VERSION, version, buf);
            }
            if let Some(id) = &self.provider_event_id {
                encoding::string::encode(PROVENANCE_PROVIDER_EVENT_ID, id, buf);
            }
        }
        if let Some(raw_id) = &self.raw_id {
            encoding::uint64::encode(RAW_ID, raw_id, buf);
        }
        string(SPECVERSION, &self.specversion, buf);
    }

    /// The length of the appended provenance message (0: none appended).
    fn provenance_len(&self) -> usize {
        self.adapter.as_ref().map_or(0, |(name, version)| {
            encoding::string::encoded_len(PROVENANCE_ADAPTER, name)
                + encoding::string::encoded_len(PROVENANCE_ADAPTER_VERSION, version)
        }) + self.provider_event_id.as_ref().map_or(0, |id| {
            encoding::string::encoded_len(PROVENANCE_PROVIDER_EVENT_ID, id)
        })
    }

    /// What [`Self::encode`] writes, in bytes.
    fn encoded_len(&self) -> usize {
        let string = |tag, value: &Option<String>| {
            value
                .as_ref()
                .map_or(0, |v| encoding::string::encoded_len(tag, v))
        };
        let provenance = self.provenance_len();
        string(ID, &self.id)
            + string(SOURCE, &self.source)
            + self
                .time
                .as_ref()
                .map_or(0, |t| timestamp_encoded_len(TIME, t))
            + string(DATACONTENTTYPE, &self.datacontenttype)
            + self.trace.as_ref().map_or(0, |(traceparent, tracestate)| {
                encoding::string::encoded_len(TRACEPARENT, traceparent)
                    + encoding::string::encoded_len(TRACESTATE, tracestate)
            })
            + self
                .sequence
                .as_ref()
                .map_or(0, |s| encoding::uint64::encoded_len(SEQUENCE, s))
            + self
                .received_at
                .as_ref()
                .map_or(0, |t| timestamp_encoded_len(RECEIVED_AT, t))
            + if provenance > 0 {
                encoding::key_len(PROVENANCE)
                    + encoding::encoded_len_varint(provenance as u64)
                    + provenance
            } else {
                0
            }
            + self
                .raw_id
                .as_ref()
                .map_or(0, |r| encoding::uint64::encoded_len(RAW_ID, r))
            + string(SPECVERSION, &self.specversion)
    }
}

/// The body of a timestamp written with both fields, zeros included.
fn timestamp_body_len(time: &Timestamp) -> usize {
    encoding::int64::encoded_len(TIMESTAMP_SECONDS, &time.seconds)
        + encoding::int32::encoded_len(TIMESTAMP_NANOS, &time.nanos)
}

fn timestamp_encoded_len(tag: u32, time: &Timestamp) -> usize {
    let body = timestamp_body_len(time);
    encoding::key_len(tag) + encoding::encoded_len_varint(body as u64) + body
}

/// Writes `time` as field `tag` with both its fields, so that it replaces a timestamp already
/// in the encoding when merged into it.
fn encode_timestamp(tag: u32, time: &Timestamp, buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(timestamp_body_len(time) as u64, buf);
    encoding::int64::encode(TIMESTAMP_SECONDS, &time.seconds, buf);
    encoding::int32::encode(TIMESTAMP_NANOS, &time.nanos, buf);
}

/// The varint field `number` of an encoded message (the last occurrence, 0 when absent), read
/// without decoding the rest: e.g. the `raw_id` of a stored event or dead letter.
pub fn varint_field(mut bytes: &[u8], number: u32) -> Result<u64, prost::DecodeError> {
    let mut value = 0;
    while !bytes.is_empty() {
        let (tag, wire_type) = encoding::decode_key(&mut bytes)?;
        if tag == number && wire_type == WireType::Varint {
            value = encoding::decode_varint(&mut bytes)?;
        } else {
            encoding::skip_field(
                wire_type,
                tag,
                &mut bytes,
                encoding::DecodeContext::default(),
            )?;
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
