//! SV Node's context-free transaction checks (`CheckCoinbase` / `CheckRegularTransaction` and the
//! shared `CheckTransactionCommon`, `src/validation.cpp`): everything that can be decided from the
//! transaction and its era (before or after Genesis) alone. Each failure carries SV Node's reject
//! string ([`TxCheckError::reject_reason`]).
//!
//! Invariants: no allocation proportional to attacker input beyond one set of outpoints; never
//! panics; order of checks follows SV Node so the first failure reported is the same.

use std::collections::HashSet;

use thiserror::Error;

use crate::script::{count_sigops, is_p2sh};
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
/// Most legacy-counted sigops one transaction may have before Genesis
/// (`MAX_TX_SIGOPS_COUNT_BEFORE_GENESIS`); none are counted after.
pub const MAX_TX_SIGOPS_BEFORE_GENESIS: u64 = 20_000;

/// The era a transaction is checked for: its size limit and whether Genesis rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxEra {
    pub genesis: bool,
    pub max_size: u64,
}

impl TxEra {
    /// The consensus limits of a block before or after Genesis (`GetMaxTxSize(genesis, true)`).
    pub const fn consensus(genesis: bool) -> TxEra {
        let max_size = if genesis { MAX_TX_SIZE_CONSENSUS_AFTER_GENESIS } else { MAX_TX_SIZE_CONSENSUS_BEFORE_GENESIS };
        TxEra { genesis, max_size }
    }
}

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
    #[error("{sigops} signature operations, above the pre-Genesis limit of {MAX_TX_SIGOPS_BEFORE_GENESIS}")]
    TooManySigops { sigops: u64 },
    #[error("a coinbase transaction outside the first place of a block")]
    UnexpectedCoinbase,
    #[error("the first transaction of a block is not a coinbase")]
    NotCoinbase,
    #[error("output {index} is P2SH, which Genesis made invalid")]
    P2shOutput { index: usize },
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
            Self::TooManySigops { .. } => "bad-txn-sigops",
            Self::UnexpectedCoinbase => "bad-tx-coinbase",
            Self::NotCoinbase => "bad-cb-missing",
            Self::P2shOutput { .. } => "bad-txns-vout-p2sh",
        }
    }

    /// SV Node's misbehaviour score (svnode-protocol.md §3.3): empty inputs or outputs and null
    /// prevouts 10, everything else 100.
    pub const fn score(&self) -> u32 {
        match self {
            Self::NoInputs | Self::NoOutputs | Self::NullPrevout { .. } => 10,
            _ => 100,
        }
    }
}

/// Context-free checks of a coinbase or a regular transaction with the post-Genesis size limit and
/// no era rules (what the transaction test vectors exercise).
pub fn check_transaction(tx: &Transaction) -> Result<(), TxCheckError> {
    check_transaction_with_max_size(tx, MAX_TX_SIZE_CONSENSUS_AFTER_GENESIS)
}

/// [`check_transaction`] with an explicit size limit.
pub fn check_transaction_with_max_size(tx: &Transaction, max_size: u64) -> Result<(), TxCheckError> {
    let era = TxEra { genesis: true, max_size };
    if tx.is_coinbase() {
        check_coinbase(tx, era).map(drop)
    } else {
        check_common(tx, era)?;
        check_inputs(tx)
    }
}

/// SV Node's `CheckCoinbase`: the first transaction of a block. Returns its legacy sigop count
/// (0 after Genesis).
pub fn check_coinbase(tx: &Transaction, era: TxEra) -> Result<u64, TxCheckError> {
    if !tx.is_coinbase() {
        return Err(TxCheckError::NotCoinbase);
    }
    let sigops = check_common(tx, era)?;
    let len = tx.inputs[0].script_sig.len();
    if !(MIN_COINBASE_SCRIPTSIG_SIZE..=MAX_COINBASE_SCRIPTSIG_SIZE).contains(&len) {
        return Err(TxCheckError::CoinbaseLength { len });
    }
    Ok(sigops)
}

/// SV Node's `CheckRegularTransaction`: any transaction but a block's first, loose ones included.
/// Returns its legacy sigop count (0 after Genesis).
pub fn check_regular(tx: &Transaction, era: TxEra) -> Result<u64, TxCheckError> {
    if tx.is_coinbase() {
        return Err(TxCheckError::UnexpectedCoinbase);
    }
    let sigops = check_common(tx, era)?;
    if era.genesis {
        if let Some(index) = tx.outputs.iter().position(|o| is_p2sh(&o.script_pubkey)) {
            return Err(TxCheckError::P2shOutput { index });
        }
    }
    check_inputs(tx)?;
    Ok(sigops)
}

