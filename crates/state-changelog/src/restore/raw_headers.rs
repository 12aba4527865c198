//! A consumed record's headers read straight from the fetched bytes,
//! without librdkafka's per-message header list.
//!
//! librdkafka parses a record's headers on first access
//! (`rd_kafka_message_headers`): it allocates a zeroed shadow buffer to read
//! from, a header list and one allocation per header, and frees them all
//! with the message. On a restore that is most of the restorer thread's
//! time (w4 profile, docs/performance.md "Headers without librdkafka's
//! list"): a restore that skipped it ran at 0.9-1.0x the raw consumer
//! instead of ~0.63x. The bytes it parses are kept beside the message
//! (`rd_kafka_msg_t::rkm_u.consumer.binhdrs`, a pointer into the fetch
//! buffer) but librdkafka has no public accessor for them.
//!
//! So this module reads that field through a mirror of the struct's
//! layout, and only where that is known to be right:
//!
//! * the linked librdkafka is a version whose layout was checked against
//!   its source ([`VERIFIED_VERSIONS`]);
//! * each message's header bytes must start exactly where its value ends
//!   (where librdkafka's v2 record reader takes them from: key, value,
//!   headers), which a misread field would not;
//! * the bytes must parse by the record format's rules (bytes after the
//!   last header are ignored, as librdkafka ignores them);
//! * librdkafka holds no header list for the message yet (an interceptor
//!   or an earlier call may have set one, which it would answer with).
//!
//! Whenever one of these fails, the caller asks librdkafka as before, so
//! the fast path can only ever agree with it (tests compare both on every
//! record of a mock cluster's topics, compressed and not).

use std::ffi::c_void;
use std::ptr;
use std::sync::OnceLock;

use rdkafka::bindings as rdsys;

/// librdkafka versions (`rd_kafka_version()`, release byte included) whose
/// `rd_kafka_msg_t` matches [`MsgPrefix`]. 2.12.1: `src/rdkafka_msg.h`.
const VERIFIED_VERSIONS: &[i32] = &[0x020c_01ff];

/// The head of librdkafka's `rd_kafka_msg_t` up to the consumer's unparsed
/// headers (`rkm_u.consumer.binhdrs`, an `rd_kafkap_bytes_t`). The public
/// `rd_kafka_message_t` is its first field, so a consumed message's pointer
/// is a pointer to this.
#[repr(C)]
struct MsgPrefix {
    rkmessage: rdsys::rd_kafka_message_t,
    link_next: *mut c_void,
    link_prev: *mut *mut c_void,
    flags: i32,
    timestamp_type: i32,
    timestamp: i64,
    headers: *mut c_void,
    status: i32,
    broker_id: i32,
    // `rkm_u`: a union whose consumer arm starts with `binhdrs`.
    unparsed_headers_len: i32,
    unparsed_headers_data: *const u8,
}

/// True if the linked librdkafka's message layout is one we checked.
fn layout_verified() -> bool {
    static VERIFIED: OnceLock<bool> = OnceLock::new();
    // SAFETY: a plain query of the linked library.
    *VERIFIED.get_or_init(|| VERIFIED_VERSIONS.contains(&unsafe { rdsys::rd_kafka_version() }))
}

/// The unparsed header bytes of consumed message `raw` (the record
/// format's header count and headers), or `None` where they cannot be
/// read safely; then ask librdkafka.
///
/// # Safety
/// `raw` must be a live message handed out by a consumer; the bytes live
/// as long as it.
pub(crate) unsafe fn unparsed<'a>(raw: *const rdsys::rd_kafka_message_t) -> Option<&'a [u8]> {
    if !layout_verified() {
        return None;
    }
    // Fields are read through the raw pointer: librdkafka may write others
    // of the struct (its parsed header list) while the message lives.
    let msg = raw.cast::<MsgPrefix>();
    if !ptr::addr_of!((*msg).headers).read().is_null() {
        // Headers set or parsed before (an interceptor, an earlier call):
        // librdkafka answers with that list, not with the fetched bytes.
        return None;
    }
    let len = usize::try_from(ptr::addr_of!((*msg).unparsed_headers_len).read()).ok()?;
    let data = ptr::addr_of!((*msg).unparsed_headers_data).read();
    if data.is_null() || len == 0 {
        return None;
    }
    // Where librdkafka's v2 reader takes the headers from: right after the
    // value; after a null or empty value, one byte (its length, -1 or 0)
    // after the key. Empty keys and values point at a static "" instead of
    // the fetched bytes, so a record with neither is left to librdkafka.
    let (payload, payload_len) = ((*raw).payload.cast::<u8>().cast_const(), (*raw).len);
    let (key, key_len) = ((*raw).key.cast::<u8>().cast_const(), (*raw).key_len);
    let expected = if !payload.is_null() && payload_len > 0 {
        payload.wrapping_add(payload_len)
    } else if !key.is_null() && key_len > 0 {
        key.wrapping_add(key_len + 1)
    } else {
        return None;
    };
    if data != expected {
        return None;
    }
    Some(std::slice::from_raw_parts(data, len))
}

