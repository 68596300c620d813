//! Block rules that need no script interpreter, and connecting a block to the UTXO set.
//!
//! [`check_block`] is SV Node's `CheckBlock` minus proof of work (the header tree checked it):
//! merkle root and its CVE-2012-2459 mutation, size, the coinbase and every other transaction's
//! context-free checks (`CheckCoinbase`, `CheckRegularTransaction`) interleaved with the
//! pre-Genesis legacy sigop count of the block. [`connect_block`] adds lock-time finality
//! (`ContextualCheckBlock`) and, transaction by transaction as `ConnectBlock` does, what needs the
//! UTXO set: inputs present, BIP68 relative locks, the pre-Genesis sigop limits counted with P2SH
//! redeem scripts (per transaction and per block), coinbase maturity and amounts
//! (`CheckTxInputs`); then the coinbase amount, then the scripts.
//!
//! Invariants:
//! - checks run in SV Node's order, so the first error reported is its reject reason, also for a
//!   block that breaks several rules;
//! - `connect_block` is atomic: on any error the UTXO set is exactly as before;
//! - every non-coinbase input is handed to the [`InputVerifier`] with the coin it spends before the
//!   block is committed. [`NoScriptCheck`](crate::validation::NoScriptCheck) accepts everything and exists for tests and benchmarks:
//!   **production must plug the script engine in**, or any signature is accepted.
//!
//! Not checked here: BIP34 coinbase height (never active on regtest), header rules (the header
//! tree's job).

use thiserror::Error;

use super::params::ChainParams;
use super::utxo::{BlockUndo, ConnectError, UtxoSet};
use crate::validation::check_tx::{check_coinbase, check_regular, TxEra, MAX_MONEY, MAX_TX_SIGOPS_BEFORE_GENESIS};
use crate::validation::tx::{max_block_sigops, sequence_locks_satisfied, tx_sigops};
use crate::validation::{Coin, InputVerifier, TxCheckError};
use crate::wire::{Block, Hash256, Transaction, TxId};

/// Score for every block failure here: SV Node bans a peer that sends an invalid block at once
/// (svnode-protocol.md §3.3).
const INVALID_BLOCK_SCORE: u32 = 100;
/// Score for a non-final transaction in a block: 10, as in SV Node's `ContextualCheckBlock`
/// (inherited from Core), since lock-time disagreements can come from clock differences.
const NONFINAL_SCORE: u32 = 10;
/// Inputs per verification thread below which starting a thread costs more than it saves: a
/// signature check takes about 35 µs, a thread start about 20 µs.
const PARALLEL_MIN_INPUTS: usize = 16;
/// Lock times below this are block heights, from it on UNIX times (`LOCKTIME_THRESHOLD`).
const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// The sequence number that makes an input final (`CTxIn::SEQUENCE_FINAL`).
const SEQUENCE_FINAL: u32 = u32::MAX;

/// Why a block is invalid (or, for [`BlockError::may_be_corrupted`], possibly just damaged).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    #[error("merkle root {computed} does not match the header's {header}")]
    BadMerkleRoot { header: Hash256, computed: Hash256 },
    /// CVE-2012-2459: duplicated transactions that keep the genuine block's merkle root.
    #[error("transaction list is a CVE-2012-2459 mutation (duplicate transactions)")]
    DuplicateTransactions,
    #[error("block is {size} bytes, above the limit of {max}")]
    Oversize { size: u64, max: u64 },
    #[error("block has no transactions")]
    Empty,
    #[error("first transaction is not a coinbase")]
    NoCoinbase,
    #[error("transaction {index} ({txid}) fails its checks: {source}")]
    Transaction { index: usize, txid: TxId, source: TxCheckError },
    #[error("transaction {index} ({txid}) is not final at height {height}")]
    NonFinal { index: usize, txid: TxId, height: u32 },
    #[error("cannot apply block to the UTXO set: {0}")]
    Utxo(#[from] ConnectError),
    #[error("input {input} of {txid} spends a coinbase of height {coin_height} at height {height}")]
    PrematureCoinbaseSpend { txid: TxId, input: usize, coin_height: u32, height: u32 },
    #[error("inputs of {txid} are out of range")]
    InputValuesOutOfRange { txid: TxId },
    #[error("{txid} spends {inputs} satoshis but creates {outputs}")]
    InputsBelowOutputs { txid: TxId, inputs: i64, outputs: i64 },
    #[error("accumulated fees out of range at {txid}")]
    FeesOutOfRange { txid: TxId },
    #[error("coinbase pays {paid} satoshis, more than subsidy plus fees {limit}")]
    CoinbaseAmount { paid: i64, limit: i64 },
    #[error("input {input} of {txid} fails script verification: {reason}")]
    Script { txid: TxId, input: usize, reason: String },
    #[error("block has {sigops} sigops at {txid}, above the pre-Genesis limit of {max}")]
    TooManySigops { txid: TxId, sigops: u64, max: u64 },
    #[error("{txid} spends a coin before its BIP68 relative lock time at height {height}")]
    SequenceLocks { txid: TxId, height: u32 },
}

