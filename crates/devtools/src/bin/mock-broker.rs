//! Hosts librdkafka's mock Kafka cluster in its own process, so that clients
//! in other processes can be killed while the broker lives on (the crash
//! harness, `cargo xtask crash`). Not a user tool.
//!
//! `mock-broker TOPIC:PARTITIONS ...` creates the topics, prints
//! `bootstrap HOST:PORT` on stdout and serves until stdin closes.

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1)?;
    for spec in std::env::args().skip(1) {
        let (topic, partitions) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("{spec:?} is not TOPIC:PARTITIONS"))?;
        cluster.create_topic(topic, partitions.parse()?, 1)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap {}", cluster.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    // Serve until the parent goes away.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}
