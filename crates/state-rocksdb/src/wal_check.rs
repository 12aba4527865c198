//! Refuses a partition whose MANIFEST is older than its write-ahead logs.
//!
//! RocksDB opens a MANIFEST cut short (a partial copy of a live directory,
//! a filesystem that lost synced data) as the older version it still
//! describes, then replays the WALs it finds over that version. When the
//! cut forgot flushes whose WALs are already deleted, the result pairs the
//! newest stored changelog offset (in the newest WAL) with data missing
//! the forgotten tables: counts lost without an error.
//! `track_and_verify_wals_in_manifest` catches the cuts that keep a record
//! of a synced WAL the directory no longer has, not those that end before
//! the MANIFEST recorded one.
//!
//! The rule checked here holds in every state RocksDB itself leaves, a
//! crash included: each MANIFEST update records the last sequence number
//! written so far, and a WAL is deleted only after an update that no longer
//! needs it, so the oldest WAL left starts at or before the version's last
//! sequence number + 1. A WAL starting after it means the version lost the
//! writes in between. The version's number is read by a read-only open that
//! sees no WAL (an empty WAL directory); the WAL's from its first record.
//!
//! A MANIFEST that tracks live WALs fails the probe (they are not in its
//! empty WAL directory); those cuts are RocksDB's own check's
//! (`track_and_verify_wals_in_manifest`) at the real open.
//!
//! Anything this check cannot read (no WAL, an empty or torn first record,
//! recycled logs, a probe that fails to open) lets the open go on: the
//! check only ever adds a refusal, and only for a proven gap. Writes with
//! the WAL disabled (bulk loads) that a crash lost before their flush can
//! leave a gap too if logged writes followed them unflushed; the partition
//! is then rebuilt from its changelog, which is slow but never wrong.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// RocksDB's log block size: a record header never straddles a block.
const BLOCK: usize = 32 * 1024;
/// Header of a legacy record: masked crc32c (4), length (2), type (1).
const HEADER: usize = 7;
/// Record types whose payload starts a write batch (full, first fragment).
const FULL: u8 = 1;
const FIRST: u8 = 2;
/// Recyclable record types (RocksDB's `recycle_log_file_num`): their
/// contents may be a previous log's; the check gives up on them.
const RECYCLABLE: std::ops::RangeInclusive<u8> = 5..=8;
/// A write batch starts with its sequence number (8) and count (4).
const BATCH_HEADER: usize = 12;
/// How much of a WAL is read to find its first write batch.
const SCAN: usize = 4 * BLOCK;

/// Why the partition at `path` must not be opened, if it has a WAL (in
/// `wal_dir`, else `path`) that starts after the last sequence number its
/// MANIFEST records (the caller reports it as `PartitionCorrupt`);
/// `db_opts` are the options it is opened with (a read-only probe needs
/// its comparator).
pub(crate) fn manifest_older_than_wals(
    path: &Path,
    wal_dir: Option<&Path>,
    db_opts: &rocksdb::Options,
) -> Option<String> {
    if !path.join("CURRENT").is_file() {
        return None;
    }
    let first = oldest_wal_start(wal_dir.unwrap_or(path))?;
    let last = manifest_last_sequence(path, db_opts)?;
    (first > last.saturating_add(1)).then(|| {
        format!(
            "the MANIFEST describes writes up to sequence number {last}, but the oldest \
             write-ahead log starts at {first}: the MANIFEST lost newer versions (cut short \
             or replaced by an older copy) and the tables they added are missing"
        )
    })
}

/// The smallest first sequence number among the WAL files in `dir`;
/// `None` when there is none or one cannot be read (the check then
/// proves nothing).
fn oldest_wal_start(dir: &Path) -> Option<u64> {
    let mut oldest: Option<u64> = None;
    for wal in wal_files(dir)? {
        match first_sequence(&wal) {
            Ok(Some(seq)) => oldest = Some(oldest.map_or(seq, |o| o.min(seq))),
            // An empty WAL (a new one, a clean close) says nothing.
            Ok(None) => {}
            Err(Unreadable) => return None,
        }
    }
    oldest
}

/// The `NNNNNN.log` files of `dir` (RocksDB's info log is `LOG`).
fn wal_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).ok()?;
    let mut wals = Vec::new();
    for entry in entries {
        let path = entry.ok()?.path();
        let is_wal = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()));
        if is_wal {
            wals.push(path);
        }
    }
    Some(wals)
}

/// A WAL this check cannot judge.
#[derive(Debug, PartialEq)]
struct Unreadable;

/// The sequence number of the first write batch in the WAL at `path`:
/// `Ok(None)` for a WAL with no record, [`Unreadable`] for anything else
/// it cannot vouch for (a torn or corrupt first record, recycled logs).
fn first_sequence(path: &Path) -> std::result::Result<Option<u64>, Unreadable> {
    let mut head = Vec::with_capacity(SCAN);
    fs::File::open(path)
        .and_then(|f| f.take(SCAN as u64).read_to_end(&mut head))
        .map_err(|_| Unreadable)?;
    first_sequence_in(&head)
}

