//! A TLS-terminated tansu broker for tests: a throwaway CA and server
//! certificate made with the `openssl` CLI, tansu on a plain loopback port
//! and stunnel4 terminating TLS in front of it. tansu's advertised listener
//! is the TLS address, so every connection a client makes (bootstrap and
//! the broker from metadata) goes through TLS.
//!
//! Needs `TANSU_BIN` (set by `cargo xtask test`), `stunnel4` (or
//! `stunnel`) and `openssl` on PATH; [`TlsBroker::start`] returns `None`
//! with a SKIPPED line on stderr when one is missing. Also used by the
//! statectl tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) on drop, so a failing test leaves
/// no broker behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tansu behind stunnel, with the certificates a client needs. Both
/// processes are killed on drop.
pub struct TlsBroker {
    /// Held to be killed when the broker is dropped.
    _tansu: Proc,
    /// Held to be killed when the broker is dropped.
    _stunnel: Proc,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, the TLS address (bootstrap and advertised).
    pub address: String,
    /// PEM of the CA that signed the broker's certificate.
    pub ca: PathBuf,
    /// PEM of another CA, which did not.
    pub other_ca: PathBuf,
}

fn on_path(names: &[&'static str]) -> Option<&'static str> {
    let path = std::env::var_os("PATH")?;
    names
        .iter()
        .copied()
        .find(|n| std::env::split_paths(&path).any(|d| d.join(n).is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA (`NAME.pem`, `NAME.key`).
fn make_ca(dir: &Path, name: &str, subject: &str) {
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn wait_listening(address: &str, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(address).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on {address}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {address} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_tansu(tansu: &Path, dir: &Path, plain_port: u16, advertised: &str, authentication: bool) -> Child {
    let mut cmd = Command::new(tansu);
    cmd.args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{plain_port}")])
        .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
        .args(["--storage-engine", "sqlite://tansu.db"]);
    if authentication {
        cmd.arg("--authentication");
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .expect("tansu log");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", tansu.display()))
}

impl TlsBroker {
    /// Starts everything, or says why not and returns `None`.
    pub fn start() -> Option<TlsBroker> {
        Self::start_with_users(&[])
    }

    /// Like [`TlsBroker::start`]; with `users` (name, password), tansu
    /// requires SASL SCRAM-SHA-512 authentication and knows these users.
    /// (tansu creates users through the broker, which refuses that once
    /// authentication is on: they are created on a first run without it,
    /// then the broker restarts with `--authentication` on the same
    /// storage.)
    pub fn start_with_users(users: &[(&str, &str)]) -> Option<TlsBroker> {
        let tansu = match std::env::var("TANSU_BIN") {
            Ok(t) if !t.is_empty() && Path::new(&t).is_file() => PathBuf::from(t),
            _ => {
                eprintln!(
                    "SKIPPED: TANSU_BIN is not set (or not a file); `cargo xtask test` sets it. \
                     No TLS broker to test against"
                );
                return None;
            }
        };
        let Some(stunnel) = on_path(&["stunnel4", "stunnel"]) else {
            eprintln!("SKIPPED: stunnel4 is not installed (apt-get install stunnel4); no TLS terminator");
            return None;
        };
        if on_path(&["openssl"]).is_none() {
            eprintln!("SKIPPED: the openssl CLI is not installed (apt-get install openssl); cannot make certificates");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path();
        make_ca(d, "ca", "/CN=kafka-state test CA");
        make_ca(d, "other-ca", "/CN=some other CA");
        run(
            d,
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        run(
            d,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );

        let plain_port = free_port();
        let tls_port = free_port();
        let address = format!("127.0.0.1:{tls_port}");
        std::fs::write(
            d.join("stunnel.conf"),
            format!(
                "foreground = yes\npid =\n[kafka]\naccept = {address}\nconnect = 127.0.0.1:{plain_port}\n\
                 cert = {}\nkey = {}\n",
                d.join("server.pem").display(),
                d.join("server.key").display()
            ),
        )
        .expect("write stunnel.conf");
        let stunnel_log = d.join("stunnel.log");
        let mut stunnel = Proc(
            Command::new(stunnel)
                .arg(d.join("stunnel.conf"))
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stunnel_log).expect("stunnel log"))
                .spawn()
                .unwrap_or_else(|e| panic!("starting {stunnel}: {e}")),
        );
        let tansu_log = d.join("tansu.log");
        let plain = format!("127.0.0.1:{plain_port}");
        let mut child = Proc(spawn_tansu(&tansu, d, plain_port, &address, false));
        if !users.is_empty() {
            wait_listening(&plain, &mut child.0, "tansu", &tansu_log);
            for (name, password) in users {
                let out = Command::new(&tansu)
                    .args(["user", "create", "--broker", &format!("tcp://{plain}"), name, password])
                    .current_dir(d)
                    .output()
                    .expect("running tansu user create");
                assert!(
                    out.status.success(),
                    "tansu user create {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            drop(child);
            child = Proc(spawn_tansu(&tansu, d, plain_port, &address, true));
        }
        let mut tansu = child;
        wait_listening(&plain, &mut tansu.0, "tansu", &tansu_log);
        wait_listening(&address, &mut stunnel.0, "stunnel", &stunnel_log);
        eprintln!("TLS broker: tansu on {plain}, stunnel (TLS) on {address}, advertised {address}");
        Some(TlsBroker {
            _tansu: tansu,
            _stunnel: stunnel,
            ca: d.join("ca.pem"),
            other_ca: d.join("other-ca.pem"),
            dir,
            address,
        })
    }

    /// The directory holding the certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// librdkafka properties of a client that reaches the broker over TLS,
    /// verifying its certificate against `ca`.
    pub fn properties(&self, ca: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("bootstrap.servers", self.address.clone()),
            ("security.protocol", "ssl".into()),
            ("ssl.ca.location", ca.display().to_string()),
            // librdkafka's default, spelled out: the certificate must name
            // the host (here IP 127.0.0.1 in its subjectAltName).
            ("ssl.endpoint.identification.algorithm", "https".into()),
            ("enable.ssl.certificate.verification", "true".into()),
        ]
    }

    /// `-X` arguments of a client that authenticates as `user` with SASL
    /// SCRAM-SHA-512 over TLS (verifying the broker against `ca`).
    pub fn sasl_overrides(&self, ca: &Path, user: &str, password: &str) -> Vec<String> {
        let mut args: Vec<String> = self
            .properties(ca)
            .into_iter()
            .filter(|(k, _)| *k != "security.protocol")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        args.extend([
            "security.protocol=sasl_ssl".to_owned(),
            "sasl.mechanisms=SCRAM-SHA-512".to_owned(),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
        ]);
        args
    }

    /// An rdkafka client configuration from [`TlsBroker::properties`].
    pub fn client(&self, ca: &Path) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        for (k, v) in self.properties(ca) {
            c.set(k, v);
        }
        c
    }
}
