//! Regtest blocks built by hand: a coinbase paying `OP_TRUE`, and a block on a parent with its
//! merkle root computed and its proof of work solved (`bsv_relay::mining::solve`).

use bsv_relay::chain::params::REGTEST;
use bsv_relay::wire::{merkle_root, Block, BlockHeader, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;

/// `OP_TRUE`: anyone can spend, no signature to make.
pub const OP_TRUE: &[u8] = &[0x51];

/// A coinbase at `height` (BIP34 push of the height, then `tag` so two blocks at one height
/// differ) paying each of `values` to `OP_TRUE`.
pub fn coinbase(height: u32, tag: Option<u8>, values: &[i64]) -> Transaction {
    let mut script_sig = vec![4];
    script_sig.extend_from_slice(&height.to_le_bytes());
    script_sig.extend(tag);
    Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: OutPoint::NULL, script_sig: Bytes::from(script_sig), sequence: u32::MAX }],
        outputs: values.iter().map(|&value| TxOut { value, script_pubkey: Bytes::from_static(OP_TRUE) }).collect(),
        lock_time: 0,
    })
}

/// A version-4 block on `prev` at `time` holding `txs` (coinbase first), solved at `prev`'s bits.
pub fn solved_block(prev: &BlockHeader, time: u32, txs: Vec<Transaction>) -> Block {
    let (root, _) = merkle_root(txs.iter().map(Transaction::txid).collect());
    let mut header =
        BlockHeader { version: 4, prev_block: prev.hash(), merkle_root: root, time, bits: prev.bits, nonce: 0 };
    bsv_relay::mining::solve(&REGTEST, &mut header);
    Block::new(header, txs)
}
