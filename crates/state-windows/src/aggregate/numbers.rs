//! The numbers [`Sum`](super::Sum) and [`Mean`](super::Mean) accept, and
//! how a sum is stored so its bytes match quixstreams'.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A number [`Sum`](super::Sum) adds up.
///
/// Integers sum in their own type (saturating at its bounds; Python's
/// integers do not overflow) and are stored as JSON integers, as
/// quixstreams stores sums of integers. Floats sum as `f64` in a
/// [`FloatSum`], stored as quixstreams stores them.
pub trait SumValue: Copy {
    /// The stored running sum.
    type Sum: Serialize + serde::de::DeserializeOwned + Clone + fmt::Debug;

    /// The sum of nothing.
    fn zero() -> Self::Sum;

    /// Adds `value` to `sum`.
    fn add(sum: &mut Self::Sum, value: Self);

    /// The sum of two sums.
    fn merge(a: Self::Sum, b: Self::Sum) -> Self::Sum;

    /// The sum as a value of this type.
    fn total(sum: &Self::Sum) -> Self;
}

macro_rules! int_sum {
    ($($t:ty),*) => {$(
        impl SumValue for $t {
            type Sum = $t;

            fn zero() -> $t {
                0
            }

            fn add(sum: &mut $t, value: $t) {
                *sum = sum.saturating_add(value);
            }

            fn merge(a: $t, b: $t) -> $t {
                a.saturating_add(b)
            }

            fn total(sum: &$t) -> $t {
                *sum
            }
        }
    )*};
}

int_sum!(i8, i16, i32, i64, u8, u16, u32, u64);

/// A running sum of floats, stored as quixstreams stores it: the integer
/// `0` until something is added (quixstreams' `Sum` starts from the int
/// `0`, and Python's `0 + 4.5` is the float `4.5`), a float afterwards.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum FloatSum {
    /// Nothing added yet: stored as `0`.
    #[default]
    Zero,
    /// The sum: stored as a float (`15.0`, `4.5`).
    Float(f64),
}

impl FloatSum {
    /// The sum as an `f64`.
    pub fn value(self) -> f64 {
        match self {
            FloatSum::Zero => 0.0,
            FloatSum::Float(f) => f,
        }
    }
}

impl Serialize for FloatSum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FloatSum::Zero => s.serialize_i64(0),
            FloatSum::Float(f) => s.serialize_f64(*f),
        }
    }
}

impl<'de> Deserialize<'de> for FloatSum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FloatSum;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FloatSum, E> {
                Ok(if v == 0 {
                    FloatSum::Zero
                } else {
                    FloatSum::Float(v as f64)
                })
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FloatSum, E> {
                Ok(if v == 0 {
                    FloatSum::Zero
                } else {
                    FloatSum::Float(v as f64)
                })
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FloatSum, E> {
                Ok(FloatSum::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn add_float(sum: &mut FloatSum, value: f64) {
    *sum = FloatSum::Float(sum.value() + value);
}

fn merge_float(a: FloatSum, b: FloatSum) -> FloatSum {
    match (a, b) {
        (FloatSum::Zero, FloatSum::Zero) => FloatSum::Zero,
        (a, b) => FloatSum::Float(a.value() + b.value()),
    }
}

impl SumValue for f64 {
    type Sum = FloatSum;

    fn zero() -> FloatSum {
        FloatSum::Zero
    }

    fn add(sum: &mut FloatSum, value: f64) {
        add_float(sum, value);
    }

    fn merge(a: FloatSum, b: FloatSum) -> FloatSum {
        merge_float(a, b)
    }

    fn total(sum: &FloatSum) -> f64 {
        sum.value()
    }
}

impl SumValue for f32 {
    type Sum = FloatSum;

    fn zero() -> FloatSum {
        FloatSum::Zero
    }

    fn add(sum: &mut FloatSum, value: f32) {
        add_float(sum, f64::from(value));
    }

    fn merge(a: FloatSum, b: FloatSum) -> FloatSum {
        merge_float(a, b)
    }

    fn total(sum: &FloatSum) -> f32 {
        sum.value() as f32
    }
}

/// A number that is an integer or a float, as a JSON or Python number:
/// for records whose numbers are not all of one type (JSON input). It adds
/// up as Python does (integers stay integers, a float makes a float) and
/// is stored as it is, so its sums have quixstreams' bytes whatever the
/// mix. Integers saturate at the bounds of `i64`.
///
/// ```
/// use state_windows::aggregate::{Number, SumValue};
/// let mut sum = Number::zero();
/// Number::add(&mut sum, Number::Int(2));
/// assert_eq!(sum, Number::Int(2));
/// Number::add(&mut sum, Number::Float(0.5));
/// assert_eq!(sum, Number::Float(2.5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Number {
    /// The number as an `f64`.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.partial_cmp(b),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Number::Int(i) => s.serialize_i64(*i),
            Number::Float(f) => s.serialize_f64(*f),
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                i64::try_from(v)
                    .map(Number::Int)
                    .map_err(|_| E::custom(format!("integer {v} is out of range for an i64")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl SumValue for Number {
    type Sum = Number;

    fn zero() -> Number {
        Number::Int(0)
    }

    fn add(sum: &mut Number, value: Number) {
        *sum = match (*sum, value) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a.saturating_add(b)),
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        };
    }

    fn merge(mut a: Number, b: Number) -> Number {
        Number::add(&mut a, b);
        a
    }

    fn total(sum: &Number) -> Number {
        *sum
    }
}

impl MeanValue for Number {
    fn to_f64(self) -> f64 {
        self.as_f64()
    }
}

/// A number [`Mean`](super::Mean) averages: added up as `f64`, as
/// quixstreams' `Mean` (whose sum starts from the float `0.0`).
pub trait MeanValue: Copy {
    /// The value as an `f64`.
    fn to_f64(self) -> f64;
}

macro_rules! mean_value {
    ($($t:ty),*) => {$(
        impl MeanValue for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}

mean_value!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

#[cfg(test)]
mod tests {
    use super::*;
    use state_core::Codec;

    #[test]
    fn float_sums_keep_quixstreams_int_zero() {
        let json = |s: &FloatSum| String::from_utf8(Codec::Json.encode(s).unwrap()).unwrap();
        let mut s = f64::zero();
        assert_eq!(json(&s), "0");
        f64::add(&mut s, 4.5);
        assert_eq!(json(&s), "4.5");
        f64::add(&mut s, 10.5);
        assert_eq!(json(&s), "15.0");
        assert_eq!(Codec::Json.decode::<FloatSum>(b"0").unwrap(), FloatSum::Zero);
        assert_eq!(Codec::Json.decode::<FloatSum>(b"3").unwrap(), FloatSum::Float(3.0));
        assert_eq!(Codec::Json.decode::<FloatSum>(b"0.0").unwrap(), FloatSum::Float(0.0));
        let m = Codec::MsgPack.encode(&FloatSum::Float(2.5)).unwrap();
        assert_eq!(Codec::MsgPack.decode::<FloatSum>(&m).unwrap(), FloatSum::Float(2.5));
    }

    #[test]
    fn integer_sums_saturate() {
        let mut s = i8::zero();
        i8::add(&mut s, 100);
        i8::add(&mut s, 100);
        assert_eq!(s, i8::MAX);
    }
}
