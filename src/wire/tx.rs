//! Transactions, their inputs, outputs and outpoints.
//!
//! A `Transaction` always carries the id and the raw bytes it was decoded from (or built into):
//! the txid is sha256d of those bytes, computed once, and relaying the transaction sends those same
//! bytes. The fields are reached through `Deref` to `TxFields`; to change a transaction, take its
//! fields with `into_fields`, edit them and build a new one with `Transaction::from_fields`, which
//! serializes and hashes once. Scripts are `Bytes` slices of the raw buffer, so a decoded transaction
//! costs its raw bytes plus the small vectors of inputs and outputs.

use super::encode::{write_compact_size, write_var_bytes, Decodable, Encodable, Reader};
use super::error::DecodeError;
use super::hash::{Hash256, TxId};
use bytes::Bytes;
use std::ops::Deref;

/// Smallest encoded input: outpoint (36) + empty script (1) + sequence (4).
pub const MIN_TXIN_LEN: usize = 41;
/// Smallest encoded output: value (8) + empty script (1).
pub const MIN_TXOUT_LEN: usize = 9;
/// Smallest encoded transaction: version (4) + two empty counts (2) + lock time (4).
pub const MIN_TX_LEN: usize = 10;

/// A reference to one output of an earlier transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    pub txid: TxId,
    pub vout: u32,
}

impl OutPoint {
    /// The prevout of a coinbase input: zero txid, index 0xFFFFFFFF.
    pub const NULL: OutPoint = OutPoint { txid: Hash256::ZERO, vout: u32::MAX };

    pub fn is_null(&self) -> bool {
        *self == Self::NULL
    }
}

impl Encodable for OutPoint {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.txid.0);
        out.extend_from_slice(&self.vout.to_le_bytes());
    }
}

impl Decodable for OutPoint {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(OutPoint { txid: Hash256(r.read_array("outpoint txid")?), vout: r.read_u32_le("outpoint index")? })
    }
}

/// A transaction input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIn {
    pub prev_out: OutPoint,
    pub script_sig: Bytes,
    pub sequence: u32,
}

impl Encodable for TxIn {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        self.prev_out.consensus_encode(out);
        write_var_bytes(out, &self.script_sig);
        out.extend_from_slice(&self.sequence.to_le_bytes());
    }
}

impl Decodable for TxIn {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let prev_out = OutPoint::consensus_decode(r)?;
        // The script's length is bounded by the bytes actually present (read_slice checks).
        let script_sig = r.read_var_bytes("scriptSig", u64::MAX)?;
        let sequence = r.read_u32_le("sequence")?;
        Ok(TxIn { prev_out, script_sig, sequence })
    }
}

/// A transaction output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOut {
    /// Satoshis. Signed on the wire; range checks belong to validation, not decoding.
    pub value: i64,
    pub script_pubkey: Bytes,
}

impl Encodable for TxOut {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.value.to_le_bytes());
        write_var_bytes(out, &self.script_pubkey);
    }
}

impl Decodable for TxOut {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let value = r.read_i64_le("output value")?;
        let script_pubkey = r.read_var_bytes("scriptPubKey", u64::MAX)?;
        Ok(TxOut { value, script_pubkey })
    }
}

/// The fields of a transaction, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFields {
    pub version: i32,
    pub inputs: Vec<TxIn>,
    pub outputs: Vec<TxOut>,
    pub lock_time: u32,
}

