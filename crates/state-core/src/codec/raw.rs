//! The raw codec: values are their own bytes. Typed use works for values that
//! serialize as bytes, strings or sequences of `u8` (`Vec<u8>`, `String`,
//! `&[u8]`, `serde_bytes` types); anything else is refused, not guessed.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};

pub(super) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    value.serialize(RawSerializer { out }).map_err(|e| e.0)
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    T::deserialize(RawDeserializer { bytes }).map_err(|e| e.0)
}

#[derive(Debug)]
struct RawError(String);

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for RawError {}
impl ser::Error for RawError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}
impl de::Error for RawError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

fn unsupported(what: &str) -> RawError {
    RawError(format!(
        "the raw codec stores bytes or strings only, got {what}; use the msgpack or json codec"
    ))
}

struct RawSerializer<'a> {
    out: &'a mut Vec<u8>,
}

macro_rules! refuse {
    ($($name:ident: $ty:ty),*) => {$(
        fn $name(self, _v: $ty) -> Result<(), RawError> { Err(unsupported(stringify!($ty))) }
    )*};
}

impl<'a> ser::Serializer for RawSerializer<'a> {
    type Ok = ();
    type Error = RawError;
    type SerializeSeq = ByteSeq<'a>;
    type SerializeTuple = Impossible<(), RawError>;
    type SerializeTupleStruct = Impossible<(), RawError>;
    type SerializeTupleVariant = Impossible<(), RawError>;
    type SerializeMap = Impossible<(), RawError>;
    type SerializeStruct = Impossible<(), RawError>;
    type SerializeStructVariant = Impossible<(), RawError>;

    fn serialize_bytes(self, v: &[u8]) -> Result<(), RawError> {
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), RawError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<ByteSeq<'a>, RawError> {
        Ok(ByteSeq { out: self.out })
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _n: &'static str, v: &T) -> Result<(), RawError> {
        v.serialize(self)
    }
    refuse!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char);
    fn serialize_none(self) -> Result<(), RawError> {
        Err(unsupported("None"))
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _v: &T) -> Result<(), RawError> {
        Err(unsupported("an Option"))
    }
    fn serialize_unit(self) -> Result<(), RawError> {
        Err(unsupported("()"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), RawError> {
        Err(unsupported(name))
    }
    fn serialize_unit_variant(self, name: &'static str, _i: u32, _v: &'static str) -> Result<(), RawError> {
        Err(unsupported(name))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        _i: u32,
        _v: &'static str,
        _value: &T,
    ) -> Result<(), RawError> {
        Err(unsupported(name))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, RawError> {
        Err(unsupported("a tuple"))
    }
    fn serialize_tuple_struct(self, name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct, RawError> {
        Err(unsupported(name))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, RawError> {
        Err(unsupported(name))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, RawError> {
        Err(unsupported("a map"))
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Self::SerializeStruct, RawError> {
        Err(unsupported(name))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, RawError> {
        Err(unsupported(name))
    }
}

/// A sequence is accepted only if every element is a `u8` (`Vec<u8>`).
struct ByteSeq<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::SerializeSeq for ByteSeq<'_> {
    type Ok = ();
    type Error = RawError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), RawError> {
        let byte = value.serialize(ByteOnly)?;
        self.out.push(byte);
        Ok(())
    }
    fn end(self) -> Result<(), RawError> {
        Ok(())
    }
}

struct ByteOnly;

impl ser::Serializer for ByteOnly {
    type Ok = u8;
    type Error = RawError;
    type SerializeSeq = Impossible<u8, RawError>;
    type SerializeTuple = Impossible<u8, RawError>;
    type SerializeTupleStruct = Impossible<u8, RawError>;
    type SerializeTupleVariant = Impossible<u8, RawError>;
    type SerializeMap = Impossible<u8, RawError>;
    type SerializeStruct = Impossible<u8, RawError>;
    type SerializeStructVariant = Impossible<u8, RawError>;

    fn serialize_u8(self, v: u8) -> Result<u8, RawError> {
        Ok(v)
    }
    fn serialize_bool(self, _: bool) -> Result<u8, RawError> {
        Err(unsupported("a sequence of bool"))
    }
    fn serialize_i8(self, _: i8) -> Result<u8, RawError> {
        Err(unsupported("a sequence of i8"))
    }
    fn serialize_i16(self, _: i16) -> Result<u8, RawError> {
        Err(unsupported("a sequence of i16"))
    }
    fn serialize_i32(self, _: i32) -> Result<u8, RawError> {
        Err(unsupported("a sequence of i32"))
    }
    fn serialize_i64(self, _: i64) -> Result<u8, RawError> {
        Err(unsupported("a sequence of i64"))
    }
    fn serialize_u16(self, _: u16) -> Result<u8, RawError> {
        Err(unsupported("a sequence of u16"))
    }
    fn serialize_u32(self, _: u32) -> Result<u8, RawError> {
        Err(unsupported("a sequence of u32"))
    }
    fn serialize_u64(self, _: u64) -> Result<u8, RawError> {
        Err(unsupported("a sequence of u64"))
    }
    fn serialize_f32(self, _: f32) -> Result<u8, RawError> {
        Err(unsupported("a sequence of f32"))
    }
    fn serialize_f64(self, _: f64) -> Result<u8, RawError> {
        Err(unsupported("a sequence of f64"))
    }
    fn serialize_char(self, _: char) -> Result<u8, RawError> {
        Err(unsupported("a sequence of char"))
    }
    fn serialize_str(self, _: &str) -> Result<u8, RawError> {
        Err(unsupported("a sequence of strings"))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<u8, RawError> {
        Err(unsupported("nested bytes"))
    }
    fn serialize_none(self) -> Result<u8, RawError> {
        Err(unsupported("None"))
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<u8, RawError> {
        Err(unsupported("an Option"))
    }
    fn serialize_unit(self) -> Result<u8, RawError> {
        Err(unsupported("()"))
    }
    fn serialize_unit_struct(self, n: &'static str) -> Result<u8, RawError> {
        Err(unsupported(n))
    }
    fn serialize_unit_variant(self, n: &'static str, _: u32, _: &'static str) -> Result<u8, RawError> {
        Err(unsupported(n))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Result<u8, RawError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        n: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, RawError> {
        Err(unsupported(n))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, RawError> {
        Err(unsupported("nested sequences"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
        Err(unsupported("a tuple"))
    }
    fn serialize_tuple_struct(self, n: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, RawError> {
        Err(unsupported(n))
    }
    fn serialize_tuple_variant(
        self,
        n: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, RawError> {
        Err(unsupported(n))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
        Err(unsupported("a map"))
    }
    fn serialize_struct(self, n: &'static str, _: usize) -> Result<Self::SerializeStruct, RawError> {
        Err(unsupported(n))
    }
    fn serialize_struct_variant(
        self,
        n: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, RawError> {
        Err(unsupported(n))
    }
}

/// Offers the stored bytes as bytes, as a string (if UTF-8) or as a sequence
/// of `u8`, whichever the target type asks for.
struct RawDeserializer<'a> {
    bytes: &'a [u8],
}

impl<'de> de::Deserializer<'de> for RawDeserializer<'_> {
    type Error = RawError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_bytes(self.bytes)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        match std::str::from_utf8(self.bytes) {
            Ok(s) => visitor.visit_str(s),
            Err(e) => Err(RawError(format!("stored bytes are not UTF-8: {e}"))),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_seq(de::value::SeqDeserializer::<_, RawError>::new(
            self.bytes.iter().copied(),
        ))
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, RawError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option
        unit unit_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}
