//! Fixtures shared by the benchmarks (each bench is its own crate, so they include this file).
#![allow(dead_code)] // each bench uses some of them

use bsv_relay::chain::params::REGTEST;
use bsv_relay::wire::{merkle_root, Block, BlockHeader, Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;

/// A regtest block at `height` on a made-up parent (`Hash256([7; 32])`): a coinbase paying the
/// subsidy, its height pushed as BIP34 asks, then `txs`, under the merkle root they hash to.
pub fn block_at(height: u32, txs: impl IntoIterator<Item = Transaction>) -> Block {
    let mut number = height.to_le_bytes().to_vec();
    while number.last() == Some(&0) {
        number.pop();
    }
    if number.last().is_some_and(|b| b & 0x80 != 0) {
        number.push(0);
    }
    let mut script_sig = vec![number.len() as u8];
    script_sig.extend(number);
    let mut all = vec![Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: OutPoint::NULL, script_sig: Bytes::from(script_sig), sequence: u32::MAX }],
        outputs: vec![TxOut { value: REGTEST.subsidy(height), script_pubkey: Bytes::from_static(&[0x51]) }],
        lock_time: 0,
    })];
    all.extend(txs);
    let header = BlockHeader {
        version: 4,
        prev_block: Hash256([7; 32]),
        merkle_root: merkle_root(all.iter().map(Transaction::txid).collect()).0,
        time: REGTEST.genesis_time + 10_000,
        bits: 0x207fffff,
        nonce: 0,
    };
    Block::new(header, all)
}

/// A 1-input 1-output P2PKH transaction of the usual size: a 72-byte DER signature and a
/// 33-byte compressed key in the scriptSig, a 25-byte P2PKH scriptPubKey (192 bytes in all).
pub fn p2pkh_tx() -> Transaction {
    let mut script_sig = vec![72];
    script_sig.extend_from_slice(&[0x30; 71]);
    script_sig.push(0x41);
    script_sig.push(33);
    script_sig.extend_from_slice(&[0x02; 33]);
    let mut script_pubkey = vec![0x76, 0xa9, 20];
    script_pubkey.extend_from_slice(&[0x11; 20]);
    script_pubkey.extend_from_slice(&[0x88, 0xac]);
    Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint { txid: Hash256([5; 32]), vout: 0 },
            script_sig: Bytes::from(script_sig),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut { value: 4_999_000, script_pubkey: Bytes::from(script_pubkey) }],
        lock_time: 0,
    })
}
