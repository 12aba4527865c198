//! The integers stored in the windowed indexes (`__latest-timestamps__`,
//! `__expiration-index__`, ...): any value in `[-2^63, 2^64 - 1]`, the
//! integers quixstreams' JSON serializer (orjson) accepts. Session windows
//! store `-1` ("before everything") and `2^64 - 1` ("no open session").
//!
//! The API speaks `i64` milliseconds; [`IndexValue::millis`] and
//! [`IndexValue::from_millis`] are the one place where the two ranges meet
//! (`docs/formats.md`, "Timestamps in the API"): stored values above
//! `i64::MAX` read as `i64::MAX`, and `i64::MAX` is stored as `2^64 - 1`.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Result, TxnError};

/// Smallest storable index value.
pub(crate) const MIN: i128 = i64::MIN as i128;
/// Largest storable index value.
pub(crate) const MAX: i128 = u64::MAX as i128;

/// One stored index value. Encodes non-negative values as `u64` and
/// negative ones as `i64`, so JSON bytes equal orjson's and MessagePack
/// bytes equal what earlier versions (which stored `u64`) wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexValue(pub(crate) i128);

impl IndexValue {
    /// `value`, if it is storable.
    pub(crate) fn new(value: i128) -> Result<Self> {
        if (MIN..=MAX).contains(&value) {
            Ok(IndexValue(value))
        } else {
            Err(TxnError::IndexValueOutOfRange {
                what: "index value",
                value,
            })
        }
    }
}

impl IndexValue {
    /// The stored value as event-time milliseconds: values above
    /// `i64::MAX` (quixstreams' `2^64 - 1`, "no open session") read as
    /// `i64::MAX`, a time no watermark reaches. Nothing is lost for what
    /// either library writes: every other stored value is a Kafka timestamp
    /// or a window start, far below `2^63`.
    pub(crate) fn millis(self) -> i64 {
        i64::try_from(self.0).unwrap_or(if self.0 < 0 { i64::MIN } else { i64::MAX })
    }

    /// The value stored for `millis`: itself, except `i64::MAX`, which is
    /// stored as `2^64 - 1` so a checkpoint no watermark reaches has
    /// quixstreams' bytes.
    pub(crate) fn from_millis(millis: i64) -> Self {
        if millis == i64::MAX {
            IndexValue(MAX)
        } else {
            IndexValue(i128::from(millis))
        }
    }
}

impl Serialize for IndexValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match u64::try_from(self.0) {
            Ok(v) => s.serialize_u64(v),
            Err(_) => match i64::try_from(self.0) {
                Ok(v) => s.serialize_i64(v),
                Err(_) => Err(serde::ser::Error::custom(format!(
                    "index value {} outside [-2^63, 2^64-1]",
                    self.0
                ))),
            },
        }
    }
}

struct IndexVisitor;

impl Visitor<'_> for IndexVisitor {
    type Value = IndexValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer in [-2^63, 2^64-1]")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<IndexValue, E> {
        Ok(IndexValue(i128::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<IndexValue, E> {
        Ok(IndexValue(i128::from(v)))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<IndexValue, E> {
        i128::try_from(v)
            .ok()
            .filter(|v| *v <= MAX)
            .map(IndexValue)
            .ok_or_else(|| E::custom(format!("index value {v} above 2^64-1")))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<IndexValue, E> {
        IndexValue::new(v).map_err(|e| E::custom(e.to_string()))
    }
}

impl<'de> Deserialize<'de> for IndexValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<IndexValue, D::Error> {
        d.deserialize_any(IndexVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state_core::Codec;

    #[test]
    fn quixstreams_session_values_round_trip_with_its_bytes() {
        for (v, json) in [
            (-1i128, "-1"),
            (0, "0"),
            (126, "126"),
            (MAX, "18446744073709551615"),
            (MIN, "-9223372036854775808"),
        ] {
            let bytes = Codec::Json.encode(&IndexValue::new(v).unwrap()).unwrap();
            assert_eq!(String::from_utf8(bytes.clone()).unwrap(), json);
            assert_eq!(Codec::Json.decode::<IndexValue>(&bytes).unwrap().0, v);
            let mp = Codec::MsgPack.encode(&IndexValue(v)).unwrap();
            assert_eq!(Codec::MsgPack.decode::<IndexValue>(&mp).unwrap().0, v);
        }
        assert_eq!(
            Codec::MsgPack.encode(&IndexValue(7)).unwrap(),
            Codec::MsgPack.encode(&7u64).unwrap(),
            "non-negative values keep the bytes of earlier u64 indexes"
        );
        assert!(IndexValue::new(MAX + 1).is_err());
        assert!(IndexValue::new(MIN - 1).is_err());
        assert!(Codec::Json.decode::<IndexValue>(b"18446744073709551616").is_err());
        assert!(Codec::Json.decode::<IndexValue>(b"1.5").is_err());
    }

    #[test]
    fn millis_map_the_top_of_the_stored_range_to_i64_max() {
        let json = |m: i64| String::from_utf8(Codec::Json.encode(&IndexValue::from_millis(m)).unwrap()).unwrap();
        assert_eq!(
            json(i64::MAX),
            "18446744073709551615",
            "quixstreams' no-open-sessions bytes"
        );
        assert_eq!(json(-1), "-1");
        assert_eq!(json(i64::MIN), "-9223372036854775808");
        assert_eq!(json(1_700_000_000_000), "1700000000000");
        assert_eq!(IndexValue(MAX).millis(), i64::MAX);
        assert_eq!(IndexValue(i128::from(i64::MAX) + 1).millis(), i64::MAX);
        assert_eq!(IndexValue(-1).millis(), -1);
        assert_eq!(IndexValue(MIN).millis(), i64::MIN);
        for m in [i64::MIN, -1, 0, 126, i64::MAX - 1, i64::MAX] {
            assert_eq!(IndexValue::from_millis(m).millis(), m, "{m} round-trips");
        }
    }
}
