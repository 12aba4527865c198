//! Secrets stay secret: a recognisable password is set in every way the
//! library accepts Kafka settings (the `KafkaSettings` type, `-X`
//! arguments, properties files, a plain rdkafka `ClientConfig`), then every
//! error path that involves settings is triggered. The password must not
//! appear in any error's `Display` or `Debug`, in any `Debug` of a
//! settings value, nor in any log line — librdkafka's own included, at
//! trace level with `debug=all`.
//!
//! One test function: the capturing subscriber is process-wide (librdkafka
//! logs from its own threads), and installed before any client config is
//! made so rdkafka asks librdkafka for debug logs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use state_changelog::rdkafka::config::ClientConfig;
use state_changelog::{ChangelogProducer, KafkaSettings, RecoveryConfig, RecoveryManager, RecoveryPartition, Restorer};
use state_core::{Codec, ProcessedOffsets};
use state_txn::PartitionTransaction;

const PASSWORD: &str = "Hunter2-Sekr3t-8b1f";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything shown to an operator in this test, checked at the end.
#[derive(Default)]
struct Shown(Vec<(String, String)>);

impl Shown {
    fn error(&mut self, what: &str, e: &(impl std::fmt::Display + std::fmt::Debug)) {
        self.0.push((format!("{what} (Display)"), e.to_string()));
        self.0.push((format!("{what} (Debug)"), format!("{e:?}")));
        self.0.push((format!("{what} (Debug, alternate)"), format!("{e:#?}")));
    }
    fn debug(&mut self, what: &str, v: &impl std::fmt::Debug) {
        self.0.push((what.to_owned(), format!("{v:?} {v:#?}")));
    }
}

/// The settings every client here starts from: an unreachable broker, SASL
/// over TLS with the password in every secret property, and librdkafka's
/// full debug log.
fn secret_properties() -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", "127.0.0.1:1".into()),
        ("security.protocol", "sasl_ssl".into()),
        ("sasl.mechanisms", "SCRAM-SHA-512".into()),
        ("sasl.username", "state-app".into()),
        ("sasl.password", PASSWORD.into()),
        ("ssl.key.password", PASSWORD.into()),
        ("debug", "all".into()),
        ("socket.timeout.ms", "1000".into()),
        ("message.timeout.ms", "1500".into()),
    ]
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in secret_properties() {
        c.set(k, v);
    }
    c
}

