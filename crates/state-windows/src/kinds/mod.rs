//! The window kinds, each quixstreams 3.28.1's algorithm on the windowed
//! transaction: [`FixedKind`] (tumbling and hopping), [`SlidingKind`],
//! [`SessionKind`] and [`CountKind`] (count windows).

mod count;
mod fixed;
mod session;
mod sliding;

use state_core::StorePartition;
use state_txn::WindowedTransaction;

use crate::error::{Result, WindowError};
use crate::late::LateReport;
use crate::layout::{Aggregation, Sealed};
use crate::result::{Emit, WindowResult};

pub use count::CountKind;
pub use fixed::FixedKind;
pub use session::SessionKind;
pub use sliding::SlidingKind;

/// Whose event time closes time windows (quixstreams'
/// `closing_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Closing {
    /// Each key's own newest event time: a key's windows close only when
    /// that key gets a later record. The default.
    #[default]
    Key,
    /// The partition's: any record of the partition closes every key's due
    /// windows (results then carry other keys too).
    Partition,
}

/// What a kind needs of its operator while processing one record.
pub(crate) struct Cx<'a, V: ?Sized, G> {
    pub(crate) agg: &'a G,
    pub(crate) emit: Emit,
    pub(crate) name: &'a str,
    pub(crate) late: &'a LateReport<'a, V>,
}

impl<V: ?Sized, G: Aggregation<V>> Cx<'_, V, G> {
    /// The result of a window with stored state `stored` (`None`: null or
    /// absent) and collected values.
    pub(crate) fn result(
        &self,
        key: Vec<u8>,
        start: i64,
        end: i64,
        stored: Option<G::Stored>,
        collected: Vec<G::Item>,
    ) -> WindowResult<G::Output> {
        let state = self.state(stored);
        WindowResult {
            key,
            start,
            end,
            value: self.agg.output(&state, collected),
        }
    }

    /// The state of a stored value (`None`: the initial state).
    pub(crate) fn state(&self, stored: Option<G::Stored>) -> G::State {
        match stored {
            Some(s) => self.agg.restore(s),
            None => self.agg.init(),
        }
    }

    /// The result of an updated window.
    pub(crate) fn updated(&self, key: &[u8], start: i64, end: i64, state: &G::State) -> WindowResult<G::Output> {
        WindowResult {
            key: key.to_vec(),
            start,
            end,
            value: self.agg.output(state, Vec::new()),
        }
    }

    pub(crate) fn on_close(&self) -> bool {
        self.emit == Emit::OnClose
    }
}

/// A window kind: what one record does to the state of its key (and, when
/// closing by partition, of the partition). Sealed.
pub trait Kind<V: ?Sized, G: Aggregation<V>>: Sealed {
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn process<P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        key: &[u8],
        timestamp: i64,
        value: &V,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<()>;

    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn open_windows<P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> state_txn::Result<Vec<WindowResult<G::Output>>>;
}

/// A time window's record timestamp in range: not negative, and at most
/// [`MAX_TIMESTAMP_MS`](crate::MAX_TIMESTAMP_MS), so its windows' bounds
/// cannot overflow.
pub(crate) fn time_in_range(window: &str, timestamp: i64) -> Result<()> {
    if timestamp < 0 {
        return Err(WindowError::NegativeTimestamp {
            window: window.to_owned(),
            timestamp,
        });
    }
    if timestamp > crate::MAX_TIMESTAMP_MS {
        return Err(WindowError::TimestampTooLarge {
            window: window.to_owned(),
            timestamp,
            max: crate::MAX_TIMESTAMP_MS,
        });
    }
    Ok(())
}

/// The stored windows of `key` (all of them), with their states and, if
/// collecting, the values collected in `[start, end + collect_past_end)`:
/// what the time kinds' `open_windows` build on.
pub(crate) fn stored_windows<
    V: ?Sized,
    G: Aggregation<V>,
    P: StorePartition + ?Sized,
    S: serde::de::DeserializeOwned,
>(
    cx: &Cx<'_, V, G>,
    txn: &WindowedTransaction<P>,
    key: &[u8],
) -> state_txn::Result<Vec<(i64, i64, S)>> {
    let windows: Vec<state_txn::Window<S>> = cx
        .agg
        .decoding(|| txn.get_windows(-1, i64::MAX, key, state_core::Direction::Forward))?;
    Ok(windows
        .into_iter()
        .map(|w| {
            let (start, end) = (w.start, w.end);
            (start, end, w.value)
        })
        .collect())
}

impl<V: ?Sized, G: Aggregation<V>> Cx<'_, V, G> {
    /// The result of an open window: its state and the values collected
    /// in `[start, collect_end)` so far.
    pub(crate) fn open_result<P: StorePartition + ?Sized>(
        &self,
        txn: &WindowedTransaction<P>,
        key: &[u8],
        (start, end): (i64, i64),
        collect_end: i64,
        stored: Option<G::Stored>,
    ) -> state_txn::Result<WindowResult<G::Output>> {
        let collected = if self.agg.collects() {
            self.agg.decoding(|| txn.get_from_collection(start, collect_end, key))?
        } else {
            Vec::new()
        };
        Ok(self.result(key.to_vec(), start, end, stored, collected))
    }
}
