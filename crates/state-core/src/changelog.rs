//! What a transaction emits to a changelog, and the sink it emits to.

use std::collections::BTreeMap;
use std::ffi::CStr;

use crate::codec::Codec;
use crate::error::Result;

/// Header carrying the column family name (UTF-8) of a changelog record.
pub const CF_HEADER: &str = text(CF_HEADER_C);
/// [`CF_HEADER`] as a C string, for librdkafka's calls that take header
/// names without a length.
pub const CF_HEADER_C: &CStr = c"__column_family__";
/// Header carrying the source offsets processed when the record was made:
/// a JSON object `{"<topic>": <offset>}`.
pub const PROCESSED_OFFSETS_HEADER: &str = text(PROCESSED_OFFSETS_HEADER_C);
/// [`PROCESSED_OFFSETS_HEADER`] as a C string.
pub const PROCESSED_OFFSETS_HEADER_C: &CStr = c"__processed_tp_offsets__";
/// Header quixstreams 3.28.1 sets (value [`TTL_STAMPED_HEADER_VALUE`]) on every
/// `default` record of a partition in per-write TTL mode: the value starts
/// with an 8-byte expiry stamp. Recovery treats any non-empty value as set.
pub const TTL_STAMPED_HEADER: &str = text(TTL_STAMPED_HEADER_C);
/// [`TTL_STAMPED_HEADER`] as a C string.
pub const TTL_STAMPED_HEADER_C: &CStr = c"__ttl_stamped__";
/// The value written for [`TTL_STAMPED_HEADER`].
pub const TTL_STAMPED_HEADER_VALUE: &[u8] = b"\x01";
/// Header naming the value codec (`msgpack`, `raw`) of a record written by a
/// store whose codec is not JSON. Absent means JSON, quixstreams' default,
/// so records of JSON stores stay byte-identical to quixstreams'. Recovery
/// checks it against the codec recorded in the partition.
pub const VALUE_CODEC_HEADER: &str = text(VALUE_CODEC_HEADER_C);
/// [`VALUE_CODEC_HEADER`] as a C string.
pub const VALUE_CODEC_HEADER_C: &CStr = c"__value_codec__";

/// A header name's text (each name is written once, as a C string).
const fn text(name: &'static CStr) -> &'static str {
    match name.to_str() {
        Ok(s) => s,
        Err(_) => panic!("header names are ASCII"),
    }
}

/// One changelog record, borrowed from the transaction that emits it.
///
/// Key and value are exactly the store's bytes; `value = None` is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangelogRecord<'a> {
    /// Column family the change belongs to (the `__column_family__` header).
    pub cf: &'a str,
    /// Full key bytes.
    pub key: &'a [u8],
    /// Value bytes, or `None` for a delete (tombstone).
    pub value: Option<&'a [u8]>,
    /// The encoded `__processed_tp_offsets__` header, if any.
    pub processed_offsets: Option<&'a [u8]>,
    /// Whether to set [`TTL_STAMPED_HEADER`]: true for `default` records of
    /// a partition in per-write TTL mode.
    pub ttl_stamped: bool,
    /// The codec to name in [`VALUE_CODEC_HEADER`]; `None` (no header) for
    /// JSON stores and records whose value is not codec-encoded.
    pub value_codec: Option<Codec>,
}

impl<'a> ChangelogRecord<'a> {
    /// A record with quixstreams' two headers only (no TTL stamp flag, no
    /// codec header).
    pub fn new(cf: &'a str, key: &'a [u8], value: Option<&'a [u8]>, processed_offsets: Option<&'a [u8]>) -> Self {
        ChangelogRecord {
            cf,
            key,
            value,
            processed_offsets,
            ttl_stamped: false,
            value_codec: None,
        }
    }

    /// The headers to put on the Kafka record, in order: the column family,
    /// the processed offsets (if any), then [`TTL_STAMPED_HEADER`] and
    /// [`VALUE_CODEC_HEADER`] when set.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> {
        self.headers_named([
            CF_HEADER,
            PROCESSED_OFFSETS_HEADER,
            TTL_STAMPED_HEADER,
            VALUE_CODEC_HEADER,
        ])
    }

    /// [`headers`](Self::headers) with their names as C strings.
    pub fn c_headers(&self) -> impl Iterator<Item = (&'static CStr, &'a [u8])> {
        self.headers_named([
            CF_HEADER_C,
            PROCESSED_OFFSETS_HEADER_C,
            TTL_STAMPED_HEADER_C,
            VALUE_CODEC_HEADER_C,
        ])
    }

    /// The headers, named from `[cf, processed offsets, ttl stamped, value codec]`.
    fn headers_named<N: Copy>(
        &self,
        [cf_name, offsets, stamped, codec]: [N; 4],
    ) -> impl Iterator<Item = (N, &'a [u8])> {
        let cf: &'a str = self.cf;
        [
            Some((cf_name, cf.as_bytes())),
            self.processed_offsets.map(|o| (offsets, o)),
            self.ttl_stamped.then_some((stamped, TTL_STAMPED_HEADER_VALUE)),
            self.value_codec.map(|c| (codec, c.name().as_bytes())),
        ]
        .into_iter()
        .flatten()
    }
}

