//! SV Node's context-free transaction checks (`CheckCoinbase` / `CheckRegularTransaction` and the
//! shared `CheckTransactionCommon`, `src/validation.cpp`): everything that can be decided from the
//! transaction alone. Each failure carries SV Node's reject string ([`TxCheckError::reject_reason`]).
//!
//! Invariants: no allocation proportional to attacker input beyond one set of outpoints; never
//! panics; order of checks follows SV Node so the first failure reported is the same.

use std::collections::HashSet;

use thiserror::Error;

use crate::wire::Transaction;

/// Satoshis in one coin.
pub const COIN: i64 = 100_000_000;
/// Largest amount of money (SV Node `MAX_MONEY`, `src/amount.h`): 21 million coins.
pub const MAX_MONEY: i64 = 21_000_000 * COIN;
/// Largest transaction before Genesis (SV Node `MAX_TX_SIZE_CONSENSUS_BEFORE_GENESIS`).
pub const MAX_TX_SIZE_CONSENSUS_BEFORE_GENESIS: u64 = 1_000_000;
/// Largest transaction after Genesis (SV Node `MAX_TX_SIZE_CONSENSUS_AFTER_GENESIS`).
pub const MAX_TX_SIZE_CONSENSUS_AFTER_GENESIS: u64 = 1_000_000_000;
/// Coinbase scriptSig length bounds (SV Node `MIN/MAX_COINBASE_SCRIPTSIG_SIZE`, `src/consensus/consensus.h`).
pub const MIN_COINBASE_SCRIPTSIG_SIZE: usize = 2;
pub const MAX_COINBASE_SCRIPTSIG_SIZE: usize = 100;

/// Why a transaction fails the context-free checks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxCheckError {
    #[error("transaction has no inputs")]
    NoInputs,
    #[error("transaction has no outputs")]
    NoOutputs,
    #[error("transaction is {size} bytes, above the limit of {max}")]
    Oversize { size: u64, max: u64 },
    #[error("output {index} has negative value {value}")]
    NegativeOutput { index: usize, value: i64 },
    #[error("output {index} value {value} exceeds MAX_MONEY")]
    OutputTooLarge { index: usize, value: i64 },
    #[error("total output value exceeds MAX_MONEY")]
    OutputTotalTooLarge,
    #[error("input {index} spends an outpoint already spent by an earlier input")]
    DuplicateInputs { index: usize },
    #[error(
        "coinbase scriptSig is {len} bytes, outside {MIN_COINBASE_SCRIPTSIG_SIZE}..={MAX_COINBASE_SCRIPTSIG_SIZE}"
    )]
    CoinbaseLength { len: usize },
    #[error("input {index} of a non-coinbase transaction has a null prevout")]
    NullPrevout { index: usize },
}

impl TxCheckError {
    /// SV Node's reject reason for this failure.
    pub const fn reject_reason(&self) -> &'static str {
        match self {
            Self::NoInputs => "bad-txns-vin-empty",
            Self::NoOutputs => "bad-txns-vout-empty",
            Self::Oversize { .. } => "bad-txns-oversize",
            Self::NegativeOutput { .. } => "bad-txns-vout-negative",
            Self::OutputTooLarge { .. } => "bad-txns-vout-toolarge",
            Self::OutputTotalTooLarge => "bad-txns-txouttotal-toolarge",
            Self::DuplicateInputs { .. } => "bad-txns-inputs-duplicate",
            Self::CoinbaseLength { .. } => "bad-cb-length",
            Self::NullPrevout { .. } => "bad-txns-prevout-null",
        }
    }
}

/// Context-free checks with the post-Genesis size limit.
pub fn check_transaction(tx: &Transaction) -> Result<(), TxCheckError> {
    check_transaction_with_max_size(tx, MAX_TX_SIZE_CONSENSUS_AFTER_GENESIS)
}

