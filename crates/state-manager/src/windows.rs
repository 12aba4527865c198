//! Window operators on windowed stores (feature `windows`): a
//! [`WindowOperator`] keeps its windows in the windowed store it is given
//! the transactions of, so the manager's changelog, recovery, standbys,
//! write-behind, exactly-once checkpoints and readers serve it as they
//! serve any windowed store. These are the conveniences for it.
//!
//! ```no_run
//! # fn run(mut manager: state_manager::StateStoreManager, consumer: &state_manager::rdkafka::consumer::BaseConsumer<state_manager::StateContext>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use state_manager::rdkafka::consumer::Consumer;
//! use state_manager::rdkafka::Message;
//! use state_manager::state_windows::{Count, Tumbling};
//! use state_manager::{Codec, StoreSpec};
//!
//! // Views per page and minute, emitted when the minute closes.
//! let views = Tumbling::new(Duration::from_secs(60)).aggregate(Count::new())?;
//! // Stored as quixstreams stores `.tumbling_window(60000).count()`.
//! let store = manager.register_store(StoreSpec::window("page-views", &views).codec(Codec::Json))?;
//! loop {
//!     let Some(msg) = consumer.poll(Duration::from_millis(100)) else { continue };
//!     let msg = msg?;
//!     let (partition, ts) = (msg.partition() as u32, msg.timestamp().to_millis().unwrap_or(0));
//!     let txn = manager.txn(&store, partition)?;
//!     for closed in views.process(txn, msg.key().unwrap_or_default(), ts, &())? {
//!         println!("{:?} [{}, {}): {}", closed.key, closed.start, closed.end, closed.value);
//!     }
//!     manager.processed("page-views", partition, msg.offset())?;
//!     manager.maintain(consumer)?;
//! }
//! # }
//! ```

use state_windows::kinds::Kind;
use state_windows::{Aggregation, WindowOperator, WindowResult};

use crate::error::Result;
use crate::reader::StateReader;
use crate::spec::{StoreHandle, StoreSpec, WindowedStore};

impl StoreSpec<WindowedStore> {
    /// The windowed store of `operator` on stream `stream`, named as
    /// quixstreams 3.28.1 names a window's store
    /// ([`WindowOperator::store_name`]: `tumbling_window_60000_count`, ...),
    /// so its changelog topic is the one a quixstreams application of the
    /// same group wrote. Use [`Codec::Json`](crate::Codec::Json) to share
    /// the state with quixstreams.
    pub fn window<V: ?Sized, K, G>(stream: impl Into<String>, operator: &WindowOperator<V, K, G>) -> Self {
        Self::windowed(stream, operator.store_name())
    }
}

impl StateReader {
    /// The windows of `key` open in the committed state of partition
    /// `partition` of `store`, with `operator`'s results so far
    /// ([`WindowOperator::open_windows`] on one snapshot).
    pub fn open_windows<V: ?Sized, K, G>(
        &self,
        store: &StoreHandle<WindowedStore>,
        partition: u32,
        operator: &WindowOperator<V, K, G>,
        key: &[u8],
    ) -> Result<Vec<WindowResult<G::Output>>>
    where
        K: Kind<V, G>,
        G: Aggregation<V>,
    {
        self.with_windowed(store, partition, |t| operator.open_windows(t, key))
    }
}
