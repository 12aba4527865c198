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
