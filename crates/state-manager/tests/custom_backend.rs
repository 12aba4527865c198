//! A backend defined here, outside the library's crates, plugged into the
//! manager by value: the exactly-once failover scenario runs on it and ends
//! exact, and its counters show the manager, the transactions and recovery
//! all went through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use state_core::{
    Backend, BackendInfo, Direction, KvIter, MemoryPartition, ReadView, Result, StoreLocation, StorePartition,
    WriteBatch,
};
use state_manager::ProcessingGuarantee;
use test_support::counting::*;

/// What the wrapper saw.
#[derive(Debug, Default)]
struct Counters {
    opens: AtomicU64,
    writes: AtomicU64,
    bulk_writes: AtomicU64,
    reads: AtomicU64,
}

/// The in-memory backend, counting what is asked of it.
#[derive(Debug)]
struct CountingBackend(Arc<Counters>);

impl Backend for CountingBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "counting-memory",
            durable: false,
        }
    }

    fn open_partition(&self, _store: &StoreLocation, _partition: u32) -> Result<Arc<dyn StorePartition>> {
        self.0.opens.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(CountingPartition {
            inner: MemoryPartition::new(),
            counters: self.0.clone(),
        }))
    }

    fn destroy_store(&self, _store: &StoreLocation) -> Result<()> {
        Ok(())
    }
}

struct CountingPartition {
    inner: MemoryPartition,
    counters: Arc<Counters>,
}

impl StorePartition for CountingPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(cf, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.iter_range(cf, lower, upper, direction)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write(batch)
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.counters.bulk_writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_bulk(batch)
    }

    fn column_families(&self) -> Result<Vec<String>> {
        self.inner.column_families()
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        self.inner.read_view()
    }
}

#[test]
fn exactly_once_failover_on_a_backend_defined_outside_the_library_is_exact() {
    let counters = Arc::new(Counters::default());
    let backend: Arc<dyn Backend> = Arc::new(CountingBackend(counters.clone()));
    // `failover` asserts the counts equal the input under exactly-once.
    failover(ProcessingGuarantee::ExactlyOnce, "cooperative-sticky", &|c| {
        c.backend = backend.clone();
    });
    let (opens, writes, bulk, reads) = (
        counters.opens.load(Ordering::Relaxed),
        counters.writes.load(Ordering::Relaxed),
        counters.bulk_writes.load(Ordering::Relaxed),
        counters.reads.load(Ordering::Relaxed),
    );
    eprintln!(
        "custom backend: {opens} partitions opened, {writes} checkpoint writes, {bulk} recovery batches, {reads} reads"
    );
    assert!(
        opens >= PARTITIONS as u64,
        "the manager opened its partitions through the backend"
    );
    assert!(writes > 0, "checkpoints flushed through the backend");
    assert!(bulk > 0, "recovery (the survivor's takeover) wrote through the backend");
    assert!(reads > 0, "transactions read through the backend");
}