impl BlockError {
    /// SV Node's reject reason.
    pub fn reject_reason(&self) -> &'static str {
        match self {
            Self::BadMerkleRoot { .. } => "bad-txnmrklroot",
            Self::DuplicateTransactions => "bad-txns-duplicate",
            Self::Oversize { .. } => "bad-blk-length",
            Self::Empty | Self::NoCoinbase => "bad-cb-missing",
            Self::Transaction { source, .. } => source.reject_reason(),
            Self::NonFinal { .. } | Self::SequenceLocks { .. } => "bad-txns-nonfinal",
            Self::Utxo(e) => e.reject_reason(),
            Self::PrematureCoinbaseSpend { .. } => "bad-txns-premature-spend-of-coinbase",
            Self::InputValuesOutOfRange { .. } => "bad-txns-inputvalues-outofrange",
            Self::InputsBelowOutputs { .. } => "bad-txns-in-belowout",
            Self::FeesOutOfRange { .. } => "bad-txns-accumulated-fee-outofrange",
            Self::CoinbaseAmount { .. } => "bad-cb-amount",
            Self::Script { .. } => "blk-bad-inputs",
            Self::TooManySigops { .. } => "bad-blk-sigops",
        }
    }

    /// Score for the peer that sent the block; `None` for errors that are our own state's fault
    /// (undo data that does not match, a block that does not extend the set).
    pub fn misbehavior(&self) -> Option<u32> {
        match self {
            Self::Utxo(ConnectError::WrongHeight { .. })
            | Self::Utxo(ConnectError::NotOnTip { .. })
            | Self::Utxo(ConnectError::UndoMismatch { .. })
            | Self::Utxo(ConnectError::UndoMissingOutput { .. })
            | Self::Utxo(ConnectError::Disk { .. }) => None,
            Self::NonFinal { .. } => Some(NONFINAL_SCORE),
            _ => Some(INVALID_BLOCK_SCORE),
        }
    }

    /// The transactions may not be the ones the header commits to (damaged or mutated in
    /// transit): punish the sender, but do not mark the block hash invalid, or a mutated copy
    /// would make us reject the genuine block forever (SV Node `CheckMerkleRoot`).
    pub fn may_be_corrupted(&self) -> bool {
        matches!(self, Self::BadMerkleRoot { .. } | Self::DuplicateTransactions)
    }
}

