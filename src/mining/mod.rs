//! Block assembly for regtest mining (`generatetoaddress`, `generate`): a block template from the
//! mempool and a coinbase, and the trivial proof of work regtest asks for.
//!
//! Selection: highest fee rate first, a transaction only after all its in-mempool parents (Kahn's
//! algorithm with a max-heap on fee rate over the transactions whose parents are all in), until the
//! block is full; before Genesis also within the block sigop limit (20,000 per started MB), so
//! a mempool with many sigops leaves transactions for the next block instead of failing.
//!
//! Invariants: the coinbase is first and pays at most subsidy + fees; every included
//! transaction's in-mempool parents come before it.
//!
//! Plain code over values; the caller connects the block through the chain state.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::chain::{check_proof_of_work, ChainParams};
use crate::mempool::Entry;
use crate::wire::{merkle_root, Block, BlockHash, BlockHeader, OutPoint, Transaction, TxFields, TxId, TxIn, TxOut};

/// Room left for the block header, the transaction count and the coinbase.
const COINBASE_RESERVE: usize = 1000;

/// Version of the blocks we mine (BIP9 base version, as SV Node's miner).
const BLOCK_VERSION: i32 = 0x2000_0000;

/// Where the block goes.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub prev_hash: BlockHash,
    pub height: u32,
    /// nBits the network requires of the next block.
    pub bits: u32,
    /// Block time: at least the median time past + 1.
    pub time: u32,
}

/// The coinbase at `height`: the height pushed first (BIP34 style, accepted on every network) and an
/// extra nonce so each block's coinbase is unique; pays `value` to `payout`.
pub fn coinbase(height: u32, extra_nonce: u64, value: i64, payout: &[u8]) -> Transaction {
    let mut script_sig = Vec::with_capacity(24);
    crate::script::asm::push_int(&mut script_sig, i64::from(height));
    crate::script::asm::push_data(&mut script_sig, &extra_nonce.to_le_bytes());
    crate::script::asm::push_data(&mut script_sig, b"/bsv-relay/");
    Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: OutPoint::NULL, script_sig: Bytes::from(script_sig), sequence: u32::MAX }],
        outputs: vec![TxOut { value, script_pubkey: Bytes::copy_from_slice(payout) }],
        lock_time: 0,
    })
}

