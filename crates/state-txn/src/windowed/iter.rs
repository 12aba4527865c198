//! Lazy window iteration and the partition-wide enumerations quixstreams
//! 3.28.1's session windows are built on (`windowed/transaction.py`
//! `iter_windows`, `iter_prefixes`, `keys`, `key_from_prefix`).

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use state_core::{cf, keys, Direction, KeyValue, StorePartition};

use super::layout::WINDOW_SUFFIX_LEN;
use super::transaction::WindowedTransaction;
use super::windows::Window;
use crate::cache::Cached;
use crate::error::Result;

/// First store read of a cursor; each later read doubles, up to the cap.
const FIRST_CHUNK: usize = 8;
const MAX_CHUNK: usize = 1024;

/// A lazy walk over the windows of one prefix in start order (see
/// [`WindowedTransaction::windows_cursor`]). It holds no borrow of the
/// transaction: each [`next`](Self::next) takes it, so the caller may delete
/// windows between steps, as quixstreams allows while iterating.
#[derive(Debug)]
pub struct WindowCursor {
    lower: Vec<u8>,
    upper: Vec<u8>,
    direction: Direction,
    key_len: usize,
    /// This transaction's windows in range, taken when the cursor was made.
    cached: VecDeque<KeyValue>,
    /// Stored windows read ahead.
    stored: VecDeque<KeyValue>,
    /// Where the next store read resumes (forward: lower bound; backward:
    /// upper bound); `None` before the first read.
    resume: Option<Vec<u8>>,
    store_done: bool,
    chunk: usize,
}

impl WindowCursor {
    fn empty() -> Self {
        WindowCursor {
            lower: Vec::new(),
            upper: Vec::new(),
            direction: Direction::Forward,
            key_len: 0,
            cached: VecDeque::new(),
            stored: VecDeque::new(),
            resume: None,
            store_done: true,
            chunk: FIRST_CHUNK,
        }
    }

    fn fill<P: StorePartition + ?Sized>(&mut self, partition: &P) -> Result<()> {
        if self.store_done || !self.stored.is_empty() {
            return Ok(());
        }
        let (lower, upper) = match self.direction {
            Direction::Forward => (self.resume.as_deref().unwrap_or(&self.lower), self.upper.as_slice()),
            Direction::Backward => (self.lower.as_slice(), self.resume.as_deref().unwrap_or(&self.upper)),
        };
        let mut read = 0;
        for item in partition
            .iter_range(cf::DEFAULT, lower, Some(upper), self.direction)?
            .take(self.chunk)
        {
            self.stored.push_back(item?);
            read += 1;
        }
        if read < self.chunk {
            self.store_done = true;
        } else if let Some((last, _)) = self.stored.back() {
            self.resume = Some(match self.direction {
                Direction::Forward => {
                    let mut next = last.clone();
                    next.push(0);
                    next
                }
                Direction::Backward => last.clone(),
            });
        }
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        Ok(())
    }

    /// The next window, or `None` at the end. This transaction's changes
    /// shadow stored windows; a window deleted in the transaction (even
    /// after the cursor was made) is skipped; keys of longer prefixes that
    /// share the range (`k|x` under `k`) are skipped.
    pub fn next<V: DeserializeOwned, P: StorePartition + ?Sized>(
        &mut self,
        txn: &WindowedTransaction<P>,
    ) -> Result<Option<Window<V>>> {
        loop {
            self.fill(&**txn.base.partition())?;
            let forward = self.direction == Direction::Forward;
            let take_cached = match (self.cached.front(), self.stored.front()) {
                (None, None) => return Ok(None),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((c, _)), Some((s, _))) => {
                    if c == s {
                        self.stored.pop_front();
                        true
                    } else {
                        (c < s) == forward
                    }
                }
            };
            let item = if take_cached {
                self.cached.pop_front()
            } else {
                self.stored.pop_front()
            };
            let Some((key, value)) = item else {
                return Ok(None);
            };
            if key.len() != self.key_len || txn.base.cache().get(cf::DEFAULT, &key) == Cached::Deleted {
                continue;
            }
            let pair = &key[key.len() - keys::U64_PAIR_LEN..];
            let (start, end) = keys::decode_u64_pair(pair)?;
            return Ok(Some(Window::stored(start, end, txn.codec().decode(&value)?)?));
        }
    }
}

