//! Key encodings. Every integer is big-endian so that keys sort as the numbers do (a range
//! scan over sequences, ids or milliseconds walks them in order); strings that share a key are
//! length-prefixed so that no two (source, id) pairs encode alike: source `s` with id `x:y`
//! and source `s:x` with id `y` are different keys.

/// A sequence, dead-letter id, archive id or millisecond as a key.
pub(crate) fn u64_key(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// The number a [`u64_key`] encodes; `None` for a key of another length (never written).
pub(crate) fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Two numbers, both sorting: (milliseconds, id) of the resolved-dead-letter index.
pub(crate) fn pair_key(first: u64, second: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&first.to_be_bytes());
    key[8..].copy_from_slice(&second.to_be_bytes());
    key
}

/// The two numbers of a [`pair_key`].
pub(crate) fn read_pair(bytes: &[u8]) -> Option<(u64, u64)> {
    Some((read_u64(bytes)?, read_u64(bytes.get(8..)?)?))
}

/// (source, item key): the source's length (one byte: source names are at most 64 bytes, see
/// `rules::MAX_SOURCE_NAME`), the source, then the key. The length makes the split
/// unambiguous whatever bytes the key holds.
pub(crate) fn dedup_key(source: &str, key: &str) -> Vec<u8> {
    let source = source.as_bytes();
    let len = u8::try_from(source.len()).unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(1 + source.len() + key.len());
    out.push(len);
    out.extend_from_slice(&source[..usize::from(len).min(source.len())]);
    out.extend_from_slice(key.as_bytes());
    out
}

/// A number prefix followed by a dedup key: the retired-key index ((removal ms, key)).
pub(crate) fn prefixed(number: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + rest.len());
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_ids_cannot_collide() {
        assert_ne!(dedup_key("s", "x:y"), dedup_key("s:x", "y"));
        assert_ne!(dedup_key("ab", "c"), dedup_key("a", "bc"));
        assert_ne!(dedup_key("a", "\u{2}bc"), dedup_key("\u{2}", "a"));
        assert_eq!(dedup_key("src", "id"), b"\x03srcid".to_vec());
    }

    #[test]
    fn numbers_sort_as_keys() {
        let mut keys: Vec<[u8; 8]> = [300u64, 2, 1 << 40, 0, 255, 256]
            .iter()
            .map(|&n| u64_key(n))
            .collect();
        keys.sort();
        let back: Vec<u64> = keys.iter().filter_map(|k| read_u64(k)).collect();
        assert_eq!(back, vec![0, 2, 255, 256, 300, 1 << 40]);
        assert_eq!(read_pair(&pair_key(7, 9)), Some((7, 9)));
        assert!(pair_key(1, u64::MAX) < pair_key(2, 0));
        assert_eq!(read_u64(b"short"), None);
    }
}
