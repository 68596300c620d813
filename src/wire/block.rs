//! Block headers, blocks and the merkle tree.
//!
//! A decoded `Block` keeps the hash of the 80 header bytes as received, and its transactions are
//! slices of the block's buffer. `merkle_root` reports the CVE-2012-2459 mutation (a tree whose last
//! two leaves at some level are equal), which validation must reject without marking the genuine
//! block with the same hash invalid.

use super::encode::{write_compact_size, Decodable, Encodable, Reader};
use super::error::DecodeError;
use super::hash::{sha256d, BlockHash, Hash256, TxId};
use super::tx::{Transaction, MIN_TX_LEN};

/// Size of a serialized block header.
pub const HEADER_LEN: usize = 80;

/// An 80-byte block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHeader {
    pub version: i32,
    pub prev_block: BlockHash,
    pub merkle_root: Hash256,
    pub time: u32,
    pub bits: u32,
    pub nonce: u32,
}

impl BlockHeader {
    /// The 80 bytes of the header.
    pub fn to_array(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_block.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses the 80 header bytes.
    pub fn from_array(b: &[u8; HEADER_LEN]) -> BlockHeader {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let hash_at = |i: usize| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&b[i..i + 32]);
            Hash256(h)
        };
        BlockHeader {
            version: u32_at(0) as i32,
            prev_block: hash_at(4),
            merkle_root: hash_at(36),
            time: u32_at(68),
            bits: u32_at(72),
            nonce: u32_at(76),
        }
    }

    /// The block hash: sha256d of the 80 header bytes (a header's encoding is fixed, so this is the
    /// hash of the bytes as received).
    pub fn hash(&self) -> BlockHash {
        Hash256(sha256d(&self.to_array()))
    }
}

impl Encodable for BlockHeader {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_array());
    }
}

impl Decodable for BlockHeader {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockHeader::from_array(&r.read_array("block header")?))
    }
}

/// A block: a header and its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub transactions: Vec<Transaction>,
    hash: BlockHash,
}

impl Block {
    pub fn new(header: BlockHeader, transactions: Vec<Transaction>) -> Block {
        Block { hash: header.hash(), header, transactions }
    }

    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// Merkle root of the transactions, and whether the tree is CVE-2012-2459-mutated.
    pub fn merkle_root(&self) -> (Hash256, bool) {
        merkle_root(self.transactions.iter().map(Transaction::txid).collect())
    }

    /// The serialized block as pieces: the header and transaction count, then each transaction's
    /// own bytes (shared, not copied), for writing it to a socket or the store.
    pub fn payload_parts(&self) -> Vec<bytes::Bytes> {
        let mut head = Vec::with_capacity(HEADER_LEN + 9);
        self.header.consensus_encode(&mut head);
        write_compact_size(&mut head, self.transactions.len() as u64);
        let mut parts = Vec::with_capacity(1 + self.transactions.len());
        parts.push(bytes::Bytes::from(head));
        parts.extend(self.transactions.iter().map(|tx| tx.raw().clone()));
        parts
    }

    /// Serialized size in bytes.
    pub fn size(&self) -> usize {
        HEADER_LEN
            + super::encode::compact_size_len(self.transactions.len() as u64)
            + self.transactions.iter().map(Transaction::size).sum::<usize>()
    }
}

impl Encodable for Block {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.size());
        self.header.consensus_encode(out);
        write_compact_size(out, self.transactions.len() as u64);
        for tx in &self.transactions {
            tx.consensus_encode(out);
        }
    }
}

impl Decodable for Block {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header_bytes: [u8; HEADER_LEN] = r.read_array("block header")?;
        let hash = Hash256(sha256d(&header_bytes));
        let header = BlockHeader::from_array(&header_bytes);
        let count = r.read_count("block transactions", u64::MAX, MIN_TX_LEN)?;
        let mut transactions = Vec::with_capacity(count);
        for _ in 0..count {
            transactions.push(Transaction::consensus_decode(r)?);
        }
        Ok(Block { header, transactions, hash })
    }
}

/// The Bitcoin merkle root of `leaves` (last element duplicated on odd levels), and whether some
/// level had two equal hashes in its last pair, the CVE-2012-2459 mutation that lets a block with
/// duplicated transactions share the genuine block's root. An empty list gives the zero hash.
pub fn merkle_root(mut level: Vec<TxId>) -> (Hash256, bool) {
    if level.is_empty() {
        return (Hash256::ZERO, false);
    }
    let mut mutated = false;
    let mut buf = [0u8; 64];
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            let (left, right) = (pair[0], *pair.get(1).unwrap_or(&pair[0]));
            if pair.len() == 2 && left == right {
                mutated = true;
            }
            buf[..32].copy_from_slice(&left.0);
            buf[32..].copy_from_slice(&right.0);
            next.push(Hash256(sha256d(&buf)));
        }
        level = next;
    }
    (level[0], mutated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_leaf_is_its_own_root() {
        let leaf = Hash256([9; 32]);
        assert_eq!(merkle_root(vec![leaf]), (leaf, false));
    }

    #[test]
    fn duplicated_last_pair_is_flagged_as_mutated() {
        let (a, b, c) = (Hash256([1; 32]), Hash256([2; 32]), Hash256([3; 32]));
        let (genuine, m1) = merkle_root(vec![a, b, c]);
        let (forged, m2) = merkle_root(vec![a, b, c, c]);
        assert_eq!(genuine, forged, "the mutation keeps the root");
        assert!(!m1);
        assert!(m2);
    }
}
