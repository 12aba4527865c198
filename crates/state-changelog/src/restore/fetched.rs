//! [`FetchBuffer`]: records taken from the restore consumer's queue many at
//! a time, and [`Fetched`], one record as the engine sees it (taken in a
//! batch, or polled alone).
//!
//! rust-rdkafka's `poll` hands out one record per call, and each call
//! pays librdkafka's poll bookkeeping: the queue's lock and condition
//! variable, two or three clock reads (`max.poll.interval.ms` and
//! poll-idle accounting), an event wrapped around the record and its
//! reference count. On the restorer thread that was about a third of its
//! time (w4 profile, docs/performance.md "Restore path"): more than
//! staging the record. `rd_kafka_consume_batch_queue` takes up to
//! [`BATCH`] queued records under one bookkeeping round.
//!
//! What a batch changes, and how the engine keeps it right:
//!
//! * librdkafka moves a partition's position past every record of a
//!   batch when the batch is taken, before the engine has seen them.
//!   Positions are therefore only read with the buffer empty
//!   ([`FetchBuffer::is_empty`]).
//! * Records taken before a seek, or before a partition left the
//!   assignment, are not purged by librdkafka's version barrier once they
//!   are in the buffer: the consumer drops them itself
//!   ([`FetchBuffer::drop_partition`], [`FetchBuffer::clear`]). A task
//!   accepts any record at or past its next offset, so a stale one would
//!   otherwise be applied out of order.
//! * A batch only takes records already queued (it never waits): when
//!   none are, the engine polls the one-record way, which also serves
//!   librdkafka's error events to the client context (a batch hands those
//!   to librdkafka's log instead), so a stalled restore still names the
//!   broker's last failure.

use std::collections::VecDeque;
use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::ptr;

use rdkafka::bindings as rdsys;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use state_core::{CF_HEADER, PROCESSED_OFFSETS_HEADER, TTL_STAMPED_HEADER, VALUE_CODEC_HEADER};

use crate::restore::apply::IncomingRecord;
use crate::restore::raw_headers;

/// Records taken from the queue in one call at most.
pub(crate) const BATCH: usize = 512;

/// Records taken from the consumer queue, not yet handed out. Owns them
/// (and a reference to the queue) until they are handed out or dropped.
pub(crate) struct FetchBuffer {
    /// The consumer's queue; null if the client has none (then the
    /// engine only polls one record at a time).
    queue: *mut rdsys::rd_kafka_queue_t,
    records: VecDeque<*mut rdsys::rd_kafka_message_t>,
    /// Scratch for `rd_kafka_consume_batch_queue`.
    scratch: Vec<*mut rdsys::rd_kafka_message_t>,
}

// SAFETY: librdkafka's queues and messages may be used and destroyed from
// any thread; the buffer is only ever used by one thread at a time (&mut).
unsafe impl Send for FetchBuffer {}

impl FetchBuffer {
    /// A buffer taking records from `client`'s consumer queue.
    ///
    /// # Safety
    /// `client` must be a live consumer handle that outlives the buffer
    /// (the buffer's owner drops it before the client).
    pub(crate) unsafe fn new(client: *mut rdsys::rd_kafka_t) -> Self {
        FetchBuffer {
            queue: rdsys::rd_kafka_queue_get_consumer(client),
            records: VecDeque::with_capacity(BATCH),
            scratch: vec![ptr::null_mut(); BATCH],
        }
    }

