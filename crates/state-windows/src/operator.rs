//! [`WindowOperator`]: a defined window, called once per record.

use std::fmt;
use std::marker::PhantomData;

use state_core::StorePartition;
use state_txn::WindowedTransaction;

use crate::error::Result;
use crate::kinds::{Cx, Kind};
use crate::late::{Late, LateReport, OnLate};
use crate::layout::Aggregation;
use crate::result::{Emit, WindowResult};

/// The latest record timestamp a time window takes, ms (about 73 million
/// years after 1970): with every size, step, gap and grace at most
/// [`MAX_DURATION_MS`], the windows' bounds (a timestamp plus a size, a
/// grace and two gaps) stay inside `i64`. A later timestamp is refused
/// with [`WindowError::TimestampTooLarge`](crate::WindowError::TimestampTooLarge)
/// (count windows do no arithmetic on timestamps and take any).
pub const MAX_TIMESTAMP_MS: i64 = i64::MAX / 4;

/// The longest size, step, gap or grace a window definition takes, ms
/// (about 36 million years; see [`MAX_TIMESTAMP_MS`]).
pub const MAX_DURATION_MS: i64 = i64::MAX / 8;

/// A window operator: a window kind (`K`: tumbling, hopping, sliding,
/// session or count), what it computes (`G`: see [`Aggregation`]) and
/// when it emits, for records of type `V`. Made by a definition
/// ([`Tumbling`](crate::Tumbling), [`Session`](crate::Session), ...).
///
/// It holds no state of its own: every window lives in the
/// [`WindowedTransaction`] given to [`process`](Self::process), so the
/// operator can serve any number of partitions (and threads: it is `Sync`
/// when its closures are), and its state gets the store's changelog,
/// recovery and exactly-once commits.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use state_core::{Codec, MemoryPartition};
/// use state_txn::WindowedTransaction;
/// use state_windows::{Count, Tumbling};
///
/// let views = Tumbling::new(Duration::from_secs(60))
///     .grace(Duration::from_secs(5))
///     .aggregate(Count::new())?;
/// let mut txn = WindowedTransaction::new(Arc::new(MemoryPartition::new()), Codec::Json, None);
/// for ts in [1_000, 30_000, 59_999] {
///     assert!(views.process(&mut txn, b"/home", ts, &())?.is_empty());
/// }
/// // 65 s: the first minute is past its grace and closes.
/// let closed = views.process(&mut txn, b"/home", 65_000, &())?;
/// assert_eq!((closed[0].start, closed[0].end, closed[0].value), (0, 60_000, 3));
/// assert_eq!(views.store_name(), "tumbling_window_60000_count");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WindowOperator<V: ?Sized, K, G> {
    pub(crate) kind: K,
    pub(crate) aggregation: G,
    pub(crate) emit: Emit,
    pub(crate) store_name: String,
    pub(crate) on_late: Option<OnLate<V>>,
    pub(crate) record: PhantomData<fn(&V)>,
}

impl<V: ?Sized, K: fmt::Debug, G: fmt::Debug> fmt::Debug for WindowOperator<V, K, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowOperator")
            .field("store_name", &self.store_name)
            .field("kind", &self.kind)
            .field("aggregation", &self.aggregation)
            .field("emit", &self.emit)
            .field("on_late", &self.on_late.is_some())
            .finish()
    }
}

impl<V: ?Sized, K, G: Aggregation<V>> WindowOperator<V, K, G> {
    /// Processes one record of key `key` (the Kafka record's key bytes;
    /// its windows are stored under it) with event time `timestamp` (ms)
    /// in `txn`, the current transaction of the record's partition of this
    /// operator's store. Returns the windows that closed
    /// ([`Emit::OnClose`]: under [`Closing::Partition`](crate::Closing::Partition)
    /// other keys' windows too) or that it updated ([`Emit::OnUpdate`]).
    ///
    /// Expiry happens in the same transaction as the update, so a commit
    /// records both or neither. A record too late for (some of) its
    /// windows is left out of them and reported to the
    /// [`on_late`](Self::on_late) callback and the
    /// [`LATE_RECORDS`](crate::metrics::LATE_RECORDS) metric.
    ///
    /// An error from the transaction leaves it failed (see
    /// [`WindowError::Txn`](crate::WindowError::Txn)).
    pub fn process<P: StorePartition + ?Sized>(
        &self,
        txn: &mut WindowedTransaction<P>,
        key: &[u8],
        timestamp: i64,
        value: &V,
    ) -> Result<Vec<WindowResult<G::Output>>>
    where
        K: Kind<V, G>,
    {
        let late = LateReport::new(self.on_late.as_ref(), &self.store_name);
        let cx = Cx {
            agg: &self.aggregation,
            emit: self.emit,
            name: &self.store_name,
            late: &late,
        };
        let mut out = Vec::new();
        // The schema stays current for the whole record (the reads inside
        // find it set, at no cost).
        self.aggregation
            .decoding(|| self.kind.process(&cx, txn, key, timestamp, value, &mut out))?;
        late.finish();
        Ok(out)
    }
}

