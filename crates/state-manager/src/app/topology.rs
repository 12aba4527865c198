//! [`Topology`]: what an application reads, keeps and writes — declared
//! once in its setup function, so production ([`crate::App`]) and tests
//! (`kafka_state::testing`) build the same thing.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::manager::StateStoreManager;
use crate::spec::{StoreHandle, StoreSpec, StoreType};

/// The topics of an application: every one it reads (the streams of its
/// stores and the sources it declared), every output it declared, and the
/// changelog of each store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topics {
    /// Topics the application consumes.
    pub sources: BTreeSet<String>,
    /// Topics the application writes to (declared with [`Topology::output`]).
    pub outputs: BTreeSet<String>,
    /// `(source topic, changelog topic)` of each store with a changelog.
    pub changelogs: Vec<(String, String)>,
}

/// Declares an application's stores, sources and outputs; handed to the
/// setup function of [`crate::App::new`] (and of the test driver), which
/// returns the processor holding the store handles.
///
/// ```
/// # use state_manager::{ManagerError, KeyValueStore, StoreHandle, StoreSpec, Topology};
/// struct WordCount {
///     counts: StoreHandle<KeyValueStore>,
/// }
///
/// fn word_count(topology: &mut Topology<'_>) -> Result<WordCount, ManagerError> {
///     let counts = topology.store(StoreSpec::key_value("words", "counts"))?; // reads "words"
///     topology.output("word-counts");
///     Ok(WordCount { counts })
/// }
/// ```
pub struct Topology<'m> {
    manager: &'m mut StateStoreManager,
    sources: BTreeSet<String>,
    outputs: BTreeSet<String>,
}

impl<'m> Topology<'m> {
    /// A topology registering its stores with `manager`.
    pub(crate) fn new(manager: &'m mut StateStoreManager) -> Self {
        Topology {
            manager,
            sources: BTreeSet::new(),
            outputs: BTreeSet::new(),
        }
    }

    /// Registers a store (see [`StateStoreManager::register_store`]) and
    /// makes its stream a source: its records are processed, and the
    /// store's partition *p* follows the stream's partition *p*.
    pub fn store<T: StoreType>(&mut self, spec: StoreSpec<T>) -> Result<StoreHandle<T>> {
        let handle = self.manager.register_store(spec)?;
        self.sources.insert(handle.stream().to_owned());
        Ok(handle)
    }

    /// Also consumes `topic` (a stream without a store of its own).
    pub fn source(&mut self, topic: impl Into<String>) -> &mut Self {
        self.sources.insert(topic.into());
        self
    }

    /// Declares an output topic the processor sends to (test clusters
    /// create it; in production it must exist).
    pub fn output(&mut self, topic: impl Into<String>) -> &mut Self {
        self.outputs.insert(topic.into());
        self
    }

    /// The manager, for what the topology does not cover (listeners,
    /// the configuration).
    pub fn manager(&mut self) -> &mut StateStoreManager {
        self.manager
    }

    /// The topics declared so far.
    pub(crate) fn topics(&self) -> Topics {
        Topics {
            sources: self.sources.clone(),
            outputs: self.outputs.clone(),
            changelogs: self.manager.changelog_topics(),
        }
    }
}
