//! [`KafkaClientContext`]: the rdkafka client context of every client this
//! crate creates. It forwards librdkafka's log to `tracing` and remembers
//! the last broker connection failure (TLS handshake, authentication,
//! refused connection), so an error that would otherwise say only "timed
//! out" says why and which broker.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::error::{BrokerFailure, ChangelogError, FailureKind, SettingsError};
use crate::kafka::settings::{redact_values, secret_values};

/// The client context of every Kafka client this crate creates (the
/// changelog producer's [`crate::DeliveryTracker`] wraps one).
///
/// * librdkafka's log lines go to `tracing` (target `librdkafka`) at the
///   matching level, with the value of every secret setting of the client
///   replaced by `[redacted]`.
/// * The last broker connection failure is kept
///   ([`KafkaClientContext::last_failure`]), and errors of this crate
///   name it (see [`crate::ChangelogError::Broker`]).
///
/// rdkafka delivers log lines when the client is polled; the crate polls
/// before it reports a failure.
#[derive(Clone, Default)]
pub struct KafkaClientContext {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    secrets: Vec<String>,
    last: Mutex<Option<BrokerFailure>>,
    /// Broker failures already logged (from librdkafka's log), so the
    /// error events that repeat them are not logged again at error level.
    logged: Mutex<std::collections::VecDeque<String>>,
}

impl fmt::Debug for KafkaClientContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaClientContext")
            .field("last_failure", &*self.inner.last.lock())
            .finish_non_exhaustive()
    }
}

impl KafkaClientContext {
    /// A context for a client created from `config`: it remembers the
    /// values of `config`'s secret settings to keep them out of log lines.
    pub fn new(config: &ClientConfig) -> Self {
        KafkaClientContext {
            inner: Arc::new(Inner {
                secrets: secret_values(config),
                last: Mutex::new(None),
                logged: Mutex::default(),
            }),
        }
    }

    /// The last broker connection failure librdkafka reported, if any.
    pub fn last_failure(&self) -> Option<BrokerFailure> {
        self.inner.last.lock().clone()
    }

    fn redact(&self, text: &str) -> String {
        redact_values(text, self.inner.secrets.iter().map(String::as_str))
    }

    fn record(&self, failure: BrokerFailure) {
        let mut last = self.inner.last.lock();
        // "1/1 brokers are down" says less than the failure before it.
        let weaker = failure.reason.contains("brokers are down")
            && last.as_ref().is_some_and(|l| !l.reason.contains("brokers are down"));
        if !weaker {
            *last = Some(failure);
        }
    }
}

/// Parses a librdkafka broker failure line: `[thrd:...]: PROTO://host:port/id: reason`,
/// or `host:port/id: reason` (librdkafka names plaintext brokers without
/// the scheme); the thread prefix is optional.
pub(crate) fn parse_failure(message: &str) -> Option<BrokerFailure> {
    let mut rest = message.trim();
    if rest.starts_with("[thrd:") {
        rest = rest.split_once("]: ").map_or(rest, |(_, r)| r);
    }
    let (broker, reason) = rest.split_once(": ")?;
    match broker.split_once("://") {
        Some((scheme, _)) => {
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
        }
        None if is_plain_broker_name(broker) => {}
        None => return None,
    }
    let lower = reason.to_ascii_lowercase();
    let kind = if lower.contains("ssl") || lower.contains("tls") || lower.contains("certificate") {
        FailureKind::Tls
    } else if lower.contains("sasl") || lower.contains("authentication") {
        FailureKind::Authentication
    } else {
        FailureKind::Connection
    };
    Some(BrokerFailure {
        broker: broker.to_owned(),
        kind,
        reason: reason.to_owned(),
    })
}