/// `prefix | u64(n)`, with the separator even for an empty prefix
/// (quixstreams' `append_integer`).
fn append_integer(prefix: &[u8], n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 9);
    out.extend_from_slice(prefix);
    out.push(keys::SEPARATOR);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// A lazy walk over the windows of `prefix` with `start_from <= start`
    /// and, if given, `start <= start_to` (both inclusive, unlike
    /// [`get_windows`](Self::get_windows)), in start order or backwards:
    /// quixstreams' `iter_windows`. The first window costs one seek, not a
    /// read of the whole range. Windows may be deleted between steps.
    ///
    /// This transaction's changed windows in range are taken when the
    /// cursor is made (quixstreams: at the first step). As in quixstreams,
    /// windows of the empty prefix (17-byte keys) are never found.
    pub fn windows_cursor(
        &self,
        prefix: &[u8],
        start_from: i64,
        start_to: Option<i64>,
        direction: Direction,
    ) -> Result<WindowCursor> {
        let from = start_from.max(0);
        if start_to.is_some_and(|to| to < from) {
            return Ok(WindowCursor::empty());
        }
        let lower = append_integer(prefix, from as u64);
        let upper = match start_to {
            None => {
                let mut u = prefix.to_vec();
                u.push(keys::SEPARATOR + 1);
                u
            }
            Some(to) => append_integer(prefix, (to as u64).saturating_add(1)),
        };
        let mut cached: VecDeque<KeyValue> = self
            .base
            .cache()
            .range(cf::DEFAULT, &lower, Some(&upper))
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_vec(), v.to_vec())))
            .collect();
        if direction == Direction::Backward {
            cached = cached.into_iter().rev().collect();
        }
        Ok(WindowCursor {
            lower,
            upper,
            direction,
            key_len: prefix.len() + WINDOW_SUFFIX_LEN,
            cached,
            stored: VecDeque::new(),
            resume: None,
            store_done: false,
            chunk: FIRST_CHUNK,
        })
    }

    /// [`windows_cursor`](Self::windows_cursor) as an iterator borrowing the
    /// transaction (no deletes while it lives).
    pub fn iter_windows<'t, V: DeserializeOwned + 't>(
        &'t self,
        prefix: &[u8],
        start_from: i64,
        start_to: Option<i64>,
        direction: Direction,
    ) -> Result<impl Iterator<Item = Result<Window<V>>> + 't> {
        let mut cursor = self.windows_cursor(prefix, start_from, start_to, direction)?;
        Ok(std::iter::from_fn(move || cursor.next(self).transpose()))
    }

    /// The message-key prefixes that have windows, close to quixstreams'
    /// `iter_prefixes`: the stored ones in the order their first window key
    /// appears (each once), merged with the prefixes of this transaction's
    /// changed windows (sorted) by a merge that assumes both sorted. So a
    /// prefix may come twice, and stored prefixes whose windows this
    /// transaction deleted still come. A snapshot taken at the call.
    ///
    /// One difference: quixstreams' cache creates an entry for every
    /// prefix a transaction only *read* (or deleted from), and its
    /// `iter_prefixes` lists those too; here only prefixes with a stored
    /// or changed key come. Its session windows, the only user, find
    /// nothing to expire under such a prefix and write nothing for it, so
    /// the results and bytes are the same (`docs/formats.md`, bug B1).
    pub fn iter_prefixes(&self) -> Result<Vec<Vec<u8>>> {
        self.iter_prefixes_in(cf::DEFAULT)
    }

    /// [`iter_prefixes`](Self::iter_prefixes) over the keys of column family
    /// `cf_name` (quixstreams' `iter_prefixes(cf_name=)`).
    pub fn iter_prefixes_in(&self, cf_name: &str) -> Result<Vec<Vec<u8>>> {
        let mut stored: Vec<Vec<u8>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for item in self
            .base
            .partition()
            .iter_range(cf_name, b"", None, Direction::Forward)?
        {
            let (key, _) = item?;
            if key.len() <= keys::U64_PAIR_LEN {
                continue;
            }
            let prefix = &key[..key.len() - WINDOW_SUFFIX_LEN];
            if seen.insert(prefix.to_vec()) {
                stored.push(prefix.to_vec());
            }
        }
        let mut cached: Vec<Vec<u8>> = Vec::new();
        if let Some(changes) = self.base.cache().cf_changes(cf_name) {
            for (key, _) in changes.sorted() {
                if key.len() == keys::U64_PAIR_LEN {
                    cached.push(Vec::new());
                } else if key.len() > keys::U64_PAIR_LEN {
                    cached.push(key[..key.len() - WINDOW_SUFFIX_LEN].to_vec());
                }
            }
        }
        cached.sort();
        cached.dedup();
        let mut out = Vec::with_capacity(stored.len() + cached.len());
        let (mut s, mut c) = (stored.into_iter().peekable(), cached.into_iter().peekable());
        loop {
            match (s.peek(), c.peek()) {
                (None, None) => break,
                (None, Some(_)) => out.extend(c.next()),
                (Some(_), None) => out.extend(s.next()),
                (Some(a), Some(b)) => {
                    if a < b {
                        out.extend(s.next());
                    } else if b < a {
                        out.extend(c.next());
                    } else {
                        out.extend(s.next());
                        c.next();
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every key of column family `cf_name` as quixstreams' `keys` yields
    /// them: this transaction's written keys (in key order; quixstreams uses
    /// write order), then the stored keys it did not write and did not
    /// delete from `default` (quixstreams checks the `default` deletes
    /// whatever the column family). A snapshot taken at the call.
    pub fn keys(&self, cf_name: &str) -> Result<Vec<Vec<u8>>> {
        self.base.require_started("keys")?;
        let cache = self.base.cache();
        let mut out: Vec<Vec<u8>> = Vec::new();
        if let Some(changes) = cache.cf_changes(cf_name) {
            for (key, value) in changes.sorted() {
                if value.is_some() {
                    out.push(key.to_vec());
                }
            }
        }
        for item in self
            .base
            .partition()
            .iter_range(cf_name, b"", None, Direction::Forward)?
        {
            let (key, _) = item?;
            let written = matches!(cache.get(cf_name, &key), Cached::Value(_));
            let deleted = cache.get(cf::DEFAULT, &key) == Cached::Deleted;
            if !written && !deleted {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// The message key a prefix was made from, for keys that were encoded
    /// with the store's codec (quixstreams' `key_from_prefix` for non-bytes
    /// keys). A bytes message key is its own prefix and needs no call.
    pub fn key_from_prefix<K: DeserializeOwned>(&self, prefix: &[u8]) -> Result<K> {
        Ok(self.codec().decode(prefix)?)
    }
}
