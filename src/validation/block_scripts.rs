//! The script engine as block validation's `InputVerifier`: consensus flags for the block's height,
//! the era of each coin, and the shared signature cache, so a block whose transactions were
//! accepted to the mempool earlier verifies its signatures from the cache.

use super::coins::Coin;
use super::tx::TxContext;
use crate::script::{flags_for_height, utxo_flags, verify_script, SigHashCache, TxSignatureChecker};
use crate::wire::Transaction;

/// Script verification of one input, plugged into block connection (`crate::chain::connect_block`).
pub trait InputVerifier: Sync {
    /// Verifies input `input_index` of `tx`, which spends `coin`, for a block at `height`.
    /// The error is a human-readable reason (the script error).
    fn verify(&self, tx: &Transaction, input_index: usize, coin: &Coin, height: u32) -> Result<(), String>;
}

/// Accepts every input without running its script. For tests and benchmarks only: a node that
/// uses it accepts any spend of any coin.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoScriptCheck;

impl InputVerifier for NoScriptCheck {
    fn verify(&self, _: &Transaction, _: usize, _: &Coin, _: u32) -> Result<(), String> {
        Ok(())
    }
}

/// Verifies block inputs with the consensus flags (never policy ones).
pub struct ScriptVerifier<'a> {
    pub ctx: TxContext<'a>,
}

impl InputVerifier for ScriptVerifier<'_> {
    fn verify(&self, tx: &Transaction, input_index: usize, coin: &Coin, height: u32) -> Result<(), String> {
        let heights = self.ctx.heights();
        let flags = flags_for_height(i32::try_from(height).unwrap_or(i32::MAX), &heights)
            | utxo_flags(i32::try_from(coin.height).unwrap_or(i32::MAX), &heights);
        let cache = SigHashCache::new();
        let mut checker = TxSignatureChecker::new(tx, input_index, coin.value, &cache);
        if let Some(verified) = self.ctx.sig_cache {
            checker = checker.with_sig_cache(verified);
        }
        let input = tx.inputs.get(input_index).ok_or_else(|| format!("no input {input_index}"))?;
        verify_script(&input.script_sig, &coin.script_pubkey, flags, &checker).map_err(|e| e.to_string())
    }
}
