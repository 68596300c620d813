//! The chain on disk: raw blocks, the block index, undo data and the UTXO set, in one redb file
//! (`<netdir>/chainstate.redb`).
//!
//! What it guarantees: every write is one redb transaction, so after a crash (`kill -9` at any
//! moment) the file holds exactly the state after some committed transaction. Connecting a block
//! writes its undo data, its UTXO changes and the new tip together, so the stored UTXO set always
//! equals the set at the stored tip. Blocks are written when they arrive, before they are
//! connected; a block whose bytes are stored is never downloaded again.
//!
//! Durability: a commit with [`Durability::Immediate`] is on disk when it returns (an fsync);
//! [`Durability::None`] commits are consistent but only reach the disk with the next immediate
//! one. The chain state chooses (cheap commits while far behind the network, immediate ones near
//! the tip), so a crash costs at most the blocks since the last immediate commit, which are then
//! downloaded again; it never leaves a half-written state.
//!
//! What it must not do: decide anything. Validation and the choice of the active chain belong to
//! [`super::state`]; this module stores and loads.

use std::path::Path;

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;

use super::utxo::{BlockUndo, UtxoChanges};
use crate::validation::Coin;
use crate::wire::encode::write_compact_size;
use crate::wire::{BlockHash, BlockHeader, Decodable, Encodable, Hash256, OutPoint, Reader};

/// Raw blocks as received, by hash.
const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// Block index: hash → height (4 LE) | status (1) | header (80).
const INDEX: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("index");
/// Undo data of connected blocks, by hash.
const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo");
/// Unspent outputs: txid (32) | vout (4 LE) → coin code (CompactSize height·2 + coinbase) | value (8 LE) | script.
const COINS: TableDefinition<&[u8; 36], &[u8]> = TableDefinition::new("coins");
/// Small named values: the active tip.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const TIP_KEY: &str = "tip";
const INDEX_VALUE_LEN: usize = 4 + 1 + 80;

/// The block's bytes are stored.
pub const STATUS_HAVE_DATA: u8 = 1;
/// The block (or an ancestor) broke a consensus rule.
pub const STATUS_INVALID: u8 = 2;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the chain database {path}: {source}")]
    Open { path: String, source: Box<redb::DatabaseError> },
    #[error("chain database error: {0}")]
    Db(String),
    #[error("chain database is corrupt: {0}")]
    Corrupt(String),
}

/// Every redb error type becomes a `Db` error with its message (they share no common type).
macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::SetDurabilityError);

/// One entry of the stored block index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub height: u32,
    pub status: u8,
    pub header: BlockHeader,
}

impl IndexEntry {
    fn encode(&self) -> [u8; INDEX_VALUE_LEN] {
        let mut out = [0u8; INDEX_VALUE_LEN];
        out[..4].copy_from_slice(&self.height.to_le_bytes());
        out[4] = self.status;
        out[5..].copy_from_slice(&self.header.to_array());
        out
    }

    fn decode(bytes: &[u8]) -> Result<IndexEntry, StoreError> {
        let b: &[u8; INDEX_VALUE_LEN] =
            bytes.try_into().map_err(|_| StoreError::Corrupt(format!("index entry of {} bytes", bytes.len())))?;
        let height = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let header = BlockHeader::from_array(b[5..].try_into().expect("80 bytes"));
        Ok(IndexEntry { height, status: b[4], header })
    }
}

fn coin_key(outpoint: &OutPoint) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(&outpoint.txid.0);
    key[32..].copy_from_slice(&outpoint.vout.to_le_bytes());
    key
}

fn encode_coin(coin: &Coin) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + 8 + coin.script_pubkey.len());
    write_compact_size(&mut out, (u64::from(coin.height) << 1) | u64::from(coin.is_coinbase));
    out.extend_from_slice(&coin.value.to_le_bytes());
    out.extend_from_slice(&coin.script_pubkey);
    out
}