/// `CheckTransactionCommon`: inputs and outputs present, size, output values, and before Genesis
/// the legacy sigop count, which it returns.
fn check_common(tx: &Transaction, era: TxEra) -> Result<u64, TxCheckError> {
    if tx.inputs.is_empty() {
        return Err(TxCheckError::NoInputs);
    }
    if tx.outputs.is_empty() {
        return Err(TxCheckError::NoOutputs);
    }
    let size = tx.size() as u64;
    if size > era.max_size {
        return Err(TxCheckError::Oversize { size, max: era.max_size });
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
    if era.genesis {
        return Ok(0);
    }
    let sigops = legacy_sigops(tx);
    if sigops > MAX_TX_SIGOPS_BEFORE_GENESIS {
        return Err(TxCheckError::TooManySigops { sigops });
    }
    Ok(sigops)
}

/// Legacy sigop count of every scriptSig and scriptPubKey (SV Node `GetSigOpCountWithoutP2SH`).
pub fn legacy_sigops(tx: &Transaction) -> u64 {
    let ins: u64 = tx.inputs.iter().map(|i| count_sigops(&i.script_sig, false)).sum();
    ins + tx.outputs.iter().map(|o| count_sigops(&o.script_pubkey, false)).sum::<u64>()
}

/// No null prevout and no outpoint twice, input by input in that order, as SV Node checks them.
fn check_inputs(tx: &Transaction) -> Result<(), TxCheckError> {
    let mut seen = HashSet::with_capacity(tx.inputs.len());
    for (index, input) in tx.inputs.iter().enumerate() {
        if input.prev_out.is_null() {
            return Err(TxCheckError::NullPrevout { index });
        }
        if !seen.insert(input.prev_out) {
            return Err(TxCheckError::DuplicateInputs { index });
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
        // Input by input, null before duplicate (SV Node's loop): two null inputs are reported null.
        let (a, b) = (TxIn { prev_out: OutPoint::NULL, ..input(0, 0, &[]) }, input(1, 0, &[]));
        assert_eq!(r(&tx(vec![a.clone(), a.clone()], vec![output(1)])), Err("bad-txns-prevout-null"));
        assert_eq!(r(&tx(vec![b.clone(), b.clone(), a], vec![output(1)])), Err("bad-txns-inputs-duplicate"));
        let small = check_transaction_with_max_size(&tx(vec![input(1, 0, &[])], vec![output(1)]), 10);
        assert_eq!(small.map_err(|e| e.reject_reason()), Err("bad-txns-oversize"));
    }

    #[test]
    fn coinbase_and_regular_checks_by_era() {
        let pre = TxEra::consensus(false);
        let post = TxEra::consensus(true);
        let cb = tx(vec![TxIn { prev_out: OutPoint::NULL, ..input(0, 0, &[1, 2]) }], vec![output(1)]);
        let plain = tx(vec![input(1, 0, &[])], vec![output(1)]);
        let reason = |r: Result<u64, TxCheckError>| r.map_err(|e| (e.reject_reason(), e.score()));
        assert_eq!(reason(check_coinbase(&cb, pre)), Ok(0));
        assert_eq!(reason(check_coinbase(&plain, pre)), Err(("bad-cb-missing", 100)));
        assert_eq!(reason(check_regular(&cb, pre)), Err(("bad-tx-coinbase", 100)));
        // Legacy sigops are counted (and returned) before Genesis only.
        let sigops = |n: usize| {
            let out = TxOut { value: 1, script_pubkey: Bytes::from(vec![0xac; n]) };
            tx(vec![input(1, 0, &[0xac])], vec![out])
        };
        assert_eq!(reason(check_regular(&sigops(19_999), pre)), Ok(20_000));
        assert_eq!(reason(check_regular(&sigops(20_000), pre)), Err(("bad-txn-sigops", 100)));
        assert_eq!(reason(check_regular(&sigops(20_000), post)), Ok(0));
        // The era's size limit.
        let big = tx(vec![input(1, 0, &vec![0; 1_000_000])], vec![output(1)]);
        assert_eq!(reason(check_regular(&big, pre)), Err(("bad-txns-oversize", 100)));
        assert_eq!(reason(check_regular(&big, post)), Ok(0));
    }
}
