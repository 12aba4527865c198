//! `statectl snapshot` end to end on the local-filesystem store: create,
//! list, verify (intact and damaged), restore; store secrets refused on
//! the command line and never echoed.

use std::path::Path;
use std::process::{Command, Output};

use state_core::{cf, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};

fn statectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args(args)
        .output()
        .expect("running statectl")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn partition(dir: &Path, keys: u32, offset: u64) {
    let p = RocksDbPartition::open(dir, &RocksDbOptions::default()).unwrap();
    let mut b = WriteBatch::new();
    for i in 0..keys {
        b.put(cf::DEFAULT, format!("k{i}").as_bytes(), b"v");
    }
    b.set_changelog_offset(offset);
    p.write(&b).unwrap();
}

#[test]
fn create_list_verify_restore() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("state").join("0");
    partition(&source, 100, 99);
    let url = format!("file://{}/snapshots", root.path().display());
    let store = ["--store", url.as_str(), "--name", "counts", "--partition", "0"];
    let with = |cmd: &[&str], extra: &[&str]| {
        let mut args: Vec<&str> = vec!["snapshot"];
        args.extend_from_slice(cmd);
        args.extend_from_slice(&store);
        args.extend_from_slice(extra);
        statectl(&args)
    };

    let out = with(&["create", source.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = &lines(&out)[0];
    assert_eq!(created["changelog_offset"], 99);
    let id = created["id"].as_str().unwrap().to_owned();

    let out = with(&["list"], &[]);
    assert!(out.status.success());
    let listed = lines(&out);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["backend"], "rocksdb");

    let out = with(&["verify"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines(&out)[0]["ok"], true);

    let into = root.path().join("restored");
    let out = with(&["restore", into.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&out)[0]["id"], id.as_str());
    let p = RocksDbPartition::open_read_only(&into, &RocksDbOptions::default()).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(99));
    assert_eq!(p.get(cf::DEFAULT, b"k42").unwrap(), Some(b"v".to_vec()));

    // Damage every stored file: verify says so, with exit status 1.
    let files = root.path().join("snapshots/counts/0/files");
    for entry in std::fs::read_dir(&files).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(0);
        std::fs::write(&path, bytes).unwrap();
    }
    let out = with(&["verify"], &["--id", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out)[0]["ok"], false);
    let out = with(&["restore", root.path().join("again").to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!root.path().join("again").exists());
}

#[test]
fn secrets_are_refused_on_the_command_line_and_never_shown() {
    let root = tempfile::tempdir().unwrap();
    let url = format!("file://{}/snapshots", root.path().display());
    let out = statectl(&[
        "snapshot",
        "list",
        "--store",
        &url,
        "--name",
        "counts",
        "--partition",
        "0",
        "-O",
        "aws_secret_access_key=hunter2-very-secret",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("aws_secret_access_key"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");

    let out = statectl(&[
        "snapshot",
        "list",
        "--store",
        "s3://AKIAEXAMPLE:hunter2-very-secret@bucket/x",
        "--name",
        "counts",
        "--partition",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let all = String::from_utf8_lossy(&out.stderr);
    assert!(!all.contains("hunter2"), "{all}");
    assert!(!all.contains("AKIAEXAMPLE"), "{all}");

    let help = statectl(&["snapshot", "create", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--store-config"), "{text}");
}
