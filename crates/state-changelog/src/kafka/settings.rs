//! [`KafkaSettings`]: librdkafka client properties from the command line
//! (`--brokers`, `-X key=value`), Java-style `.properties` files
//! (`--kafka-config FILE`) or code, with secrets kept out of every message.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

use crate::error::SettingsError;

/// What replaces a secret value in `Debug`, `Display`, logs and errors.
pub const REDACTED: &str = "[redacted]";

/// True if the value of librdkafka property `key` is a secret that must
/// never be shown: `sasl.password`, `ssl.key.password`,
/// `ssl.keystore.password`, any key ending in `password` or `secret`
/// (`sasl.oauthbearer.client.secret`, ...), and the properties that carry
/// key material or credentials inline (`ssl.key.pem`,
/// `sasl.oauthbearer.config`, Java's `sasl.jaas.config`). Case-insensitive.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.ends_with("password")
        || key.ends_with("secret")
        || matches!(
            key.as_str(),
            "ssl.key.pem" | "ssl_key" | "sasl.oauthbearer.config" | "sasl.jaas.config"
        )
}

/// Where a setting came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Code,
    Brokers,
    Override,
    File { path: PathBuf, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Code => f.write_str("set in code"),
            Origin::Brokers => f.write_str("from --brokers"),
            Origin::Override => f.write_str("from -X"),
            Origin::File { path, line } => write!(f, "from {} line {line}", path.display()),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    origin: Origin,
}

impl SettingsError {
    /// librdkafka refused property `key` of `config` with message `desc`.
    pub(crate) fn refused(key: &str, desc: &str, config: &ClientConfig) -> Self {
        SettingsError::Invalid {
            key: key.to_owned(),
            origin: "client configuration".to_owned(),
            reason: redact_values(desc, secret_values(config).iter().map(String::as_str)),
            hint: java_hint(key).map(|h| format!("; {h}")).unwrap_or_default(),
        }
    }
}

