//! Self-healing of damaged store partitions ([`crate::CorruptionPolicy`]):
//! which errors are damage, the quarantine folder they are moved to, and
//! the policy that moves them and reopens them empty for a restore.
//!
//! * [`Healer`] — opens partitions under the policy; moves a partition
//!   whose restore found it damaged aside.
//! * `damage` — which errors mean a partition is damaged ([`Damage`]).
//! * `quarantine` — the `.quarantine` folder and its bounds.
//! * [`DamageWatch`] — damage found while processing (a read of a damaged
//!   block), noted for the manager to rebuild the partition.

mod damage;
mod healer;
mod quarantine;
mod watch;

pub(crate) use damage::{of_restore, of_state, Damage};
pub(crate) use healer::{cannot_rebuild, Healer};
pub(crate) use watch::{DamageWatch, Found};
