//! Snapshots through S3, end to end, against a real S3-compatible server:
//! moto (`moto_server`, PyPI), which `cargo xtask test` installs and starts
//! on loopback and names in `STATE_SNAPSHOT_S3_ENDPOINT`. Where it could
//! not be installed the tests print why and do nothing.
//!
//! A RocksDB partition is snapshotted to `s3://…`, changed by 1% and
//! snapshotted again (only the changed files go up), restored into a fresh
//! directory and read back key by key; a file damaged in the bucket is
//! found by `verify` and refused by `restore`; retention deletes what no
//! kept manifest references.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{fill, key, open, value};
use state_core::{cf, Backend, StoreKind, StoreLocation};
use state_rocksdb::{RocksDbBackend, RocksDbOptions};
use state_snapshot::{NoProgress, Retention, SnapshotError, SnapshotScope, SnapshotStore, StoreOptions};

const ENDPOINT_VAR: &str = "STATE_SNAPSHOT_S3_ENDPOINT";
const KEYS: u32 = 20_000;

/// The moto endpoint (`http://127.0.0.1:PORT`), or `None` with the reason
/// printed.
fn endpoint() -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            eprintln!(
                "s3_moto: skipped: {ENDPOINT_VAR} is not set (`cargo xtask test` starts moto_server \
                 and sets it; it printed why if it could not)"
            );
            None
        }
    }
}

/// `host:port` of `http://host:port`.
fn authority(endpoint: &str) -> &str {
    endpoint.trim_start_matches("http://").trim_end_matches('/')
}

