//! [`TestPartition`]: a partition wrapper for tests of callers. It counts
//! the reads it is asked for, keeps the batches it writes, and fails writes
//! when the test says so (a full disk, a dying device) without needing one.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::partition::{Direction, KvIter, StorePartition};
use crate::view::ReadView;

/// Which write a [`TestPartition`] is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// [`StorePartition::write`].
    Write,
    /// [`StorePartition::write_bulk`].
    WriteBulk,
}

/// One operation of a batch a [`TestPartition`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenOp {
    /// Column family.
    pub cf: String,
    /// Key.
    pub key: Vec<u8>,
    /// Value; `None`: a delete.
    pub value: Option<Vec<u8>>,
    /// Written with [`WriteBatch::put_new`].
    pub new_key: bool,
}

/// A batch a [`TestPartition`] wrote (one that failed is not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenBatch {
    /// `write` or `write_bulk`.
    pub kind: WriteKind,
    /// Its operations, in order.
    pub ops: Vec<WrittenOp>,
    /// The changelog offset it carried.
    pub changelog_offset: Option<u64>,
}

type Plan = Box<dyn Fn(WriteKind) -> Option<Error> + Send + Sync>;

/// Wraps `inner`: before each write, the plan is asked; an error it returns
/// fails the write and nothing of it reaches `inner`. Point reads and range
/// reads are counted, written batches kept; everything goes to `inner`.
pub struct TestPartition<P> {
    inner: P,
    plan: Plan,
    gets: AtomicUsize,
    scans: AtomicUsize,
    written: Mutex<Vec<WrittenBatch>>,
}

/// The name [`TestPartition`] had when it only failed writes.
pub type FailingWrites<P> = TestPartition<P>;

impl<P: StorePartition> TestPartition<P> {
    /// `inner` with writes failing whenever `plan` returns an error.
    pub fn new(inner: P, plan: impl Fn(WriteKind) -> Option<Error> + Send + Sync + 'static) -> Self {
        TestPartition {
            inner,
            plan: Box::new(plan),
            gets: AtomicUsize::new(0),
            scans: AtomicUsize::new(0),
            written: Mutex::new(Vec::new()),
        }
    }

    /// `inner`, watched only: no write fails.
    pub fn watching(inner: P) -> Self {
        Self::new(inner, |_| None)
    }

    /// The wrapped partition.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Point reads asked so far (`get`, and what defaults to it).
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Range reads asked so far.
    pub fn scans(&self) -> usize {
        self.scans.load(Ordering::SeqCst)
    }

    /// The batches written so far, oldest first.
    pub fn written(&self) -> Vec<WrittenBatch> {
        self.written.lock().clone()
    }

    /// Forgets the batches written so far.
    pub fn forget_written(&self) {
        self.written.lock().clear();
    }

    fn check(&self, kind: WriteKind) -> Result<()> {
        match (self.plan)(kind) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn record(&self, kind: WriteKind, batch: &WriteBatch) {
        let ops = batch
            .iter()
            .map(|op| WrittenOp {
                cf: op.cf.to_owned(),
                key: op.key.to_vec(),
                value: op.value.map(<[u8]>::to_vec),
                new_key: op.new_key,
            })
            .collect();
        self.written.lock().push(WrittenBatch {
            kind,
            ops,
            changelog_offset: batch.changelog_offset(),
        });
    }
}

impl<P: StorePartition> StorePartition for TestPartition<P> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(cf, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.iter_range(cf, lower, upper, direction)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.check(WriteKind::Write)?;
        self.inner.write(batch)?;
        self.record(WriteKind::Write, batch);
        Ok(())
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.check(WriteKind::WriteBulk)?;
        self.inner.write_bulk(batch)?;
        self.record(WriteKind::WriteBulk, batch);
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        self.inner.persist()
    }

    fn column_families(&self) -> Result<Vec<String>> {
        self.inner.column_families()
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        self.inner.read_view()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::{cf, MemoryPartition};

    #[test]
    fn a_failed_write_changes_nothing_and_the_next_one_goes_through() {
        let fail = Arc::new(AtomicBool::new(true));
        let f = fail.clone();
        let p = FailingWrites::new(MemoryPartition::new(), move |_| {
            f.load(Ordering::SeqCst)
                .then(|| Error::backend("test", "writing", "disk full"))
        });
        assert!(p.put(cf::DEFAULT, b"k", b"v").is_err());
        assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), None);
        assert!(p.written().is_empty(), "a failed batch is not kept");
        fail.store(false, Ordering::SeqCst);
        p.put(cf::DEFAULT, b"k", b"v").unwrap();
        assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(p.gets(), 2);
        assert_eq!(p.written().len(), 1);
    }

    #[test]
    fn reads_are_counted_and_batches_kept() {
        let p = TestPartition::watching(MemoryPartition::new());
        let mut b = WriteBatch::new();
        b.put_new(cf::DEFAULT, b"n", b"1");
        b.delete(cf::VALUES, b"d");
        b.set_changelog_offset(7);
        p.write(&b).unwrap();
        let _ = p.iter_range(cf::DEFAULT, b"", None, Direction::Forward).unwrap();
        assert_eq!((p.gets(), p.scans()), (0, 1));
        let w = p.written();
        assert_eq!(w[0].changelog_offset, Some(7));
        assert_eq!(w[0].kind, WriteKind::Write);
        assert_eq!(
            w[0].ops,
            vec![
                WrittenOp {
                    cf: cf::DEFAULT.into(),
                    key: b"n".to_vec(),
                    value: Some(b"1".to_vec()),
                    new_key: true
                },
                WrittenOp {
                    cf: cf::VALUES.into(),
                    key: b"d".to_vec(),
                    value: None,
                    new_key: false
                },
            ]
        );
        p.forget_written();
        assert!(p.written().is_empty());
    }
}
