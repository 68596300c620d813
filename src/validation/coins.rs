//! The view of unspent outputs that transaction validation reads.
//!
//! Validation never owns chain state: it asks a `CoinView` for the coin an input spends. The chain's
//! UTXO set implements it, the mempool layers its own unconfirmed outputs over that, and tests
//! implement it with a map. Implementations must be cheap to query from many threads at once.

use crate::wire::OutPoint;
use bytes::Bytes;

/// An unspent output and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// Satoshis.
    pub value: i64,
    pub script_pubkey: Bytes,
    /// Height of the block that created it; for an output of an unconfirmed transaction, the
    /// height the next block will have (SV Node's `MEMPOOL_HEIGHT` convention).
    pub height: u32,
    pub is_coinbase: bool,
}

/// Read access to unspent outputs.
pub trait CoinView: Sync {
    /// The unspent coin at `outpoint`, or `None` if it does not exist or is spent.
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin>;

    /// Height of the current best block: a transaction is validated for inclusion at the next one.
    fn best_height(&self) -> u32;

    /// Median time past of the best block (for lock-time finality, BIP113).
    fn median_time_past(&self) -> i64;

    /// Median time past of the block at `height` on the best chain (for BIP68 time-based
    /// relative locks); `None` when the view does not know it.
    fn median_time_past_at(&self, _height: u32) -> Option<i64> {
        None
    }
}

/// The block times BIP68's time-based locks read: every coin view has them, and so does a block
/// being connected, whose coins come from its own staging.
pub trait ChainTimes {
    /// Median time past of the best block.
    fn median_time_past(&self) -> i64;
    /// Median time past of the block at `height` on the best chain; `None` when unknown.
    fn median_time_past_at(&self, height: u32) -> Option<i64>;
}

impl<T: CoinView + ?Sized> ChainTimes for T {
    fn median_time_past(&self) -> i64 {
        CoinView::median_time_past(self)
    }

    fn median_time_past_at(&self, height: u32) -> Option<i64> {
        CoinView::median_time_past_at(self, height)
    }
}

/// A `CoinView` over a plain map, for tests and for layering.
#[derive(Debug, Clone, Default)]
pub struct MapCoinView {
    pub coins: std::collections::HashMap<OutPoint, Coin>,
    pub height: u32,
    pub mtp: i64,
}

impl CoinView for MapCoinView {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.coins.get(outpoint).cloned()
    }

    fn best_height(&self) -> u32 {
        self.height
    }

    fn median_time_past(&self) -> i64 {
        self.mtp
    }

    /// The map has one median time for the whole chain: the tip's.
    fn median_time_past_at(&self, height: u32) -> Option<i64> {
        (height <= self.height).then_some(self.mtp)
    }
}