/// Where a partition transaction sends its changes on `prepare`.
///
/// One sink serves one store partition (it knows its changelog topic and
/// partition). Implementations may buffer; whether a record is durable is
/// decided later, when the caller flushes the producer behind the sink
/// before flushing local state. An error fails the transaction.
pub trait ChangelogSink: Send + Sync {
    /// Hands one record to the sink.
    fn send(&self, record: ChangelogRecord<'_>) -> Result<()>;
}

/// Source topic -> last processed offset, as carried in the
/// `__processed_tp_offsets__` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessedOffsets(pub BTreeMap<String, i64>);

impl ProcessedOffsets {
    /// An empty set of offsets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder-style insert.
    pub fn with(mut self, topic: impl Into<String>, offset: i64) -> Self {
        self.0.insert(topic.into(), offset);
        self
    }

    /// Encodes the header value: compact JSON, byte-identical to quixstreams.
    pub fn to_header(&self) -> Vec<u8> {
        // BTreeMap<String, i64> cannot fail to serialize.
        serde_json::to_vec(&self.0).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Parses a header value. `null` (written by old producers) is `None`.
    pub fn from_header(bytes: &[u8]) -> std::result::Result<Option<Self>, serde_json::Error> {
        let parsed: Option<BTreeMap<String, i64>> = serde_json::from_slice(bytes)?;
        Ok(parsed.map(ProcessedOffsets))
    }

    /// True if every topic in these offsets was committed past them:
    /// `processed < committed[topic]`. A topic missing from `committed`
    /// counts as not committed, so the record is skipped.
    pub fn is_committed(&self, committed: &BTreeMap<String, i64>) -> bool {
        self.0
            .iter()
            .all(|(topic, processed)| committed.get(topic).is_some_and(|c| processed < c))
    }
}

/// A [`ChangelogSink`] that keeps every record in memory. Useful in tests
/// and for replaying a transaction's output into another partition.
#[derive(Debug, Default)]
pub struct RecordingSink {
    records: parking_lot::Mutex<Vec<OwnedChangelogRecord>>,
}

/// An owned [`ChangelogRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedChangelogRecord {
    /// Column family.
    pub cf: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Value bytes or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Encoded processed-offsets header.
    pub processed_offsets: Option<Vec<u8>>,
    /// See [`ChangelogRecord::ttl_stamped`].
    pub ttl_stamped: bool,
    /// See [`ChangelogRecord::value_codec`].
    pub value_codec: Option<Codec>,
}

impl OwnedChangelogRecord {
    /// Borrows this record.
    pub fn as_record(&self) -> ChangelogRecord<'_> {
        ChangelogRecord {
            cf: &self.cf,
            key: &self.key,
            value: self.value.as_deref(),
            processed_offsets: self.processed_offsets.as_deref(),
            ttl_stamped: self.ttl_stamped,
            value_codec: self.value_codec,
        }
    }
}

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything recorded so far, in order.
    pub fn records(&self) -> Vec<OwnedChangelogRecord> {
        self.records.lock().clone()
    }

    /// Takes everything recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<OwnedChangelogRecord> {
        std::mem::take(&mut *self.records.lock())
    }
}

impl ChangelogSink for RecordingSink {
    fn send(&self, record: ChangelogRecord<'_>) -> Result<()> {
        self.records.lock().push(OwnedChangelogRecord {
            cf: record.cf.to_owned(),
            key: record.key.to_vec(),
            value: record.value.map(<[u8]>::to_vec),
            processed_offsets: record.processed_offsets.map(<[u8]>::to_vec),
            ttl_stamped: record.ttl_stamped,
            value_codec: record.value_codec,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_compact_json() {
        let o = ProcessedOffsets::new().with("input", 41);
        assert_eq!(o.to_header(), br#"{"input":41}"#);
        assert_eq!(ProcessedOffsets::from_header(br#"{"input":41}"#).unwrap(), Some(o));
        assert_eq!(ProcessedOffsets::from_header(b"null").unwrap(), None);
        assert!(ProcessedOffsets::from_header(b"{").is_err());
    }

    #[test]
    fn extra_headers_follow_quixstreams_two() {
        let r = ChangelogRecord::new("default", b"k", Some(b"v"), Some(b"null"));
        let names: Vec<_> = r.headers().map(|(n, _)| n).collect();
        assert_eq!(names, [CF_HEADER, PROCESSED_OFFSETS_HEADER]);
        let r = ChangelogRecord {
            ttl_stamped: true,
            value_codec: Some(Codec::MsgPack),
            ..r
        };
        let all: Vec<_> = r.headers().collect();
        assert_eq!(
            all,
            [
                (CF_HEADER, &b"default"[..]),
                (PROCESSED_OFFSETS_HEADER, &b"null"[..]),
                (TTL_STAMPED_HEADER, &[1u8][..]),
                (VALUE_CODEC_HEADER, &b"msgpack"[..]),
            ]
        );
        let c_names: Vec<_> = r.c_headers().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(c_names, all.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        assert!(r.c_headers().map(|(_, v)| v).eq(r.headers().map(|(_, v)| v)));
    }

    #[test]
    fn committed_means_strictly_below() {
        let o = ProcessedOffsets::new().with("t", 10);
        let mut committed = BTreeMap::new();
        assert!(!o.is_committed(&committed));
        committed.insert("t".to_string(), 10);
        assert!(!o.is_committed(&committed));
        committed.insert("t".to_string(), 11);
        assert!(o.is_committed(&committed));
    }
}
