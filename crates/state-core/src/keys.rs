//! Key layouts shared by every backend (see `docs/formats.md`).
//!
//! All keys are byte strings compared lexicographically, so integers are
//! encoded as unsigned 64-bit big-endian to sort numerically.

use crate::error::{Error, Result};

/// The separator between a prefix and the rest of a key: the byte `|` (0x7C).
pub const SEPARATOR: u8 = b'|';

/// Length of an encoded `u64`.
pub const U64_LEN: usize = 8;
/// Length of an encoded integer pair `a | b`.
pub const U64_PAIR_LEN: usize = 2 * U64_LEN + 1;

/// Appends `prefix | key` to `out`; with an empty prefix, just `key`.
#[inline]
pub fn write_prefixed_key(out: &mut Vec<u8>, prefix: &[u8], key: &[u8]) {
    out.reserve(prefix.len() + 1 + key.len());
    if !prefix.is_empty() {
        out.extend_from_slice(prefix);
        out.push(SEPARATOR);
    }
    out.extend_from_slice(key);
}

/// Returns `prefix | key`; with an empty prefix, just `key`.
#[inline]
pub fn prefixed_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1 + key.len());
    write_prefixed_key(&mut out, prefix, key);
    out
}

/// Encodes an integer as 8 big-endian bytes.
#[inline]
pub fn encode_u64(value: u64) -> [u8; U64_LEN] {
    value.to_be_bytes()
}