/// The checks of a block that need neither the UTXO set nor scripts (SV Node `CheckBlock`).
/// `height` selects the transaction size limit of its era; `max_block_size` is `-excessiveblocksize`.
pub fn check_block(block: &Block, height: u32, params: &ChainParams, max_block_size: u64) -> Result<(), BlockError> {
    let (computed, mutated) = block.merkle_root();
    if computed != block.header.merkle_root {
        return Err(BlockError::BadMerkleRoot { header: block.header.merkle_root, computed });
    }
    if mutated {
        return Err(BlockError::DuplicateTransactions);
    }
    if block.transactions.is_empty() {
        return Err(BlockError::Empty);
    }
    let size = block.size() as u64;
    if size > max_block_size {
        return Err(BlockError::Oversize { size, max: max_block_size });
    }
    // The coinbase, then every other transaction, each followed by its legacy sigops added to
    // the block's count before Genesis (SV Node's loop).
    let era = TxEra::consensus(height >= params.activations.genesis);
    let sigop_limit = (!era.genesis).then(|| max_block_sigops(size));
    let mut sigops: u64 = 0;
    for (index, tx) in block.transactions.iter().enumerate() {
        let checked = if index == 0 { check_coinbase(tx, era) } else { check_regular(tx, era) };
        let counted = checked.map_err(|source| match source {
            TxCheckError::NotCoinbase => BlockError::NoCoinbase,
            source => BlockError::Transaction { index, txid: tx.txid(), source },
        })?;
        if let Some(max) = sigop_limit {
            sigops += counted;
            if sigops > max {
                return Err(BlockError::TooManySigops { txid: tx.txid(), sigops, max });
            }
        }
    }
    Ok(())
}

/// Whether `tx` may be included in a block at `height` whose lock-time cutoff is `cutoff`
/// (SV Node `IsFinalTx`).
pub fn is_final_tx(tx: &Transaction, height: u32, cutoff: i64) -> bool {
    if tx.lock_time == 0 {
        return true;
    }
    let limit = if tx.lock_time < LOCKTIME_THRESHOLD { i64::from(height) } else { cutoff };
    i64::from(tx.lock_time) < limit || tx.inputs.iter().all(|input| input.sequence == SEQUENCE_FINAL)
}

/// Lock-time finality of every transaction (SV Node `ContextualCheckBlock`): lock times are
/// compared with the previous block's median time past once CSV (BIP113) is active, before with
/// the block's own timestamp.
pub fn check_finality(block: &Block, height: u32, params: &ChainParams, prev_mtp: i64) -> Result<(), BlockError> {
    let cutoff = if height >= params.activations.csv { prev_mtp } else { i64::from(block.header.time) };
    match block.transactions.iter().position(|tx| !is_final_tx(tx, height, cutoff)) {
        Some(index) => Err(BlockError::NonFinal { index, txid: block.transactions[index].txid(), height }),
        None => Ok(()),
    }
}

fn money_range(v: i64) -> bool {
    (0..=MAX_MONEY).contains(&v)
}

/// Checks `block` at `height` fully (except what the module docs list) and applies it to `utxo`.
/// On error the set is unchanged. Returns the undo data that [`disconnect_block`] needs.
pub fn connect_block(
    utxo: &UtxoSet,
    block: &Block,
    height: u32,
    params: &ChainParams,
    max_block_size: u64,
    verifier: &dyn InputVerifier,
) -> Result<BlockUndo, BlockError> {
    Ok(check_and_stage(utxo, block, height, params, max_block_size, verifier)?.commit())
}

