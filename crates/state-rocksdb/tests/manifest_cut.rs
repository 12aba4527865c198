//! A MANIFEST cut short must never open as an older version with the
//! newest write-ahead log replayed over it: that pairs the newest stored
//! changelog offset with data missing the tables the cut forgot (counts
//! lost without an error; the crash harness's `--corrupt` found it). Every
//! cut should either fail to open, so the partition is rebuilt from its
//! changelog, or open with every record its stored offset covers.
//!
//! `track_and_verify_wals_in_manifest` makes RocksDB refuse the cuts that
//! keep a record of a synced WAL the files no longer have; the partition's
//! own check (`wal_check.rs`) refuses those that end before the MANIFEST
//! recorded one (without it, cuts at about 10–25%, 39% and 55% of this
//! test's file opened silently as an older version).

use std::fs;
use std::path::{Path, PathBuf};

use state_core::{Error, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};

const CF: &str = "default";
const ROUNDS: u64 = 8;
const KEYS: usize = 100;

fn key(round: u64, i: usize) -> Vec<u8> {
    format!("round{round}-key{i:04}").into_bytes()
}

/// Rounds of writes whose MANIFEST holds several versions: even rounds are
/// bulk writes flushed to tables (which also flushes the logged rounds
/// before them and retires their WAL), odd rounds go through the WAL only.
/// `image` gets the files as a crash after the last round leaves them: the
/// last round only in the synced WAL (a clean close would flush it).
fn write_rounds(dir: &Path, image: &Path) {
    let partition = RocksDbPartition::open(dir, &RocksDbOptions::default()).expect("opening a fresh partition");
    for round in 0..ROUNDS {
        let mut batch = WriteBatch::new();
        for i in 0..KEYS {
            batch.put(CF, &key(round, i), &[round as u8; 64]);
        }
        batch.set_changelog_offset(round);
        if round % 2 == 0 {
            partition.write_bulk(&batch).expect("bulk write");
        } else {
            partition.write(&batch).expect("logged write");
        }
        partition.persist().expect("persisting a round");
    }
    copy_dir(dir, image);
    partition.close().expect("closing");
}

fn manifest(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .expect("listing the partition")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
        })
        .expect("a MANIFEST file")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("creating the copy");
    for entry in fs::read_dir(from).expect("listing the partition") {
        let entry = entry.expect("a directory entry");
        if entry.file_type().expect("file type").is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copying a file");
        }
    }
}

#[test]
fn a_manifest_cut_anywhere_fails_to_open_or_opens_with_all_its_offset_covers() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let original = scratch.path().join("crashed");
    write_rounds(&scratch.path().join("live"), &original);
    // The image as the crash left it opens whole (the check refuses no
    // sound directory); a copy, since an open rewrites the MANIFEST.
    let uncut = scratch.path().join("uncut");
    copy_dir(&original, &uncut);
    let whole = RocksDbPartition::open(&uncut, &RocksDbOptions::default()).expect("the uncut image opens");
    assert_eq!(whole.changelog_offset().expect("reading the offset"), Some(ROUNDS - 1));
    for round in 0..ROUNDS {
        assert!(whole.get(CF, &key(round, 0)).expect("a read").is_some());
    }
    drop(whole);
    let len = fs::metadata(manifest(&original)).expect("MANIFEST size").len();
    let (mut opened, mut refused) = (0, 0);
    for cut in (0..len).step_by(((len / 200) as usize).max(1)) {
        let copy = scratch.path().join(format!("cut-{cut}"));
        copy_dir(&original, &copy);
        let file = fs::OpenOptions::new()
            .write(true)
            .open(manifest(&copy))
            .expect("opening the copied MANIFEST");
        file.set_len(cut).expect("cutting the MANIFEST");
        drop(file);
        match RocksDbPartition::open(&copy, &RocksDbOptions::default()) {
            Ok(partition) => {
                opened += 1;
                let offset = partition.changelog_offset().expect("reading the offset");
                for round in 0..=offset.unwrap_or(0).min(ROUNDS - 1) {
                    if offset.is_none() {
                        break;
                    }
                    for i in 0..KEYS {
                        assert!(
                            partition.get(CF, &key(round, i)).expect("a read").is_some(),
                            "MANIFEST cut at {cut} of {len} bytes opened with offset {offset:?} \
                             but without round {round}'s key {i}"
                        );
                    }
                }
            }
            Err(Error::PartitionCorrupt { .. }) => refused += 1,
            Err(other) => panic!("MANIFEST cut at {cut} of {len}: not a PartitionCorrupt error: {other}"),
        }
        fs::remove_dir_all(&copy).expect("removing the copy");
    }
    assert!(refused > 0, "no cut was refused ({opened} opened)");
}
