//! Value codecs: how typed values (and typed keys) become bytes.
//!
//! * [`Codec::MsgPack`] — MessagePack with named struct fields (the default).
//! * [`Codec::Json`] — compact JSON whose bytes equal quixstreams' (orjson)
//!   output for the same values, including float formatting.
//! * [`Codec::Raw`] — bytes stored as they are; typed use is limited to
//!   values that serialize as bytes, strings or sequences of `u8`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod json;
mod raw;

/// How a store turns values (and non-bytes keys) into bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// MessagePack via `rmp-serde`, structs as maps.
    #[default]
    MsgPack,
    /// JSON byte-compatible with quixstreams' default serializer.
    Json,
    /// Raw bytes, no encoding.
    Raw,
}

impl Codec {
    /// The codec's short name, as used in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Codec::MsgPack => "msgpack",
            Codec::Json => "json",
            Codec::Raw => "raw",
        }
    }

    /// Parses a name produced by [`Codec::name`].
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "msgpack" => Some(Codec::MsgPack),
            "json" => Some(Codec::Json),
            "raw" => Some(Codec::Raw),
            _ => None,
        }
    }

    /// Encodes `value`, appending its bytes to `out`. On error `out` may hold
    /// a partial encoding past its original length; callers truncate.
    pub fn encode_into<T: Serialize + ?Sized>(self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let res = match self {
            Codec::MsgPack => value
                .serialize(&mut rmp_serde::Serializer::new(&mut *out).with_struct_map())
                .map_err(|e| e.to_string()),
            Codec::Json => json::to_writer(&mut *out, value).map_err(|e| e.to_string()),
            Codec::Raw => raw::encode_into(value, out),
        };
        res.map_err(|reason| {
            out.truncate(start);
            Error::Encode {
                codec: self.name(),
                reason,
            }
        })
    }

    /// Encodes `value` into a new buffer.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Decodes `bytes` into a `T`. Never panics on malformed input.
    ///
    /// The whole input must be one value: trailing bytes are an error under
    /// every codec (rmp-serde alone would ignore them, so a value with eight
    /// extra leading bytes, such as a quixstreams TTL stamp, would decode to a
    /// wrong number instead of failing).
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        let res = match self {
            Codec::MsgPack => decode_msgpack_exact(bytes),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Raw => raw::decode(bytes),
        };
        res.map_err(|reason| Error::Decode {
            codec: self.name(),
            len: bytes.len(),
            reason,
        })
    }

    /// Decodes `bytes` into a JSON value for display (used by tooling such as
    /// `statectl dump`). Raw bytes decode to a string when they are UTF-8.
    pub fn decode_to_json(self, bytes: &[u8]) -> Result<serde_json::Value> {
        match self {
            Codec::Raw => Ok(match std::str::from_utf8(bytes) {
                Ok(s) => serde_json::Value::String(s.to_owned()),
                Err(_) => serde_json::Value::Array(bytes.iter().map(|b| (*b).into()).collect()),
            }),
            _ => self.decode(bytes),
        }
    }
}