#[derive(PartialEq, Eq)]
struct Ready {
    fee_rate: u64,
    txid: TxId,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.fee_rate.cmp(&other.fee_rate).then_with(|| other.txid.0.cmp(&self.txid.0))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The sigops a transaction adds to a pre-Genesis block; `None` after Genesis (no limit).
pub type SigopCount<'a> = Option<&'a dyn Fn(&Entry) -> u64>;

/// Chooses mempool transactions for a block of at most `max_bytes`: fee rate order, parents first,
/// and, with `sigops`, within the pre-Genesis block sigop limit.
pub fn select(entries: &[Arc<Entry>], max_bytes: usize, sigops: SigopCount<'_>) -> Vec<Arc<Entry>> {
    let by_id: HashMap<TxId, &Arc<Entry>> = entries.iter().map(|e| (e.txid, e)).collect();
    let mut waiting: HashMap<TxId, usize> = HashMap::new();
    let mut children: HashMap<TxId, Vec<TxId>> = HashMap::new();
    let mut heap = BinaryHeap::new();
    for e in entries {
        let txid = e.txid;
        let parents: Vec<TxId> = e.parents().into_iter().filter(|p| by_id.contains_key(p)).collect();
        if parents.is_empty() {
            heap.push(Ready { fee_rate: e.fee_rate(), txid });
        } else {
            waiting.insert(txid, parents.len());
            for p in parents {
                children.entry(p).or_default().push(txid);
            }
        }
    }
    let mut out = Vec::new();
    let mut size = COINBASE_RESERVE;
    // The coinbase's own sigops (a push-only script and one output): a few at most.
    let mut total_sigops: u64 = 2;
    while let Some(Ready { txid, .. }) = heap.pop() {
        let e = by_id[&txid];
        if size + e.size() > max_bytes {
            // Too big: its descendants stay out too (they never become ready).
            continue;
        }
        if let Some(count) = sigops {
            // The limit grows with the block; the final block is at least this big.
            let with = total_sigops + count(e);
            if with > crate::validation::tx::max_block_sigops((size + e.size()) as u64) {
                continue;
            }
            total_sigops = with;
        }
        size += e.size();
        out.push(e.clone());
        for child in children.remove(&txid).unwrap_or_default() {
            let n = waiting.get_mut(&child).expect("a child waits for its parents");
            *n -= 1;
            if *n == 0 {
                waiting.remove(&child);
                heap.push(Ready { fee_rate: by_id[&child].fee_rate(), txid: child });
            }
        }
    }
    out
}

/// A solved block: coinbase paying subsidy + fees to `payout`, then `txs` in order.
pub fn assemble(params: &ChainParams, t: &Template, txs: &[Arc<Entry>], payout: &[u8], extra_nonce: u64) -> Block {
    let fees: i64 = txs.iter().map(|e| e.fee).sum();
    let mut transactions = vec![coinbase(t.height, extra_nonce, params.subsidy(t.height) + fees, payout)];
    transactions.extend(txs.iter().map(|e| e.tx()));
    let (root, _) = merkle_root(transactions.iter().map(Transaction::txid).collect());
    let mut header = BlockHeader {
        version: BLOCK_VERSION,
        prev_block: t.prev_hash,
        merkle_root: root,
        time: t.time,
        bits: t.bits,
        nonce: 0,
    };
    solve(params, &mut header);
    Block::new(header, transactions)
}

/// Finds a nonce meeting the target (instant on regtest; on other networks this would take years,
/// which is why mining RPCs are regtest-only). Rolls the time when the nonces run out.
pub fn solve(params: &ChainParams, header: &mut BlockHeader) {
    loop {
        if check_proof_of_work(&header.hash(), header.bits, params) {
            return;
        }
        if header.nonce == u32::MAX {
            header.nonce = 0;
            header.time += 1;
        } else {
            header.nonce += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mempool::{Mempool, MempoolConfig};
    use crate::wire::Hash256;

    fn tx(inputs: &[(TxId, u32)], value: i64) -> Arc<Transaction> {
        Arc::new(Transaction::from_fields(TxFields {
            version: 1,
            inputs: inputs
                .iter()
                .map(|(t, v)| TxIn { prev_out: OutPoint { txid: *t, vout: *v }, script_sig: Bytes::new(), sequence: 0 })
                .collect(),
            outputs: vec![TxOut { value, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        }))
    }

    #[test]
    fn parents_come_first_and_fee_rate_orders_the_rest() {
        let pool = Mempool::new(MempoolConfig::default());
        let parent = tx(&[(Hash256([1; 32]), 0)], 10);
        pool.insert(parent.clone(), 1, 0).expect("parent");
        // A child paying a lot pulls its cheap parent in before it.
        let child = tx(&[(parent.txid(), 0)], 5);
        pool.insert(child.clone(), 10_000, 0).expect("child");
        let rich = tx(&[(Hash256([2; 32]), 0)], 10);
        pool.insert(rich.clone(), 5_000, 0).expect("rich");
        let order: Vec<TxId> = select(&pool.entries(), 1_000_000, None).iter().map(|e| e.txid).collect();
        assert_eq!(order, vec![rich.txid(), parent.txid(), child.txid()]);
        let pos = |t: &TxId| order.iter().position(|x| x == t).expect("included");
        assert!(pos(&parent.txid()) < pos(&child.txid()));
    }

    #[test]
    fn a_full_block_leaves_out_what_does_not_fit_and_its_children() {
        let pool = Mempool::new(MempoolConfig::default());
        let parent = tx(&[(Hash256([1; 32]), 0)], 10);
        pool.insert(parent.clone(), 1, 0).expect("parent");
        let child = tx(&[(parent.txid(), 0)], 5);
        pool.insert(child.clone(), 1_000, 0).expect("child");
        assert!(select(&pool.entries(), COINBASE_RESERVE + parent.size() - 1, None).is_empty());
    }

    #[test]
    fn before_genesis_the_sigop_limit_leaves_transactions_for_the_next_block() {
        let pool = Mempool::new(MempoolConfig::default());
        let txs: Vec<_> = (0..5u8).map(|i| tx(&[(Hash256([i; 32]), 0)], 10)).collect();
        for (i, t) in txs.iter().enumerate() {
            pool.insert(t.clone(), 1000 + i as i64, 0).expect("insert");
        }
        // Each counts 6,000 sigops: three fit under 20,000 (with the coinbase's), the rest wait.
        let heavy = |_: &Entry| 6_000;
        let chosen = select(&pool.entries(), 1_000_000, Some(&heavy));
        assert_eq!(chosen.len(), 3);
        assert_eq!(select(&pool.entries(), 1_000_000, None).len(), 5, "no limit after Genesis");
    }

    #[test]
    fn an_assembled_block_passes_the_block_checks() {
        let params = crate::chain::Network::Regtest.params();
        let t = Template {
            prev_hash: params.genesis_hash(),
            height: 1,
            bits: params.genesis_block().header.bits,
            time: params.genesis_time + 1,
        };
        let block = assemble(params, &t, &[], &[0x51], 7);
        crate::chain::check_block(&block, 1, params, u64::MAX).expect("valid block");
        assert!(check_proof_of_work(&block.hash(), block.header.bits, params));
        assert_eq!(block.transactions[0].outputs[0].value, params.subsidy(1));
    }
}
