//! In-memory building blocks shared by the caches, change sets and indexes
//! of the layers above (write-behind and write-through caches, a
//! transaction's change set, the window index), so each mechanism is
//! written once:
//!
//! * [`ByteMap`] — entries found by byte keys through one hash index, keys
//!   inline ([`InlineKeys`]) or in one buffer ([`Arena`]);
//! * [`Clock`] — second-chance eviction (what [`ByteMap::next_victim`]
//!   runs);
//! * [`InlineBytes`] — a byte string inside its owner up to a length;
//! * [`key_head`] and [`sort_by_key`] — sorting byte keys with few `memcmp`s.

mod byte_map;
mod clock;
mod inline_bytes;
mod key_order;

pub use byte_map::{bytes_eq, hash_bytes, Arena, ByteMap, InlineKeys, KeyStore, Span};
pub use clock::Clock;
pub use inline_bytes::InlineBytes;
pub use key_order::{key_head, sort_by_key};
