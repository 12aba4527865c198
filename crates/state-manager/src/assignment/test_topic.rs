//! A mock cluster holding one filled topic, for the assignment tests that
//! drive a consumer by hand.

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// A mock cluster owned by the returned producer, whose topic `in` has
/// `partitions` partitions of `records` records each, and a client
/// configuration that reaches it.
pub(crate) fn topic_in(partitions: i32, records: usize) -> (BaseProducer, ClientConfig) {
    let owner: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let bootstrap = {
        let mock = owner.client().mock_cluster().unwrap();
        mock.create_topic("in", partitions, 1).unwrap();
        mock.bootstrap_servers()
    };
    for p in 0..partitions {
        for _ in 0..records {
            owner
                .send(BaseRecord::<str, str>::to("in").partition(p).payload("v"))
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    owner.flush(Duration::from_secs(10)).unwrap();
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", bootstrap);
    (owner, kafka)
}

/// Kafka's API key of ListOffsets requests.
pub(crate) const LIST_OFFSETS: i16 = 2;

/// Kafka's API key of OffsetFetch requests (reading committed offsets).
pub(crate) const OFFSET_FETCH: i16 = 9;

/// The raw mock cluster `owner` owns (created by [`topic_in`]).
pub(crate) fn mock_of(owner: &BaseProducer) -> *mut rdkafka::bindings::rd_kafka_mock_cluster_t {
    // SAFETY: the handle is alive for the borrow of `owner`; the mock
    // cluster it returns lives as long as the handle.
    let mock = unsafe { rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr()) };
    assert!(!mock.is_null(), "the owner was created with test.mock.num.brokers");
    mock
}

/// Starts recording the requests the mock cluster of `owner` receives,
/// forgetting those recorded before.
pub(crate) fn track_requests(owner: &BaseProducer) {
    let mock = mock_of(owner);
    // SAFETY: `mock` is alive for the borrow of `owner`.
    unsafe {
        rdkafka::bindings::rd_kafka_mock_start_request_tracking(mock);
        rdkafka::bindings::rd_kafka_mock_clear_requests(mock);
    }
}

/// How many requests of Kafka API `api_key` the mock cluster of `owner`
/// received since [`track_requests`].
pub(crate) fn requests_of(owner: &BaseProducer, api_key: i16) -> usize {
    let mock = mock_of(owner);
    let mut count = 0usize;
    // SAFETY: `rd_kafka_mock_get_requests` returns an array of `count`
    // request copies owned by the caller, freed (with the array) by
    // `rd_kafka_mock_request_destroy_array`; each element is read before.
    unsafe {
        let requests = rdkafka::bindings::rd_kafka_mock_get_requests(mock, &mut count);
        let of_api = (0..count)
            .filter(|i| rdkafka::bindings::rd_kafka_mock_request_api_key(*requests.add(*i)) == api_key)
            .count();
        rdkafka::bindings::rd_kafka_mock_request_destroy_array(requests, count);
        of_api
    }
}