impl<V: ?Sized, K, G: Aggregation<V>> WindowOperator<V, K, G> {
    /// The windows of `key` that are open in `txn`, with their results so
    /// far (values collected so far included): for interactive queries,
    /// through a read-only transaction such as the one
    /// `StateReader::with_windowed` gives. Sliding windows list the windows
    /// that end at one of the key's records; count windows, the open ones.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use state_core::{Codec, MemoryPartition};
    /// use state_txn::WindowedTransaction;
    /// use state_windows::{Count, Tumbling};
    ///
    /// let views = Tumbling::new(Duration::from_secs(60)).aggregate(Count::new())?;
    /// let mut txn = WindowedTransaction::new(Arc::new(MemoryPartition::new()), Codec::MsgPack, None);
    /// views.process(&mut txn, b"/home", 1_000, &())?;
    /// views.process(&mut txn, b"/home", 2_000, &())?;
    /// let open = views.open_windows(&txn, b"/home")?;
    /// assert_eq!((open[0].start, open[0].value), (0, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_windows<P: StorePartition + ?Sized>(
        &self,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> state_txn::Result<Vec<WindowResult<G::Output>>>
    where
        K: Kind<V, G>,
    {
        let late = LateReport::new(None, &self.store_name);
        let cx = Cx {
            agg: &self.aggregation,
            emit: self.emit,
            name: &self.store_name,
            late: &late,
        };
        self.kind.open_windows(&cx, txn, key)
    }
}

impl<V: ?Sized, K, G> WindowOperator<V, K, G> {
    /// The same operator, calling `callback` for each window a record
    /// comes too late for (quixstreams' `on_late`; its return value there
    /// only chose whether to log, and a late window is logged at debug
    /// level here). Late records are counted in
    /// [`LATE_RECORDS`](crate::metrics::LATE_RECORDS) either way.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use state_windows::{Sum, Tumbling};
    ///
    /// let late = Arc::new(AtomicU64::new(0));
    /// let seen = late.clone();
    /// let spend = Tumbling::new(Duration::from_secs(10))
    ///     .aggregate(Sum::new())?
    ///     .on_late(move |l: &state_windows::Late<'_, i64>| {
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///         eprintln!("{} ms late for [{}, {})", l.late_by, l.start, l.end);
    ///     });
    /// # let _ = spend;
    /// # Ok::<(), state_windows::DefinitionError>(())
    /// ```
    pub fn on_late(mut self, callback: impl Fn(&Late<'_, V>) + Send + Sync + 'static) -> Self {
        self.on_late = Some(Box::new(callback));
        self
    }

    /// The store name quixstreams 3.28.1 derives for this window
    /// (`tumbling_window_60000_count`, `hopping_window_10000_1000`,
    /// `orders_session_window_30000`, ...): register the windowed store
    /// under it to continue a quixstreams application's window state
    /// (same changelog topic, `changelog__<group>--<topic>--<store>`).
    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    /// When it emits.
    pub fn emit(&self) -> Emit {
        self.emit
    }

    /// The window kind.
    pub fn kind(&self) -> &K {
        &self.kind
    }

    /// What it computes.
    pub fn aggregation(&self) -> &G {
        &self.aggregation
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use state_core::{Codec, Direction, MemoryPartition};

    use super::*;
    use crate::{Closing, Count, Hopping, Session, Sliding, Tumbling, TumblingCount, WindowError};

    /// Runs `op` on a record at `first`, then at `second`, on one key; the
    /// second's outcome, and the windows stored after both.
    fn twice<K: Kind<(), G>, G: Aggregation<()>>(
        op: &WindowOperator<(), K, G>,
        first: i64,
        second: i64,
    ) -> (Result<()>, usize) {
        let mut txn = WindowedTransaction::new(Arc::new(MemoryPartition::new()), Codec::MsgPack, None);
        op.process(&mut txn, b"k", first, &()).unwrap();
        let second = op.process(&mut txn, b"k", second, &()).map(|_| ());
        let stored = txn
            .get_windows::<serde_json::Value>(-1, i64::MAX, b"k", Direction::Forward)
            .map_or(0, |w| w.len());
        (second, stored)
    }

    /// Every time window, with every duration as long as allowed, takes
    /// records up to the largest timestamp without overflowing (tests run
    /// with overflow checks) and refuses the next one, writing nothing.
    #[test]
    fn time_windows_take_timestamps_up_to_the_largest_and_refuse_later_ones() {
        let long = Duration::from_millis(MAX_DURATION_MS as u64);
        let max = MAX_TIMESTAMP_MS;
        macro_rules! check {
            ($op:expr) => {{
                let op = $op.aggregate(Count::new()).unwrap();
                let (taken, stored) = twice(&op, max - 1, max);
                assert!(taken.is_ok(), "{}: {taken:?}", op.store_name());
                assert!(stored > 0, "{}", op.store_name());
                let (refused, stored_after) = twice(&op, max - 1, max + 1);
                match refused {
                    Err(WindowError::TimestampTooLarge {
                        timestamp, max: m, ..
                    }) => {
                        assert_eq!((timestamp, m), (max + 1, MAX_TIMESTAMP_MS))
                    }
                    other => panic!("{}: {other:?}", op.store_name()),
                }
                let (_, stored_one) = twice(&op, max - 1, max - 1);
                assert_eq!(
                    stored_after,
                    stored_one,
                    "{}: the refused record wrote nothing",
                    op.store_name()
                );
                let (at_max, _) = twice(&op, 1, i64::MAX);
                assert!(
                    matches!(at_max, Err(WindowError::TimestampTooLarge { .. })),
                    "{}",
                    op.store_name()
                );
            }};
        }
        check!(Tumbling::new(long).grace(long));
        check!(Tumbling::new(long).grace(long).closing(Closing::Partition));
        check!(Hopping::new(long, Duration::from_millis(MAX_DURATION_MS as u64 / 2)).grace(long));
        check!(Sliding::new(long).grace(long));
        check!(Session::new(long).grace(long));
        check!(Session::new(long).grace(long).closing(Closing::Partition));
        // Count windows take any timestamp, as quixstreams' do.
        let counts = TumblingCount::new(2).aggregate(Count::new()).unwrap();
        assert!(twice(&counts, i64::MIN, i64::MAX).0.is_ok());
    }
}
