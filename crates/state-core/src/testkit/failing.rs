//! [`FailingWrites`]: a partition whose writes fail when a test says so, for
//! checking what callers do with a failed write (a full disk, a dying
//! device) without needing one.

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::partition::{Direction, KvIter, StorePartition};
use crate::view::ReadView;

/// Which write a [`FailingWrites`] is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// [`StorePartition::write`].
    Write,
    /// [`StorePartition::write_bulk`].
    WriteBulk,
}

type Plan = Box<dyn Fn(WriteKind) -> Option<Error> + Send + Sync>;

/// Wraps `inner`: before each write, `plan` is asked; an error it returns
/// fails the write and nothing of it reaches `inner`. Reads and everything
/// else go straight to `inner`.
pub struct FailingWrites<P> {
    inner: P,
    plan: Plan,
}

impl<P: StorePartition> FailingWrites<P> {
    /// `inner` with writes failing whenever `plan` returns an error.
    pub fn new(inner: P, plan: impl Fn(WriteKind) -> Option<Error> + Send + Sync + 'static) -> Self {
        FailingWrites {
            inner,
            plan: Box::new(plan),
        }
    }

    /// The wrapped partition.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn check(&self, kind: WriteKind) -> Result<()> {
        match (self.plan)(kind) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<P: StorePartition> StorePartition for FailingWrites<P> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(cf, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        self.inner.iter_range(cf, lower, upper, direction)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.check(WriteKind::Write)?;
        self.inner.write(batch)
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.check(WriteKind::WriteBulk)?;
        self.inner.write_bulk(batch)
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
    use std::sync::atomic::{AtomicBool, Ordering};
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
        fail.store(false, Ordering::SeqCst);
        p.put(cf::DEFAULT, b"k", b"v").unwrap();
        assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), Some(b"v".to_vec()));
    }
}
