//! `statectl`: look inside store partitions and rebuild them from their
//! changelogs, without the application running.
//!
//! Every command works on RocksDB and fjall partitions ([`Engine`]: named
//! with `--backend`, else found from the files in the directory); only
//! RocksDB's key-count estimates have no fjall counterpart.
//!
//! * [`inspect()`]: column families, approximate key counts (RocksDB),
//!   size, stored changelog offset.
//! * [`dump()`]: every key and value as JSON lines, sorted by column family
//!   then key.
//! * [`restore()`]: rebuild a partition from its changelog through the
//!   library's recovery.
//! * [`verify()`]: replay the changelog into a scratch partition and report
//!   every difference from a partition on disk.
//! * [`snapshot_create()`], [`snapshot_restore()`], [`snapshot_verify()`]:
//!   partition snapshots in an object store (`state-snapshot`).
//! * [`stop_on_signals()`]: Ctrl-C and SIGTERM as [`ReplaySource::stop`],
//!   so a restore stops consistent and a verify removes its scratch copy.
//!
//! On RocksDB, reading commands open partitions read-only and take no lock,
//! so they work next to a running application (seeing the state as of the
//! open). fjall has no read-only mode: its partitions must not be open
//! elsewhere. `restore` and `verify` replay with the rules of the store
//! kind and codec the partition records ([`RecordedStore`]), as the
//! manager restores.
#![warn(missing_docs)]

mod corruption;
mod diff;
mod dump;
mod engine;
mod error;
mod inspect;
mod interrupt;
mod partition_dir;
mod replay;
mod rocksdb_lock;
mod snapshot;
mod store_format;
mod value_codec;

pub use diff::{diff_partitions, Difference, DifferenceKind};
pub use dump::{dump, DumpOptions};
pub use engine::Engine;
pub use error::{CliError, Result};
pub use inspect::{inspect, Checksums, ColumnFamilyInfo, Inspection, TtlInfo};
pub use interrupt::{stop_on_signals, INTERRUPTED_EXIT};
pub use partition_dir::PartitionDir;
pub use replay::{restore, verify, CommittedOffsets, ReplaySource, RestoreSummary, VerifyReport};
pub use snapshot::{newest_snapshot, snapshot_create, snapshot_restore, snapshot_verify, SnapshotTarget};
pub use store_format::RecordedStore;
