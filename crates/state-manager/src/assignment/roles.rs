//! The role of every assigned source partition, with a version that moves
//! whenever one changes, so a caller that caches readiness (an event-time
//! aligner asking for every partition on every record) can tell at the cost
//! of one integer comparison whether its copy still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use state_core::TopicPartition;

/// Where an assigned source partition stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Its stores are restoring; the ids of those not done yet. Its source
    /// partition is paused.
    Restoring(BTreeSet<usize>),
    /// Ready: processing may use its stores.
    Active,
}

/// The assigned source partitions and their roles. Reads go through
/// `Deref` to the map; every change goes through a method here, which
/// moves [`version`](Self::version).
#[derive(Debug, Default)]
pub(super) struct Roles {
    roles: BTreeMap<TopicPartition, Role>,
    version: u64,
}

impl Roles {
    /// Changes whenever a partition is assigned, revoked or changes role
    /// (never repeats within the manager's life): equal versions mean
    /// every `is_ready` and `is_assigned` answers as before.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// Sets `tp`'s role.
    pub(super) fn insert(&mut self, tp: TopicPartition, role: Role) -> Option<Role> {
        self.version += 1;
        self.roles.insert(tp, role)
    }

    /// Forgets `tp`.
    pub(super) fn remove(&mut self, tp: &TopicPartition) -> Option<Role> {
        self.version += 1;
        self.roles.remove(tp)
    }

    /// `tp`'s role, to change in place (counted as a change).
    pub(super) fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut Role> {
        self.version += 1;
        self.roles.get_mut(tp)
    }
}

impl Deref for Roles {
    type Target = BTreeMap<TopicPartition, Role>;

    fn deref(&self) -> &Self::Target {
        &self.roles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_moves_the_version_and_reads_do_not() {
        let tp = TopicPartition::new("t", 0);
        let mut roles = Roles::default();
        let mut seen = roles.version();
        let mut moved = |roles: &Roles| {
            let v = roles.version();
            let moved = v != seen;
            seen = v;
            moved
        };
        roles.insert(tp.clone(), Role::Restoring(BTreeSet::from([1])));
        assert!(moved(&roles), "insert");
        assert!(roles.contains_key(&tp) && roles.get(&tp) != Some(&Role::Active));
        assert!(!moved(&roles), "reads");
        if let Some(Role::Restoring(w)) = roles.get_mut(&tp) {
            w.clear();
        }
        assert!(moved(&roles), "get_mut");
        roles.insert(tp.clone(), Role::Active);
        assert!(moved(&roles), "insert over");
        roles.remove(&tp);
        assert!(moved(&roles), "remove");
        roles.remove(&tp);
        assert!(
            moved(&roles),
            "a remove of nothing still counts (it is cheap and never wrong)"
        );
    }
}
