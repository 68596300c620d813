//! The pool's unconfirmed outputs layered over the chain's coins.
//!
//! A transaction may spend outputs of pool transactions; those coins get the height of the next
//! block (SV Node's `MEMPOOL_HEIGHT` convention). Outpoints already spent by a pool transaction are
//! *not* hidden here: conflicts are detected, and reported as `txn-mempool-conflict`, by the
//! pool's atomic insert, not mistaken for missing inputs.

use super::pool::Mempool;
use crate::validation::{Coin, CoinView};
use crate::wire::OutPoint;

pub struct MempoolView<'a> {
    pub base: &'a dyn CoinView,
    pub pool: &'a Mempool,
}

impl CoinView for MempoolView<'_> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if let Some(entry) = self.pool.get(&outpoint.txid) {
            let out = entry.tx().outputs.get(outpoint.vout as usize)?.clone();
            return Some(Coin {
                value: out.value,
                script_pubkey: out.script_pubkey.clone(),
                height: self.base.best_height() + 1,
                is_coinbase: false,
            });
        }
        self.base.coin(outpoint)
    }

    fn best_height(&self) -> u32 {
        self.base.best_height()
    }

    fn median_time_past(&self) -> i64 {
        self.base.median_time_past()
    }

    fn median_time_past_at(&self, height: u32) -> Option<i64> {
        self.base.median_time_past_at(height)
    }
}
