//! A full disk under exactly-once, on a real small filesystem: a 3 MiB
//! tmpfs holds the state directory. Once it is full, a checkpoint's local
//! write fails: the commit returns `ManagerError::DiskFull` naming the
//! directory, the partitions stop (paused, nothing more committed for
//! them), and after the tmpfs grows the member goes on and ends with
//! every count exact: nothing lost, nothing doubled.
//!
//! Mounting needs privileges: the test mounts the tmpfs itself when it may
//! (root), else runs itself again in a new user and mount namespace
//! (`unshare -rm`), and skips, saying why, only where neither works.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use state_fjall::{FjallBackend, FjallOptions};
use state_manager::rdkafka::consumer::Consumer;
use state_manager::rdkafka::message::{BorrowedMessage, Message};
use state_manager::rdkafka::{Offset, TopicPartitionList};
use state_manager::{ManagerConfig, ManagerError, ProcessingGuarantee, TopicPartition, WriteBehindConfig};
use test_support::counting::*;
use test_support::kafka::produce_keyed;

/// Records of the input.
const INPUT_RECORDS: u64 = 300;

/// Bytes of padding each record also writes (under keys the counts never
/// read), so that the checkpoints after the disk filled up outgrow the
/// slack left in the last page of each write-ahead log at once.
const PADDING: usize = 1024;

/// Processes records until `m` has processed `total`, counting each and
/// writing [`PADDING`] bytes beside its count; commits nothing.
fn process_padded(m: &mut Member, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.processed < total {
        let Some(Ok(msg)) = m.consumer.poll(Duration::from_millis(50)) else {
            m.manager.lock().maintain(&m.consumer).expect("maintain");
            assert!(Instant::now() < deadline, "input did not arrive in time");
            continue;
        };
        process(m, &msg);
        m.processed += 1;
    }
}

/// Counts `msg` and writes [`PADDING`] bytes beside its count.
fn process(m: &Member, msg: &BorrowedMessage<'_>) {
    let mut mgr = m.manager.lock();
    count(&mut mgr, &m.counts, INPUT, msg).expect("count a record");
    let slot = format!("padding-{}", msg.offset() % 8);
    let txn = mgr.txn(&m.counts, msg.partition() as u32).expect("the transaction");
    txn.key(slot.as_bytes())
        .set("padding", &"x".repeat(PADDING))
        .expect("pad");
}

/// Set in the child run inside a new user and mount namespace.
const IN_NAMESPACE: &str = "KAFKA_STATE_DISK_FULL_NAMESPACE";

/// A tmpfs mounted on a fresh directory, unmounted (and the directory
/// removed) when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `3m`); the error says why
    /// not.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        // One per test: the tests of this binary run at once.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kafka-state-disk-full-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let tmpfs = Tmpfs { dir };
        tmpfs.run_mount(&["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])?;
        Ok(tmpfs)
    }

    /// Grows (or shrinks) the mounted tmpfs to `size`. (Naming the source
    /// too: in a user namespace, mount(8) refuses a remount without it.)
    fn resize(&self, size: &str) -> Result<(), String> {
        self.run_mount(&["-o", &format!("remount,size={size}"), "tmpfs"])
    }

    fn run_mount(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("mount")
            .args(args)
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "mount {args:?} {} failed: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes zeros into a file on `dir` until the filesystem is full.
fn fill(dir: &Path) -> u64 {
    let mut f = std::fs::File::create(dir.join("filler")).expect("create the filler file");
    let chunk = vec![0u8; 4096];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    // Whatever partial page is left.
    while f.write_all(&[0]).is_ok() {
        written += 1;
    }
    written
}

/// Runs `body` on a mounted tmpfs of `size`: here if this process may
/// mount, else in a child in a new user and mount namespace; skips with a
/// printed reason where neither works.
fn on_tmpfs(test: &str, size: &str, body: impl FnOnce(Tmpfs)) {
    match Tmpfs::mount(size) {
        Ok(tmpfs) => body(tmpfs),
        Err(e) if std::env::var_os(IN_NAMESPACE).is_some() => {
            println!("SKIPPED {test}: cannot mount a tmpfs even in a new user namespace: {e}");
        }
        Err(e) => {
            println!("{test}: {e}; trying again in a new user and mount namespace (unshare -rm)");
            let exe = std::env::current_exe().expect("the test binary's path");
            let status = Command::new("unshare")
                .args(["-rm"])
                .arg(exe)
                .args(["--exact", test, "--nocapture", "--test-threads=1"])
                .env(IN_NAMESPACE, "1")
                .status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => panic!("{test} failed in a new user and mount namespace ({s})"),
                Err(e) => println!("SKIPPED {test}: cannot mount a tmpfs and cannot run unshare: {e}"),
            }
        }
    }
}

/// The setups the scenario runs on.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// RocksDB, written at every checkpoint.
    RocksDb,
    /// RocksDB behind a write-behind cache.
    RocksDbWriteBehind,
    /// fjall, written at every checkpoint.
    Fjall,
    /// RocksDB with pipelined checkpoints: the local write runs behind the
    /// poll loop, so its failure comes from the next commit, which gives
    /// up its own checkpoint.
    RocksDbPipelined,
    /// RocksDB with pipelined at-least-once checkpoints: the local write
    /// runs while the next checkpoint prepares, so its failure drops that
    /// checkpoint, which read through it.
    RocksDbPipelinedAtLeastOnce,
}

