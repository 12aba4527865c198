//! [`TopicHandle`]: a librdkafka topic handle, through which a record is
//! handed over in one `rd_kafka_produceva` call, the topic never looked up
//! by name (see `sink` for why that matters).

use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};

use rdkafka::bindings as rdsys;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;
use state_core::ChangelogRecord;

use crate::producer::ChangelogProducer;

/// Most headers a changelog record carries (`ChangelogRecord::headers`).
const MAX_HEADERS: usize = 4;
/// Topic handle, partition, flags, opaque, key, value, and the headers.
const MAX_FIELDS: usize = 6 + MAX_HEADERS;

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

    /// Hands `record` to `producer` for partition `partition` of this
    /// topic (key, value and headers copied) with `opaque` for its
    /// delivery report, or says why not.
    pub(crate) fn produce(
        &self,
        producer: &ChangelogProducer,
        partition: i32,
        opaque: *mut c_void,
        record: &ChangelogRecord<'_>,
    ) -> std::result::Result<(), RDKafkaErrorCode> {
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
            rdsys::rd_kafka_vu_s__bindgen_ty_1 { i32_: partition },
        );
        push(
            RD_KAFKA_VTYPE_MSGFLAGS,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                i: rdsys::RD_KAFKA_MSG_F_COPY,
            },
        );
        push(
            RD_KAFKA_VTYPE_OPAQUE,
            rdsys::rd_kafka_vu_s__bindgen_ty_1 { ptr: opaque },
        );
        push(RD_KAFKA_VTYPE_KEY, memory(Some(record.key)));
        // A tombstone's value is null, as rust-rdkafka sends it.
        push(RD_KAFKA_VTYPE_VALUE, memory(record.value));
        for (name, value) in record.c_headers() {
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
