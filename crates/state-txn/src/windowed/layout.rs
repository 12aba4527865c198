//! The windowed store's byte layout (see `docs/formats.md` and the
//! [module documentation](super)): the slot keys of the per-prefix
//! indexes, window keys `prefix | start | end`, and the checks and
//! conversions of the integers in them.

use std::cell::RefCell;

use state_core::mem::InlineBytes;
use state_core::{cf, keys};

use crate::error::{Result, TxnError};

pub(crate) const LATEST_TIMESTAMP_KEY: &[u8] = b"__latest_timestamp__";
pub(crate) const LATEST_EXPIRED_KEY: &[u8] = b"__expired_start_gt__";
pub(crate) const LATEST_DELETED_WINDOW_KEY: &[u8] = b"__deleted_start_gt__";
pub(crate) const LATEST_DELETED_VALUE_KEY: &[u8] = b"__value_deleted_start_gt__";
/// Key of the persistent counter in `__global-counter__` (windowed stores).
pub const GLOBAL_COUNTER_KEY: &[u8] = b"__global_counter__";

/// Bytes of the `| start | end` suffix of a window key after its prefix:
/// separator plus the u64 pair.
pub(crate) const WINDOW_SUFFIX_LEN: usize = 1 + keys::U64_PAIR_LEN;

/// The per-prefix "latest ..." indexes of a windowed store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Index {
    Timestamp,
    Expired,
    DeletedWindow,
    DeletedValue,
}

impl Index {
    pub(super) const COUNT: usize = 4;

    pub(super) fn slot(self) -> usize {
        self as usize
    }

    /// The column family and key suffix of the index's slot.
    pub(super) fn location(self) -> (&'static str, &'static [u8]) {
        match self {
            Index::Timestamp => (cf::LATEST_TIMESTAMPS, LATEST_TIMESTAMP_KEY),
            Index::Expired => (cf::EXPIRATION_INDEX, LATEST_EXPIRED_KEY),
            Index::DeletedWindow => (cf::DELETION_INDEX, LATEST_DELETED_WINDOW_KEY),
            Index::DeletedValue => (cf::VALUE_DELETION_INDEX, LATEST_DELETED_VALUE_KEY),
        }
    }
}

/// A window's bounds as stored: refuses a negative start and `end <= start`.
pub(super) fn check_window(start: i64, end: i64) -> Result<(u64, u64)> {
    if start < 0 {
        return Err(TxnError::NegativeTimestamp {
            what: "window start",
            value: start,
        });
    }
    if end <= start {
        return Err(TxnError::InvalidWindow { start, end });
    }
    Ok((start as u64, end as u64))
}

/// The exclusive lower start bound of a scan resuming after a recorded
/// index value (quixstreams: `max(-1, recorded)`): `None` scans from 0,
/// `Some(s)` from `s + 1`.
pub(super) fn exclusive_start(recorded: Option<i64>) -> Option<u64> {
    recorded.and_then(|v| u64::try_from(v).ok())
}

/// A stored time (a window bound, a collection id) as `i64` milliseconds;
/// one above `i64::MAX`, which no writer of this library or quixstreams
/// makes from a Kafka timestamp, is
/// [`crate::TxnError::StoredTimestampOutOfRange`].
pub(crate) fn stored_millis(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| TxnError::StoredTimestampOutOfRange { what, value })
}

/// `value` as a stored integer; a negative one is refused as `what`.
pub(super) fn non_negative(what: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| TxnError::NegativeTimestamp { what, value })
}

/// `prefix | u64(n)`: the bound of a range of keys under `prefix` whose
/// first integer is `n`.
pub(super) fn bound(prefix: &[u8], n: u64) -> Vec<u8> {
    keys::prefixed_key(prefix, &keys::encode_u64(n))
}

/// A window's start, end and stored value bytes.
pub(super) type RawWindow = (u64, u64, RawValue);

/// Values up to this long are copied inside a [`RawValue`]: the window
/// aggregates the index and the change set hand back for every closing
/// window (ten per hopping record) cost no allocation then.
const SHORT_VALUE: usize = 38;

/// A window's stored value bytes, inline when short.
#[derive(Debug)]
pub(super) enum RawValue {
    /// A copy of a short value.
    Short(InlineBytes<SHORT_VALUE>),
    /// A longer value, or one a read returned already owned.
    Owned(Vec<u8>),
}

impl RawValue {
    /// A copy of `bytes`.
    pub(super) fn copy(bytes: &[u8]) -> Self {
        if bytes.len() <= SHORT_VALUE {
            RawValue::Short(InlineBytes::new(bytes))
        } else {
            RawValue::Owned(bytes.to_vec())
        }
    }
}