impl Setup {
    fn backend_name(self) -> &'static str {
        match self {
            Setup::RocksDb
            | Setup::RocksDbWriteBehind
            | Setup::RocksDbPipelined
            | Setup::RocksDbPipelinedAtLeastOnce => "rocksdb",
            Setup::Fjall => "fjall",
        }
    }

    fn guarantee(self) -> ProcessingGuarantee {
        match self {
            Setup::RocksDbPipelinedAtLeastOnce => ProcessingGuarantee::AtLeastOnce,
            _ => ProcessingGuarantee::ExactlyOnce,
        }
    }
}

/// The committed offsets of `partitions` of the input.
fn committed(a: &Member, partitions: &[TopicPartition]) -> Vec<Offset> {
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(tp.topic(), tp.partition());
    }
    let got = a
        .consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("the committed offsets");
    got.elements().iter().map(|e| e.offset()).collect()
}

/// A member on a 3 MiB tmpfs processes and commits until the tmpfs fills
/// up and a checkpoint's local write fails; checks the error, that the
/// committed offsets of the partitions it names do not move while they
/// stay paused (the others go on), then grows the tmpfs and runs to the
/// end: every count exact (at-least-once too: the partitions that failed
/// reload the state of their committed offsets from their changelogs, so
/// nothing is counted twice).
fn fill_and_grow(test: &str, setup: Setup) {
    on_tmpfs(test, "3m", |tmpfs| {
        let started = Instant::now();
        let cluster = cluster();
        let bootstrap = cluster.bootstrap_servers();
        let state = tempfile::tempdir_in(tmpfs.path()).expect("a state directory on the tmpfs");
        let state_dir = state.path().to_owned();
        let mut a = member_with_spec(
            &bootstrap,
            setup.guarantee(),
            "a",
            "cooperative-sticky",
            Fate::Survives,
            state,
            |c: &mut ManagerConfig| match setup {
                Setup::Fjall => c.backend = FjallBackend::shared(FjallOptions::default()),
                Setup::RocksDbPipelined | Setup::RocksDbPipelinedAtLeastOnce => c.pipelined_checkpoints = true,
                Setup::RocksDb | Setup::RocksDbWriteBehind => {}
            },
            |spec| match setup {
                // Flushed every few checkpoints, so a flush meets the full disk.
                Setup::RocksDbWriteBehind => spec.write_behind(WriteBehindConfig {
                    max_dirty_bytes: 4096,
                    max_dirty_age: Duration::from_millis(200),
                    ..WriteBehindConfig::default()
                }),
                Setup::RocksDb | Setup::Fjall | Setup::RocksDbPipelined | Setup::RocksDbPipelinedAtLeastOnce => spec,
            },
        );
        own_all(&mut a);
        let truth =
            produce_keyed(&bootstrap, INPUT, PARTITIONS, 0..INPUT_RECORDS, KEYS as u64).expect("produce the input");
        process_padded(&mut a, 40);
        a.commit().expect("a commit with space to spare");

        let filled = fill(tmpfs.path());
        println!("{setup:?}: filled the tmpfs with {filled} bytes");

        // Checkpoints go on until one cannot write its state.
        let deadline = Instant::now() + Duration::from_secs(20);
        let err = loop {
            assert!(Instant::now() < deadline, "no checkpoint failed on the full disk");
            let target = (a.processed + 20).min(INPUT_RECORDS as usize);
            process_padded(&mut a, target);
            let res = a.manager.lock().commit(&a.consumer);
            match res {
                Ok(()) => assert!(
                    a.processed < INPUT_RECORDS as usize,
                    "every record committed on a full disk"
                ),
                Err(e) => break e,
            }
        };
        println!("{setup:?}: the commit failed: {err}");
        assert!(err.is_disk_full(), "{err:?}");
        let ManagerError::DiskFull {
            dir,
            operation,
            partitions,
            ..
        } = &err
        else {
            panic!("not a DiskFull error: {err:?}");
        };
        assert!(
            dir.starts_with(&state_dir),
            "{} is not under {}",
            dir.display(),
            state_dir.display()
        );
        assert!(!partitions.is_empty(), "no partition paused");
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.display().to_string()) && msg.contains("Free space") && msg.contains(operation),
            "{msg}"
        );
        let cause = err.disk_full_cause().expect("the backend's typed cause");
        assert!(
            matches!(cause, state_core::Error::DiskFull { backend, .. } if *backend == setup.backend_name()),
            "{cause:?}"
        );

        // While the disk stays full, the partitions named stay paused and
        // nothing more is committed for them; the others go on, and their
        // checkpoints may fail the same way.
        let at_failure = committed(&a, partitions);
        let still_full = Instant::now() + Duration::from_millis(1500);
        let mut refused = 0;
        // A backend that can reopen in the space left (fjall) may reload,
        // process and fail again meanwhile: the committed offsets are
        // compared only if the partitions never resumed.
        let mut stayed_paused = true;
        while Instant::now() < still_full {
            let ready = a.ready_partitions();
            stayed_paused &= partitions.iter().all(|tp| !ready.contains(&tp.partition()));
            if let Some(Ok(msg)) = a.consumer.poll(Duration::from_millis(50)) {
                process(&a, &msg);
                a.processed += 1;
            }
            let maintained = a.manager.lock().maintain(&a.consumer);
            let committed = maintained.and_then(|()| a.manager.lock().commit(&a.consumer));
            if let Err(e) = committed {
                assert!(e.is_disk_full(), "{e}");
                refused += 1;
            }
        }
        if stayed_paused {
            assert_eq!(
                committed(&a, partitions),
                at_failure,
                "offsets committed for paused partitions"
            );
        }
        println!("{setup:?}: the full disk was reported {refused} more times while it stayed full");

        tmpfs.resize("64m").expect("grow the tmpfs");
        // What failed while the disk was full (a restore, say) may still be
        // reported once; then every partition reloads and resumes.
        let deadline = Instant::now() + Duration::from_secs(20);
        while a.ready_partitions().len() != PARTITIONS as usize {
            let polled = a.consumer.poll(Duration::from_millis(50));
            if let Err(e) = a.manager.lock().maintain(&a.consumer) {
                assert!(e.is_disk_full(), "after the tmpfs grew: {e}");
                println!("{setup:?}: reported late: {e}");
            }
            if let Some(Ok(msg)) = polled {
                process(&a, &msg);
                a.processed += 1;
            }
            assert!(
                Instant::now() < deadline,
                "the paused partitions did not resume after the tmpfs grew"
            );
        }
        finish(&mut a);
        assert_eq!(
            counts(&a),
            truth,
            "{:?} counts after the disk filled up and grew",
            setup.guarantee()
        );
        println!("{setup:?}: counts exact after {:?}", started.elapsed());
    });
}