/// Context-free checks with an explicit size limit (pre-Genesis blocks use 1 MB).
pub fn check_transaction_with_max_size(tx: &Transaction, max_size: u64) -> Result<(), TxCheckError> {
    if tx.inputs.is_empty() {
        return Err(TxCheckError::NoInputs);
    }
    if tx.outputs.is_empty() {
        return Err(TxCheckError::NoOutputs);
    }
    let size = tx.size() as u64;
    if size > max_size {
        return Err(TxCheckError::Oversize { size, max: max_size });
    }
    let mut total: i64 = 0;
    for (index, out) in tx.outputs.iter().enumerate() {
        if out.value < 0 {
            return Err(TxCheckError::NegativeOutput { index, value: out.value });
        }
        if out.value > MAX_MONEY {
            return Err(TxCheckError::OutputTooLarge { index, value: out.value });
        }
        total = total.checked_add(out.value).filter(|t| *t <= MAX_MONEY).ok_or(TxCheckError::OutputTotalTooLarge)?;
    }
    if tx.is_coinbase() {
        let len = tx.inputs[0].script_sig.len();
        if !(MIN_COINBASE_SCRIPTSIG_SIZE..=MAX_COINBASE_SCRIPTSIG_SIZE).contains(&len) {
            return Err(TxCheckError::CoinbaseLength { len });
        }
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (index, input) in tx.inputs.iter().enumerate() {
        if !seen.insert(input.prev_out) {
            return Err(TxCheckError::DuplicateInputs { index });
        }
    }
    for (index, input) in tx.inputs.iter().enumerate() {
        if input.prev_out.is_null() {
            return Err(TxCheckError::NullPrevout { index });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Hash256, OutPoint, TxFields, TxIn, TxOut};
    use bytes::Bytes;

    fn tx(inputs: Vec<TxIn>, outputs: Vec<TxOut>) -> Transaction {
        Transaction::from_fields(TxFields { version: 1, inputs, outputs, lock_time: 0 })
    }
    fn input(txid: u8, vout: u32, script: &[u8]) -> TxIn {
        let mut h = [0u8; 32];
        h[0] = txid;
        TxIn {
            prev_out: OutPoint { txid: Hash256(h), vout },
            script_sig: Bytes::copy_from_slice(script),
            sequence: u32::MAX,
        }
    }
    fn output(value: i64) -> TxOut {
        TxOut { value, script_pubkey: Bytes::new() }
    }

    #[test]
    fn reject_reasons() {
        let r = |t: &Transaction| check_transaction(t).map_err(|e| e.reject_reason());
        assert_eq!(r(&tx(vec![], vec![output(1)])), Err("bad-txns-vin-empty"));
        assert_eq!(r(&tx(vec![input(1, 0, &[])], vec![])), Err("bad-txns-vout-empty"));
        assert_eq!(r(&tx(vec![input(1, 0, &[])], vec![output(-1)])), Err("bad-txns-vout-negative"));
        assert_eq!(r(&tx(vec![input(1, 0, &[])], vec![output(MAX_MONEY + 1)])), Err("bad-txns-vout-toolarge"));
        assert_eq!(
            r(&tx(vec![input(1, 0, &[])], vec![output(MAX_MONEY), output(1)])),
            Err("bad-txns-txouttotal-toolarge")
        );
        assert_eq!(r(&tx(vec![input(1, 0, &[]), input(1, 0, &[])], vec![output(1)])), Err("bad-txns-inputs-duplicate"));
        let null = TxIn { prev_out: OutPoint::NULL, ..input(0, 0, &[0]) };
        assert_eq!(r(&tx(vec![null.clone()], vec![output(1)])), Err("bad-cb-length"));
        assert_eq!(r(&tx(vec![input(1, 0, &[]), null], vec![output(1)])), Err("bad-txns-prevout-null"));
        assert_eq!(r(&tx(vec![input(1, 0, &[])], vec![output(1)])), Ok(()));
        let small = check_transaction_with_max_size(&tx(vec![input(1, 0, &[])], vec![output(1)]), 10);
        assert_eq!(small.map_err(|e| e.reject_reason()), Err("bad-txns-oversize"));
    }
}
