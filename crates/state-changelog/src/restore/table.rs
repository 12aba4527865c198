//! [`TaskTable`]: the engine's tasks, keyed by changelog partition and
//! found from a fetched record's topic and partition without allocating.

use std::collections::HashMap;

use state_core::TopicPartition;

use crate::restore::task::ChangelogTask;

/// A task's place in the table; valid until the task is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskId(usize);

/// The tasks of the engine, at most one per changelog partition.
///
/// Records come in runs from one partition (a fetch response per
/// partition), so the last task found is checked first: comparing its
/// partition number and topic name is all a record costs. Otherwise tasks
/// are found by partition number, then topic name (a number is shared by
/// one task per store at most). Nothing is allocated or hashed by topic
/// per record.
#[derive(Default)]
pub(crate) struct TaskTable {
    slots: Vec<Option<ChangelogTask>>,
    free: Vec<usize>,
    by_partition: HashMap<i32, Vec<usize>>,
    last_found: Option<usize>,
    len: usize,
}

impl TaskTable {
    /// Adds `task`, replacing (and returning) a task of the same changelog
    /// partition.
    pub(crate) fn insert(&mut self, task: ChangelogTask) -> (TaskId, Option<ChangelogTask>) {
        let replaced = self
            .find(task.changelog.topic(), task.changelog.partition())
            .and_then(|id| self.remove(id));
        let partition = task.changelog.partition();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(task);
                slot
            }
            None => {
                self.slots.push(Some(task));
                self.slots.len() - 1
            }
        };
        self.by_partition.entry(partition).or_default().push(slot);
        self.len += 1;
        (TaskId(slot), replaced)
    }

    /// Removes the task `id`.
    pub(crate) fn remove(&mut self, id: TaskId) -> Option<ChangelogTask> {
        let task = self.slots.get_mut(id.0)?.take()?;
        if let Some(slots) = self.by_partition.get_mut(&task.changelog.partition()) {
            slots.retain(|&s| s != id.0);
            if slots.is_empty() {
                self.by_partition.remove(&task.changelog.partition());
            }
        }
        if self.last_found == Some(id.0) {
            self.last_found = None;
        }
        self.free.push(id.0);
        self.len -= 1;
        Some(task)
    }

    /// The task of `topic[partition]`.
    #[inline]
    pub(crate) fn find(&mut self, topic: &str, partition: i32) -> Option<TaskId> {
        if let Some(slot) = self.last_found {
            if let Some(Some(t)) = self.slots.get(slot) {
                if t.changelog.partition() == partition && t.changelog.topic() == topic {
                    return Some(TaskId(slot));
                }
            }
        }
        let slot = *self.by_partition.get(&partition)?.iter().find(|&&s| {
            self.slots
                .get(s)
                .and_then(Option::as_ref)
                .is_some_and(|t| t.changelog.topic() == topic)
        })?;
        self.last_found = Some(slot);
        Some(TaskId(slot))
    }

    /// The task of `changelog`.
    pub(crate) fn find_key(&mut self, changelog: &TopicPartition) -> Option<TaskId> {
        self.find(changelog.topic(), changelog.partition())
    }

    /// The task `id`.
    #[inline]
    pub(crate) fn get(&self, id: TaskId) -> Option<&ChangelogTask> {
        self.slots.get(id.0).and_then(Option::as_ref)
    }

    /// The task `id`, to change.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut ChangelogTask> {
        self.slots.get_mut(id.0).and_then(Option::as_mut)
    }

    /// Every id that may hold a task, for loops that remove tasks as they
    /// go (no allocation; [`get`](Self::get) skips empty ones).
    pub(crate) fn ids(&self) -> impl Iterator<Item = TaskId> {
        (0..self.slots.len()).map(TaskId)
    }

    /// Every task.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &ChangelogTask)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (TaskId(i), t)))
    }

    /// The number of tasks.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True if there is no task.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every task.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = ChangelogTask> + '_ {
        self.by_partition.clear();
        self.free.clear();
        self.last_found = None;
        self.len = 0;
        self.slots.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use state_core::{MemoryPartition, StorePartition};

    use super::*;
    use crate::restore::apply::{ApplierConfig, ChangelogApplier};
    use crate::restore::task::TaskState;

    fn task(topic: &str, partition: i32) -> ChangelogTask {
        let p: Arc<dyn StorePartition> = Arc::new(MemoryPartition::new());
        ChangelogTask {
            changelog: TopicPartition::new(topic, partition),
            applier: ChangelogApplier::new(
                p.clone(),
                topic,
                partition,
                Default::default(),
                ApplierConfig::default(),
            ),
            partition: p,
            state: TaskState::Standby {
                source: TopicPartition::new("in", partition),
            },
            next: 0,
            high_watermark: 0,
            location: String::new(),
            last_activity: Instant::now(),
        }
    }

    #[test]
    fn tasks_are_found_by_topic_and_partition_and_slots_are_reused() {
        let mut t = TaskTable::default();
        let (a, _) = t.insert(task("a", 0));
        let (b, _) = t.insert(task("b", 0));
        let (a1, _) = t.insert(task("a", 1));
        assert_eq!(t.len(), 3);
        assert_eq!(t.find("a", 0), Some(a));
        assert_eq!(t.find("b", 0), Some(b));
        assert_eq!(t.find("a", 0), Some(a), "after another partition was found");
        assert_eq!(t.find("a", 1), Some(a1));
        assert_eq!(t.find("c", 0), None);
        assert_eq!(t.find("a", 2), None);
        assert!(t.remove(b).is_some());
        assert_eq!(t.find("b", 0), None);
        assert!(t.remove(b).is_none(), "removed once");
        let (c, _) = t.insert(task("c", 0));
        assert_eq!(c, b, "the free slot is reused");
        assert_eq!(t.find_key(&TopicPartition::new("c", 0)), Some(c));
        assert_eq!(t.iter().count(), 3);
        assert_eq!(t.ids().filter(|&id| t.get(id).is_some()).count(), 3);
    }

    #[test]
    fn a_task_of_the_same_changelog_partition_replaces_the_old_one() {
        let mut t = TaskTable::default();
        t.insert(task("a", 0));
        let (id, replaced) = t.insert(task("a", 0));
        assert!(replaced.is_some());
        assert_eq!(t.len(), 1);
        assert_eq!(t.find("a", 0), Some(id));
        assert_eq!(t.drain().count(), 1);
        assert!(t.is_empty());
        assert_eq!(t.find("a", 0), None);
    }
}
