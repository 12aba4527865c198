//! The crash model: random writes, bulk writes, reads, flushes and crashes
//! (dropping the cache unflushed) against a model of every write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use state_core::{cf, Direction, KeyValue, MemoryBudget, MemoryPartition, Result, StorePartition, WriteBatch};

use super::all;
use crate::config::{ENTRY_OVERHEAD, OFFSET_CHARGE};
use crate::{WriteBehindConfig, WriteBehindPartition};

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<(u8, u8, Option<u8>, bool)>, bool),
    Bulk(Vec<(u8, u8, Option<u8>)>),
    Get(u8, u8),
    Range(u8, u8, u8, bool),
    Flush,
    FlushIfDue,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let change = (0u8..2, 0u8..12, proptest::option::weighted(0.7, 0u8..4), any::<bool>());
    prop_oneof![
        6 => (proptest::collection::vec(change, 1..6), any::<bool>()).prop_map(|(c, o)| Op::Write(c, o)),
        1 => proptest::collection::vec((0u8..2, 0u8..12, proptest::option::of(0u8..4)), 1..4).prop_map(Op::Bulk),
        3 => (0u8..2, 0u8..12).prop_map(|(c, k)| Op::Get(c, k)),
        2 => (0u8..2, 0u8..12, 0u8..13, any::<bool>()).prop_map(|(c, a, b, d)| Op::Range(c, a, b, d)),
        1 => Just(Op::Flush),
        1 => Just(Op::FlushIfDue),
        1 => Just(Op::Crash),
    ]
}

const CFS: [&str; 2] = [cf::DEFAULT, "__values__"];
type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

fn key(k: u8) -> Vec<u8> {
    vec![b'k', k]
}

fn value(v: u8, size: usize) -> Vec<u8> {
    vec![v; 1 + (v as usize * size) % 23]
}