/// `host:port/id` or `host:port/bootstrap`, as librdkafka names a broker.
fn is_plain_broker_name(name: &str) -> bool {
    let Some((address, id)) = name.rsplit_once('/') else {
        return false;
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && !host.contains(char::is_whitespace)
        && port.parse::<u16>().is_ok()
        && (id == "bootstrap" || id.parse::<i32>().is_ok())
}

impl ClientContext for KafkaClientContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let message = self.redact(log_message);
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "librdkafka: {fac} {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {fac} {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}"),
        }
        let serious = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        );
        if serious || fac == "FAIL" {
            if let Some(f) = parse_failure(&message) {
                if serious {
                    let mut logged = self.inner.logged.lock();
                    if logged.len() >= 16 {
                        logged.pop_front();
                    }
                    logged.push_back(format!("{}: {}", f.broker, f.reason));
                }
                self.record(f);
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let reason = self.redact(reason);
        let failure = parse_failure(&reason);
        // "All brokers are down" repeats on every reconnect attempt, and a
        // broker failure was usually logged already (a FAIL line, at error
        // level): those go to debug here.
        let repeated = self.inner.logged.lock().iter().any(|l| *l == reason);
        if repeated || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            tracing::debug!(target: "librdkafka", "librdkafka: {error}: {reason}");
        } else {
            tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
        }
        if let Some(f) = failure {
            self.record(f);
        }
    }
}

impl ConsumerContext for KafkaClientContext {}

impl ChangelogError {
    /// The error of a failed Kafka call made by a client created from
    /// `config` (if known) with context `context`:
    /// * a refused setting becomes [`ChangelogError::Settings`], without
    ///   the value of any secret setting of `config`;
    /// * a timeout or transport error after a broker connection failure
    ///   becomes [`ChangelogError::Broker`], naming the broker and cause;
    /// * anything else is [`ChangelogError::Kafka`].
    pub(crate) fn from_kafka(
        operation: &'static str,
        source: KafkaError,
        config: Option<&ClientConfig>,
        context: Option<&KafkaClientContext>,
    ) -> Self {
        if let KafkaError::ClientConfig(_, desc, key, _) = &source {
            let empty = ClientConfig::new();
            return ChangelogError::Settings(SettingsError::refused(key, desc, config.unwrap_or(&empty)));
        }
        if is_connectivity(&source) {
            if let Some(failure) = context.and_then(KafkaClientContext::last_failure) {
                return ChangelogError::Broker {
                    operation,
                    source,
                    failure: Box::new(failure),
                };
            }
        }
        ChangelogError::Kafka { operation, source }
    }
}

/// True for errors that mean "no usable broker connection".
fn is_connectivity(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::TimedOutQueue
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_parsed_and_classified() {
        let f = parse_failure(
            "[thrd:ssl://127.0.0.1:9093/bootstrap]: ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: \
             error:0A000086:SSL routines::certificate verify failed",
        )
        .unwrap();
        assert_eq!(f.broker, "ssl://127.0.0.1:9093/bootstrap");
        assert_eq!(f.kind, FailureKind::Tls);
        assert!(f
            .to_string()
            .contains("TLS connection to broker ssl://127.0.0.1:9093/bootstrap failed"));
        let f = parse_failure(
            "sasl_ssl://k:9094/1: SASL authentication error: Authentication failed during authentication due to invalid credentials",
        )
        .unwrap();
        assert_eq!(f.kind, FailureKind::Authentication);
        // Plaintext brokers are named without the scheme.
        let f = parse_failure(
            "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: \
             Connection refused (after 0ms in state CONNECT)",
        )
        .unwrap();
        assert_eq!(
            (f.broker.as_str(), f.kind),
            ("127.0.0.1:1/bootstrap", FailureKind::Connection)
        );
        assert!(f.reason.contains("Connection refused"), "{f}");
        assert!(parse_failure("kafka-2.example.com:9092/2: Disconnected").is_some());
        assert!(parse_failure("Topic x: partition count changed").is_none());
        assert!(parse_failure("127.0.0.1:x/1: no port").is_none());
        let f =
            parse_failure("plaintext://127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused")
                .unwrap();
        assert_eq!(f.kind, FailureKind::Connection);
        assert!(parse_failure("Configuration property x is a consumer property").is_none());
    }

    #[test]
    fn secrets_are_redacted_and_weaker_failures_do_not_replace_stronger_ones() {
        let mut c = ClientConfig::new();
        c.set("sasl.password", "hunter2-x").set("sasl.username", "u");
        let ctx = KafkaClientContext::new(&c);
        ctx.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            "sasl_ssl://k:9094/1: SASL authentication error: bad password hunter2-x",
        );
        let f = ctx.last_failure().unwrap();
        assert!(!f.reason.contains("hunter2-x"), "{f}");
        ctx.error(
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(ctx.last_failure().unwrap().kind, FailureKind::Authentication);
    }
}
