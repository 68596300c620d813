//! Spending regtest coins in tests: the coinbases a node mined to our key, signed P2PKH payments.

use super::TestNode;
use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Decodable, Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;

/// A spendable output of our key.
#[derive(Clone, Copy, Debug)]
pub struct Coin {
    pub outpoint: OutPoint,
    pub value: i64,
}

/// A signed 1-input P2PKH payment from `coin` to `to`, paying `fee`.
pub fn pay(key: &Key, coin: Coin, to: &[u8], fee: i64) -> Transaction {
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: coin.outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: coin.value - fee, script_pubkey: Bytes::copy_from_slice(to) }],
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), coin.value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
    Transaction::from_fields(fields)
}

pub fn hex_of(tx: &Transaction) -> String {
    let mut raw = Vec::new();
    bsv_relay::wire::Encodable::consensus_encode(tx, &mut raw);
    hex::encode(raw)
}

/// Whether a `getrawmempool` answer lists `txid`.
pub fn mempool_has(json: &serde_json::Value, txid: &Hash256) -> bool {
    json.as_array().is_some_and(|a| a.iter().any(|t| t.as_str() == Some(&txid.to_string())))
}

/// The first output of the coinbase of `node`'s block at `height`.
pub fn coinbase_of(node: &TestNode, height: u32) -> Coin {
    let hash = node.cli(&["getblockhash", &height.to_string()]).ok().trim().to_string();
    let raw = hex::decode(node.cli(&["getblock", &hash, "0"]).ok().trim()).expect("hex");
    let block = bsv_relay::wire::Block::from_slice(&raw).expect("block");
    let cb = &block.transactions[0];
    Coin { outpoint: OutPoint { txid: cb.txid(), vout: 0 }, value: cb.outputs[0].value }
}

/// The same DER signature with s replaced by n - s (valid, but high-S).
pub fn high_s(sig_with_type: &[u8]) -> Vec<u8> {
    let (der, hash_type) = sig_with_type.split_at(sig_with_type.len() - 1);
    let sig = secp256k1::ecdsa::Signature::from_der(der).expect("our own DER");
    let compact = sig.serialize_compact();
    let mut s_le = [0u8; 32];
    s_le.copy_from_slice(&compact[32..]);
    s_le.reverse();
    let n = bsv_relay::chain::U256::from_be_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
        .unwrap();
    let mut high = (n - bsv_relay::chain::U256::from_le_bytes(&s_le)).to_le_bytes();
    high.reverse();
    let mut c = compact;
    c[32..].copy_from_slice(&high);
    let mut out = secp256k1::ecdsa::Signature::from_compact(&c).expect("valid scalar").serialize_der().to_vec();
    out.extend_from_slice(hash_type);
    out
}
