//! A tansu broker on loopback for the real-broker test suites: started on a
//! free port with sqlite storage in a temporary directory, stopped when the
//! guard drops. (tansu's memory engine reports wrong high watermarks, so the
//! sqlite one is used.)

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker; killed on drop.
pub struct Broker {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

/// A port on loopback nothing listens on now.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

impl Broker {
    /// Starts `tansu` and waits until it accepts connections.
    pub fn start(tansu: &Path) -> Result<Broker, String> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("kafka-state-tansu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let log = std::fs::File::create(dir.join("tansu.log")).map_err(|e| format!("creating the tansu log: {e}"))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", tansu.display()))?;
        let mut broker = Broker {
            child,
            dir,
            address: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&broker.address).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                let log = std::fs::read_to_string(broker.dir.join("tansu.log")).unwrap_or_default();
                return Err(format!("tansu exited ({status}) before listening; its log:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("tansu did not listen on {} within 30 s", broker.address));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("xtask: tansu broker listening on {}", broker.address);
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