impl TxFields {
    /// Serialized length, without serializing.
    pub fn encoded_len(&self) -> usize {
        use super::encode::compact_size_len as cs;
        let ins: usize = self.inputs.iter().map(|i| 40 + cs(i.script_sig.len() as u64) + i.script_sig.len()).sum();
        let outs: usize =
            self.outputs.iter().map(|o| 8 + cs(o.script_pubkey.len() as u64) + o.script_pubkey.len()).sum();
        8 + cs(self.inputs.len() as u64) + ins + cs(self.outputs.len() as u64) + outs
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        write_compact_size(out, self.inputs.len() as u64);
        for input in &self.inputs {
            input.consensus_encode(out);
        }
        write_compact_size(out, self.outputs.len() as u64);
        for output in &self.outputs {
            output.consensus_encode(out);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.read_i32_le("tx version")?;
        let n_in = r.read_count("tx inputs", u64::MAX, MIN_TXIN_LEN)?;
        let mut inputs = Vec::with_capacity(n_in);
        for _ in 0..n_in {
            inputs.push(TxIn::consensus_decode(r)?);
        }
        let n_out = r.read_count("tx outputs", u64::MAX, MIN_TXOUT_LEN)?;
        let mut outputs = Vec::with_capacity(n_out);
        for _ in 0..n_out {
            outputs.push(TxOut::consensus_decode(r)?);
        }
        let lock_time = r.read_u32_le("lock time")?;
        Ok(TxFields { version, inputs, outputs, lock_time })
    }
}

/// A transaction with its id and the bytes the id was computed from.
#[derive(Debug, Clone)]
pub struct Transaction {
    fields: TxFields,
    txid: TxId,
    raw: Bytes,
}

impl Transaction {
    /// Serializes `fields` once and hashes the result.
    pub fn from_fields(fields: TxFields) -> Transaction {
        let mut raw = Vec::with_capacity(fields.encoded_len());
        fields.encode_into(&mut raw);
        let txid = Hash256::sha256d(&raw);
        Transaction { fields, txid, raw: Bytes::from(raw) }
    }

    /// Decodes one transaction. `known_id`, when given, is sha256d of exactly the bytes this
    /// transaction spans (a `tx` frame's payload hash) and saves hashing them a second time; the
    /// caller must only pass it when the transaction fills the whole buffer.
    pub fn decode_with_id(r: &mut Reader<'_>, known_id: Option<TxId>) -> Result<Self, DecodeError> {
        let start = r.position();
        let fields = TxFields::decode_from(r)?;
        let raw = r.buffer().slice(start..r.position());
        let txid = known_id.unwrap_or_else(|| Hash256::sha256d(&raw));
        Ok(Transaction { fields, txid, raw })
    }

    /// Decodes a transaction whose id is already known (bytes kept since an earlier decode),
    /// without hashing them again.
    pub fn from_raw_with_id(raw: &Bytes, txid: TxId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(raw);
        let tx = Self::decode_with_id(&mut r, Some(txid))?;
        r.finish("Transaction")?;
        Ok(tx)
    }

    pub fn txid(&self) -> TxId {
        self.txid
    }

    /// The bytes as received or built: what goes on the wire and what the txid hashes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Serialized size in bytes.
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    pub fn into_fields(self) -> TxFields {
        self.fields
    }

    /// A coinbase has exactly one input, and that input's prevout is null.
    pub fn is_coinbase(&self) -> bool {
        self.fields.inputs.len() == 1 && self.fields.inputs[0].prev_out.is_null()
    }
}

impl Deref for Transaction {
    type Target = TxFields;
    fn deref(&self) -> &TxFields {
        &self.fields
    }
}

impl PartialEq for Transaction {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for Transaction {}

impl Encodable for Transaction {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw);
    }
}

impl Decodable for Transaction {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_with_id(r, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_transaction_hashes_its_own_encoding() {
        let fields = TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: Hash256([7; 32]), vout: 3 },
                script_sig: Bytes::from_static(&[0x51]),
                sequence: 0xFFFF_FFFF,
            }],
            outputs: vec![TxOut { value: 5000, script_pubkey: Bytes::from_static(&[0x76, 0xa9]) }],
            lock_time: 0,
        };
        let tx = Transaction::from_fields(fields.clone());
        assert_eq!(tx.size(), fields.encoded_len());
        assert_eq!(tx.txid(), Hash256::sha256d(tx.raw()));
        let back = Transaction::from_bytes(tx.raw()).unwrap();
        assert_eq!(back.txid(), tx.txid());
        assert_eq!(*back, fields);
        assert!(!back.is_coinbase());
    }
}