/// The values of the secret settings of `config`.
pub(crate) fn secret_values(config: &ClientConfig) -> Vec<String> {
    config
        .config_map()
        .keys()
        .filter(|k| is_secret_key(k))
        .filter_map(|k| config.get(k))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Kafka client settings: librdkafka properties (see librdkafka's
/// CONFIGURATION.md) by name, as `kcat -X` takes them.
///
/// Built from the command line with [`KafkaSettings::from_cli`]: properties
/// files first (in order), then `-X key=value` arguments (in order), then
/// `--brokers` as `bootstrap.servers`; a later value wins. Applied to an
/// rdkafka [`ClientConfig`] with [`KafkaSettings::client_config`] (which
/// validates every property with librdkafka) or
/// [`KafkaSettings::apply_to`].
///
/// `Debug` and `Display` show every property but replace secret values
/// (see [`is_secret_key`]) with `[redacted]`, and no [`SettingsError`]
/// contains one.
///
/// # Library users
///
/// The library's Kafka-facing types take an rdkafka [`ClientConfig`]: the
/// state manager (`StateStoreManager::new(ManagerConfig, ClientConfig)`),
/// [`crate::ChangelogProducer::new`], [`crate::RecoveryManager::new`],
/// [`crate::Restorer::start`] and the topic functions. Pass the same
/// librdkafka properties there, built by hand or through this type:
///
/// ```
/// use state_changelog::KafkaSettings;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut settings = KafkaSettings::new();
/// settings
///     .set("bootstrap.servers", "kafka-1.example.com:9093")
///     .set("security.protocol", "sasl_ssl")
///     .set("ssl.ca.location", "/etc/kafka/ca.pem")
///     .set("sasl.mechanisms", "SCRAM-SHA-512")
///     .set("sasl.username", "orders-app")
///     .set("sasl.password", "from-your-secret-store");
/// // Or: settings.load_properties(Path::new("/etc/orders/kafka.properties"))?;
/// assert!(!format!("{settings:?}").contains("from-your-secret-store"));
/// let client = settings.client_config()?; // rdkafka::config::ClientConfig
/// // let manager = StateStoreManager::new(ManagerConfig::new("orders", "/var/lib/orders"), client)?;
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
///
/// TLS and SASL need rdkafka built with its `ssl` feature (this workspace
/// enables it; a downstream crate that depends on rdkafka directly gets it
/// through Cargo's feature unification).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    entries: BTreeMap<String, Entry>,
}

impl KafkaSettings {
    /// No settings.
    pub fn new() -> Self {
        KafkaSettings::default()
    }

    /// Settings from a command line: each of `files` (Java-style
    /// `.properties`) in order, then each `-X` argument (`key=value`) in
    /// order, then `brokers` (if given) as `bootstrap.servers`. A later
    /// value of the same property wins.
    pub fn from_cli(brokers: Option<&str>, overrides: &[String], files: &[PathBuf]) -> Result<Self, SettingsError> {
        let mut s = KafkaSettings::new();
        for f in files {
            s.load_properties(f)?;
        }
        for (i, arg) in overrides.iter().enumerate() {
            s.apply_override(i + 1, arg)?;
        }
        if let Some(b) = brokers {
            s.insert("bootstrap.servers", b, Origin::Brokers);
        }
        Ok(s)
    }

    fn insert(&mut self, key: &str, value: &str, origin: Origin) {
        self.entries.insert(
            key.trim().to_owned(),
            Entry {
                value: value.to_owned(),
                origin,
            },
        );
    }

    /// Sets librdkafka property `key` to `value`.
    pub fn set(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> &mut Self {
        self.insert(key.as_ref(), value.as_ref(), Origin::Code);
        self
    }

    /// Sets `bootstrap.servers`.
    pub fn set_brokers(&mut self, brokers: impl AsRef<str>) -> &mut Self {
        self.insert("bootstrap.servers", brokers.as_ref(), Origin::Brokers);
        self
    }

    /// Removes a property.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.entries.remove(key);
        self
    }

    /// The value of `key`, if set. Careful: this is the real value, secrets
    /// included.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// `bootstrap.servers`, if set.
    pub fn brokers(&self) -> Option<&str> {
        self.get("bootstrap.servers").filter(|b| !b.trim().is_empty())
    }

    /// True if no property is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names of the properties set, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Applies one `-X key=value` argument (`index`: its 1-based position,
    /// for the error message). The key is everything before the first `=`.
    pub fn apply_override(&mut self, index: usize, arg: &str) -> Result<&mut Self, SettingsError> {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                self.insert(key, value, Origin::Override);
                Ok(self)
            }
            _ => Err(SettingsError::BadOverride { index }),
        }
    }

    /// Reads a Java-style `.properties` file (see
    /// [`KafkaSettings::parse_properties`]). UTF-8, or ISO-8859-1 (the Java
    /// default) when the file is not valid UTF-8.
    pub fn load_properties(&mut self, path: &Path) -> Result<&mut Self, SettingsError> {
        let bytes = std::fs::read(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
        };
        self.parse_properties(&text, path)
    }

    /// Parses Java `.properties` text; `path` names it in errors.
    ///
    /// * Blank lines and lines starting with `#` or `!` are skipped.
    /// * `key=value`, `key: value` and `key value`; whitespace around the
    ///   separator is ignored, trailing whitespace of the value is kept.
    /// * A line ending in an odd number of backslashes continues on the
    ///   next line (whose leading whitespace is skipped).
    /// * Escapes: `\t \n \r \f \\ \= \: \# \! \ ` and `\uXXXX`; any other
    ///   escaped character stands for itself.
    /// * A line with a key but no separator and no value is an error (Java
    ///   would read an empty value; here it is almost always a mistake).
    pub fn parse_properties(&mut self, text: &str, path: &Path) -> Result<&mut Self, SettingsError> {
        let syntax = |line: usize, problem: &'static str| SettingsError::Syntax {
            path: path.to_owned(),
            line,
            problem,
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let first = i + 1;
            let mut logical = String::new();
            let mut line = lines[i].trim_start_matches([' ', '\t', '\u{c}']);
            i += 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            // Join continuation lines.
            loop {
                let trailing = line.len() - line.trim_end_matches('\\').len();
                if trailing % 2 == 1 {
                    logical.push_str(&line[..line.len() - 1]);
                    match lines.get(i) {
                        Some(next) => {
                            line = next.trim_start_matches([' ', '\t', '\u{c}']);
                            i += 1;
                        }
                        None => break,
                    }
                } else {
                    logical.push_str(line);
                    break;
                }
            }
            let (key, value) = split_property(&logical).map_err(|problem| syntax(first, problem))?;
            if key.is_empty() {
                return Err(syntax(first, "the key is empty"));
            }
            self.insert(
                &key,
                &value,
                Origin::File {
                    path: path.to_owned(),
                    line: first,
                },
            );
        }
        Ok(self)
    }

    /// Sets every property on `config` (later calls to `config.set` win).
    /// Does not validate; see [`KafkaSettings::client_config`].
    pub fn apply_to(&self, config: &mut ClientConfig) {
        for (k, e) in &self.entries {
            config.set(k, &e.value);
        }
    }

    /// Checks every property with librdkafka (names and value types)
    /// without connecting anywhere.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (k, e) in &self.entries {
            let mut one = ClientConfig::new();
            one.set(k, &e.value);
            if let Err(err) = one.create_native_config() {
                return Err(self.invalid(k, &err));
            }
        }
        Ok(())
    }

    /// A validated rdkafka [`ClientConfig`] with every property set.
    pub fn client_config(&self) -> Result<ClientConfig, SettingsError> {
        self.validate()?;
        let mut c = ClientConfig::new();
        self.apply_to(&mut c);
        Ok(c)
    }

    fn invalid(&self, key: &str, err: &KafkaError) -> SettingsError {
        let reason = match err {
            KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
            other => other.to_string(),
        };
        SettingsError::Invalid {
            key: key.to_owned(),
            origin: self
                .entries
                .get(key)
                .map_or_else(|| Origin::Code.to_string(), |e| e.origin.to_string()),
            reason: self.redact(&reason),
            hint: java_hint(key).map(|h| format!("; {h}")).unwrap_or_default(),
        }
    }

    /// `text` with the value of every secret property replaced by
    /// `[redacted]`: for messages from librdkafka or the broker that might
    /// quote a setting.
    pub fn redact(&self, text: &str) -> String {
        redact_values(
            text,
            self.entries
                .iter()
                .filter(|(k, _)| is_secret_key(k))
                .map(|(_, e)| e.value.as_str()),
        )
    }
}

