//! BIP152 compact blocks, version 1 without witness: `cmpctblock`, `getblocktxn`, `blocktxn`.
//!
//! We decode them so a peer sending them is understood; the relay does not use compact blocks yet.

use crate::wire::block::BlockHeader;
use crate::wire::encode::{write_compact_size, Decodable, Encodable, Reader};
use crate::wire::error::DecodeError;
use crate::wire::hash::Hash256;
use crate::wire::tx::{Transaction, MIN_TX_LEN};

/// A 6-byte short transaction id (SipHash-2-4 of the txid, truncated).
pub type ShortId = [u8; 6];

/// A transaction sent in full inside a compact block, at a differentially encoded index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefilledTx {
    pub index_delta: u64,
    pub tx: Transaction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactBlock {
    pub header: BlockHeader,
    pub nonce: u64,
    pub short_ids: Vec<ShortId>,
    pub prefilled: Vec<PrefilledTx>,
}

impl Encodable for CompactBlock {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        self.header.consensus_encode(out);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        write_compact_size(out, self.short_ids.len() as u64);
        for id in &self.short_ids {
            out.extend_from_slice(id);
        }
        write_compact_size(out, self.prefilled.len() as u64);
        for p in &self.prefilled {
            write_compact_size(out, p.index_delta);
            p.tx.consensus_encode(out);
        }
    }
}

impl Decodable for CompactBlock {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = BlockHeader::consensus_decode(r)?;
        let nonce = r.read_u64_le("cmpctblock nonce")?;
        let n = r.read_count("short ids", u64::MAX, 6)?;
        let mut short_ids = Vec::with_capacity(n);
        for _ in 0..n {
            short_ids.push(r.read_array("short id")?);
        }
        let n = r.read_count("prefilled txs", u64::MAX, 1 + MIN_TX_LEN)?;
        let mut prefilled = Vec::with_capacity(n);
        for _ in 0..n {
            let index_delta = r.read_compact_size("prefilled index")?;
            prefilled.push(PrefilledTx { index_delta, tx: Transaction::consensus_decode(r)? });
        }
        Ok(CompactBlock { header, nonce, short_ids, prefilled })
    }
}

/// `getblocktxn`: the block and the differentially encoded indexes of the transactions wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetBlockTxn {
    pub block_hash: Hash256,
    pub index_deltas: Vec<u64>,
}

impl Encodable for GetBlockTxn {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.block_hash.0);
        write_compact_size(out, self.index_deltas.len() as u64);
        for d in &self.index_deltas {
            write_compact_size(out, *d);
        }
    }
}

impl Decodable for GetBlockTxn {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block_hash = Hash256(r.read_array("getblocktxn hash")?);
        let n = r.read_count("getblocktxn indexes", u64::MAX, 1)?;
        let mut index_deltas = Vec::with_capacity(n);
        for _ in 0..n {
            index_deltas.push(r.read_compact_size("getblocktxn index")?);
        }
        Ok(GetBlockTxn { block_hash, index_deltas })
    }
}

/// `blocktxn`: the transactions a `getblocktxn` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTxn {
    pub block_hash: Hash256,
    pub transactions: Vec<Transaction>,
}

impl Encodable for BlockTxn {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.block_hash.0);
        write_compact_size(out, self.transactions.len() as u64);
        for tx in &self.transactions {
            tx.consensus_encode(out);
        }
    }
}

impl Decodable for BlockTxn {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block_hash = Hash256(r.read_array("blocktxn hash")?);
        let n = r.read_count("blocktxn transactions", u64::MAX, MIN_TX_LEN)?;
        let mut transactions = Vec::with_capacity(n);
        for _ in 0..n {
            transactions.push(Transaction::consensus_decode(r)?);
        }
        Ok(BlockTxn { block_hash, transactions })
    }
}
