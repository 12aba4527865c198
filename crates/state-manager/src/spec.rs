//! Store kinds, how a store is registered ([`StoreSpec`]), and the typed
//! handle registration returns ([`StoreHandle`]).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use state_cache::WriteBehindConfig;
use state_core::ttl::TtlOptions;
use state_core::{Backend, ChangelogSink, Codec, PartitionFormat, StoreKind, StorePartition};
use state_txn::{
    PartitionTransaction, StateTransaction, TimestampedConfig, TimestampedTransaction, WindowIndex, WindowedTransaction,
};

use crate::txns::{OpenTxns, TxnMap};

mod sealed {
    pub trait Sealed {}
}

/// A kind of store: which transaction it hands out and what it records in
/// each partition. Implemented by [`KeyValueStore`], [`WindowedStore`] and
/// [`TimestampedStore`] only.
pub trait StoreType: sealed::Sealed + Send + Sync + 'static {
    /// The transaction of the current checkpoint on one partition.
    type Txn: StateTransaction;
    /// Settings every partition of such a store shares (the timestamped
    /// store's retention; nothing for the others).
    type Settings: Clone + fmt::Debug + Send + Sync + 'static;
    /// The kind recorded in each partition's metadata; opening a partition
    /// recorded as another kind is refused.
    const KIND: StoreKind;

    #[doc(hidden)]
    fn begin(
        partition: Arc<dyn StorePartition>,
        format: &PartitionFormat,
        sink: Option<Arc<dyn ChangelogSink>>,
        settings: &Self::Settings,
        index: Option<Arc<WindowIndex>>,
    ) -> Self::Txn;

    #[doc(hidden)]
    fn txns(open: &mut OpenTxns) -> &mut TxnMap<Self::Txn>;
}

/// The [`StoreType`] of key-value stores (`StoreHandle<KeyValueStore>`):
/// their transaction is a [`PartitionTransaction`].
#[derive(Debug)]
pub enum KeyValueStore {}
/// The [`StoreType`] of windowed stores: their transaction is a
/// [`WindowedTransaction`].
#[derive(Debug)]
pub enum WindowedStore {}
/// The [`StoreType`] of timestamped stores: their transaction is a
/// [`TimestampedTransaction`].
#[derive(Debug)]
pub enum TimestampedStore {}

impl sealed::Sealed for KeyValueStore {}
impl sealed::Sealed for WindowedStore {}
impl sealed::Sealed for TimestampedStore {}

impl StoreType for KeyValueStore {
    type Txn = PartitionTransaction;
    type Settings = ();
    const KIND: StoreKind = StoreKind::KeyValue;

    fn begin(
        p: Arc<dyn StorePartition>,
        f: &PartitionFormat,
        sink: Option<Arc<dyn ChangelogSink>>,
        _: &(),
        _: Option<Arc<WindowIndex>>,
    ) -> Self::Txn {
        match &f.ttl {
            Some(ttl) => PartitionTransaction::with_ttl_state(p, f.codec, sink, ttl.clone()),
            None => PartitionTransaction::new(p, f.codec, sink),
        }
    }

    fn txns(open: &mut OpenTxns) -> &mut TxnMap<Self::Txn> {
        open.key_value()
    }
}

impl StoreType for WindowedStore {
    type Txn = WindowedTransaction;
    type Settings = ();
    const KIND: StoreKind = StoreKind::Windowed;

    fn begin(
        p: Arc<dyn StorePartition>,
        f: &PartitionFormat,
        sink: Option<Arc<dyn ChangelogSink>>,
        _: &(),
        index: Option<Arc<WindowIndex>>,
    ) -> Self::Txn {
        match index {
            Some(index) => WindowedTransaction::with_index(p, f.codec, sink, index),
            None => WindowedTransaction::new(p, f.codec, sink),
        }
    }

    fn txns(open: &mut OpenTxns) -> &mut TxnMap<Self::Txn> {
        open.windowed()
    }
}

impl StoreType for TimestampedStore {
    type Txn = TimestampedTransaction;
    type Settings = TimestampedConfig;
    const KIND: StoreKind = StoreKind::Timestamped;

    fn begin(
        p: Arc<dyn StorePartition>,
        f: &PartitionFormat,
        sink: Option<Arc<dyn ChangelogSink>>,
        settings: &TimestampedConfig,
        _: Option<Arc<WindowIndex>>,
    ) -> Self::Txn {
        TimestampedTransaction::new(p, f.codec, sink, *settings)
    }

    fn txns(open: &mut OpenTxns) -> &mut TxnMap<Self::Txn> {
        open.timestamped()
    }
}

/// How a store is registered: its stream (source topic), name and kind,
/// plus codec, backend and changelog, each with a default.
///
/// ```
/// use state_manager::{StoreSpec, Codec, MemoryBackend};
/// let spec = StoreSpec::windowed("page-views", "per-page")
///     .codec(Codec::Json)
///     .backend(MemoryBackend::shared());
/// # let _ = spec;
/// ```
pub struct StoreSpec<T: StoreType> {
    pub(crate) stream: String,
    pub(crate) name: String,
    pub(crate) settings: T::Settings,
    pub(crate) codec: Codec,
    pub(crate) changelog: bool,
    pub(crate) backend: Option<Arc<dyn Backend>>,
    pub(crate) ttl: Option<TtlOptions>,
    pub(crate) write_behind: Option<WriteBehindConfig>,
    /// Prefixes the in-memory window index holds per partition (windowed
    /// stores; `None`: no index).
    pub(crate) window_index: Option<usize>,
}

