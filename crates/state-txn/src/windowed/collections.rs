//! Collections: values gathered under a prefix by id (a window start or
//! an event time) and a persistent counter that orders them, in
//! `__values__` and `__global-counter__`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{cf, keys, Direction, StorePartition};

use super::layout::{bound, non_negative, stored_millis, window_key_len, Index, GLOBAL_COUNTER_KEY};
use super::transaction::WindowedTransaction;
use crate::error::Result;

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    fn next_counter(&mut self) -> Result<u64> {
        let current = match self.counter {
            Some(c) => Some(c),
            None => {
                let key = GLOBAL_COUNTER_KEY;
                match self.base.get_raw(cf::GLOBAL_COUNTER, key)? {
                    Some(bytes) => Some(self.codec().decode::<u64>(&bytes)?),
                    None => None,
                }
            }
        };
        let next = match current {
            None => 0,
            Some(u64::MAX) => 0,
            Some(c) => c + 1,
        };
        self.counter = Some(next);
        Ok(next)
    }

    /// Adds `value` to the collection of `prefix` under id `id` (a window
    /// start or event time; `None`: the counter itself), returning the
    /// counter that makes the entry unique and ordered.
    pub fn add_to_collection<V: Serialize + ?Sized>(
        &mut self,
        id: Option<i64>,
        value: &V,
        prefix: &[u8],
    ) -> Result<u64> {
        self.guarded(|t| t.add_to_collection_inner(id, value, prefix))
    }

    fn add_to_collection_inner<V: Serialize + ?Sized>(
        &mut self,
        id: Option<i64>,
        value: &V,
        prefix: &[u8],
    ) -> Result<u64> {
        self.base.require_started("add_to_collection")?;
        let id = id.map(|i| non_negative("collection id", i)).transpose()?;
        let encoded = self.codec().encode(value)?;
        let counter = self.next_counter()?;
        let key = keys::window_key(prefix, id.unwrap_or(counter), counter);
        self.base.set_raw(cf::VALUES, key, encoded)?;
        Ok(counter)
    }

    fn collection_items(&self, start: u64, end: u64, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let want_len = window_key_len(prefix);
        let mut out = Vec::new();
        for (k, v) in self.base.iter_range(
            cf::VALUES,
            &bound(prefix, start),
            Some(&bound(prefix, end)),
            Direction::Forward,
        )? {
            if keys::in_layout(&k, want_len, "window collection")? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// The values collected under `prefix` with `start <= id < end`, decoded.
    pub(super) fn collection_values<C: DeserializeOwned>(&self, start: u64, end: u64, prefix: &[u8]) -> Result<Vec<C>> {
        self.collection_items(start, end, prefix)?
            .into_iter()
            .map(|(_, v)| Ok(self.codec().decode(&v)?))
            .collect()
    }

    /// Values collected under `prefix` with `start <= id < end`, in (id,
    /// counter) order.
    pub fn get_from_collection<C: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8]) -> Result<Vec<C>> {
        self.base.require_started("get_from_collection")?;
        let start = start.max(0) as u64;
        let end = non_negative("collection end", end)?;
        self.collection_values(start, end, prefix)
    }

    /// Deletes the values collected under `prefix` with id < `end`, starting
    /// at `start` or, if `None`, at the last deleted id.
    pub fn delete_from_collection(&mut self, end: i64, prefix: &[u8], start: Option<i64>) -> Result<()> {
        self.base.require_started("delete_from_collection")?;
        self.guarded(|t| {
            let end = non_negative("collection end", end)?;
            let start = start.map(|s| s.max(0) as u64);
            t.delete_collection_range(start, end, prefix)
        })
    }

    pub(super) fn delete_collection_range(&mut self, start: Option<u64>, end: u64, prefix: &[u8]) -> Result<()> {
        let start = match start {
            Some(s) => s,
            // A negative recorded id (written by another tool) scans from 0.
            None => u64::try_from(self.get_index(Index::DeletedValue, prefix)?.unwrap_or(0)).unwrap_or(0),
        };
        let mut last_id = None;
        for (key, _) in self.collection_items(start, end, prefix)? {
            let (_, id, _) = keys::parse_window_key(&key)?;
            last_id = Some(last_id.map_or(id, |l: u64| l.max(id)));
            self.base.delete_raw(cf::VALUES, key)?;
        }
        if let Some(id) = last_id {
            self.set_index(Index::DeletedValue, prefix, stored_millis("collection id", id)?)?;
        }
        Ok(())
    }
}