#[test]
fn a_full_disk_under_rocksdb_stops_its_partitions_and_after_more_space_the_counts_are_exact() {
    fill_and_grow(
        "a_full_disk_under_rocksdb_stops_its_partitions_and_after_more_space_the_counts_are_exact",
        Setup::RocksDb,
    );
}

#[test]
fn a_full_disk_under_write_behind_stops_its_partitions_and_after_more_space_the_counts_are_exact() {
    fill_and_grow(
        "a_full_disk_under_write_behind_stops_its_partitions_and_after_more_space_the_counts_are_exact",
        Setup::RocksDbWriteBehind,
    );
}

#[test]
fn a_full_disk_under_fjall_stops_its_partitions_and_after_more_space_the_counts_are_exact() {
    fill_and_grow(
        "a_full_disk_under_fjall_stops_its_partitions_and_after_more_space_the_counts_are_exact",
        Setup::Fjall,
    );
}

#[test]
fn a_full_disk_under_pipelined_checkpoints_stops_its_partitions_and_after_more_space_the_counts_are_exact() {
    fill_and_grow(
        "a_full_disk_under_pipelined_checkpoints_stops_its_partitions_and_after_more_space_the_counts_are_exact",
        Setup::RocksDbPipelined,
    );
}

#[test]
fn a_full_disk_under_pipelined_at_least_once_stops_its_partitions_and_after_more_space_the_counts_are_exact() {
    fill_and_grow(
        "a_full_disk_under_pipelined_at_least_once_stops_its_partitions_and_after_more_space_the_counts_are_exact",
        Setup::RocksDbPipelinedAtLeastOnce,
    );
}
