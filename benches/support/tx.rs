//! Fixtures shared by the benchmarks (each bench is its own crate, so they include this file).

use bsv_relay::wire::{Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;

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
