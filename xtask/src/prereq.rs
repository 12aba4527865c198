//! What a fresh machine lacks: system packages (Debian/Ubuntu) and the
//! tansu broker. Each is installed only when missing, and every install is
//! announced first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the packages are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Building the workspace (the demo, benchmarks).
    Build,
    /// Building and running the tests (TLS tests need a TLS terminator).
    Test,
}

/// A Debian package, why it is needed, and how to tell it is there.
struct Package {
    name: &'static str,
    why: &'static str,
    present: fn() -> bool,
    purpose: Purpose,
}

fn dpkg_installed(name: &str) -> bool {
    Command::new("dpkg")
        .args(["-s", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// libclang for bindgen: the Debian package, or a library bindgen will
/// find together with clang's own headers (`stddef.h`, `stdbool.h`). The
/// runtime library alone (`libclang1-N`, left behind by `apt-get remove
/// libclang-dev`) loads but then fails on `#include <stddef.h>`;
/// libclang-cpp is not enough either.
fn libclang_present() -> bool {
    if std::env::var_os("LIBCLANG_PATH").is_some() || dpkg_installed("libclang-dev") {
        return true;
    }
    libclang_library_present() && clang_headers_present()
}

/// `<root>/clang/<version>/include/stddef.h` under `/usr/lib` or an
/// `/usr/lib/llvm-N/lib`: the headers bindgen's clang compiles with.
fn clang_headers_present() -> bool {
    let roots = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llvm-")))
        .map(|p| p.join("lib"))
        .chain([PathBuf::from("/usr/lib")]);
    roots.map(|r| r.join("clang")).any(|clang| {
        std::fs::read_dir(clang)
            .into_iter()
            .flatten()
            .flatten()
            .any(|v| v.path().join("include").join("stddef.h").is_file())
    })
}

fn libclang_library_present() -> bool {
    let dirs = [
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ];
    let llvm_dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llvm-")))
        .map(|p| p.join("lib"));
    dirs.iter().map(PathBuf::from).chain(llvm_dirs).any(|d| {
        std::fs::read_dir(&d).into_iter().flatten().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n == "libclang.so" || (n.starts_with("libclang-") && n.contains(".so") && !n.starts_with("libclang-cpp"))
        })
    })
}

fn packages() -> Vec<Package> {
    vec![
        Package {
            name: "libclang-dev",
            why: "RocksDB's Rust bindings are generated with bindgen, which needs libclang",
            present: libclang_present,
            purpose: Purpose::Build,
        },
        Package {
            name: "pkg-config",
            why: "finds the system OpenSSL for Kafka TLS",
            present: || on_path("pkg-config"),
            purpose: Purpose::Build,
        },
        Package {
            name: "libssl-dev",
            why: "Kafka TLS (librdkafka links the system OpenSSL)",
            present: || dpkg_installed("libssl-dev") || Path::new("/usr/include/openssl/ssl.h").exists(),
            purpose: Purpose::Build,
        },
        Package {
            name: "stunnel4",
            why: "the TLS tests put a TLS terminator in front of the test broker",
            present: || on_path("stunnel4") || on_path("stunnel"),
            purpose: Purpose::Test,
        },
        Package {
            name: "openssl",
            why: "the TLS tests generate a throwaway CA and certificates",
            present: || on_path("openssl"),
            purpose: Purpose::Test,
        },
    ]
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the missing system packages needed for `purpose` (the build
/// packages are needed for tests too).
pub fn system_packages(purpose: Purpose) -> Result<(), String> {
    let missing: Vec<Package> = packages()
        .into_iter()
        .filter(|p| purpose == Purpose::Test || p.purpose == Purpose::Build)
        .filter(|p| !(p.present)())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    for p in &missing {
        eprintln!("xtask: missing {}: {}", p.name, p.why);
    }
    if !on_path("apt-get") {
        return Err(format!(
            "install these packages with your system's package manager, then run the command again: {}",
            names.join(" ")
        ));
    }
    let sudo = if is_root() {
        None
    } else if passwordless_sudo() {
        Some("sudo")
    } else {
        return Err(format!(
            "not running as root; install them with:\n\n    sudo apt-get update && sudo apt-get install -y {}\n\nthen run the command again",
            names.join(" ")
        ));
    };
    eprintln!("xtask: installing {} with apt-get", names.join(" "));
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut cmd = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("apt-get");
                c
            }
            None => Command::new("apt-get"),
        };
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("running apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("apt-get {} failed ({status})", args.join(" ")))
        }
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&names);
    apt(&install)?;
    eprintln!("xtask: installed {}", names.join(" "));
    Ok(())
}

/// Where the tansu broker lives: `$TANSU_BIN`, or the cache under
/// `$HOME/.cache/kafka-state/tansu`.
pub fn tansu_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    cache_dir().join("tansu").join("bin").join("tansu")
}

/// `$HOME/.cache/kafka-state`.
pub fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("kafka-state")
}

/// Starts installing tansu (a Kafka-compatible broker in Rust) in the
/// background if it is missing, at low priority; `None` if it is there.
pub fn start_tansu_install() -> Result<Option<Child>, String> {
    let bin = tansu_path();
    if bin.is_file() {
        return Ok(None);
    }
    let root = bin
        .parent()
        .and_then(Path::parent)
        .ok_or("TANSU_BIN has no parent directory")?
        .to_owned();
    eprintln!(
        "xtask: installing tansu 0.6 (a Kafka-compatible broker for the real-broker tests) into {}; \
         about 15 minutes on 2 cores the first time, cached afterwards",
        root.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = if on_path("nice") {
        let mut c = Command::new("nice");
        c.args(["-n", "10", &cargo]);
        c
    } else {
        Command::new(&cargo)
    };
    cmd.args([
        "install",
        "tansu",
        "--locked",
        "--features",
        "dynostore,libsql",
        "--root",
    ])
    .arg(&root)
    .env("CARGO_TARGET_DIR", cache_dir().join("tansu-build"))
    // Its own build must not inherit this workspace's settings.
    .env_remove("CARGO_BUILD_TARGET_DIR")
    .stdout(Stdio::null());
    cmd.spawn()
        .map(Some)
        .map_err(|e| format!("starting `cargo install tansu`: {e}"))
}

/// Waits for an install started by [`start_tansu_install`].
pub fn finish_tansu_install(child: Option<Child>) -> Result<PathBuf, String> {
    if let Some(mut child) = child {
        let status = child
            .wait()
            .map_err(|e| format!("waiting for `cargo install tansu`: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo install tansu` failed ({status})"));
        }
        eprintln!("xtask: tansu installed");
    }
    let bin = tansu_path();
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("tansu is not at {} after installing it", bin.display()))
    }
}

/// Installs tansu if missing and returns its path.
pub fn tansu() -> Result<PathBuf, String> {
    finish_tansu_install(start_tansu_install()?)
}