fn below_state(p: &dyn StorePartition) -> Model {
    let mut out = Model::new();
    for (i, name) in CFS.iter().enumerate() {
        for (k, v) in all(p, name, Direction::Forward) {
            out.insert((i, k), v);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Reads always agree with a model of every successful write; the
    /// partition below always holds the state after some earlier write
    /// with that write's offset (never a mix), and after a flush the
    /// latest one; a crash (dropping the wrapper unflushed) loses
    /// exactly the writes after that state; the resident bytes never
    /// exceed the bound. With `behind`, every batch is applied by the
    /// helper thread after its write returns (whatever the helper has
    /// not done when the next call comes is finished by that call).
    #[test]
    fn the_partition_below_holds_a_consistent_prefix_across_crashes(
        ops in proptest::collection::vec(op(), 1..60),
        max_entries in 2usize..12,
        dirty_entries in 1usize..12,
        age_zero in any::<bool>(),
        size in 1usize..5,
        budget_entries in proptest::option::of(0usize..10),
        behind in any::<bool>(),
    ) {
        let below: Arc<MemoryPartition> = Arc::new(MemoryPartition::new());
        let max_bytes = max_entries * (ENTRY_OVERHEAD + 26) + OFFSET_CHARGE;
        let cfg = WriteBehindConfig {
            max_bytes,
            max_dirty_bytes: dirty_entries * (ENTRY_OVERHEAD + 26),
            max_dirty_age: if age_zero { Duration::ZERO } else { Duration::from_secs(3600) },
            apply_behind_ops: if behind { 1 } else { usize::MAX },
        };
        // A memory budget smaller than the cache's own bound, or none.
        let budget = budget_entries.map(|n| MemoryBudget::with_engine_share(n * (ENTRY_OVERHEAD + 26), 0));
        let open = || match &budget {
            Some(budget) => WriteBehindPartition::with_budget(below.clone(), cfg, budget).unwrap(),
            None => WriteBehindPartition::new(below.clone(), cfg).unwrap(),
        };
        let mut wb = open();
        let mut current = Model::new();
        let mut offset: Option<u64> = None;
        let mut next_offset = 0u64;
        // (offset, state) after every successful write; `floor` is the
        // earliest entry the partition below may still be at.
        let mut history: Vec<(Option<u64>, Model)> = vec![(None, Model::new())];
        let mut floor = 0usize;
        for op in ops {
            match op {
                Op::Write(changes, with_offset) => {
                    let mut b = WriteBatch::new();
                    let mut next = current.clone();
                    for (c, k, v, hint) in changes {
                        let k = key(k);
                        match v {
                            Some(v) => {
                                let v = value(v, size);
                                // A truthful hint only.
                                if hint && !next.contains_key(&(c as usize, k.clone())) {
                                    b.put_new(CFS[c as usize], &k, &v);
                                } else {
                                    b.put(CFS[c as usize], &k, &v);
                                }
                                next.insert((c as usize, k), v);
                            }
                            None => {
                                b.delete(CFS[c as usize], &k);
                                next.remove(&(c as usize, k));
                            }
                        }
                    }
                    if with_offset {
                        b.set_changelog_offset(next_offset);
                        offset = Some(next_offset);
                        next_offset += 1;
                    }
                    wb.write(&b).unwrap();
                    current = next;
                    history.push((offset, current.clone()));
                }
                Op::Bulk(changes) => {
                    // Recovery: the partition below takes it at once.
                    let mut b = WriteBatch::new();
                    for (c, k, v) in changes {
                        let k = key(k);
                        match v {
                            Some(v) => {
                                let v = value(v, size);
                                b.put(CFS[c as usize], &k, &v);
                                current.insert((c as usize, k), v);
                            }
                            None => {
                                b.delete(CFS[c as usize], &k);
                                current.remove(&(c as usize, k));
                            }
                        }
                    }
                    b.set_changelog_offset(next_offset);
                    offset = Some(next_offset);
                    next_offset += 1;
                    wb.write_bulk(&b).unwrap();
                    history.push((offset, current.clone()));
                    prop_assert_eq!(below_state(&*below), current.clone(), "bulk writes go below at once");
                    floor = history.len() - 1;
                }
                Op::Get(c, k) => {
                    let got = wb.get(CFS[c as usize], &key(k)).unwrap();
                    prop_assert_eq!(got.clone(), current.get(&(c as usize, key(k))).cloned());
                    prop_assert_eq!(wb.exists(CFS[c as usize], &key(k)).unwrap(), got.is_some());
                }
                Op::Range(c, a, b, forward) => {
                    let (lo, hi) = (key(a), key(b));
                    let d = if forward { Direction::Forward } else { Direction::Backward };
                    let got: Vec<KeyValue> = wb
                        .iter_range(CFS[c as usize], &lo, Some(&hi), d)
                        .unwrap()
                        .collect::<Result<_>>()
                        .unwrap();
                    let mut want: Vec<KeyValue> = current
                        .iter()
                        .filter(|((cc, k), _)| *cc == c as usize && *k >= lo && *k < hi)
                        .map(|((_, k), v)| (k.clone(), v.clone()))
                        .collect();
                    if !forward {
                        want.reverse();
                    }
                    prop_assert_eq!(got, want);
                }
                Op::Flush => {
                    wb.flush().unwrap();
                    prop_assert_eq!(below_state(&*below), current.clone());
                    prop_assert_eq!(below.changelog_offset().unwrap(), offset);
                    floor = history.len() - 1;
                }
                Op::FlushIfDue => {
                    let flushed = wb.flush_if_due().unwrap();
                    if age_zero {
                        prop_assert_eq!(below_state(&*below), current.clone());
                        floor = history.len() - 1;
                    } else {
                        prop_assert!(!flushed);
                    }
                }
                Op::Crash => {
                    drop(wb);
                    wb = open();
                    // The partition below is where the model goes back to.
                    let state = below_state(&*below);
                    let at = below.changelog_offset().unwrap();
                    let j = (floor..history.len())
                        .rev()
                        .find(|&j| history[j].0 == at && history[j].1 == state);
                    prop_assert!(j.is_some(), "below is no earlier state: {:?} at {:?}", state, at);
                    let j = j.unwrap_or(0);
                    history.truncate(j + 1);
                    floor = j;
                    current = state;
                    offset = at;
                    prop_assert_eq!(wb.changelog_offset().unwrap(), at);
                }
            }
            // After every step: below is at some state since the floor.
            let state = below_state(&*below);
            let at = below.changelog_offset().unwrap();
            let j = (floor..history.len()).rev().find(|&j| history[j].0 == at && history[j].1 == state);
            prop_assert!(j.is_some(), "below holds a mix: {:?} at {:?}", state, at);
            floor = j.unwrap_or(floor);
            prop_assert!(wb.cache_stats().resident_bytes <= max_bytes, "{:?}", wb.cache_stats());
            if let Some(budget) = &budget {
                let reserved = budget.stats().caches.reserved;
                prop_assert!(wb.cache_stats().resident_bytes <= reserved, "{:?}", wb.cache_stats());
                prop_assert!(reserved <= budget.cache_bytes());
            }
            prop_assert_eq!(wb.changelog_offset().unwrap(), offset);
        }
    }
}
