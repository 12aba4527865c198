//! moto (PyPI `moto[server]`): an S3-compatible server on loopback for the
//! snapshot tests that go through S3 (`crates/state-snapshot/tests/s3_moto.rs`).
//! Installed into a virtualenv under `$HOME/.cache/kafka-state/moto` while
//! the tests build, started on a free port, stopped when the guard drops.
//! It is a test double only: it keeps objects in memory and checks no
//! signatures.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::free_port;
use crate::prereq::cache_dir;

/// The moto release the tests were written against.
const MOTO: &str = "moto[server]==5.2.6";

/// The environment variable that hands the endpoint to the tests.
pub const ENDPOINT_VAR: &str = "STATE_SNAPSHOT_S3_ENDPOINT";

fn venv() -> PathBuf {
    cache_dir().join("moto")
}

fn server_bin() -> PathBuf {
    venv().join("bin").join("moto_server")
}

/// Starts installing moto in the background if it is missing; `None` if
/// it is there.
pub fn start_install() -> Result<Option<Child>, String> {
    if server_bin().is_file() {
        return Ok(None);
    }
    let dir = venv();
    eprintln!(
        "xtask: installing {MOTO} (an S3 server for the snapshot tests) into {}",
        dir.display()
    );
    let python = if crate::prereq::on_path("python3") {
        "python3"
    } else {
        "python"
    };
    // One shell line: the virtualenv, then pip into it, both quiet.
    let script = format!(
        "{python} -m venv {dir} && {dir}/bin/pip install --quiet --disable-pip-version-check '{MOTO}'",
        dir = shell_quote(&dir)
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .map(Some)
        .map_err(|e| format!("starting the moto install: {e}"))
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Waits for an install started by [`start_install`]; the server's path.
pub fn finish_install(child: Option<Child>) -> Result<PathBuf, String> {
    if let Some(mut child) = child {
        let status = child.wait().map_err(|e| format!("waiting for the moto install: {e}"))?;
        if !status.success() {
            // A half-made virtualenv would look installed next time.
            let _ = std::fs::remove_dir_all(venv());
            return Err(format!("installing {MOTO} failed ({status})"));
        }
        eprintln!("xtask: moto installed");
    }
    let bin = server_bin();
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("moto_server is not at {} after installing it", bin.display()))
    }
}

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts `moto_server` and waits until it accepts connections.
    pub fn start(bin: &Path) -> Result<Moto, String> {
        let port = free_port()?;
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&address).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto_server exited ({status}) before listening"));
            }
            if Instant::now() > deadline {
                return Err(format!("moto_server did not listen on {address} within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("xtask: moto S3 server listening on {}", moto.endpoint);
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
