//! Transactions and scripts as SV Node's RPC prints them (`TxToUniv`, `ScriptToAsmStr`,
//! `ScriptPubKeyToUniv`): used by `getblock` verbosity 2, `getrawtransaction` verbose and
//! `getrawmempool`-style views. Presentation only.

use serde_json::{json, Value};

use crate::script::opcodes::{self, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4};
use crate::wire::{Encodable, Transaction};

/// Satoshis per coin, for `value` fields in BSV.
const COIN: f64 = 100_000_000.0;

/// An amount in BSV as a JSON number with 8 decimals (SV Node's `ValueFromAmount`).
pub fn amount(sats: i64) -> Value {
    let s = format!(
        "{}{}.{:08}",
        if sats < 0 { "-" } else { "" },
        sats.unsigned_abs() / 100_000_000,
        sats.unsigned_abs() % 100_000_000
    );
    serde_json::from_str(&s).unwrap_or_else(|_| json!(sats as f64 / COIN))
}

/// The script's operations as text: pushes as hex (small numbers as decimals), opcodes by name.
pub fn asm(script: &[u8]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < script.len() {
        let op = script[i];
        i += 1;
        let len = match op {
            0x01..=0x4b => Some(op as usize),
            OP_PUSHDATA1 => script.get(i).map(|b| {
                i += 1;
                *b as usize
            }),
            OP_PUSHDATA2 => script.get(i..i + 2).map(|b| {
                i += 2;
                u16::from_le_bytes([b[0], b[1]]) as usize
            }),
            OP_PUSHDATA4 => script.get(i..i + 4).map(|b| {
                i += 4;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
            }),
            _ => {
                out.push(opcodes::name(op).to_owned());
                continue;
            }
        };
        match len.and_then(|n| script.get(i..i + n)) {
            Some(data) => {
                i += data.len();
                out.push(if data.len() <= 4 && !data.is_empty() { push_as_number(data) } else { hex::encode(data) });
            }
            None => {
                out.push("[error]".to_owned());
                break;
            }
        }
    }
    out.join(" ")
}

/// SV Node prints pushes of up to 4 bytes as script numbers.
fn push_as_number(data: &[u8]) -> String {
    let mut n: i64 = 0;
    for (k, b) in data.iter().enumerate() {
        n |= i64::from(*b) << (8 * k);
    }
    let last = data[data.len() - 1];
    if last & 0x80 != 0 {
        n &= !(0x80i64 << (8 * (data.len() - 1)));
        n = -n;
    }
    n.to_string()
}

/// The standard output types SV Node names, with the addresses they pay.
fn classify(script: &[u8], address_prefix: u8) -> (&'static str, Vec<String>, u32) {
    let address = |hash: &[u8]| {
        let mut payload = vec![address_prefix];
        payload.extend_from_slice(hash);
        crate::wallet::base58check_encode(&payload)
    };
    match script {
        [0x76, 0xa9, 0x14, hash @ .., 0x88, 0xac] if hash.len() == 20 => ("pubkeyhash", vec![address(hash)], 1),
        [0xa9, 0x14, _hash @ .., 0x87] if script.len() == 23 => ("scripthash", Vec::new(), 1),
        [len, key @ .., 0xac] if (*len == 33 || *len == 65) && key.len() == *len as usize => {
            let hash = bitcoin_hashes::hash160::Hash::hash(key);
            ("pubkey", vec![address(hash.as_ref())], 1)
        }
        [0x6a, ..] | [0x00, 0x6a, ..] => ("nulldata", Vec::new(), 0),
        [m @ 0x51..=0x60, .., n @ 0x51..=0x60, 0xae] if m <= n => ("multisig", Vec::new(), u32::from(m - 0x50)),
        _ => ("nonstandard", Vec::new(), 0),
    }
}

use bitcoin_hashes::Hash as _;

pub fn script_pubkey_json(script: &[u8], address_prefix: u8) -> Value {
    let (kind, addresses, req) = classify(script, address_prefix);
    let mut v = json!({ "asm": asm(script), "hex": hex::encode(script), "type": kind });
    if !addresses.is_empty() {
        v["reqSigs"] = json!(req);
        v["addresses"] = json!(addresses);
    }
    v
}

/// SV Node's `TxToUniv`, with the raw hex.
pub fn tx_json(tx: &Transaction, address_prefix: u8) -> Value {
    let mut raw = Vec::new();
    tx.consensus_encode(&mut raw);
    let vin: Vec<Value> = tx
        .inputs
        .iter()
        .map(|i| {
            if tx.is_coinbase() {
                json!({ "coinbase": hex::encode(&i.script_sig), "sequence": i.sequence })
            } else {
                json!({
                    "txid": i.prev_out.txid.to_string(),
                    "vout": i.prev_out.vout,
                    "scriptSig": { "asm": asm(&i.script_sig), "hex": hex::encode(&i.script_sig) },
                    "sequence": i.sequence,
                })
            }
        })
        .collect();
    let vout: Vec<Value> = tx
        .outputs
        .iter()
        .enumerate()
        .map(|(n, o)| {
            json!({ "value": amount(o.value), "n": n, "scriptPubKey": script_pubkey_json(&o.script_pubkey, address_prefix) })
        })
        .collect();
    json!({
        "txid": tx.txid().to_string(),
        "hash": tx.txid().to_string(),
        "version": tx.version,
        "size": raw.len(),
        "locktime": tx.lock_time,
        "vin": vin,
        "vout": vout,
        "hex": hex::encode(&raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asm_prints_pushes_numbers_and_opcodes_as_sv_node() {
        let mut script = vec![0x76, 0xa9, 0x14];
        script.extend_from_slice(&[0xab; 20]);
        script.extend_from_slice(&[0x88, 0xac]);
        assert_eq!(asm(&script), format!("OP_DUP OP_HASH160 {} OP_EQUALVERIFY OP_CHECKSIG", "ab".repeat(20)));
        assert_eq!(asm(&[0x01, 0x81]), "-1");
        assert_eq!(asm(&[0x02, 0xe8, 0x03, 0x00]), "1000 0");
        assert_eq!(asm(&[0x05, 0x01]), "[error]");
    }

    #[test]
    fn amounts_have_eight_decimals() {
        assert_eq!(amount(5_000_000_000).to_string(), "50.0");
        assert_eq!(amount(1).to_string(), "1e-8");
        assert_eq!(amount(123_456_789).as_f64(), Some(1.23456789));
    }

    #[test]
    fn p2pkh_outputs_name_their_regtest_address() {
        let key = crate::wallet::Key::from_seed(b"txjson");
        let v = script_pubkey_json(&key.p2pkh_script(), 0x6f);
        assert_eq!(v["type"], "pubkeyhash");
        assert_eq!(v["addresses"][0], key.address(0x6f));
    }
}
