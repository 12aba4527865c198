//! JSON whose bytes match orjson's: compact separators, UTF-8 output, and
//! orjson's float notation (decimal for exponents -5..=15, otherwise
//! `d.ddde±x`), which differs from serde_json's default (`1e20`, `1e-5`).

use std::io;

use serde::Serialize;

pub(super) fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, OrjsonFormatter);
    value.serialize(&mut ser)
}

struct OrjsonFormatter;

impl serde_json::ser::Formatter for OrjsonFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut buf = [0u8; 40];
        let len = format_f64(value, &mut buf);
        writer.write_all(&buf[..len])
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // Python has only double floats; an f32 is widened as Python would.
        self.write_f64(writer, f64::from(value))
    }
}

/// Writes a finite `value` in orjson's notation into `out`, returning the
/// length. (Non-finite values never get here: serde_json writes `null`.)
fn format_f64(value: f64, out: &mut [u8; 40]) -> usize {
    let mut ryu_buf = ryu::Buffer::new();
    let shortest = ryu_buf.format_finite(value);
    let (negative, digits, exp) = decompose(shortest);
    // `exp` is the power of ten of the first digit: value = d.ddd × 10^exp.
    let mut w = Writer { out, len: 0 };
    if negative {
        w.push(b'-');
    }
    let n = digits.len() as i32;
    if (-5..=15).contains(&exp) {
        if exp < 0 {
            w.extend(b"0.");
            for _ in 0..(-exp - 1) {
                w.push(b'0');
            }
            w.extend(&digits);
        } else if exp + 1 >= n {
            w.extend(&digits);
            for _ in 0..(exp + 1 - n) {
                w.push(b'0');
            }
            w.extend(b".0");
        } else {
            let int_len = (exp + 1) as usize;
            w.extend(&digits[..int_len]);
            w.push(b'.');
            w.extend(&digits[int_len..]);
        }
    } else {
        w.push(digits[0]);
        if digits.len() > 1 {
            w.push(b'.');
            w.extend(&digits[1..]);
        }
        w.push(b'e');
        w.push(if exp < 0 { b'-' } else { b'+' });
        let mut num = itoa_buf(exp.unsigned_abs());
        w.extend(num.as_slice());
        num.clear();
    }
    w.len
}

struct Writer<'a> {
    out: &'a mut [u8; 40],
    len: usize,
}

impl Writer<'_> {
    fn push(&mut self, b: u8) {
        self.out[self.len] = b;
        self.len += 1;
    }
    fn extend(&mut self, bytes: &[u8]) {
        self.out[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

fn itoa_buf(mut n: u32) -> Vec<u8> {
    let mut digits = Vec::with_capacity(3);
    loop {
        digits.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    digits
}

/// Splits ryu's shortest representation into sign, significant digits
/// (without leading/trailing zeros) and the decimal exponent of the first
/// digit.
fn decompose(s: &str) -> (bool, Vec<u8>, i32) {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp_part) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    // Position of the decimal point relative to the start of `digits`.
    let mut point = int_part.len() as i32 + exp_part;
    while digits.len() > 1 && digits[0] == b'0' {
        digits.remove(0);
        point -= 1;
    }
    while digits.len() > 1 && digits[digits.len() - 1] == b'0' {
        digits.pop();
    }
    if digits == [b'0'] {
        // Zero: orjson writes "0.0" / "-0.0".
        return (negative, digits, 0);
    }
    (negative, digits, point - 1)
}