    /// True if no record is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The next record: buffered, or from a batch of those queued now.
    /// `None` if nothing is queued (never waits).
    pub(crate) fn next(&mut self) -> Option<KafkaResult<Fetched<'_>>> {
        if self.records.is_empty() {
            self.fill();
        }
        let raw = self.records.pop_front()?;
        let record = Taken {
            ptr: raw,
            _buffer: PhantomData,
        };
        // SAFETY: `raw` is a message librdkafka handed out and nobody
        // destroyed (it left the buffer just now).
        let err = unsafe { (*raw).err };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // Dropping `record` destroys the message.
            return Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::from(err))));
        }
        Some(Ok(Fetched::Taken(record)))
    }

    fn fill(&mut self) {
        if self.queue.is_null() {
            return;
        }
        // SAFETY: `queue` is live (see `new`); `scratch` has room for
        // BATCH pointers; timeout 0 takes only what is queued.
        let n = unsafe { rdsys::rd_kafka_consume_batch_queue(self.queue, 0, self.scratch.as_mut_ptr(), BATCH) };
        if n > 0 {
            self.records.extend(&self.scratch[..n as usize]);
        }
    }

    /// Drops the buffered records of `topic[partition]` (it was sought or
    /// left the assignment).
    pub(crate) fn drop_partition(&mut self, topic: &str, partition: i32) {
        if self.records.is_empty() {
            return;
        }
        self.records.retain(|&raw| {
            // SAFETY: buffered messages are live until destroyed here.
            let keep = unsafe { !(partition_of(raw) == partition && topic_of(raw) == Some(topic)) };
            if !keep {
                unsafe { rdsys::rd_kafka_message_destroy(raw) };
            }
            keep
        });
    }

    /// Drops every buffered record (the whole assignment starts over).
    pub(crate) fn clear(&mut self) {
        for raw in self.records.drain(..) {
            // SAFETY: buffered messages are live until destroyed here.
            unsafe { rdsys::rd_kafka_message_destroy(raw) };
        }
    }
}

impl Drop for FetchBuffer {
    fn drop(&mut self) {
        self.clear();
        if !self.queue.is_null() {
            // SAFETY: the reference `rd_kafka_queue_get_consumer` gave.
            unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
        }
    }
}

/// # Safety
/// `raw` must be a live message.
unsafe fn partition_of(raw: *const rdsys::rd_kafka_message_t) -> i32 {
    (*raw).partition
}

/// # Safety
/// `raw` must be a live message; the name lives as long as it.
unsafe fn topic_of<'a>(raw: *const rdsys::rd_kafka_message_t) -> Option<&'a str> {
    let rkt = (*raw).rkt;
    if rkt.is_null() {
        return None;
    }
    CStr::from_ptr(rdsys::rd_kafka_topic_name(rkt)).to_str().ok()
}

/// A record taken in a batch; destroyed when dropped. It borrows the
/// buffer (and so the consumer), which outlives it.
pub(crate) struct Taken<'a> {
    ptr: *mut rdsys::rd_kafka_message_t,
    _buffer: PhantomData<&'a FetchBuffer>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        // SAFETY: the message left the buffer to this wrapper alone.
        unsafe { rdsys::rd_kafka_message_destroy(self.ptr) };
    }
}

impl Taken<'_> {
    fn record(&self) -> Option<(&str, i32, IncomingRecord<'_>)> {
        // SAFETY: the message is live while `self` is; the record borrows
        // `self`.
        unsafe { record_of(self.ptr) }
    }
}

/// `len` bytes at `data` (`None` if null).
///
/// # Safety
/// `data` points at `len` bytes of a live message, which outlives `'b`.
unsafe fn bytes<'b>(data: *const c_void, len: usize) -> Option<&'b [u8]> {
    (!data.is_null()).then(|| std::slice::from_raw_parts(data.cast::<u8>(), len))
}

/// Fills `record`'s header fields through librdkafka's header list.
///
/// # Safety
/// `raw` must be a live message; `record` borrows it.
unsafe fn set_headers_from_librdkafka<'a>(raw: *mut rdsys::rd_kafka_message_t, record: &mut IncomingRecord<'a>) {
    for_each_librdkafka_header(raw, |name, value| set_header(record, name, value));
}

/// Calls `header(name, value)` for each header of `raw`, in order, as
/// librdkafka's header list holds them (parsing them into that list first
/// if it has not yet).
///
/// # Safety
/// `raw` must be a live message, which outlives `'a`.
unsafe fn for_each_librdkafka_header<'a>(
    raw: *mut rdsys::rd_kafka_message_t,
    mut header: impl FnMut(&'a [u8], Option<&'a [u8]>),
) {
    let mut headers: *mut rdsys::rd_kafka_headers_t = ptr::null_mut();
    if rdsys::rd_kafka_message_headers(raw, &mut headers) != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        || headers.is_null()
    {
        return;
    }
    let mut idx = 0;
    loop {
        let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0usize);
        if rdsys::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size)
            != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return;
        }
        idx += 1;
        if name.is_null() {
            continue;
        }
        header(CStr::from_ptr(name).to_bytes(), bytes(value, size));
    }
}

