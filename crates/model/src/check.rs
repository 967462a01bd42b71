//! Checks that bytes decode as a `tributary.v1.Event` without decoding them.
//!
//! The service stores an adapter's encoded events as they come back and reads only a few of
//! their fields, so nothing else would notice an event that no reader can decode (a string
//! that is not UTF-8, a wrong wire type, messages nested past prost's recursion limit) until
//! every subscriber failed on it. [`check_event`](crate::check::check_event) walks the encoding with the schema's field
//! kinds (generated from proto/ by build.rs) and accepts exactly what `Event::decode` accepts,
//! allocating nothing. [`check_event_head`](crate::check::check_event_head) also reads, in the same walk, the few envelope
//! fields the host needs of every event ([`EventHead`](crate::check::EventHead)), so the top level is walked once.

use std::fmt;

use prost::encoding::{self, DecodeContext, WireType};

/// The kind of value a field holds, as far as the wire format is concerned. Not every kind
/// occurs under `Event` today (no bytes or 32-bit fields); the checker handles them all so a
/// schema change cannot make it wrong.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Integers, bools and enums; `repeated` ones may also come packed.
    Varint {
        repeated: bool,
    },
    /// fixed32, sfixed32, float.
    Fixed32 {
        repeated: bool,
    },
    /// fixed64, sfixed64, double.
    Fixed64 {
        repeated: bool,
    },
    /// UTF-8 text.
    String,
    Bytes,
    /// The message `MESSAGES[i]`.
    Message(usize),
}

mod schema {
    use super::Kind;
    include!(concat!(env!("OUT_DIR"), "/event_schema.rs"));
}