impl std::ops::Deref for RawValue {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            RawValue::Short(b) => b,
            RawValue::Owned(v) => v,
        }
    }
}

/// The length of a window key under `prefix`.
pub(super) fn window_key_len(prefix: &[u8]) -> usize {
    prefix.len() + usize::from(!prefix.is_empty()) + keys::U64_PAIR_LEN
}

thread_local! {
    static WINDOW_KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static SLOT_KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the slot key `prefix | suffix` built in a reused buffer
/// (reads of index slots take `&self`, so they cannot use the
/// transaction's own buffers).
pub(super) fn with_slot_key<T>(prefix: &[u8], suffix: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    SLOT_KEY.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            keys::write_prefixed_key(&mut buf, prefix, suffix);
            f(&buf)
        }
        // Re-entered (a backend reading through a transaction).
        Err(_) => f(&keys::prefixed_key(prefix, suffix)),
    })
}

/// Runs `f` on `prefix | start | end` built in a reused buffer.
pub(super) fn with_window_key<T>(prefix: &[u8], start: u64, end: u64, f: impl FnOnce(&[u8]) -> T) -> T {
    WINDOW_KEY.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            keys::write_prefixed_key(&mut buf, prefix, &keys::encode_u64_pair(start, end));
            f(&buf)
        }
        // Re-entered (a backend reading through a transaction).
        Err(_) => f(&keys::window_key(prefix, start, end)),
    })
}

/// A window key split into prefix, start and end; `Err` for a key of the
/// layout's shape whose pair is malformed.
pub(super) type SplitKey<'a> = std::result::Result<(&'a [u8], u64, u64), ()>;

/// The prefix and `(start, end)` of a key in the window layout, if it is
/// one.
pub(super) fn split_window_key(key: &[u8]) -> Option<SplitKey<'_>> {
    let (prefix, pair) = if key.len() == keys::U64_PAIR_LEN {
        (&key[..0], key)
    } else if key.len() > WINDOW_SUFFIX_LEN && key[key.len() - WINDOW_SUFFIX_LEN] == keys::SEPARATOR {
        let split = key.len() - keys::U64_PAIR_LEN;
        (&key[..split - 1], &key[split..])
    } else {
        return None;
    };
    Some(keys::decode_u64_pair(pair).map(|(s, e)| (prefix, s, e)).map_err(|_| ()))
}

/// The prefix of `prefix | suffix` (the bare suffix for the empty prefix).
pub(super) fn split_slot_key<'a>(key: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    if key == suffix {
        return Some(&key[..0]);
    }
    let rest = key.strip_suffix(suffix)?;
    let prefix = rest.strip_suffix(&[keys::SEPARATOR])?;
    (!prefix.is_empty()).then_some(prefix)
}

/// The prefix a malformed window-shaped key would belong to.
pub(super) fn key_prefix_guess(key: &[u8]) -> &[u8] {
    if key.len() > WINDOW_SUFFIX_LEN {
        &key[..key.len() - WINDOW_SUFFIX_LEN]
    } else {
        &key[..0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_prefix_and_window() {
        let k = keys::window_key(b"user", 10, 20);
        assert_eq!(split_window_key(&k), Some(Ok((&b"user"[..], 10, 20))));
        let bare = keys::window_key(b"", 1, 2);
        assert_eq!(split_window_key(&bare), Some(Ok((&b""[..], 1, 2))));
        let nested = keys::window_key(b"a|b", 1, 2);
        assert_eq!(split_window_key(&nested), Some(Ok((&b"a|b"[..], 1, 2))));
        assert_eq!(split_window_key(b"short"), None);
        let mut bad = k.clone();
        let n = bad.len();
        bad[n - 9] = b'x';
        assert_eq!(split_window_key(&bad), Some(Err(())));
        assert_eq!(
            split_slot_key(LATEST_TIMESTAMP_KEY, LATEST_TIMESTAMP_KEY),
            Some(&b""[..])
        );
        assert_eq!(
            split_slot_key(&keys::prefixed_key(b"k", LATEST_TIMESTAMP_KEY), LATEST_TIMESTAMP_KEY),
            Some(&b"k"[..])
        );
        assert_eq!(split_slot_key(b"|__latest_timestamp__", LATEST_TIMESTAMP_KEY), None);
        assert_eq!(split_slot_key(b"k__latest_timestamp__", LATEST_TIMESTAMP_KEY), None);
    }
}