/// Calls `header(name, value)` for each header in `bytes` (a record's
/// header count and headers), in order, as librdkafka's parser lists them:
/// a null value is `None`, a name ends at its first NUL byte (librdkafka
/// hands names out as C strings). `None` if the bytes do not parse, and
/// then `header` may have seen some headers. A count of zero or less is
/// no headers.
pub(crate) fn parse<'a>(bytes: &'a [u8], mut header: impl FnMut(&'a [u8], Option<&'a [u8]>)) -> Option<()> {
    let mut rest = bytes;
    let count = varint(&mut rest)?;
    if count > 100_000 {
        // librdkafka refuses such a record; let it say so.
        return None;
    }
    for _ in 0..count.max(0) {
        let name_len = usize::try_from(varint(&mut rest)?).ok()?;
        let name = take(&mut rest, name_len)?;
        let name = name.iter().position(|&b| b == 0).map_or(name, |end| &name[..end]);
        let value = match varint(&mut rest)? {
            -1 => None,
            n => Some(take(&mut rest, usize::try_from(n).ok()?)?),
        };
        header(name, value);
    }
    Some(())
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = rest.split_at_checked(n)?;
    *rest = tail;
    Some(head)
}

/// A zig-zag varint (the record format's signed lengths and counts).
fn varint(rest: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for (i, &b) in rest.iter().enumerate().take(10) {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn encode(headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut out = Vec::new();
        zigzag(headers.len() as i64, &mut out);
        for (name, value) in headers {
            zigzag(name.len() as i64, &mut out);
            out.extend_from_slice(name);
            match value {
                Some(v) => {
                    zigzag(v.len() as i64, &mut out);
                    out.extend_from_slice(v);
                }
                None => zigzag(-1, &mut out),
            }
        }
        out
    }

    type Owned = (Vec<u8>, Option<Vec<u8>>);

    fn parsed(bytes: &[u8]) -> Option<Vec<Owned>> {
        let mut seen = Vec::new();
        parse(bytes, |n, v| seen.push((n.to_vec(), v.map(<[u8]>::to_vec))))?;
        Some(seen)
    }

    #[test]
    fn headers_parse_in_order_with_null_and_empty_values() {
        let long = vec![b'v'; 300];
        let headers: [(&[u8], Option<&[u8]>); 4] = [
            (b"__column_family__", Some(b"default")),
            (b"__processed_tp_offsets__", None),
            (b"empty", Some(b"")),
            (b"long", Some(&long)),
        ];
        let got = parsed(&encode(&headers)).unwrap();
        let want: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_count_of_zero_or_less_is_no_headers() {
        assert_eq!(parsed(&[0]).unwrap(), vec![]);
        let mut minus = Vec::new();
        zigzag(-3, &mut minus);
        assert_eq!(parsed(&minus).unwrap(), vec![]);
    }

    #[test]
    fn names_end_at_their_first_nul_as_librdkafka_hands_them_out() {
        let got = parsed(&encode(&[(b"__column_family__\0tail", Some(b"x"))])).unwrap();
        assert_eq!(got, vec![(b"__column_family__".to_vec(), Some(b"x".to_vec()))]);
    }

    #[test]
    fn truncated_or_malformed_bytes_do_not_parse() {
        let good = encode(&[(b"name", Some(b"value")), (b"other", None)]);
        for cut in 0..good.len() {
            assert!(parsed(&good[..cut]).is_none(), "cut at {cut} parsed");
        }
        // A negative name length, and a value length below -1.
        let mut bad = Vec::new();
        zigzag(1, &mut bad);
        zigzag(-2, &mut bad);
        assert!(parsed(&bad).is_none());
        let mut bad = Vec::new();
        zigzag(1, &mut bad);
        zigzag(1, &mut bad);
        bad.push(b'n');
        zigzag(-5, &mut bad);
        assert!(parsed(&bad).is_none());
        // A varint that never ends, and a count librdkafka refuses.
        assert!(parsed(&[0xff; 12]).is_none());
        let mut huge = Vec::new();
        zigzag(100_001, &mut huge);
        assert!(parsed(&huge).is_none());
    }

    #[test]
    fn varints_decode_zigzag_across_their_whole_range() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = Vec::new();
            zigzag(v, &mut buf);
            buf.push(0xaa);
            let mut rest = &buf[..];
            assert_eq!(varint(&mut rest), Some(v));
            assert_eq!(rest, &[0xaa]);
        }
    }

    #[test]
    fn the_mirrored_prefix_ends_where_librdkafka_2_12_keeps_the_unparsed_headers() {
        // rd_kafka_message_t (72 bytes), TAILQ_ENTRY (16), two ints, an
        // int64, a pointer, two ints: the union starts at 120.
        assert_eq!(std::mem::size_of::<rdsys::rd_kafka_message_t>(), 72);
        assert_eq!(std::mem::offset_of!(MsgPrefix, unparsed_headers_len), 120);
        assert_eq!(std::mem::offset_of!(MsgPrefix, unparsed_headers_data), 128);
    }
}
