//! `statectl`: look inside store partitions and rebuild them from their
//! changelogs, without the application running.
//!
//! * [`inspect()`]: column families, approximate key counts, size, stored
//!   changelog offset.
//! * [`dump()`]: every key and value as JSON lines, sorted by column family
//!   then key.
//! * [`restore()`]: rebuild a partition from its changelog through the
//!   library's recovery.
//! * [`verify()`]: replay the changelog into a scratch partition and report
//!   every difference from a partition on disk.
//!
//! Reading commands open partitions read-only and take no lock, so they work
//! next to a running application (seeing the state as of the open).
#![warn(missing_docs)]

mod diff;
mod dump;
mod error;
mod inspect;
mod replay;

pub use diff::{diff_partitions, Difference, DifferenceKind};
pub use dump::{dump, DumpOptions};
pub use error::{CliError, Result};
pub use inspect::{inspect, ColumnFamilyInfo, Inspection, TtlInfo};
pub use replay::{restore, verify, CommittedOffsets, ReplaySource, RestoreSummary, VerifyReport};
