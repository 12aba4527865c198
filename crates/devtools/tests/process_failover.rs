//! At-least-once failover between two member *processes* on a real broker
//! (tansu in CI): member A is killed with SIGKILL mid-interval and its state
//! directory deleted; member B takes over A's partitions, recovers them from
//! the changelog and finishes; no count may be below the input's.
//! Needs `KAFKA_BOOTSTRAP_SERVERS`; prints SKIPPED without it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 4;
const RECORDS: usize = 160;
const KEYS: usize = 8;

#[test]
fn at_least_once_failover_between_processes() {
    let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") else {
        eprintln!("SKIPPED: KAFKA_BOOTSTRAP_SERVERS is not set; no real broker to test against");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("pf-input-{}", nanos % 1_000_000_000);
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    let changelog = format!("changelog__count-group--{topic}--counts");
    let timeout = Duration::from_secs(30);
    assert!(state_changelog::create_topic(&client, &topic, PARTITIONS as usize, 1, &[], timeout).unwrap());
    let compact = [("cleanup.policy", "compact")];
    assert!(state_changelog::create_topic(&client, &changelog, PARTITIONS as usize, 1, &compact, timeout).unwrap());
    let producer: BaseProducer = client.create().unwrap();
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..RECORDS {
        let k = i % KEYS;
        let key = format!("k{k}");
        producer
            .send(
                BaseRecord::<str, str>::to(&topic)
                    .key(&key)
                    .payload("x")
                    .partition((k % PARTITIONS as usize) as i32),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        *truth.entry(key).or_default() += 1;
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let spawn = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_count-member"))
            .arg(&bootstrap)
            .arg(dir.path().join(name))
            .args([name, topic.as_str(), "4"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = spawn("a");
    let mut a_out = BufReader::new(a.stdout.take().unwrap()).lines();
    // Let A work alone for a while, then start B.
    for line in a_out.by_ref() {
        if line.unwrap().starts_with("processed 25") {
            break;
        }
    }
    let mut b = spawn("b");
    let b_out = BufReader::new(b.stdout.take().unwrap()).lines();
    // A keeps processing (some of it uncommitted) until it is killed.
    for line in a_out.by_ref() {
        if line.unwrap().starts_with("processed 45") {
            break;
        }
    }
    a.kill().unwrap();
    a.wait().unwrap();
    std::fs::remove_dir_all(dir.path().join("a")).unwrap();

    let mut counts: Option<BTreeMap<String, u64>> = None;
    for line in b_out {
        let line = line.unwrap();
        if let Some(json) = line.strip_prefix("counts ") {
            counts = Some(serde_json::from_str(json).unwrap());
        }
    }
    let status = b.wait().unwrap();
    assert!(status.success(), "member B failed: {status}");
    let counts = counts.expect("B printed its counts");
    for (key, want) in &truth {
        let have = counts.get(key).copied().unwrap_or(0);
        assert!(have >= *want, "{key}: {have} < {want} under at-least-once");
    }
}
