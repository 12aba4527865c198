//! A consumer-group member that counts records per key in a key-value
//! store with a changelog: the processor of the manager's failover, fault,
//! restore and write-behind suites, and of the takeover benchmark.
//!
//! * [`Member`] (in `member.rs`): one member, configured by
//!   [`MemberConfig`]; its operations return [`MemberError`].
//! * The suites' fixture (in `suite.rs`): the group `g` counting topic
//!   [`INPUT`] ([`PARTITIONS`] partitions, [`RECORDS`] records over
//!   [`KEYS`] keys) and helpers that panic on any error, as tests want.

mod member;
mod suite;

pub use member::{count, Fate, Member, MemberConfig, MemberError};
pub use suite::{
    assigned, cluster, counts, failover, finish, member, member_with, member_with_spec, own_all, process_until,
    produce_input, settle, step, CHANGELOG, GROUP, INPUT, KEYS, PARTITIONS, RECORDS,
};