/// [`first_sequence`] on the first bytes of a WAL.
fn first_sequence_in(log: &[u8]) -> std::result::Result<Option<u64>, Unreadable> {
    let mut at = 0;
    while at + HEADER <= log.len() {
        let left_in_block = BLOCK - at % BLOCK;
        if left_in_block < HEADER {
            at += left_in_block;
            continue;
        }
        let header = &log[at..at + HEADER];
        let kind = header[6];
        let len = u16::from_le_bytes([header[4], header[5]]) as usize;
        if kind == 0 && len == 0 {
            // Zeroed padding: the end of what was written (a preallocated file).
            return Ok(None);
        }
        if RECYCLABLE.contains(&kind) {
            return Err(Unreadable);
        }
        let payload = log.get(at + HEADER..at + HEADER + len).ok_or(Unreadable)?;
        let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut crc = crc32c_extend(0, &[kind]);
        crc = crc32c_extend(crc, payload);
        if unmask(stored) != crc {
            return Err(Unreadable);
        }
        if kind == FULL || kind == FIRST {
            let seq = payload.get(..BATCH_HEADER).ok_or(Unreadable)?;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&seq[..8]);
            return Ok(Some(u64::from_le_bytes(bytes)));
        }
        // Metadata records (compression type, timestamp sizes, predecessor
        // WAL info) come before the first batch: skip them.
        at += HEADER + len;
    }
    if log.is_empty() {
        Ok(None)
    } else {
        Err(Unreadable)
    }
}

/// The last sequence number the MANIFEST of `path` records: a read-only
/// open that sees no WAL (an empty WAL directory) reports it. `None` when
/// the probe cannot open (the real open then reports why).
fn manifest_last_sequence(path: &Path, db_opts: &rocksdb::Options) -> Option<u64> {
    let empty = ProbeDir::new()?;
    let mut opts = db_opts.clone();
    opts.set_wal_dir(&empty.0);
    // WAL tracking stays on (RocksDB 10.4 dereferences a null pointer in a
    // read-only open that turns it off over a MANIFEST that tracks WALs).
    // So a MANIFEST that tracks live WALs fails this probe ("Missing WAL"):
    // those cuts are RocksDB's own check's, at the real open.
    opts.create_if_missing(false);
    // Tables are not read: open them lazily and skip their statistics.
    opts.set_max_open_files(16);
    opts.set_skip_stats_update_on_db_open(true);
    // Read-only, a subset of column families may be opened; the sequence
    // number is the database's.
    let db = rocksdb::DB::open_for_read_only(&opts, path, false).ok()?;
    Some(db.latest_sequence_number())
}

/// An empty directory for the probe's WALs, removed when dropped.
struct ProbeDir(PathBuf);

impl ProbeDir {
    fn new() -> Option<ProbeDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kafka-state-wal-probe-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).ok()?;
        Some(ProbeDir(dir))
    }
}

impl Drop for ProbeDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// RocksDB stores record checksums masked (crc32c.h `Unmask`).
fn unmask(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(0xa282_ead8);
    rot.rotate_left(15)
}

/// CRC-32C (Castagnoli), bitwise: the check reads at most a few records.
fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(crc: u32) -> u32 {
        crc.rotate_right(15).wrapping_add(0xa282_ead8)
    }

    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let crc = crc32c_extend(crc32c_extend(0, &[kind]), payload);
        let mut r = mask(crc).to_le_bytes().to_vec();
        r.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        r.push(kind);
        r.extend_from_slice(payload);
        r
    }

    fn batch(seq: u64) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(b"rest of the batch");
        b
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c_extend(0, b"123456789"), 0xe306_9283);
        assert_eq!(unmask(mask(0xdead_beef)), 0xdead_beef);
    }

    #[test]
    fn the_first_batch_gives_the_sequence_number() {
        assert_eq!(first_sequence_in(&record(FULL, &batch(42))), Ok(Some(42)));
        assert_eq!(first_sequence_in(&record(FIRST, &batch(7))), Ok(Some(7)));
    }

    #[test]
    fn metadata_records_before_the_first_batch_are_skipped() {
        let mut log = record(9, &[1]);
        log.extend(record(FULL, &batch(1000)));
        assert_eq!(first_sequence_in(&log), Ok(Some(1000)));
    }

    #[test]
    fn an_empty_or_zeroed_wal_says_nothing() {
        assert_eq!(first_sequence_in(&[]), Ok(None));
        assert_eq!(first_sequence_in(&[0u8; 64]), Ok(None));
    }

    #[test]
    fn a_torn_or_corrupt_first_record_or_a_recycled_log_is_unreadable() {
        let whole = record(FULL, &batch(5));
        assert_eq!(first_sequence_in(&whole[..whole.len() - 3]), Err(Unreadable));
        let mut flipped = whole.clone();
        flipped[HEADER + 2] ^= 0x10;
        assert_eq!(first_sequence_in(&flipped), Err(Unreadable));
        assert_eq!(first_sequence_in(&record(5, &batch(5))), Err(Unreadable));
    }

    #[test]
    fn only_numbered_log_files_are_wals() {
        let dir = tempfile::tempdir().expect("a temp dir");
        for name in ["000012.log", "LOG", "LOG.old.1", "x.log", "000013.sst"] {
            fs::write(dir.path().join(name), b"").expect("writing a file");
        }
        let wals = wal_files(dir.path()).expect("listing");
        assert_eq!(wals, vec![dir.path().join("000012.log")]);
    }
}