/// The topic, partition and content of consumed message `raw`; `None` if
/// its topic name is unreadable (not one of ours). Headers are read from
/// the fetched bytes where that is safe ([`raw_headers`]), else through
/// librdkafka's header list.
///
/// # Safety
/// `raw` must be a live message; the result borrows it.
unsafe fn record_of<'a>(raw: *mut rdsys::rd_kafka_message_t) -> Option<(&'a str, i32, IncomingRecord<'a>)> {
    let topic = topic_of(raw)?;
    let msg = &*raw;
    let mut record = IncomingRecord::from_headers(
        msg.offset,
        bytes(msg.key, msg.key_len),
        bytes(msg.payload, msg.len),
        std::iter::empty(),
    );
    if let Some(unparsed) = raw_headers::unparsed(raw) {
        if raw_headers::parse(unparsed, |name, value| set_header(&mut record, name, value)).is_some() {
            return Some((topic, msg.partition, record));
        }
        record.clear_headers();
    }
    set_headers_from_librdkafka(raw, &mut record);
    Some((topic, msg.partition, record))
}

/// Sets the field of `record` that header `name` fills (as
/// [`IncomingRecord::from_headers`]: the last of a name wins), comparing
/// bytes (a header name that is not UTF-8 is none of ours).
fn set_header<'a>(record: &mut IncomingRecord<'a>, name: &[u8], value: Option<&'a [u8]>) {
    if name == CF_HEADER.as_bytes() {
        record.column_family = value;
    } else if name == PROCESSED_OFFSETS_HEADER.as_bytes() {
        record.processed_offsets = value;
    } else if name == TTL_STAMPED_HEADER.as_bytes() {
        record.ttl_stamped = value;
    } else if name == VALUE_CODEC_HEADER.as_bytes() {
        record.value_codec = value;
    }
}

