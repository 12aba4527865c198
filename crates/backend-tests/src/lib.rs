//! Nothing to use: this crate holds tests (see `tests/`).
//!
//! A backend crate depends on `state-core` only and runs `state-core`'s
//! conformance kit in its own tests. What needs the transaction layer as
//! well runs here, on every persistent backend: `state-txn`'s transaction
//! kit, quixstreams byte compatibility (RocksDB), bad input and
//! write-behind over RocksDB. So `cargo tree -p state-rocksdb` shows no
//! `state-txn`, not even as a dev-dependency.