/// Replaces every occurrence of each non-empty value in `values` (longest
/// first) with [`REDACTED`].
pub(crate) fn redact_values<'a>(text: &str, values: impl Iterator<Item = &'a str>) -> String {
    let mut values: Vec<&str> = values.filter(|v| !v.is_empty()).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_owned();
    for v in values {
        if out.contains(v) {
            out = out.replace(v, REDACTED);
        }
    }
    out
}

/// Advice for Java client settings that librdkafka does not know.
fn java_hint(key: &str) -> Option<&'static str> {
    match key {
        "sasl.jaas.config" => Some(
            "that is a Java client setting; librdkafka takes sasl.mechanisms, sasl.username and sasl.password",
        ),
        "ssl.truststore.location" | "ssl.truststore.password" | "ssl.truststore.type" => Some(
            "librdkafka reads CA certificates as PEM: set ssl.ca.location (export a JKS truststore with \
             `keytool -exportcert -rfc`)",
        ),
        "ssl.keystore.type" => Some("librdkafka reads a PKCS#12 keystore (ssl.keystore.location) or PEM files (ssl.certificate.location, ssl.key.location)"),
        "sasl.mechanism" => Some("librdkafka spells it sasl.mechanisms"),
        _ => None,
    }
}

/// Splits one logical properties line into (key, value), unescaping both.
fn split_property(line: &str) -> Result<(String, String), &'static str> {
    let mut chars = line.chars().peekable();
    let mut key = String::new();
    let mut separated = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.push(unescape(&mut chars)?),
            '=' | ':' => {
                separated = true;
                break;
            }
            ' ' | '\t' | '\u{c}' => {
                // Whitespace ends the key; an `=` or `:` may still follow.
                while matches!(chars.peek(), Some(' ' | '\t' | '\u{c}')) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('=' | ':')) {
                    chars.next();
                }
                separated = true;
                break;
            }
            c => key.push(c),
        }
    }
    while matches!(chars.peek(), Some(' ' | '\t' | '\u{c}')) {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(unescape(&mut chars)?),
            c => value.push(c),
        }
    }
    if !separated {
        return Err("there is no '=' (or ':') between key and value");
    }
    Ok((key, value))
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    match chars.next() {
        Some('t') => Ok('\t'),
        Some('n') => Ok('\n'),
        Some('r') => Ok('\r'),
        Some('f') => Ok('\u{c}'),
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            if hex.len() != 4 {
                return Err("a \\u escape needs four hex digits");
            }
            u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or("a \\u escape needs four hex digits")
        }
        Some(c) => Ok(c),
        None => Ok('\\'),
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, e) in &self.entries {
            if is_secret_key(k) {
                m.entry(k, &REDACTED);
            } else {
                m.entry(k, &e.value);
            }
        }
        m.finish()
    }
}