/// One record as the engine gets it: taken in a batch, or polled alone.
pub(crate) enum Fetched<'a> {
    /// Taken in a batch ([`FetchBuffer`]).
    Taken(Taken<'a>),
    /// Polled alone (rust-rdkafka's `poll`).
    Polled(BorrowedMessage<'a>),
}

impl Fetched<'_> {
    /// The record's topic, partition and content (headers parsed once);
    /// `None` if its topic name is unreadable (not one of ours).
    #[inline]
    pub(crate) fn record(&self) -> Option<(&str, i32, IncomingRecord<'_>)> {
        match self {
            Fetched::Taken(t) => t.record(),
            // SAFETY: the message is live while `self` is; the record
            // borrows `self`.
            Fetched::Polled(msg) => unsafe { record_of(msg.ptr()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::{Duration, Instant};

    /// The headers of record `i` of the comparison topics: none, empty
    /// lists, ours and foreign ones, null and empty values, repeated names.
    fn headers_of(i: usize) -> Option<OwnedHeaders> {
        let long = "v".repeat(200 + i);
        let mut h = OwnedHeaders::new();
        match i % 6 {
            0 => return None,
            1 => {}
            2 => {
                h = h.insert(Header {
                    key: CF_HEADER,
                    value: Some("default"),
                });
            }
            3 => {
                h = h
                    .insert(Header {
                        key: CF_HEADER,
                        value: Some("windows"),
                    })
                    .insert(Header {
                        key: PROCESSED_OFFSETS_HEADER,
                        value: Some("[[\"input\", 0, 7]]"),
                    })
                    .insert(Header {
                        key: VALUE_CODEC_HEADER,
                        value: None::<&str>,
                    });
            }
            4 => {
                h = h
                    .insert(Header {
                        key: "foreign",
                        value: Some(long.as_str()),
                    })
                    .insert(Header {
                        key: TTL_STAMPED_HEADER,
                        value: Some(""),
                    })
                    .insert(Header {
                        key: CF_HEADER,
                        value: Some("first"),
                    })
                    .insert(Header {
                        key: CF_HEADER,
                        value: Some("last wins"),
                    });
            }
            _ => {
                h = h.insert(Header {
                    key: "__column_family__\0tail",
                    value: Some("nul in the name"),
                });
            }
        }
        Some(h)
    }

    /// Every header of `raw` as librdkafka's header list gives them.
    unsafe fn librdkafka_list(raw: *mut rdsys::rd_kafka_message_t) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut all = Vec::new();
        for_each_librdkafka_header(raw, |name, value| all.push((name.to_vec(), value.map(<[u8]>::to_vec))));
        all
    }

    /// Every record of `topic` (written with `compression`) read both ways:
    /// from the fetched bytes and through librdkafka's header list.
    fn compare_both_header_paths(compression: &str) {
        const RECORDS: usize = 600;
        let cluster = MockCluster::new(1).unwrap();
        let topic = format!("headers-{compression}");
        cluster.create_topic(&topic, 1, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("compression.type", compression)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        for i in 0..RECORDS {
            let key = format!("key-{i}");
            let value = format!("value-{i}");
            let mut record = BaseRecord::<str, str>::to(&topic).partition(0);
            if i % 50 != 49 {
                record = record.key(&key);
            }
            if i % 7 != 3 {
                record = record.payload(if i % 11 == 5 { "" } else { &value });
            }
            if let Some(h) = headers_of(i) {
                record = record.headers(h);
            }
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "headers")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning).unwrap();
        consumer.assign(&tpl).unwrap();
        // SAFETY: the consumer outlives the buffer (dropped first below).
        let mut buffer = unsafe { FetchBuffer::new(consumer.client().native_ptr()) };
        let (mut seen, mut fast) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen < RECORDS {
            assert!(Instant::now() < deadline, "only {seen} of {RECORDS} records arrived");
            let Some(next) = buffer.next() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let Fetched::Taken(taken) = next.unwrap() else {
                unreachable!("the buffer takes")
            };
            let (_, _, from_bytes) = taken.record().unwrap();
            // SAFETY: `taken` is live; the record borrows it.
            let parsed = unsafe { raw_headers::unparsed(taken.ptr) }.and_then(|unparsed| {
                let mut all = Vec::new();
                raw_headers::parse(unparsed, |name, value| {
                    all.push((name.to_vec(), value.map(<[u8]>::to_vec)))
                })
                .map(|()| all)
            });
            if let Some(all) = parsed {
                fast += 1;
                // Every header, in order, as librdkafka lists them (not
                // only the four the engine reads).
                assert_eq!(all, unsafe { librdkafka_list(taken.ptr) }, "record {seen}");
            }
            let msg = unsafe { &*taken.ptr };
            let mut via_list = IncomingRecord::from_headers(
                msg.offset,
                unsafe { bytes(msg.key, msg.key_len) },
                unsafe { bytes(msg.payload, msg.len) },
                std::iter::empty(),
            );
            unsafe { set_headers_from_librdkafka(taken.ptr, &mut via_list) };
            assert_eq!(format!("{from_bytes:?}"), format!("{via_list:?}"), "record {seen}");
            seen += 1;
        }
        drop(buffer);
        // Every record with a key or a value took the fast path; those with
        // neither ask librdkafka (nothing marks where their headers start).
        let neither = (0..RECORDS)
            .filter(|i| i % 50 == 49 && (i % 7 == 3 || i % 11 == 5))
            .count();
        assert!(neither > 0);
        assert_eq!(
            fast,
            RECORDS - neither,
            "records whose headers were read from the fetched bytes"
        );
    }

    #[test]
    fn headers_read_from_the_fetched_bytes_equal_librdkafkas_list_uncompressed() {
        compare_both_header_paths("none");
    }

    #[test]
    fn headers_read_from_the_fetched_bytes_equal_librdkafkas_list_gzip() {
        compare_both_header_paths("gzip");
    }

    #[test]
    fn header_names_fill_their_fields_and_others_are_ignored() {
        let mut r = IncomingRecord::from_headers(3, Some(b"k"), None, std::iter::empty());
        set_header(&mut r, CF_HEADER.as_bytes(), Some(b"default"));
        set_header(&mut r, PROCESSED_OFFSETS_HEADER.as_bytes(), Some(b"[]"));
        set_header(&mut r, TTL_STAMPED_HEADER.as_bytes(), Some(b"1"));
        set_header(&mut r, VALUE_CODEC_HEADER.as_bytes(), None);
        set_header(&mut r, b"__column_family", Some(b"x"));
        set_header(&mut r, b"\xff", Some(b"x"));
        let expected = IncomingRecord::from_headers(
            3,
            Some(b"k"),
            None,
            [
                (CF_HEADER, Some(&b"default"[..])),
                (PROCESSED_OFFSETS_HEADER, Some(&b"[]"[..])),
                (TTL_STAMPED_HEADER, Some(&b"1"[..])),
                (VALUE_CODEC_HEADER, None),
            ],
        );
        assert_eq!(format!("{r:?}"), format!("{expected:?}"));
    }
}
