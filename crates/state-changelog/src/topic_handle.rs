//! [`TopicHandle`]: a librdkafka topic handle, through which a record is
//! handed over in one `rd_kafka_produceva` call, the topic never looked up
//! by name (see `sink` for why that matters).

use std::ffi::{c_void, CStr, CString};
use std::ptr::{self, NonNull};

use rdkafka::bindings as rdsys;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use crate::error::Result;
use crate::producer::{produce_failed, ChangelogProducer};

/// Most headers a record carries (a changelog record's, see
/// `ChangelogRecord::headers`).
pub(crate) const MAX_HEADERS: usize = 4;
/// Topic handle, partition, flags, opaque, key, value, timestamp, and the
/// headers.
const MAX_FIELDS: usize = 7 + MAX_HEADERS;

/// What a record hands librdkafka besides its topic.
pub(crate) struct Fields<'a, H> {
    /// A partition, or `RD_KAFKA_PARTITION_UA` for the producer's
    /// partitioner to choose.
    pub(crate) partition: i32,
    /// What its delivery report carries (see `kafka::delivered`); null for
    /// none.
    pub(crate) opaque: *mut c_void,
    pub(crate) key: Option<&'a [u8]>,
    /// `None`: a null value (a tombstone).
    pub(crate) value: Option<&'a [u8]>,
    /// Milliseconds since the epoch; `None`: the time it is handed over.
    pub(crate) timestamp: Option<i64>,
    /// At most [`MAX_HEADERS`].
    pub(crate) headers: H,
}

/// A librdkafka topic handle of the producer it was made on. Its owner
/// destroys it before that producer (see `PartitionSink::handle`).
pub(crate) struct TopicHandle(NonNull<rdsys::rd_kafka_topic_t>);

// SAFETY: librdkafka's topic handles may be used from any thread.
unsafe impl Send for TopicHandle {}
// SAFETY: as above; producing through a handle only reads it.
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    /// A handle for `topic` on `producer`, or `None` if librdkafka refuses
    /// the name.
    pub(crate) fn new(producer: &ChangelogProducer, topic: &str) -> Option<Self> {
        let name = CString::new(topic).ok()?;
        // SAFETY: a live producer handle and a NUL-terminated name, which
        // librdkafka copies; a null configuration means the defaults.
        let raw = unsafe {
            rdsys::rd_kafka_topic_new(producer.kafka().client().native_ptr(), name.as_ptr(), ptr::null_mut())
        };
        NonNull::new(raw).map(TopicHandle)
    }

    /// [`produce`](Self::produce) of the record `fields` makes, waiting
    /// while the producer's queue is full (serving delivery reports so it
    /// drains); a refusal is an error naming `topic`. `fields` is called
    /// for every attempt, as an attempt uses up its headers.
    pub(crate) fn produce_waiting<'a, H>(
        &self,
        producer: &ChangelogProducer,
        topic: &str,
        fields: impl Fn() -> Fields<'a, H>,
    ) -> Result<()>
    where
        H: Iterator<Item = (&'static CStr, &'a [u8])>,
    {
        producer.serve_reports_now_and_then();
        loop {
            let record = fields();
            let partition = record.partition;
            match self.produce(producer, record) {
                Ok(()) => return Ok(()),
                Err(RDKafkaErrorCode::QueueFull) => producer.wait_for_room(),
                Err(code) => return Err(produce_failed(topic, partition, KafkaError::MessageProduction(code))),
            }
        }
    }

    /// Hands a record of this topic to `producer` (key, value and headers
    /// copied), or says why not.
    fn produce<'a, H>(
        &self,
        producer: &ChangelogProducer,
        record: Fields<'a, H>,
    ) -> std::result::Result<(), RDKafkaErrorCode>
    where
        H: Iterator<Item = (&'static CStr, &'a [u8])>,
    {
        let mut fields = [field(
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 { i: 0 },
        ); MAX_FIELDS];
        let mut n = 0;
        let mut push = |vtype, u| {
            fields[n] = field(vtype, u);
            n += 1;
        };
        use rdsys::rd_kafka_vtype_t::*;
        push(
            RD_KAFKA_VTYPE_RKT,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 { rkt: self.0.as_ptr() },
        );
        push(
            RD_KAFKA_VTYPE_PARTITION,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 { i32_: record.partition },
        );
        push(
            RD_KAFKA_VTYPE_MSGFLAGS,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                i: rdsys::RD_KAFKA_MSG_F_COPY,
            },
        );
        push(
            RD_KAFKA_VTYPE_OPAQUE,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 { ptr: record.opaque },
        );
        push(RD_KAFKA_VTYPE_KEY, memory(record.key));
        // A tombstone's value is null, as rust-rdkafka sends it.
        push(RD_KAFKA_VTYPE_VALUE, memory(record.value));
        if let Some(ms) = record.timestamp {
            push(
                RD_KAFKA_VTYPE_TIMESTAMP,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 { i64_: ms },
            );
        }
        // More would not fit in `fields`; the callers' records have fewer.
        for (name, value) in record.headers.take(MAX_HEADERS) {
            push(
                RD_KAFKA_VTYPE_HEADER,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    header: rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                        name: name.as_ptr(),
                        val: value.as_ptr().cast::<c_void>(),
                        size: value.len() as isize,
                    },
                },
            );
        }
        // SAFETY: a live producer handle; every pointer in `fields` is
        // valid for the call (librdkafka copies key, value and headers, as
        // RD_KAFKA_MSG_F_COPY asks) and `n` fields are set.
        let error = unsafe { rdsys::rd_kafka_produceva(producer.kafka().client().native_ptr(), fields.as_ptr(), n) };
        if error.is_null() {
            return Ok(());
        }
        // SAFETY: a non-null error librdkafka handed over, destroyed once.
        let code = unsafe {
            let code = rdsys::rd_kafka_error_code(error);
            rdsys::rd_kafka_error_destroy(error);
            code
        };
        Err(code.into())
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: made by `rd_kafka_topic_new`, destroyed once, while the
        // producer it was made on is alive.
        unsafe { rdsys::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

fn field(vtype: rdsys::rd_kafka_vtype_t, u: rdsys::rd_kafka_vu_s__bindgen_ty_1) -> rdsys::rd_kafka_vu_t {
    rdsys::rd_kafka_vu_t { vtype, u }
}

/// Bytes as librdkafka's pointer and size (null for none).
fn memory(bytes: Option<&[u8]>) -> rdsys::rd_kafka_vu_s__bindgen_ty_1 {
    let (ptr, size) = match bytes {
        Some(b) => (b.as_ptr().cast_mut().cast::<c_void>(), b.len()),
        None => (ptr::null_mut(), 0),
    };
    rdsys::rd_kafka_vu_s__bindgen_ty_1 {
        mem: rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 { ptr, size },
    }
}
