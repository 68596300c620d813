//! Blocks connected with real script verification: SV Node's regtest chain connects with every
//! signature checked; a tampered signature makes the block `blk-bad-inputs`; and signatures
//! verified at mempool time are not verified again when their block arrives.

use bsv_relay::chain::block_check::connect_block;
use bsv_relay::chain::utxo::UtxoSet;
use bsv_relay::chain::Network;
use bsv_relay::mempool::{Mempool, MempoolConfig, MempoolView};
use bsv_relay::script::SigCache;
use bsv_relay::validation::{validate_transaction, ScriptVerifier, TxContext};
use bsv_relay::wire::{Block, Decodable, Transaction};
use bytes::Bytes;

const BLOCKS_HEX: &str = include_str!("data/fixtures/blocks.hex");

fn blocks() -> Vec<Block> {
    BLOCKS_HEX
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Block::from_slice(&hex::decode(l.trim()).unwrap()).unwrap())
        .collect()
}

#[test]
fn sv_nodes_chain_connects_with_every_script_verified() {
    let params = Network::Regtest.params();
    let utxo = UtxoSet::new(params);
    let verifier = ScriptVerifier { ctx: TxContext::new(params) };
    for (h, block) in blocks().iter().enumerate().skip(1) {
        connect_block(&utxo, block, h as u32, params, u64::MAX, &verifier).unwrap_or_else(|e| panic!("{h}: {e}"));
    }
    assert_eq!(utxo.stats().height, 115);
}

#[test]
fn a_tampered_signature_makes_the_block_invalid_and_the_cache_skips_known_signatures() {
    let params = Network::Regtest.params();
    let all = blocks();
    let cache = SigCache::default();
    let utxo = UtxoSet::new(params);
    let plain = ScriptVerifier { ctx: TxContext::new(params) };
    for (h, block) in all.iter().enumerate().skip(1).take(113) {
        connect_block(&utxo, block, h as u32, params, u64::MAX, &plain).unwrap();
    }
    // Block 114's 30 payments, validated "at mempool time" against the set at 113: cached.
    // They spend each other (the wallet's change), so a pool layers their outputs over the set.
    let ctx = TxContext::new(params).with_sig_cache(&cache);
    let pool = Mempool::new(MempoolConfig::default());
    for tx in &all[114].transactions[1..] {
        let view = MempoolView { base: &utxo, pool: &pool };
        let ok = validate_transaction(tx, &view, &ctx).unwrap();
        pool.insert(std::sync::Arc::new(tx.clone()), ok.fee, 0).unwrap();
    }
    assert_eq!(pool.len(), 30);
    let cached = cache.len();
    assert!(cached >= 30);
    // A copy of block 114 with one signature tampered is refused (its merkle root is fixed up, so
    // only the script fails).
    // The last payment: no later transaction of the block spends it, so only its script can fail.
    let mut txs = all[114].transactions.clone();
    let last = txs.len() - 1;
    let mut fields = txs[last].clone().into_fields();
    let mut sig = fields.inputs[0].script_sig.to_vec();
    sig[10] ^= 1;
    fields.inputs[0].script_sig = Bytes::from(sig);
    txs[last] = Transaction::from_fields(fields);
    let mut header = all[114].header;
    header.merkle_root = bsv_relay::wire::merkle_root(txs.iter().map(Transaction::txid).collect()).0;
    let tampered = Block::new(header, txs);
    let verifier = ScriptVerifier { ctx: TxContext::new(params).with_sig_cache(&cache) };
    let err = connect_block(&utxo, &tampered, 114, params, u64::MAX, &verifier).unwrap_err();
    assert_eq!(err.reject_reason(), "blk-bad-inputs");
    // The genuine block connects, its signatures coming from the cache (nothing new is added).
    connect_block(&utxo, &all[114], 114, params, u64::MAX, &verifier).unwrap();
    assert_eq!(cache.len(), cached, "no signature needed verifying again");
}
