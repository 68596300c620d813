//! The mempool: validated, unconfirmed transactions, ready to relay and to mine.
//!
//! - `pool`: the concurrent pool (dashmap) keyed by txid, with the index of spent outpoints that
//!   makes "first seen wins" atomic, parent/child links, size limits, eviction and expiry.
//! - `orphans`: transactions waiting for a parent, bounded by count and bytes.
//! - `view`: the pool's unconfirmed outputs layered over the chain's UTXO set, as a `CoinView`.
//! - `persist`: `mempool.dat`, the pool across clean restarts.
//!
//! Depends on `wire` and `validation` (for `CoinView`); validation workers insert directly from
//! many threads, without queuing behind one task.

pub mod accept;
#[cfg(test)]
mod accept_tests;
pub mod orphans;
pub mod persist;
pub mod pool;
#[cfg(test)]
#[path = "pool_tests.rs"]
mod pool_tests;
pub mod view;

pub use accept::MempoolSync;
pub use orphans::{OrphanPool, OrphanPoolConfig};
pub use pool::{Entry, InsertError, Mempool, MempoolConfig, RemovalReason};
pub use view::MempoolView;