#[test]
fn passwords_appear_in_no_error_debug_output_or_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let mut shown = Shown::default();
    let dir = tempfile::tempdir().unwrap();

    // 1. The library type, set in code.
    let mut settings = KafkaSettings::new();
    for (k, v) in secret_properties() {
        settings.set(k, v);
    }
    // Secret-looking keys librdkafka does not take (or not in this build:
    // OIDC needs libcurl) are still hidden when shown.
    let mut shown_only = settings.clone();
    shown_only
        .set("ssl.keystore.password", PASSWORD)
        .set("sasl.oauthbearer.client.secret", PASSWORD)
        .set("my.app.secret", PASSWORD);
    for s in [&settings, &shown_only] {
        shown.debug("KafkaSettings", s);
        shown.0.push(("KafkaSettings (Display)".into(), s.to_string()));
        tracing::info!(settings = ?s, "logging the settings is safe");
        tracing::info!(settings = %s, "logging the settings is safe");
    }

    // 2. -X arguments, a properties file, both through the command-line path.
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        format!("sasl.password={PASSWORD}\nssl.keystore.password : {PASSWORD}\nsasl.username=state-app\n"),
    )
    .unwrap();
    let overrides = vec![
        format!("sasl.password={PASSWORD}"),
        format!("ssl.key.password={PASSWORD}"),
    ];
    let from_cli = KafkaSettings::from_cli(Some("127.0.0.1:1"), &overrides, std::slice::from_ref(&file)).unwrap();
    assert_eq!(from_cli.get("sasl.password"), Some(PASSWORD), "the real value is there");
    shown.debug("KafkaSettings from -X and a file", &from_cli);

    // 3. Error paths of parsing: a bad -X argument (the password alone), a
    //    properties line without a separator (the password alone) or with
    //    a broken escape, an unreadable file.
    let err = KafkaSettings::from_cli(None, &[PASSWORD.to_owned()], &[]).unwrap_err();
    shown.error("bad -X", &err);
    for (name, text) in [
        ("bad-line", format!("sasl.username=a\n{PASSWORD}\n")),
        ("bad-escape", format!("sasl.password={PASSWORD}\\u00zz\n")),
        ("empty-key", format!("={PASSWORD}\n")),
    ] {
        let path = dir.path().join(format!("{name}.properties"));
        std::fs::write(&path, text).unwrap();
        let err = KafkaSettings::from_cli(None, &overrides, &[path]).unwrap_err();
        shown.error(name, &err);
    }
    let missing: PathBuf = dir.path().join("no-such.properties");
    let err = KafkaSettings::from_cli(None, &overrides, &[missing]).unwrap_err();
    shown.error("unreadable file", &err);
    let err = KafkaSettings::from_cli(None, &overrides, &[dir.path().to_owned()]).unwrap_err();
    shown.error("a directory as file", &err);

    // 4. Settings librdkafka refuses: an unknown property, a Java-only one
    //    holding the password, a bad value that happens to be the password.
    for (key, value) in [
        ("no.such.property", "1".to_owned()),
        (
            "sasl.jaas.config",
            format!("PlainLoginModule required password=\"{PASSWORD}\";"),
        ),
        ("socket.timeout.ms", PASSWORD.to_owned()),
        ("ssl.truststore.password", PASSWORD.to_owned()),
    ] {
        let mut s = settings.clone();
        s.set(key, value);
        let err = s.client_config().unwrap_err();
        shown.error(&format!("refused {key}"), &err);
    }

    // 5. The same through a plain rdkafka ClientConfig handed to the library.
    let mut refused = client_config();
    refused.set("socket.timeout.ms", PASSWORD);
    let err = ChangelogProducer::new(&refused).unwrap_err();
    shown.error("producer with a refused setting", &err);
    let err = state_changelog::topic_partitions(&refused, "t", Duration::from_secs(1)).unwrap_err();
    shown.error("metadata client with a refused setting", &err);
    let err = RecoveryManager::new(&refused, RecoveryConfig::default(), Arc::new(AtomicBool::new(false))).unwrap_err();
    shown.error("recovery consumer with a refused setting", &err);
    let err = Restorer::start(&refused, "group", RecoveryConfig::default()).unwrap_err();
    shown.error("restorer with a refused setting", &err);
    let err = state_changelog::create_topic(&refused, "t", 1, 1, &[], Duration::from_secs(1)).unwrap_err();
    shown.error("admin client with a refused setting", &err);

    // 6. Unreachable broker, with every secret set: metadata, admin,
    //    produce + flush, recovery.
    let kafka = settings.client_config().expect("valid settings");
    shown.debug("ClientConfig", &kafka);
    let err = state_changelog::topic_partitions(&kafka, "t", Duration::from_secs(2)).unwrap_err();
    shown.error("metadata, unreachable", &err);
    let err = state_changelog::create_topic(&kafka, "t", 1, 1, &[], Duration::from_secs(2)).unwrap_err();
    shown.error("admin, unreachable", &err);
    let producer = Arc::new(ChangelogProducer::new(&kafka).unwrap());
    shown.debug("ChangelogProducer", &producer);
    let p = Arc::new(state_core::MemoryPartition::new());
    let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, Some(producer.sink("t", 0)));
    t.set("k", &1u64, b"key").unwrap();
    t.prepare(Some(&ProcessedOffsets::new().with("input", 1))).unwrap();
    let err = producer.flush(Duration::from_secs(3)).unwrap_err();
    shown.error("flush, unreachable", &err);
    let recovery = RecoveryManager::new(
        &kafka,
        RecoveryConfig {
            metadata_timeout: Duration::from_secs(2),
            // Unreachable stays unreachable: retrying longer shows nothing more.
            retry_timeout: Duration::from_secs(2),
            ..RecoveryConfig::default()
        },
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let err = recovery
        .recover(
            vec![RecoveryPartition {
                partition: Arc::new(state_core::MemoryPartition::new()),
                changelog: state_core::TopicPartition::new("t", 0),
                committed_offsets: Default::default(),
                location: "memory".into(),
                until: None,
                replay_check: None,
            }],
            &mut |_| {},
        )
        .unwrap_err();
    shown.error("recovery, unreachable", &err);
    drop(recovery);
    drop(t);
    drop(producer);
    std::thread::sleep(Duration::from_millis(200));

    // Nothing shown contains the password.
    for (what, text) in &shown.0 {
        assert!(!text.contains(PASSWORD), "{what} shows the password:\n{text}");
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    for line in logs.lines() {
        assert!(!line.contains(PASSWORD), "a log line shows the password:\n{line}");
    }
    // The checks looked at something: librdkafka's debug log (its
    // configuration dump included), and errors that say what is wrong.
    assert!(
        logs.contains("librdkafka") && logs.contains("sasl.password"),
        "librdkafka debug log captured"
    );
    assert!(logs.lines().count() > 100, "{} log lines", logs.lines().count());
    let all: String = shown.0.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
    for needle in [
        "no.such.property",
        "line 2",
        "-X argument number 1",
        "no-such.properties",
        "127.0.0.1:1",
    ] {
        assert!(all.contains(needle), "the errors name {needle}");
    }
    assert!(all.contains("[redacted]"));
}