/// Decodes one MessagePack value that must span all of `bytes`.
fn decode_msgpack_exact<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    let value = T::deserialize(&mut de).map_err(|e| e.to_string())?;
    // Reading a second value from the rest must fail at its very first
    // byte because there is none; anything else means trailing bytes.
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Ok(value)
        }
        _ => Err("trailing bytes after the MessagePack value".to_owned()),
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Visit {
        page: String,
        count: u64,
        ratio: f64,
    }

    #[test]
    fn every_codec_round_trips_bytes_and_strings() {
        for codec in [Codec::MsgPack, Codec::Json, Codec::Raw] {
            let s = codec.encode("héllo").unwrap();
            assert_eq!(codec.decode::<String>(&s).unwrap(), "héllo", "{codec}");
        }
    }

    #[test]
    fn structs_round_trip() {
        let v = Visit {
            page: "/a".into(),
            count: 3,
            ratio: 0.5,
        };
        for codec in [Codec::MsgPack, Codec::Json] {
            let b = codec.encode(&v).unwrap();
            assert_eq!(codec.decode::<Visit>(&b).unwrap(), v);
        }
    }

    #[test]
    fn json_matches_orjson_bytes() {
        // Expected bytes produced by orjson 3.13 (quixstreams' serializer).
        let cases: &[(serde_json::Value, &str)] = &[
            (serde_json::json!(1.0), "1.0"),
            (serde_json::json!(0.1), "0.1"),
            (serde_json::json!(1e20), "1e+20"),
            (serde_json::json!(1e16), "1e+16"),
            (serde_json::json!(1.5e-7), "1.5e-7"),
            (serde_json::json!(1e-5), "0.00001"),
            (serde_json::json!(1.2345e-5), "0.000012345"),
            (serde_json::json!(1e-6), "1e-6"),
            (serde_json::json!(9999999999999998.0), "9999999999999998.0"),
            (serde_json::json!(1e15), "1000000000000000.0"),
            (serde_json::json!(-0.0), "-0.0"),
            (serde_json::json!(5e-324), "5e-324"),
            (serde_json::json!(1.7976931348623157e308), "1.7976931348623157e+308"),
            (serde_json::json!(0.30000000000000004), "0.30000000000000004"),
            (serde_json::json!([1, "é", null, true]), "[1,\"é\",null,true]"),
            (serde_json::json!({"a": 1, "b": [1.5]}), "{\"a\":1,\"b\":[1.5]}"),
            (
                serde_json::json!("a\"b\\\n\u{1}\u{2028}"),
                "\"a\\\"b\\\\\\n\\u0001\u{2028}\"",
            ),
            (
                serde_json::json!("\u{8}\u{c}\t\r\u{1f}\u{7f}/<>&"),
                "\"\\b\\f\\t\\r\\u001f\u{7f}/<>&\"",
            ),
        ];
        for (value, expected) in cases {
            let got = Codec::Json.encode(value).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), *expected, "value {value}");
        }
        assert_eq!(Codec::Json.encode(&f64::NAN).unwrap(), b"null");
        assert_eq!(Codec::Json.encode(&f64::INFINITY).unwrap(), b"null");
    }

    #[test]
    fn raw_codec_refuses_structured_values() {
        let err = Codec::Raw.encode(&42u32).unwrap_err();
        assert!(matches!(err, Error::Encode { codec: "raw", .. }), "{err}");
        assert_eq!(Codec::Raw.encode(&vec![1u8, 2, 3]).unwrap(), vec![1, 2, 3]);
        assert_eq!(Codec::Raw.decode::<Vec<u8>>(&[1, 2]).unwrap(), vec![1, 2]);
        assert!(Codec::Raw.decode::<String>(&[0xff]).is_err());
    }

    #[test]
    fn trailing_bytes_are_an_error_under_every_codec() {
        // A quixstreams TTL stamp in front of JSON `7` must not read as 0.
        let stamped = [0, 0, 1, 0x8b, 0xcf, 0xe6, 0x56, 0x48, b'7'];
        assert!(Codec::MsgPack.decode::<u64>(&stamped).is_err());
        assert!(Codec::Json.decode::<u64>(&stamped).is_err());
        assert!(Codec::MsgPack.decode::<u64>(&[0x07, 0x07]).is_err());
        assert_eq!(Codec::MsgPack.decode::<u64>(&[0x07]).unwrap(), 7);
        assert!(Codec::Json.decode::<u64>(b"7 x").is_err());
        let v = Codec::MsgPack.encode(&vec!["a", "b"]).unwrap();
        assert_eq!(Codec::MsgPack.decode::<Vec<String>>(&v).unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn decode_errors_name_the_codec() {
        let err = Codec::MsgPack.decode::<Visit>(&[0xc1]).unwrap_err();
        assert!(err.to_string().contains("msgpack"), "{err}");
        let err = Codec::Json.decode::<u64>(b"{").unwrap_err();
        assert!(matches!(
            err,
            Error::Decode {
                codec: "json",
                len: 1,
                ..
            }
        ));
    }

    #[test]
    fn failed_encode_leaves_buffer_unchanged() {
        let mut buf = b"keep".to_vec();
        assert!(Codec::Raw.encode_into(&1u8, &mut buf).is_err());
        assert_eq!(buf, b"keep");
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            for codec in [Codec::MsgPack, Codec::Json, Codec::Raw] {
                let _ = codec.decode::<serde_json::Value>(&bytes);
                let _ = codec.decode::<Visit>(&bytes);
                let _ = codec.decode::<u64>(&bytes);
            }
        }

        #[test]
        fn json_floats_parse_back_exactly(f in proptest::prelude::any::<f64>()) {
            proptest::prop_assume!(f.is_finite());
            let bytes = Codec::Json.encode(&f).unwrap();
            let back: f64 = Codec::Json.decode(&bytes).unwrap();
            proptest::prop_assert_eq!(back.to_bits(), f.to_bits());
        }
    }
}