/// prost's default recursion limit: how deep messages may nest under the one decoded.
const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not a decodable `tributary.v1.Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// prost's own reading of the wire format failed (a bad key or varint, a field that
    /// cannot be skipped).
    Wire(prost::DecodeError),
    /// Field `tag` came with a wire type its kind cannot have.
    WireType { tag: u32, wire_type: WireType },
    /// A length runs past the end of its message.
    Truncated,
    /// String field `tag` is not UTF-8.
    NotUtf8 { tag: u32 },
    /// Messages nest deeper than prost decodes.
    TooDeep,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(error) => write!(f, "{error}"),
            Self::WireType { tag, wire_type } => {
                write!(f, "field {tag} has the wrong wire type ({wire_type:?})")
            }
            Self::Truncated => write!(f, "a length runs past the end of its message"),
            Self::NotUtf8 { tag } => write!(f, "string field {tag} is not UTF-8"),
            Self::TooDeep => write!(f, "messages nested past the recursion limit"),
        }
    }
}

impl std::error::Error for CheckError {}

impl From<prost::DecodeError> for CheckError {
    fn from(error: prost::DecodeError) -> Self {
        Self::Wire(error)
    }
}

/// Whether `bytes` decode as a `tributary.v1.Event` (what `Event::decode` would say, without
/// building it).
pub fn check_event(bytes: &[u8]) -> Result<(), CheckError> {
    check_message(bytes, schema::EVENT, RECURSION_LIMIT, &mut Ignore)
}

/// [`check_event`], also reading the event's [`EventHead`] on the way: the host needs those
/// fields of every event it stores, and reading them in the same walk saves decoding the top
/// level a second time. The head is what prost would decode: the last value of a repeated
/// scalar or string, the fields of a message that occurs twice merged.
pub fn check_event_head(bytes: &[u8]) -> Result<EventHead<'_>, CheckError> {
    let mut head = EventHead::default();
    check_message(bytes, schema::EVENT, RECURSION_LIMIT, &mut head)?;
    Ok(head)
}

/// The envelope fields of an event that the host and the log read (to route, deduplicate and
/// trace it), borrowed from its encoding; a missing field reads as its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHead<'a> {
    /// `Event.source`.
    pub source: &'a str,
    /// `Event.type`.
    pub r#type: &'a str,
    /// Whether `Event.time` is set.
    pub has_time: bool,
    /// `Event.traceparent`.
    pub traceparent: &'a str,
    /// `Event.tracestate`.
    pub tracestate: &'a str,
    /// `Event.sequence`.
    pub sequence: u64,
    /// Whether `Event.received_at` is set.
    pub has_received_at: bool,
    /// `Event.provenance`'s fields the log deduplicates on; `None`: no provenance.
    pub provenance: Option<ProvenanceHead<'a>>,
    /// Whether `Event.replay_of` is set.
    pub has_replay_of: bool,
}

/// The fields of `Event.provenance` the log deduplicates on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProvenanceHead<'a> {
    /// `Provenance.adapter_version`.
    pub adapter_version: &'a str,
    /// `Provenance.provider_event_id`.
    pub provider_event_id: &'a str,
}

// Field numbers the head reads.
use crate::fields::event::{
    PROVENANCE as EVENT_PROVENANCE, RECEIVED_AT as EVENT_RECEIVED_AT, REPLAY_OF as EVENT_REPLAY_OF,
    SEQUENCE as EVENT_SEQUENCE, SOURCE as EVENT_SOURCE, TIME as EVENT_TIME,
    TRACEPARENT as EVENT_TRACEPARENT, TRACESTATE as EVENT_TRACESTATE, TYPE as EVENT_TYPE,
};
use crate::fields::provenance::{
    ADAPTER_VERSION as PROVENANCE_ADAPTER_VERSION,
    PROVIDER_EVENT_ID as PROVENANCE_PROVIDER_EVENT_ID,
};

/// What a walk does with the fields it has checked, one message level at a time: the walk
/// calls these for the fields of the message it was given, and a visitor that wants a nested
/// message's fields walks it with itself (or another visitor) in [`Visit::message`].
trait Visit<'a> {
    /// A single (not packed) varint field.
    fn varint(&mut self, _tag: u32, _value: u64) {}

    /// A string field's bytes, to be checked for UTF-8.
    fn string(&mut self, tag: u32, bytes: &'a [u8]) -> Result<(), CheckError> {
        check_utf8(tag, bytes)
    }

    /// A message field's body, the message `message` of the schema, to be checked.
    fn message(
        &mut self,
        _tag: u32,
        body: &'a [u8],
        message: usize,
        depth_left: u32,
    ) -> Result<(), CheckError> {
        check_message(body, message, depth_left, &mut Ignore)
    }
}

/// Checks only.
struct Ignore;

impl Visit<'_> for Ignore {}

impl<'a> Visit<'a> for EventHead<'a> {
    fn varint(&mut self, tag: u32, value: u64) {
        if tag == EVENT_SEQUENCE {
            self.sequence = value;
        }
    }

    fn string(&mut self, tag: u32, bytes: &'a [u8]) -> Result<(), CheckError> {
        let field = match tag {
            EVENT_SOURCE => &mut self.source,
            EVENT_TYPE => &mut self.r#type,
            EVENT_TRACEPARENT => &mut self.traceparent,
            EVENT_TRACESTATE => &mut self.tracestate,
            _ => return check_utf8(tag, bytes),
        };
        *field = utf8(tag, bytes)?;
        Ok(())
    }

    fn message(
        &mut self,
        tag: u32,
        body: &'a [u8],
        message: usize,
        depth_left: u32,
    ) -> Result<(), CheckError> {
        match tag {
            EVENT_TIME => self.has_time = true,
            EVENT_RECEIVED_AT => self.has_received_at = true,
            EVENT_REPLAY_OF => self.has_replay_of = true,
            // A second provenance merges into the first, as prost merges it.
            EVENT_PROVENANCE => {
                let provenance = self.provenance.get_or_insert_default();
                return check_message(body, message, depth_left, provenance);
            }
            _ => {}
        }
        check_message(body, message, depth_left, &mut Ignore)
    }
}

impl<'a> Visit<'a> for ProvenanceHead<'a> {
    fn string(&mut self, tag: u32, bytes: &'a [u8]) -> Result<(), CheckError> {
        let field = match tag {
            PROVENANCE_ADAPTER_VERSION => &mut self.adapter_version,
            PROVENANCE_PROVIDER_EVENT_ID => &mut self.provider_event_id,
            _ => return check_utf8(tag, bytes),
        };
        *field = utf8(tag, bytes)?;
        Ok(())
    }
}

/// Whether string field `tag` is UTF-8. Most strings in events are short ASCII (ids, names,
/// timestamps): `is_ascii` answers those word at a time, cheaper than `from_utf8`'s set-up.
fn check_utf8(tag: u32, bytes: &[u8]) -> Result<(), CheckError> {
    if bytes.is_ascii() {
        return Ok(());
    }
    utf8(tag, bytes).map(|_| ())
}

/// String field `tag` as text.
fn utf8(tag: u32, bytes: &[u8]) -> Result<&str, CheckError> {
    std::str::from_utf8(bytes).map_err(|_| CheckError::NotUtf8 { tag })
}

fn check_message<'a>(
    mut buf: &'a [u8],
    message: usize,
    depth_left: u32,
    visit: &mut impl Visit<'a>,
) -> Result<(), CheckError> {
    let fields = schema::MESSAGES[message];
    while !buf.is_empty() {
        let (tag, wire_type) = key(&mut buf)?;
        match usize::try_from(tag).ok().and_then(|at| fields.get(at)) {
            Some(Some(kind)) => check_field(*kind, tag, wire_type, &mut buf, depth_left, visit)?,
            _ => encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(())
}

/// A field's key; a one-byte key (fields 1 to 15) read here, any other by prost (which also
/// says why a bad one is bad). Inlined: it runs for every field, and with one walk per
/// visitor the compiler otherwise calls it.
#[inline(always)]
fn key(buf: &mut &[u8]) -> Result<(u32, WireType), CheckError> {
    if let Some(&byte) = buf.first()
        && (8..0x80).contains(&byte)
        && let Ok(wire_type) = WireType::try_from(u64::from(byte & 0x07))
    {
        *buf = &buf[1..];
        return Ok((u32::from(byte >> 3), wire_type));
    }
    Ok(encoding::decode_key(buf)?)
}

/// A varint; one byte read here, longer ones by prost. Inlined as [`key`] is.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Result<u64, CheckError> {
    if let Some(&byte) = buf.first()
        && byte < 0x80
    {
        *buf = &buf[1..];
        return Ok(u64::from(byte));
    }
    Ok(encoding::decode_varint(buf)?)
}

fn check_field<'a>(
    kind: Kind,
    tag: u32,
    wire_type: WireType,
    buf: &mut &'a [u8],
    depth_left: u32,
    visit: &mut impl Visit<'a>,
) -> Result<(), CheckError> {
    let wrong = || CheckError::WireType { tag, wire_type };
    match (kind, wire_type) {
        (Kind::Varint { .. }, WireType::Varint) => {
            visit.varint(tag, varint(buf)?);
        }
        (Kind::Fixed32 { .. }, WireType::ThirtyTwoBit) => {
            take(buf, 4)?;
        }
        (Kind::Fixed64 { .. }, WireType::SixtyFourBit) => {
            take(buf, 8)?;
        }
        (Kind::Varint { repeated: true }, WireType::LengthDelimited) => {
            let mut packed = length_delimited(buf)?;
            while !packed.is_empty() {
                varint(&mut packed)?;
            }
        }
        (Kind::Fixed32 { repeated: true }, WireType::LengthDelimited) => {
            if length_delimited(buf)?.len() % 4 != 0 {
                return Err(CheckError::Truncated);
            }
        }
        (Kind::Fixed64 { repeated: true }, WireType::LengthDelimited) => {
            if length_delimited(buf)?.len() % 8 != 0 {
                return Err(CheckError::Truncated);
            }
        }
        (Kind::String, WireType::LengthDelimited) => {
            visit.string(tag, length_delimited(buf)?)?;
        }
        (Kind::Bytes, WireType::LengthDelimited) => {
            length_delimited(buf)?;
        }
        (Kind::Message(message), WireType::LengthDelimited) => {
            if depth_left == 0 {
                return Err(CheckError::TooDeep);
            }
            visit.message(tag, length_delimited(buf)?, message, depth_left - 1)?;
        }
        _ => return Err(wrong()),
    }
    Ok(())
}

/// The next `len` bytes of `buf`, consumed.
fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], CheckError> {
    if buf.len() < len {
        return Err(CheckError::Truncated);
    }
    let (taken, rest) = buf.split_at(len);
    *buf = rest;
    Ok(taken)
}

/// A length-delimited value's bytes, consumed.
fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], CheckError> {
    let len = varint(buf)?;
    let len = usize::try_from(len).map_err(|_| CheckError::Truncated)?;
    take(buf, len)
}

#[cfg(test)]
mod tests;