fn check_and_stage<'u>(
    utxo: &'u UtxoSet,
    block: &Block,
    height: u32,
    params: &ChainParams,
    max_block_size: u64,
    verifier: &dyn InputVerifier,
) -> Result<crate::chain::utxo::StagedBlock<'u>, BlockError> {
    check_block(block, height, params, max_block_size)?;
    // The set's tip is the parent: staging below refuses the block otherwise.
    check_finality(block, height, params, crate::validation::CoinView::median_time_past(utxo))?;
    let mut fees: i64 = 0;
    // Pre-Genesis, sigops are limited per transaction and per started megabyte of block, counted
    // as SV Node's ConnectBlock does: each transaction's legacy count plus its P2SH redeem scripts.
    let sigop_limit = (height < params.activations.genesis).then(|| max_block_sigops(block.size() as u64));
    let p2sh = height >= params.activations.p2sh;
    let csv = height >= params.activations.csv;
    let mut sigops: u64 = 0;
    let mut index = 0;
    let staged = utxo.stage_block(block, height, |tx, coins, times| -> Result<(), BlockError> {
        let txid = tx.txid();
        index += 1;
        if !tx.is_coinbase() && csv && !sequence_locks_satisfied(tx, coins, height, &times) {
            return Err(BlockError::SequenceLocks { txid, height });
        }
        if let Some(max) = sigop_limit {
            let counted = tx_sigops(tx, coins, p2sh);
            if counted > MAX_TX_SIGOPS_BEFORE_GENESIS {
                let source = TxCheckError::TooManySigops { sigops: counted };
                return Err(BlockError::Transaction { index: index - 1, txid, source });
            }
            sigops += counted;
            if sigops > max {
                return Err(BlockError::TooManySigops { txid, sigops, max });
            }
        }
        if tx.is_coinbase() {
            return Ok(());
        }
        let mut value_in: i64 = 0;
        for (input, coin) in coins.iter().enumerate() {
            if coin.is_coinbase && height.saturating_sub(coin.height) < params.coinbase_maturity {
                return Err(BlockError::PrematureCoinbaseSpend { txid, input, coin_height: coin.height, height });
            }
            value_in = value_in
                .checked_add(coin.value)
                .filter(|v| money_range(coin.value) && money_range(*v))
                .ok_or(BlockError::InputValuesOutOfRange { txid })?;
        }
        // check_block bounded every output and their sum by MAX_MONEY.
        let value_out: i64 = tx.outputs.iter().map(|o| o.value).sum();
        if value_in < value_out {
            return Err(BlockError::InputsBelowOutputs { txid, inputs: value_in, outputs: value_out });
        }
        fees = fees
            .checked_add(value_in - value_out)
            .filter(|f| money_range(*f))
            .ok_or(BlockError::FeesOutOfRange { txid })?;
        Ok(())
    })?;
    let paid: i64 = block.transactions[0].outputs.iter().map(|o| o.value).sum();
    let limit = fees + params.subsidy(height);
    if paid > limit {
        return Err(BlockError::CoinbaseAmount { paid, limit });
    }
    // Scripts last, as SV Node waits for its check queue only after the coinbase amount.
    verify_inputs(block, &staged.undo().spent, height, verifier)?;
    Ok(staged)
}