fn decode_coin(bytes: &[u8]) -> Result<Coin, StoreError> {
    let corrupt = |e: crate::wire::DecodeError| StoreError::Corrupt(format!("coin record: {e}"));
    let buf = Bytes::copy_from_slice(bytes);
    let mut r = Reader::new(&buf);
    let code = r.read_compact_size("coin code").map_err(corrupt)?;
    let value = r.read_i64_le("coin value").map_err(corrupt)?;
    let script_pubkey = r.read_slice(r.remaining(), "coin script").map_err(corrupt)?;
    let height = u32::try_from(code >> 1).map_err(|_| StoreError::Corrupt(format!("coin height {}", code >> 1)))?;
    Ok(Coin { value, script_pubkey, height, is_coinbase: code & 1 == 1 })
}

/// The on-disk chain.
pub struct BlockStore {
    db: Database,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockStore")
    }
}

impl BlockStore {
    /// Opens (or creates) the database file. redb repairs an interrupted write on open.
    pub fn open(path: &Path) -> Result<BlockStore, StoreError> {
        let db = Database::create(path)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), source: Box::new(e) })?;
        Self::init(db)
    }

    /// A store that lives in memory, for tests and benchmarks.
    pub fn in_memory() -> BlockStore {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database always opens");
        Self::init(db).expect("an in-memory database always initialises")
    }

    fn init(db: Database) -> Result<BlockStore, StoreError> {
        let txn = db.begin_write()?;
        txn.open_table(BLOCKS)?;
        txn.open_table(INDEX)?;
        txn.open_table(UNDO)?;
        txn.open_table(COINS)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(BlockStore { db })
    }

    fn begin(&self, durable: bool) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        Ok(txn)
    }

    /// Stores a block's bytes and its index entry (status: have data).
    pub fn put_block(&self, hash: &BlockHash, height: u32, header: &BlockHeader, raw: &[u8]) -> Result<(), StoreError> {
        let txn = self.begin(false)?;
        {
            txn.open_table(BLOCKS)?.insert(&hash.0, raw)?;
            let entry = IndexEntry { height, status: STATUS_HAVE_DATA, header: *header };
            txn.open_table(INDEX)?.insert(&hash.0, &entry.encode()[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn block(&self, hash: &BlockHash) -> Result<Option<Bytes>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        Ok(table.get(&hash.0)?.map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// Sets or clears the invalid flag of indexed blocks (headers without data are not stored).
    pub fn set_invalid(&self, hashes: &[BlockHash], invalid: bool) -> Result<(), StoreError> {
        let txn = self.begin(true)?;
        {
            let mut index = txn.open_table(INDEX)?;
            for hash in hashes {
                let entry = match index.get(&hash.0)? {
                    Some(v) => IndexEntry::decode(v.value())?,
                    None => continue,
                };
                let status = if invalid { entry.status | STATUS_INVALID } else { entry.status & !STATUS_INVALID };
                index.insert(&hash.0, &IndexEntry { status, ..entry }.encode()[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every indexed block, in no particular order.
    pub fn index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INDEX)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((Hash256(*k.value()), IndexEntry::decode(v.value())?));
        }
        Ok(out)
    }

    /// The stored UTXO set.
    pub fn coins(&self) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COINS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let key = k.value();
            let txid = Hash256(key[..32].try_into().expect("32 bytes"));
            let vout = u32::from_le_bytes(key[32..].try_into().expect("4 bytes"));
            out.push((OutPoint { txid, vout }, decode_coin(v.value())?));
        }
        Ok(out)
    }

    /// The tip the stored UTXO set belongs to; `None` for a new store (the genesis block).
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        let Some(v) = table.get(TIP_KEY)? else { return Ok(None) };
        let bytes: [u8; 32] = v.value().try_into().map_err(|_| StoreError::Corrupt("tip record".into()))?;
        Ok(Some(Hash256(bytes)))
    }

    pub fn undo(&self, hash: &BlockHash) -> Result<Option<BlockUndo>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UNDO)?;
        let Some(v) = table.get(&hash.0)? else { return Ok(None) };
        let bytes = Bytes::copy_from_slice(v.value());
        let mut r = Reader::new(&bytes);
        let undo = BlockUndo::consensus_decode(&mut r).map_err(|e| StoreError::Corrupt(format!("undo data: {e}")))?;
        Ok(Some(undo))
    }

    /// Records a connected block: its undo data, the UTXO changes and the new tip, atomically.
    pub fn connect(
        &self,
        hash: &BlockHash,
        undo: &BlockUndo,
        changes: &UtxoChanges,
        durable: bool,
    ) -> Result<(), StoreError> {
        let txn = self.begin(durable)?;
        {
            let mut bytes = Vec::new();
            undo.consensus_encode(&mut bytes);
            txn.open_table(UNDO)?.insert(&hash.0, &bytes[..])?;
            Self::apply(&txn, changes)?;
            txn.open_table(META)?.insert(TIP_KEY, &hash.0[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Records a disconnected block: the UTXO changes and the new tip (its parent), atomically.
    pub fn disconnect(
        &self,
        hash: &BlockHash,
        new_tip: &BlockHash,
        changes: &UtxoChanges,
        durable: bool,
    ) -> Result<(), StoreError> {
        let txn = self.begin(durable)?;
        {
            txn.open_table(UNDO)?.remove(&hash.0)?;
            Self::apply(&txn, changes)?;
            txn.open_table(META)?.insert(TIP_KEY, &new_tip.0[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    fn apply(txn: &redb::WriteTransaction, changes: &UtxoChanges) -> Result<(), StoreError> {
        let mut coins = txn.open_table(COINS)?;
        for (outpoint, coin) in changes {
            let key = coin_key(outpoint);
            match coin {
                Some(coin) => {
                    coins.insert(&key, &encode_coin(coin)[..])?;
                }
                None => {
                    coins.remove(&key)?;
                }
            }
        }
        Ok(())
    }

    /// Forces everything committed so far onto the disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = self.begin(true)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coins_round_trip_through_their_encoding() {
        for coin in [
            Coin { value: 0, script_pubkey: Bytes::new(), height: 0, is_coinbase: false },
            Coin {
                value: 5_000_000_000,
                script_pubkey: Bytes::from_static(&[0x76, 0xa9]),
                height: 300,
                is_coinbase: true,
            },
            Coin { value: 1, script_pubkey: Bytes::from(vec![7u8; 300]), height: 1 << 30, is_coinbase: false },
        ] {
            assert_eq!(decode_coin(&encode_coin(&coin)).expect("decodes"), coin);
        }
        assert!(decode_coin(&[0x01, 0x02]).is_err(), "truncated value");
    }

    #[test]
    fn connect_then_disconnect_leaves_the_coins_as_they_were() {
        let store = BlockStore::in_memory();
        let a = OutPoint { txid: Hash256([1; 32]), vout: 0 };
        let coin = Coin { value: 50, script_pubkey: Bytes::from_static(&[0x51]), height: 1, is_coinbase: true };
        let hash = Hash256([9; 32]);
        store.connect(&hash, &BlockUndo::default(), &vec![(a, Some(coin.clone()))], true).expect("connect");
        assert_eq!(store.coins().expect("coins"), vec![(a, coin)]);
        assert_eq!(store.tip().expect("tip"), Some(hash));
        assert_eq!(store.undo(&hash).expect("undo"), Some(BlockUndo::default()));
        store.disconnect(&hash, &Hash256::ZERO, &vec![(a, None)], false).expect("disconnect");
        assert!(store.coins().expect("coins").is_empty());
        assert_eq!(store.undo(&hash).expect("undo"), None);
    }
}