/// One plain HTTP/1.1 request to moto (which checks no signatures);
/// returns the status code and the whole response.
fn http(endpoint: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(authority(endpoint)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        authority(endpoint),
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    (status, response)
}

/// A bucket name for `test` that no earlier run against the same server
/// used.
fn fresh_bucket(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

/// Writes `bytes` to `object` in `bucket` directly (signed, as moto wants
/// for objects).
fn overwrite(endpoint: &str, bucket: &str, object: &str, bytes: Vec<u8>) {
    use object_store::aws::AmazonS3Builder;
    use object_store::ObjectStoreExt;
    let s3 = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("moto")
        .with_secret_access_key("moto-secret")
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(s3.put(&object_store::path::Path::from(object), bytes.into()))
        .unwrap();
}

/// A new bucket and a store on it.
fn s3_store(endpoint: &str, bucket: &str, retention: Retention) -> SnapshotStore {
    let (status, response) = http(endpoint, "PUT", &format!("/{bucket}"), b"");
    assert!(status == 200 || status == 409, "creating bucket {bucket}: {response}");
    let options = StoreOptions::new()
        .with("aws_endpoint", endpoint)
        .with("aws_allow_http", "true")
        .with("aws_region", "us-east-1")
        .with("aws_access_key_id", "moto")
        .with("aws_secret_access_key", "moto-secret");
    SnapshotStore::open(&format!("s3://{bucket}/snapshots"), &options)
        .unwrap()
        .with_retention(retention)
}

fn rocksdb() -> Arc<dyn Backend> {
    RocksDbBackend::shared(RocksDbOptions::default())
}

#[test]
fn a_rocksdb_partition_round_trips_through_s3_key_by_key() {
    let Some(endpoint) = endpoint() else { return };
    let store = s3_store(&endpoint, &fresh_bucket("round-trip"), Retention::default());
    let backend = rocksdb();
    let dir = tempfile::tempdir().unwrap();
    let scope = SnapshotScope::new("counts", 3).unwrap();
    let (_, p) = open(&backend, &dir.path().join("source"));
    fill(&*p, 0, KEYS, 1, 1_000);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let first = store
        .create(&*p, "rocksdb", &scope, Some(StoreKind::KeyValue), &scratch, &NoProgress)
        .unwrap();
    assert!(first.files_uploaded > 0);

    // 1% of the keys change: the second snapshot uploads the new SST and
    // reuses the old one.
    fill(&*p, 0, KEYS / 100, 2, 1_200);
    let second = store
        .create(&*p, "rocksdb", &scope, Some(StoreKind::KeyValue), &scratch, &NoProgress)
        .unwrap();
    assert!(second.files_reused > 0, "the unchanged SST is shared: {second:?}");
    assert!(
        second.bytes_uploaded < first.bytes_uploaded,
        "incremental: {} bytes now, {} the first time",
        second.bytes_uploaded,
        first.bytes_uploaded
    );

    let fresh = StoreLocation::new("counts", dir.path().join("fresh").join("counts"));
    let (manifest, restored) = store
        .restore(
            &scope,
            &second.manifest.id,
            &*backend,
            &fresh,
            &dir.path().join("download"),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(manifest.changelog_offset, Some(1_200));
    assert_eq!(restored.changelog_offset().unwrap(), Some(1_200));
    for i in 0..KEYS {
        let round = if i < KEYS / 100 { 2 } else { 1 };
        assert_eq!(
            restored.get(cf::DEFAULT, &key(i)).unwrap(),
            Some(value(i, round)),
            "key {i}"
        );
    }
    assert_eq!(restored.get(cf::VALUES, b"side").unwrap(), Some(vec![2]));

    let ids: Vec<String> = store.list(&scope).unwrap().into_iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(store
        .verify(&scope, &first.manifest.id, &NoProgress)
        .unwrap()
        .problems
        .is_empty());
}

#[test]
fn a_file_damaged_in_the_bucket_is_found_and_never_restored() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = fresh_bucket("damaged");
    let store = s3_store(&endpoint, &bucket, Retention::default());
    let backend = rocksdb();
    let dir = tempfile::tempdir().unwrap();
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let (_, p) = open(&backend, &dir.path().join("source"));
    fill(&*p, 0, 2_000, 1, 7);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let up = store
        .create(&*p, "rocksdb", &scope, Some(StoreKind::KeyValue), &scratch, &NoProgress)
        .unwrap();
    let sst = up
        .manifest
        .files
        .iter()
        .find(|f| f.path.ends_with(".sst"))
        .expect("a RocksDB snapshot holds an SST file");
    // Same size, other bytes: only the checksum can tell.
    let object = format!("snapshots/counts/0/files/{}-{}", sst.xxh3_128, sst.size);
    overwrite(&endpoint, &bucket, &object, vec![0x5a; sst.size as usize]);

    let verified = store.verify(&scope, &up.manifest.id, &NoProgress).unwrap();
    assert_eq!(verified.problems.len(), 1, "{:?}", verified.problems);
    assert!(
        matches!(verified.problems[0], SnapshotError::Corrupt { .. }),
        "{:?}",
        verified.problems
    );

    let fresh = StoreLocation::new("counts", dir.path().join("fresh").join("counts"));
    let err = store
        .restore(
            &scope,
            &up.manifest.id,
            &*backend,
            &fresh,
            &dir.path().join("download"),
            &NoProgress,
        )
        .err()
        .expect("a damaged snapshot is refused");
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    assert!(!fresh.dir().exists() || std::fs::read_dir(fresh.dir()).unwrap().next().is_none());
}

#[test]
fn retention_on_s3_keeps_the_newest_and_what_they_reference() {
    let Some(endpoint) = endpoint() else { return };
    let retention = Retention {
        keep_newest: 1,
        grace: Duration::from_secs(1),
    };
    let store = s3_store(&endpoint, &fresh_bucket("retention"), retention);
    let backend = rocksdb();
    let dir = tempfile::tempdir().unwrap();
    let scope = SnapshotScope::new("counts", 1).unwrap();
    let (_, p) = open(&backend, &dir.path().join("source"));
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut last = None;
    for round in 1..=3u8 {
        fill(&*p, 0, 500, round, u64::from(round) * 10);
        let up = store
            .create(&*p, "rocksdb", &scope, Some(StoreKind::KeyValue), &scratch, &NoProgress)
            .unwrap();
        // Past the grace: what the older snapshots alone hold may go.
        std::thread::sleep(Duration::from_millis(1100));
        store.prune(&scope).unwrap();
        last = Some(up.manifest);
    }
    let last = last.unwrap();
    let listed = store.list(&scope).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, last.id);
    let fresh = StoreLocation::new("counts", dir.path().join("fresh").join("counts"));
    let (_, restored) = store
        .restore(
            &scope,
            &last.id,
            &*backend,
            &fresh,
            &dir.path().join("download"),
            &NoProgress,
        )
        .unwrap();
    for i in 0..500 {
        assert_eq!(
            restored.get(cf::DEFAULT, &key(i)).unwrap(),
            Some(value(i, 3)),
            "key {i}"
        );
    }
}