/// Runs `verifier` once on every non-coinbase input (`coins` in block order, as in the undo
/// data), spread over the available cores. Reports the first failing input in block order, so
/// the result does not depend on thread timing.
fn verify_inputs(block: &Block, coins: &[Coin], height: u32, verifier: &dyn InputVerifier) -> Result<(), BlockError> {
    let inputs: Vec<(&Transaction, usize)> = block
        .transactions
        .iter()
        .filter(|tx| !tx.is_coinbase())
        .flat_map(|tx| (0..tx.inputs.len()).map(move |input| (tx, input)))
        .collect();
    debug_assert_eq!(inputs.len(), coins.len(), "staging returns one coin per non-coinbase input");
    let verify_range = |start: usize, end: usize| -> Result<(), (usize, String)> {
        for i in start..end {
            let (tx, input) = inputs[i];
            verifier.verify(tx, input, &coins[i], height).map_err(|reason| (i, reason))?;
        }
        Ok(())
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(inputs.len() / PARALLEL_MIN_INPUTS);
    let result = if threads <= 1 {
        verify_range(0, inputs.len())
    } else {
        let per_thread = inputs.len().div_ceil(threads);
        std::thread::scope(|s| {
            // The calling thread takes the first range; ranges are in block order, so the first
            // failing range holds the first failing input.
            let workers: Vec<_> = (1..threads)
                .map(|t| {
                    let (start, end) = (t * per_thread, ((t + 1) * per_thread).min(inputs.len()));
                    s.spawn(move || verify_range(start, end))
                })
                .collect();
            let first = verify_range(0, per_thread);
            first.and_then(|()| {
                workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            })
        })
    };
    result.map_err(|(i, reason)| {
        let (tx, input) = inputs[i];
        BlockError::Script { txid: tx.txid(), input, reason }
    })
}

/// Removes `block`, the UTXO set's best block, restoring the coins it spent.
pub fn disconnect_block(utxo: &UtxoSet, block: &Block, undo: &BlockUndo) -> Result<(), BlockError> {
    Ok(utxo.undo_block(block, undo)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::params::REGTEST;
    use crate::validation::{CoinView, NoScriptCheck};
    use crate::wire::{BlockHeader, OutPoint, TxFields, TxIn, TxOut};
    use bytes::Bytes;

    fn coinbase(script_sig: &[u8], value: i64) -> Transaction {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint::NULL,
                script_sig: Bytes::copy_from_slice(script_sig),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        })
    }

    fn block(txs: Vec<Transaction>) -> Block {
        block_on(REGTEST.genesis_hash(), txs)
    }

    fn block_on(prev_block: Hash256, txs: Vec<Transaction>) -> Block {
        let (root, _) = crate::wire::merkle_root(txs.iter().map(Transaction::txid).collect());
        let header = BlockHeader { version: 1, prev_block, merkle_root: root, time: 0, bits: 0, nonce: 0 };
        Block::new(header, txs)
    }

    #[test]
    fn context_free_reject_reasons() {
        let r = |b: &Block, max: u64| check_block(b, 1, &REGTEST, max).map_err(|e| e.reject_reason());
        let cb = coinbase(&[1, 2], 50);
        assert_eq!(r(&block(vec![cb.clone()]), u64::MAX), Ok(()));
        assert_eq!(r(&block(vec![cb.clone()]), 10), Err("bad-blk-length"));
        // SV Node's names: an empty block has no coinbase; a second coinbase fails as a transaction.
        assert_eq!(r(&block(vec![]), u64::MAX), Err("bad-cb-missing"));
        assert_eq!(r(&block(vec![coinbase(&[1], 50)]), u64::MAX), Err("bad-cb-length"));
        assert_eq!(r(&block(vec![cb.clone(), coinbase(&[3, 4], 1)]), u64::MAX), Err("bad-tx-coinbase"));
        let mut wrong_root = block(vec![cb.clone()]);
        wrong_root.header.merkle_root = Hash256([1; 32]);
        let err = check_block(&wrong_root, 1, &REGTEST, u64::MAX).unwrap_err();
        assert_eq!(err.reject_reason(), "bad-txnmrklroot");
        assert!(err.may_be_corrupted());
        assert_eq!(err.misbehavior(), Some(100));
    }

    fn spend_with_output(script_pubkey: &[u8]) -> Transaction {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: Hash256([9; 32]), vout: 0 },
                script_sig: Bytes::new(),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value: 1, script_pubkey: Bytes::copy_from_slice(script_pubkey) }],
            lock_time: 0,
        })
    }

    #[test]
    fn each_transaction_is_checked_for_its_era_before_its_sigops_count_for_the_block() {
        let cb = coinbase(&[1, 2], 50);
        let r = |txs: Vec<Transaction>, height: u32| {
            check_block(&block(txs), height, &REGTEST, u64::MAX).map_err(|e| e.reject_reason())
        };
        // Before Genesis one transaction may have 20,000 legacy sigops; one more fails the
        // transaction itself (SV Node checks it before adding its count to the block's).
        let at_limit = spend_with_output(&vec![0xac; 20_000]);
        let over = spend_with_output(&vec![0xac; 20_001]);
        assert_eq!(r(vec![cb.clone(), at_limit.clone()], 1), Ok(()));
        assert_eq!(r(vec![cb.clone(), over.clone()], 1), Err("bad-txn-sigops"));
        assert_eq!(r(vec![cb.clone(), at_limit.clone(), spend_with_output(&[0xac])], 1), Err("bad-blk-sigops"));
        // After Genesis sigops are not counted, and P2SH outputs are invalid.
        let genesis = REGTEST.activations.genesis;
        assert_eq!(r(vec![cb.clone(), over], genesis), Ok(()));
        let p2sh = [&[0xa9u8, 20][..], &[7; 20], &[0x87]].concat();
        assert_eq!(r(vec![cb.clone(), spend_with_output(&p2sh)], genesis - 1), Ok(()));
        assert_eq!(r(vec![cb.clone(), spend_with_output(&p2sh)], genesis), Err("bad-txns-vout-p2sh"));
        // The coinbase may pay to P2SH (only CheckRegularTransaction looks).
        let mut cb_p2sh = cb.clone().into_fields();
        cb_p2sh.outputs[0].script_pubkey = Bytes::from(p2sh);
        assert_eq!(r(vec![Transaction::from_fields(cb_p2sh)], genesis), Ok(()));
    }

    /// A set at height 101 whose height-1 coinbase has `n` mature outputs, the tip, and a block
    /// at 102 with one transaction per output spending it.
    fn mature_spends(n: u32) -> (UtxoSet, Block) {
        let utxo = UtxoSet::new(&REGTEST);
        let mut cb = coinbase(&[1, 1], 0).into_fields();
        cb.outputs = vec![TxOut { value: 1000, script_pubkey: Bytes::from_static(&[0x51]) }; n as usize];
        let cb = Transaction::from_fields(cb);
        let mut prev = block(vec![cb.clone()]);
        connect_block(&utxo, &prev, 1, &REGTEST, u64::MAX, &NoScriptCheck).unwrap();
        for h in 2..=101u8 {
            let next = block_on(prev.hash(), vec![coinbase(&[h, h], 1)]);
            connect_block(&utxo, &next, u32::from(h), &REGTEST, u64::MAX, &NoScriptCheck).unwrap();
            prev = next;
        }
        let mut txs = vec![coinbase(&[0, 102], 1)];
        txs.extend((0..n).map(|vout| {
            Transaction::from_fields(TxFields {
                version: 1,
                inputs: vec![TxIn {
                    prev_out: OutPoint { txid: cb.txid(), vout },
                    script_sig: Bytes::new(),
                    sequence: 0,
                }],
                outputs: vec![TxOut { value: 900, script_pubkey: Bytes::new() }],
                lock_time: 0,
            })
        }));
        (utxo, block_on(prev.hash(), txs))
    }

    /// Fails the inputs of the listed transactions; counts every call.
    struct Rejecting {
        bad: Vec<TxId>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl InputVerifier for Rejecting {
        fn verify(&self, tx: &Transaction, _: usize, _: &Coin, _: u32) -> Result<(), String> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.bad.contains(&tx.txid()) {
                Err("SCRIPT_ERR_EVAL_FALSE".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn script_failures_reject_with_blk_bad_inputs() {
        let (utxo, b) = mature_spends(1);
        let before = utxo.snapshot();
        let reject = Rejecting { bad: vec![b.transactions[1].txid()], calls: Default::default() };
        let err = connect_block(&utxo, &b, 102, &REGTEST, u64::MAX, &reject).unwrap_err();
        assert_eq!((err.reject_reason(), err.misbehavior()), ("blk-bad-inputs", Some(100)));
        assert_eq!(utxo.snapshot(), before);
        connect_block(&utxo, &b, 102, &REGTEST, u64::MAX, &NoScriptCheck).unwrap();
    }

    #[test]
    fn parallel_verification_checks_each_input_once_and_reports_the_first_failure() {
        let (utxo, b) = mature_spends(500);
        let all_pass = Rejecting { bad: vec![], calls: Default::default() };
        let undo = connect_block(&utxo, &b, 102, &REGTEST, u64::MAX, &all_pass).unwrap();
        assert_eq!(all_pass.calls.into_inner(), 500);
        disconnect_block(&utxo, &b, &undo).unwrap();

        let (first, later) = (b.transactions[120].txid(), b.transactions[480].txid());
        let reject = Rejecting { bad: vec![later, first], calls: Default::default() };
        let err = connect_block(&utxo, &b, 102, &REGTEST, u64::MAX, &reject).unwrap_err();
        assert_eq!(err, BlockError::Script { txid: first, input: 0, reason: "SCRIPT_ERR_EVAL_FALSE".into() });
        assert_eq!(utxo.best_height(), 101);
    }

    /// `block` with each spend's output replaced by `n` OP_CHECKSIGs (legacy count: `n` sigops).
    fn with_checksig_outputs(block: &Block, n: usize) -> Block {
        let mut txs = vec![block.transactions[0].clone()];
        txs.extend(block.transactions[1..].iter().map(|tx| {
            let mut fields = tx.clone().into_fields();
            fields.outputs[0].script_pubkey = Bytes::from(vec![0xac; n]);
            Transaction::from_fields(fields)
        }));
        block_on(block.header.prev_block, txs)
    }

    #[test]
    fn before_genesis_a_block_over_the_sigop_limit_is_rejected_and_changes_nothing() {
        let (utxo, b) = mature_spends(2);
        // 2 × 10,001 legacy sigops in a block under 1 MB: over the 20,000 limit by two.
        let over = with_checksig_outputs(&b, 10_001);
        let before = utxo.snapshot();
        let err = connect_block(&utxo, &over, 102, &REGTEST, u64::MAX, &NoScriptCheck).unwrap_err();
        assert_eq!((err.reject_reason(), err.misbehavior()), ("bad-blk-sigops", Some(100)));
        assert_eq!(err, BlockError::TooManySigops { txid: over.transactions[2].txid(), sigops: 20_002, max: 20_000 });
        assert_eq!(utxo.snapshot(), before);
        // Exactly at the limit is allowed.
        connect_block(&utxo, &with_checksig_outputs(&b, 10_000), 102, &REGTEST, u64::MAX, &NoScriptCheck).unwrap();
    }

    #[test]
    fn bip68_relative_lock_times_are_enforced_once_csv_is_active() {
        // The spend's coin is from height 1; a version 2 input with sequence 102 waits until 103.
        let (utxo, b) = mature_spends(1);
        let locked = |sequence: u32| {
            let mut fields = b.transactions[1].clone().into_fields();
            fields.version = 2;
            fields.inputs[0].sequence = sequence;
            block_on(b.header.prev_block, vec![b.transactions[0].clone(), Transaction::from_fields(fields)])
        };
        let csv_active = ChainParams {
            activations: crate::chain::params::Activations { csv: 0, ..REGTEST.activations },
            ..REGTEST.clone()
        };
        let before = utxo.snapshot();
        let err = connect_block(&utxo, &locked(102), 102, &csv_active, u64::MAX, &NoScriptCheck).unwrap_err();
        assert_eq!((err.reject_reason(), err.misbehavior()), ("bad-txns-nonfinal", Some(100)));
        assert_eq!(utxo.snapshot(), before);
        // Before CSV activates the same block is valid; with it, one block less of waiting is.
        let undo = connect_block(&utxo, &locked(102), 102, &REGTEST, u64::MAX, &NoScriptCheck).unwrap();
        disconnect_block(&utxo, &locked(102), &undo).unwrap();
        connect_block(&utxo, &locked(101), 102, &csv_active, u64::MAX, &NoScriptCheck).unwrap();
    }

    #[test]
    fn connect_checks_each_transaction_in_sv_nodes_order() {
        let (utxo, b) = mature_spends(1);
        let csv_active = ChainParams {
            activations: crate::chain::params::Activations { csv: 0, ..REGTEST.activations },
            ..REGTEST.clone()
        };
        let with = |edit: &dyn Fn(&mut TxFields)| {
            let mut fields = b.transactions[1].clone().into_fields();
            edit(&mut fields);
            block_on(b.header.prev_block, vec![b.transactions[0].clone(), Transaction::from_fields(fields)])
        };
        let reason = |block: &Block, params: &ChainParams| {
            connect_block(&utxo, block, 102, params, u64::MAX, &NoScriptCheck).map_err(|e| e.reject_reason())
        };
        // BIP68 comes before the amounts: locked and overspending is reported as locked.
        let locked_overspend = with(&|f| {
            f.version = 2;
            f.inputs[0].sequence = 102;
            f.outputs[0].value = 5000;
        });
        assert_eq!(reason(&locked_overspend, &csv_active), Err("bad-txns-nonfinal"));
        assert_eq!(reason(&locked_overspend, &REGTEST), Err("bad-txns-in-belowout"));
        assert_eq!(utxo.best_height(), 101);
    }

    #[test]
    fn a_p2sh_redeem_script_over_the_transaction_sigop_limit_fails_at_connect() {
        // One transaction creates a P2SH output, the next spends it with a redeem script of
        // 20,001 CHECKSIGs: no legacy sigops (the scriptSig is one push), 20,001 counted with P2SH.
        let (utxo, b) = mature_spends(1);
        let redeem = vec![0xacu8; 20_001];
        let hash = {
            use bitcoin_hashes::Hash;
            bitcoin_hashes::hash160::Hash::hash(&redeem).to_byte_array()
        };
        let mut funding = b.transactions[1].clone().into_fields();
        funding.outputs[0].script_pubkey = Bytes::from([&[0xa9u8, 20][..], &hash, &[0x87]].concat());
        let funding = Transaction::from_fields(funding);
        let mut script_sig = vec![0x4d];
        script_sig.extend_from_slice(&(redeem.len() as u16).to_le_bytes());
        script_sig.extend_from_slice(&redeem);
        let spend = Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: funding.txid(), vout: 0 },
                script_sig: Bytes::from(script_sig),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value: 800, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        });
        let spend_id = spend.txid();
        let both = block_on(b.header.prev_block, vec![b.transactions[0].clone(), funding, spend]);
        assert_eq!(check_block(&both, 102, &REGTEST, u64::MAX), Ok(()), "no legacy sigops to see");
        let before = utxo.snapshot();
        let err = connect_block(&utxo, &both, 102, &REGTEST, u64::MAX, &NoScriptCheck).unwrap_err();
        assert_eq!((err.reject_reason(), err.misbehavior()), ("bad-txn-sigops", Some(100)));
        assert!(matches!(err, BlockError::Transaction { index: 2, txid, .. } if txid == spend_id), "{err:?}");
        assert_eq!(utxo.snapshot(), before);
    }

    #[test]
    fn the_block_sigop_limit_grows_per_started_megabyte() {
        use crate::validation::tx::max_block_sigops;
        assert_eq!(max_block_sigops(1), 20_000);
        assert_eq!(max_block_sigops(1_000_000), 20_000);
        assert_eq!(max_block_sigops(1_000_001), 40_000);
        assert_eq!(max_block_sigops(32_000_000), 640_000);
    }

    #[test]
    fn finality_uses_height_or_time_cutoff() {
        let tx = |lock_time: u32, sequence: u32| {
            Transaction::from_fields(TxFields {
                version: 1,
                inputs: vec![TxIn {
                    prev_out: OutPoint { txid: Hash256([1; 32]), vout: 0 },
                    script_sig: Bytes::new(),
                    sequence,
                }],
                outputs: vec![TxOut { value: 1, script_pubkey: Bytes::new() }],
                lock_time,
            })
        };
        assert!(is_final_tx(&tx(0, 0), 10, 0));
        assert!(is_final_tx(&tx(9, 0), 10, 0));
        assert!(!is_final_tx(&tx(10, 0), 10, 0));
        assert!(is_final_tx(&tx(10, SEQUENCE_FINAL), 10, 0));
        assert!(is_final_tx(&tx(LOCKTIME_THRESHOLD + 5, 0), 10, i64::from(LOCKTIME_THRESHOLD) + 6));
        assert!(!is_final_tx(&tx(LOCKTIME_THRESHOLD + 5, 0), 10, i64::from(LOCKTIME_THRESHOLD) + 5));

        let mut b = block(vec![coinbase(&[1, 1], 1), tx(LOCKTIME_THRESHOLD + 100, 0)]);
        // Before CSV the block's own time is the cutoff; after, the previous median time past.
        b.header.time = LOCKTIME_THRESHOLD + 101;
        assert_eq!(check_finality(&b, 5, &REGTEST, 0), Ok(()));
        let err = check_finality(&b, REGTEST.activations.csv, &REGTEST, 0).unwrap_err();
        assert_eq!((err.reject_reason(), err.misbehavior()), ("bad-txns-nonfinal", Some(10)));
        assert_eq!(check_finality(&b, REGTEST.activations.csv, &REGTEST, i64::from(LOCKTIME_THRESHOLD) + 101), Ok(()));
    }
}