/// Decodes 8 big-endian bytes; any other length is [`Error::MalformedKey`].
#[inline]
pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; U64_LEN] = bytes
        .try_into()
        .map_err(|_| Error::malformed_key("u64", format!("expected 8 bytes, got {}", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

/// Encodes `a | b` as 17 bytes (`a` BE, `|`, `b` BE).
#[inline]
pub fn encode_u64_pair(a: u64, b: u64) -> [u8; U64_PAIR_LEN] {
    let mut out = [0u8; U64_PAIR_LEN];
    out[..U64_LEN].copy_from_slice(&a.to_be_bytes());
    out[U64_LEN] = SEPARATOR;
    out[U64_LEN + 1..].copy_from_slice(&b.to_be_bytes());
    out
}

/// Decodes the 17-byte `a | b` layout.
pub fn decode_u64_pair(bytes: &[u8]) -> Result<(u64, u64)> {
    if bytes.len() != U64_PAIR_LEN {
        return Err(Error::malformed_key(
            "u64 pair",
            format!("expected {U64_PAIR_LEN} bytes, got {}", bytes.len()),
        ));
    }
    if bytes[U64_LEN] != SEPARATOR {
        return Err(Error::malformed_key(
            "u64 pair",
            format!("byte 8 is {:#04x}, expected the separator 0x7c", bytes[U64_LEN]),
        ));
    }
    Ok((decode_u64(&bytes[..U64_LEN])?, decode_u64(&bytes[U64_LEN + 1..])?))
}

/// Returns `base | value` with `value` as 8 BE bytes.
pub fn append_u64(base: &[u8], value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(base.len() + 1 + U64_LEN);
    out.extend_from_slice(base);
    out.push(SEPARATOR);
    out.extend_from_slice(&value.to_be_bytes());
    out
}

/// Encodes a window key: `prefix | start | end` (with an empty prefix the
/// leading separator is omitted, as for every prefixed key).
pub fn window_key(prefix: &[u8], start: u64, end: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1 + U64_PAIR_LEN);
    write_prefixed_key(&mut out, prefix, &encode_u64_pair(start, end));
    out
}

/// Splits a window key into `(prefix, start, end)`.
///
/// The prefix is everything before the last `| start | end` segment, so a
/// prefix may itself contain `|` bytes.
pub fn parse_window_key(key: &[u8]) -> Result<(&[u8], u64, u64)> {
    let (prefix, pair) = split_fixed_suffix(key, U64_PAIR_LEN, "window")?;
    let (start, end) = decode_u64_pair(pair).map_err(|e| Error::malformed_key("window", e.to_string()))?;
    Ok((prefix, start, end))
}

/// Whether `key`, found in a range scan under one prefix, belongs to that
/// prefix's `layout` of `want` bytes: a longer key belongs to another
/// (longer) prefix and is `Ok(false)`; a shorter one cannot be any prefix's
/// and is [`Error::MalformedKey`] (a truncated or foreign key).
pub fn in_layout(key: &[u8], want: usize, layout: &'static str) -> Result<bool> {
    match key.len().cmp(&want) {
        std::cmp::Ordering::Equal => Ok(true),
        std::cmp::Ordering::Greater => Ok(false),
        std::cmp::Ordering::Less => Err(Error::malformed_key(
            layout,
            format!("key of {} bytes where {want} were expected (truncated?)", key.len()),
        )),
    }
}

/// Encodes a timestamped key: `prefix | ts | counter`.
pub fn timestamped_key(prefix: &[u8], ts: u64, counter: u64) -> Vec<u8> {
    window_key(prefix, ts, counter)
}

/// Splits a timestamped key into `(prefix, ts, counter)`.
pub fn parse_timestamped_key(key: &[u8]) -> Result<(&[u8], u64, u64)> {
    let (prefix, pair) = split_fixed_suffix(key, U64_PAIR_LEN, "timestamped")?;
    let (ts, counter) = decode_u64_pair(pair).map_err(|e| Error::malformed_key("timestamped", e.to_string()))?;
    Ok((prefix, ts, counter))
}

/// Splits `prefix | suffix` where the suffix has a fixed length; a key that
/// is exactly the suffix has an empty prefix.
fn split_fixed_suffix<'a>(key: &'a [u8], suffix_len: usize, layout: &'static str) -> Result<(&'a [u8], &'a [u8])> {
    if key.len() == suffix_len {
        return Ok((&[], key));
    }
    if key.len() < suffix_len + 1 {
        return Err(Error::malformed_key(
            layout,
            format!("key is {} bytes, shorter than its {suffix_len}-byte suffix", key.len()),
        ));
    }
    let split = key.len() - suffix_len;
    if key[split - 1] != SEPARATOR {
        return Err(Error::malformed_key(
            layout,
            format!(
                "byte {} is {:#04x}, expected the separator 0x7c",
                split - 1,
                key[split - 1]
            ),
        ));
    }
    Ok((&key[..split - 1], &key[split..]))
}

/// The smallest key greater than every key that starts with `prefix`, or
/// `None` if there is none (the prefix is empty or all `0xFF`).
///
/// Use it as the exclusive upper bound of a prefix scan.
pub fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last != 0xFF {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefixed_key_layout() {
        assert_eq!(prefixed_key(b"user", b"\"count\""), b"user|\"count\"".to_vec());
        assert_eq!(prefixed_key(b"", b"k"), b"k".to_vec());
    }

    #[test]
    fn u64_is_big_endian() {
        assert_eq!(encode_u64(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(decode_u64(&encode_u64(u64::MAX)).unwrap(), u64::MAX);
        assert!(matches!(decode_u64(b"short"), Err(Error::MalformedKey { .. })));
    }

    #[test]
    fn window_key_layout_is_pinned() {
        let key = window_key(b"k", 1000, 2000);
        insta::assert_snapshot!(hex(&key), @"6b7c00000000000003e87c00000000000007d0");
        assert_eq!(parse_window_key(&key).unwrap(), (&b"k"[..], 1000, 2000));
        let bare = window_key(b"", 1, 2);
        assert_eq!(bare.len(), U64_PAIR_LEN);
        assert_eq!(parse_window_key(&bare).unwrap(), (&b""[..], 1, 2));
    }

    #[test]
    fn timestamped_key_layout_is_pinned() {
        let key = timestamped_key(b"user", 1_700_000_000_000, 3);
        insta::assert_snapshot!(hex(&key), @"757365727c0000018bcfe568007c0000000000000003");
        assert_eq!(
            parse_timestamped_key(&key).unwrap(),
            (&b"user"[..], 1_700_000_000_000, 3)
        );
        assert_eq!(hex(&append_u64(b"k", 258)), "6b7c0000000000000102");
    }

    #[test]
    fn truncated_window_keys_are_errors() {
        let key = window_key(b"k", 1, 2);
        for len in 0..key.len() {
            if len == U64_PAIR_LEN {
                continue; // a bare pair is a valid key with an empty prefix
            }
            assert!(parse_window_key(&key[..len]).is_err(), "len {len}");
        }
        let mut bad = key.clone();
        bad[1] = b'x';
        assert!(parse_window_key(&bad).is_err());
    }

    #[test]
    fn upper_bound() {
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_upper_bound(b"\xff\xff"), None);
        assert_eq!(prefix_upper_bound(b""), None);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    proptest! {
        #[test]
        fn window_keys_sort_by_start_then_end(
            p in proptest::collection::vec(any::<u8>(), 0..8),
            a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), d in any::<u64>()
        ) {
            let k1 = window_key(&p, a, b);
            let k2 = window_key(&p, c, d);
            prop_assert_eq!(k1.cmp(&k2), (a, b).cmp(&(c, d)));
            let (pp, s, e) = parse_window_key(&k1).unwrap();
            prop_assert_eq!((pp, s, e), (&p[..], a, b));
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_window_key(&bytes);
            let _ = parse_timestamped_key(&bytes);
            let _ = decode_u64_pair(&bytes);
            let _ = decode_u64(&bytes);
        }

        #[test]
        fn upper_bound_is_above_every_extension(
            p in proptest::collection::vec(any::<u8>(), 1..6),
            ext in proptest::collection::vec(any::<u8>(), 0..6)
        ) {
            let mut k = p.clone();
            k.extend_from_slice(&ext);
            if let Some(ub) = prefix_upper_bound(&p) {
                prop_assert!(k < ub);
                prop_assert!(p < ub);
            }
        }
    }
}
