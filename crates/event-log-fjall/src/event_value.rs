//! How an event is stored in its segment's `events` keyspace: its encoded protobuf, LZ4
//! compressed when that makes it smaller. fjall compresses journal values only from 4 KiB
//! on, and every event is written to the journal before any table: compressing here halves
//! the journal's bytes for an event (the tables of `events` then store it as is).
//!
//! A compressed value starts with [`LZ4_MARK`], a byte no encoded event starts with
//! (protobuf field number 0 does not exist), followed by an LZ4 block with its size first.
//! Any other value is the encoded event itself, as logs written before compression store it.

use std::borrow::Cow;

/// First byte of a compressed value.
const LZ4_MARK: u8 = 0;
/// Events shorter than this are stored as they are: too small to gain.
const MIN_COMPRESSED: usize = 128;
/// Largest event a compressed value opens to: far above any webhook the service accepts;
/// it keeps a damaged size header from allocating without limit.
const MAX_ENCODED: usize = 1 << 30;

/// The value to store for an encoded event.
pub(crate) fn pack(encoded: &[u8]) -> Cow<'_, [u8]> {
    if encoded.len() < MIN_COMPRESSED {
        return Cow::Borrowed(encoded);
    }
    // The mark, the size (little-endian u32, as `compress_prepend_size` writes it), the block:
    // compressed in place, with no second buffer.
    let Ok(size) = u32::try_from(encoded.len()) else {
        return Cow::Borrowed(encoded);
    };
    let header = 1 + 4;
    let mut packed = vec![0; header + lz4_flex::block::get_maximum_output_size(encoded.len())];
    packed[0] = LZ4_MARK;
    packed[1..header].copy_from_slice(&size.to_le_bytes());
    match lz4_flex::block::compress_into(encoded, &mut packed[header..]) {
        Ok(len) if header + len < encoded.len() => {
            packed.truncate(header + len);
            Cow::Owned(packed)
        }
        _ => Cow::Borrowed(encoded),
    }
}

/// Why a stored value does not unpack.
#[derive(Debug, thiserror::Error)]
#[error("a compressed event does not decompress")]
pub(crate) struct Unpack;

/// The encoded event in a stored value.
pub(crate) fn unpack(value: &[u8]) -> Result<Cow<'_, [u8]>, Unpack> {
    match value.split_first() {
        Some((&LZ4_MARK, block)) => {
            let (size, block) = lz4_flex::block::uncompressed_size(block).map_err(|_| Unpack)?;
            if size > MAX_ENCODED {
                return Err(Unpack);
            }
            lz4_flex::block::decompress(block, size)
                .map(Cow::Owned)
                .map_err(|_| Unpack)
        }
        _ => Ok(Cow::Borrowed(value)),
    }
}

/// The encoded event's length, read from a stored value's header.
pub(crate) fn encoded_len(value: &[u8]) -> usize {
    match value.split_first() {
        Some((&LZ4_MARK, block)) => {
            lz4_flex::block::uncompressed_size(block).map_or(value.len(), |(size, _)| size)
        }
        _ => value.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressible_event_is_stored_smaller_and_comes_back_whole() {
        let encoded: Vec<u8> = [0x0a, 0x80, 0x02]
            .into_iter()
            .chain(b"statement.available ".repeat(13))
            .collect();
        let packed = pack(&encoded);
        assert!(packed.len() < encoded.len() / 2, "{} bytes", packed.len());
        assert_eq!(packed[0], LZ4_MARK);
        assert_eq!(
            unpack(&packed).expect("unpacks").as_ref(),
            encoded.as_slice()
        );
        assert_eq!(encoded_len(&packed), encoded.len());
    }

    #[test]
    fn small_or_incompressible_events_and_old_values_are_stored_as_they_are() {
        let small = [0x0a, 0x03, b'a', b'b', b'c'];
        assert!(matches!(pack(&small), Cow::Borrowed(_)));
        // Bytes that look like ciphertext (xorshift).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut noise: Vec<u8> = (0..400)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        noise[0] = 0x0a;
        assert!(matches!(pack(&noise), Cow::Borrowed(_)));
        assert_eq!(unpack(&noise).expect("as is").as_ref(), noise.as_slice());
        assert_eq!(encoded_len(&noise), noise.len());
    }

    #[test]
    fn a_damaged_compressed_value_is_an_error() {
        assert!(unpack(&[LZ4_MARK, 0xff, 0xff, 0xff, 0x7f, 1, 2]).is_err());
        assert!(unpack(&[LZ4_MARK]).is_err());
    }
}