/// `key=value` pairs separated by `, `, secrets as `[redacted]`.
impl fmt::Display for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, e)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let v = if is_secret_key(k) { REDACTED } else { e.value.as_str() };
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Pa55";

    fn parse(text: &str) -> Result<KafkaSettings, SettingsError> {
        let mut s = KafkaSettings::new();
        s.parse_properties(text, Path::new("client.properties"))?;
        Ok(s)
    }

    #[test]
    fn secret_keys() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.truststore.password",
            "sasl.oauthbearer.client.secret",
            "my.custom.SECRET",
            "ssl.key.pem",
            "sasl.jaas.config",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "sasl.username",
            "ssl.key.location",
            "bootstrap.servers",
            "security.protocol",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn properties_syntax() {
        let s = parse(
            "# comment\n\
             ! also a comment\n\
             \n\
             bootstrap.servers = b1:9093,\\\n    b2:9093\n\
             security.protocol: SSL\n\
             sasl.username alice\n\
             ssl.ca.location=/etc/ca\\u0020dir/ca.pem\n\
             client.id=a\\=b\\:c\\\\d \n\
             empty.value=\n\
             key\\ with\\ space=x\n",
        )
        .unwrap();
        assert_eq!(s.get("bootstrap.servers"), Some("b1:9093,b2:9093"));
        assert_eq!(s.get("security.protocol"), Some("SSL"));
        assert_eq!(s.get("sasl.username"), Some("alice"));
        assert_eq!(s.get("ssl.ca.location"), Some("/etc/ca dir/ca.pem"));
        assert_eq!(s.get("client.id"), Some("a=b:c\\d "));
        assert_eq!(s.get("empty.value"), Some(""));
        assert_eq!(s.get("key with space"), Some("x"));
        assert_eq!(s.keys().count(), 7);
    }

    #[test]
    fn later_values_win_and_brokers_win_last() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.properties");
        std::fs::write(&file, "bootstrap.servers=file:1\nclient.id=file\nacks=1\n").unwrap();
        let s = KafkaSettings::from_cli(
            Some("cli:9092"),
            &["client.id=x".into(), "acks=all".into(), "client.id=y".into()],
            &[file],
        )
        .unwrap();
        assert_eq!(s.brokers(), Some("cli:9092"));
        assert_eq!(s.get("client.id"), Some("y"));
        assert_eq!(s.get("acks"), Some("all"));
    }

    #[test]
    fn bad_lines_name_the_line_but_not_its_text() {
        for (text, line) in [
            (format!("a=b\n{SECRET}\n"), 2),
            (format!("=\\u12{SECRET}\n"), 1),
            (format!("# c\n\nx=\\u00zz{SECRET}\n"), 3),
        ] {
            let err = parse(&text).unwrap_err();
            let msg = format!("{err} {err:?}");
            assert!(msg.contains(&format!("line {line}")), "{msg}");
            assert!(msg.contains("client.properties"), "{msg}");
            assert!(!msg.contains(SECRET), "{msg}");
        }
    }

    #[test]
    fn bad_overrides_are_not_echoed() {
        let mut s = KafkaSettings::new();
        let err = s.apply_override(3, SECRET).unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("number 3") && !msg.contains(SECRET), "{msg}");
        assert!(s.apply_override(1, "=x").is_err());
        s.apply_override(2, "sasl.password=a=b").unwrap();
        assert_eq!(s.get("sasl.password"), Some("a=b"), "the value may contain '='");
    }

    #[test]
    fn debug_and_display_redact_secrets() {
        let mut s = KafkaSettings::new();
        s.set("sasl.password", SECRET)
            .set("ssl.key.password", SECRET)
            .set("custom.secret", SECRET)
            .set("sasl.username", "alice");
        for shown in [format!("{s:?}"), format!("{s:#?}"), s.to_string()] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains("alice") && shown.contains(REDACTED), "{shown}");
        }
        assert_eq!(s.redact(&format!("x {SECRET} y")), format!("x {REDACTED} y"));
    }

    /// The passthrough: `sasl.*` (and TLS) settings from a properties file
    /// and `-X` reach librdkafka's own configuration unchanged, and the
    /// build has what they need (TLS, SASL PLAIN and SCRAM).
    #[test]
    fn sasl_and_tls_settings_reach_librdkafka_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.properties");
        std::fs::write(
            &file,
            format!(
                "# a Java-style client file\n\
                 security.protocol = SASL_SSL\n\
                 sasl.mechanisms: SCRAM-SHA-512\n\
                 sasl.username=orders-app\n\
                 sasl.password={SECRET}\\u0021\n\
                 ssl.ca.location=/etc/kafka/ca.pem\n"
            ),
        )
        .unwrap();
        let s = KafkaSettings::from_cli(
            Some("k1:9093,k2:9093"),
            &[
                "sasl.oauthbearer.config=principal=orders".into(),
                "sasl.kerberos.min.time.before.relogin=1".into(),
                "sasl.username=orders-app-2".into(),
            ],
            &[file],
        )
        .unwrap();
        let native = s.client_config().unwrap().create_native_config().unwrap();
        let expected = [
            ("bootstrap.servers", "k1:9093,k2:9093"),
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "orders-app-2"),
            ("sasl.password", &format!("{SECRET}!")),
            ("ssl.ca.location", "/etc/kafka/ca.pem"),
            ("sasl.oauthbearer.config", "principal=orders"),
            ("sasl.kerberos.min.time.before.relogin", "1"),
        ];
        for (key, value) in expected {
            // librdkafka normalises enum values to lower case.
            assert_eq!(native.get(key).unwrap(), value, "{key}");
        }
        let features = native.get("builtin.features").unwrap();
        for f in ["ssl", "sasl_plain", "sasl_scram"] {
            assert!(
                features.split(',').any(|x| x == f),
                "librdkafka built with {f}: {features}"
            );
        }
    }

    #[test]
    fn librdkafka_validates_names_and_values_without_echoing_secrets() {
        let mut s = KafkaSettings::new();
        s.set("sasl.password", SECRET).set("no.such.property", "1");
        let err = s.client_config().unwrap_err();
        assert!(err.to_string().contains("no.such.property"), "{err}");
        assert!(err.to_string().contains("set in code"), "{err}");

        let mut s = KafkaSettings::new();
        s.apply_override(1, &format!("sasl.jaas.config=PlainLoginModule password=\"{SECRET}\";"))
            .unwrap();
        let err = s.validate().unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("from -X") && msg.contains("sasl.username"), "{msg}");
        assert!(!msg.contains(SECRET), "{msg}");

        // An invalid value of a secret-looking key is not echoed either.
        let mut s = KafkaSettings::new();
        s.set("socket.timeout.ms", "x").set("retry.backoff.secret", SECRET);
        let err = s.validate().unwrap_err();
        assert!(!format!("{err} {err:?}").contains(SECRET));

        let mut ok = KafkaSettings::new();
        ok.set_brokers("localhost:9092").set("sasl.password", SECRET);
        let c = ok.client_config().unwrap();
        assert_eq!(c.get("sasl.password"), Some(SECRET));
    }
}