impl<T: StoreType> fmt::Debug for StoreSpec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSpec")
            .field("kind", &T::KIND)
            .field("stream", &self.stream)
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("codec", &self.codec)
            .field("changelog", &self.changelog)
            .field("backend", &self.backend.as_ref().map(|b| b.info().name))
            .field("write_behind", &self.write_behind)
            .field("window_index", &self.window_index)
            .finish()
    }
}

impl<T: StoreType> StoreSpec<T> {
    fn with_settings(stream: impl Into<String>, name: impl Into<String>, settings: T::Settings) -> Self {
        StoreSpec {
            stream: stream.into(),
            name: name.into(),
            settings,
            codec: Codec::MsgPack,
            changelog: true,
            backend: None,
            ttl: None,
            write_behind: None,
            window_index: None,
        }
    }

    /// The value codec (default MessagePack). Use [`Codec::Json`] for
    /// stores shared with quixstreams.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The backend of this store (default: the manager's
    /// [`crate::ManagerConfig::backend`]).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// No changelog topic: the store is not fault tolerant (its state is
    /// lost with its local files) and writes locally at every checkpoint.
    pub fn without_changelog(mut self) -> Self {
        self.changelog = false;
        self
    }

    /// Defers and coalesces the store's local writes in a bounded
    /// write-behind cache per partition ([`state_cache::WriteBehindPartition`]).
    /// Every checkpoint still produces and commits its changelog records as
    /// before; only the local write waits, and goes to the backend as one
    /// batch (with the changelog offset it includes) when `config`'s byte or
    /// time bound is reached, when the manager's
    /// [`maintain`](crate::StateStoreManager::maintain) finds it due, or when
    /// the partition is revoked or closed. Reads see the cache first.
    ///
    /// A crash loses only the cache: recovery replays the changelog from the
    /// offset stored with the local data, so at most `config.max_dirty_age`
    /// (plus one commit interval, and the 10 ms between `maintain`'s looks
    /// at the caches' ages) or `config.max_dirty_bytes` of changes are
    /// replayed on restart. Registering it together with
    /// [`without_changelog`](Self::without_changelog) is refused
    /// ([`crate::ManagerError::InvalidConfig`]): without a changelog a crash
    /// would lose those writes.
    pub fn write_behind(mut self, config: WriteBehindConfig) -> Self {
        self.write_behind = Some(config);
        self
    }
}

impl StoreSpec<KeyValueStore> {
    /// A key-value store `name` of stream `stream`.
    pub fn key_value(stream: impl Into<String>, name: impl Into<String>) -> Self {
        Self::with_settings(stream, name, ())
    }

    /// Per-write TTL, byte-compatible with quixstreams 3.28.1: writes carry
    /// a TTL and the record's event time
    /// (`txn.key(msg_key).set_with(key, &value, SetOptions::at(ts).ttl(ttl))`,
    /// see [`state_txn::SetOptions`]); the first such write switches a
    /// partition into TTL mode; expired values read as absent and are swept
    /// at checkpoints. Partitions already in TTL mode (written by
    /// quixstreams) need it to open.
    pub fn ttl(mut self, options: TtlOptions) -> Self {
        self.ttl = Some(options);
        self
    }
}

impl StoreSpec<WindowedStore> {
    /// A windowed store `name` of stream `stream`.
    /// Each active partition gets an in-memory window index
    /// ([`state_txn::WindowIndex`], at most
    /// [`state_txn::DEFAULT_MAX_PREFIXES`] prefixes) unless
    /// [`without_window_index`](Self::without_window_index).
    pub fn windowed(stream: impl Into<String>, name: impl Into<String>) -> Self {
        let mut spec = Self::with_settings(stream, name, ());
        spec.window_index = Some(state_txn::DEFAULT_MAX_PREFIXES);
        spec
    }

    /// Keeps at most `max_prefixes` prefixes (keys) in each partition's
    /// window index. The index serves each prefix's latest timestamp,
    /// last-expired cursor and window list from memory, so reading a
    /// missing window or expiring when nothing can expire reads nothing
    /// from the backend. Prefixes beyond the bound are evicted and read
    /// again from the backend when next touched; results never change.
    pub fn window_index(mut self, max_prefixes: usize) -> Self {
        self.window_index = Some(max_prefixes);
        self
    }

    /// No window index: every window operation reads the backend.
    pub fn without_window_index(mut self) -> Self {
        self.window_index = None;
        self
    }
}

impl StoreSpec<TimestampedStore> {
    /// A timestamped store `name` of stream `stream` with `config`'s
    /// retention and duplicate handling.
    pub fn timestamped(stream: impl Into<String>, name: impl Into<String>, config: TimestampedConfig) -> Self {
        Self::with_settings(stream, name, config)
    }
}

/// A registered store, as [`crate::StateStoreManager::register_store`]
/// returns it. It gives the current checkpoint's transaction of the right
/// kind ([`crate::StateStoreManager::txn`]) without a lookup by name.
///
/// Cheap to clone; valid only with the manager that returned it (another
/// manager refuses it with [`crate::ManagerError::ForeignHandle`]).
pub struct StoreHandle<T: StoreType> {
    pub(crate) manager: u64,
    pub(crate) id: usize,
    pub(crate) stream: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) settings: T::Settings,
    pub(crate) kind: PhantomData<fn() -> T>,
}

impl<T: StoreType> Clone for StoreHandle<T> {
    fn clone(&self) -> Self {
        StoreHandle {
            manager: self.manager,
            id: self.id,
            stream: self.stream.clone(),
            name: self.name.clone(),
            settings: self.settings.clone(),
            kind: PhantomData,
        }
    }
}

impl<T: StoreType> fmt::Debug for StoreHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandle")
            .field("kind", &T::KIND)
            .field("stream", &self.stream)
            .field("name", &self.name)
            .finish()
    }
}

impl<T: StoreType> StoreHandle<T> {
    /// The stream (source topic) the store belongs to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
