//! The two phases of a windowed commit: `prepare` persists the collection
//! counter and sends every change to the changelog; `flush` writes the
//! changes, then hands them to the shared
//! [`WindowIndex`](super::WindowIndex).

use state_core::{cf, ProcessedOffsets, StorePartition};

use super::index::Tracked;
use super::layout::{Index, GLOBAL_COUNTER_KEY};
use super::transaction::WindowedTransaction;
use crate::error::{Result, TxnError};

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// Persists the counter (if used), then prepares the base transaction.
    pub fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
        self.base.require_started("prepare")?;
        if let Some(counter) = self.counter {
            let res = self
                .codec()
                .encode(&counter)
                .map_err(TxnError::from)
                .and_then(|v| self.base.set_raw(cf::GLOBAL_COUNTER, GLOBAL_COUNTER_KEY.to_vec(), v));
            self.fail_on_err(res)?;
        }
        self.base.prepare(processed_offsets)
    }

    /// Flushes the base transaction (see [`PartitionTransaction::flush`](crate::PartitionTransaction::flush));
    /// once the write succeeded, the shared [`WindowIndex`](super::WindowIndex) (if any) takes
    /// the changes.
    pub fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        let Some(shared) = self.shared.clone() else {
            return self.base.flush(changelog_offset);
        };
        if self.untracked {
            // Changes made through `base_mut`: read them from the change set.
            let codec = self.codec();
            return self
                .base
                .flush_then(changelog_offset, |changes| shared.apply(changes, codec));
        }
        // Every change went through the windowed API, which recorded per
        // prefix what it did: one index update per prefix.
        let prefixes = &self.prefixes;
        self.base.flush_then(changelog_offset, |_| {
            let prefixes = prefixes.borrow();
            shared.apply_tracked(prefixes.iter().map(|(prefix, p)| Tracked {
                prefix,
                position: p.shared.as_ref().map(|s| s.position),
                windows: prefixes.touched(p),
                latest: p.written_value(Index::Timestamp),
                expired: p.written_value(Index::Expired),
            }))
        })
    }

    /// `prepare(None)` then `flush(None)`.
    pub fn commit(mut self) -> Result<()> {
        self.prepare(None)?;
        self.flush(None)
    }
}
