//! The chain on disk: raw blocks, the block index, undo data and the UTXO set, in one redb file
//! (`<netdir>/chainstate.redb`), except that a block of [`FILE_BLOCK_MIN`] bytes or more is kept in
//! a file of its own (`<netdir>/blocks/<hash>.blk`) and recorded in the database with an empty value.
//!
//! What it guarantees: every write is one redb transaction, so after a crash (`kill -9` at any
//! moment) the file holds exactly the state after some committed transaction. The coins are
//! written by the cache's flush ([`super::coins_db`]) together with the tip they belong to, so
//! the stored UTXO set always equals the set at the stored tip. Connecting a block writes its undo
//! data only; blocks connected after the last flush are connected again from their stored bytes
//! at the next start. Blocks are written when they arrive, before they are connected; a block
//! whose bytes are stored is never downloaded again.
//!
//! A block file is written in full and synced, under a temporary name renamed into place, before
//! the transaction that records it commits: a crash leaves at most an unreferenced file (written
//! again if the block comes again), never a reference to a missing or partial one.
//!
//! Durability: a commit with [`Durability::Immediate`] is on disk when it returns (an fsync);
//! [`Durability::None`] commits are consistent but only reach the disk with the next immediate
//! one. The chain state chooses (cheap commits while far behind the network, immediate ones near
//! the tip), so a crash costs at most the blocks since the last immediate commit, which are then
//! downloaded again; it never leaves a half-written state.
//!
//! What it must not do: decide anything. Validation and the choice of the active chain belong to
//! [`super::state`]; this module stores and loads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;

use super::coins_db::CoinsDb;
use super::utxo::BlockUndo;
use crate::wire::{Block, BlockHash, BlockHeader, Decodable, Encodable, Hash256, Reader};

/// Raw blocks as received, by hash.
const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// Block index: hash → height (4 LE) | status (1) | header (80).
const INDEX: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("index");
/// Undo data of connected blocks, by hash.
const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo");
/// Unspent outputs: txid (32) | vout (4 LE) → coin code (CompactSize height·2 + coinbase) | value (8 LE) | script.
pub(super) const COINS: TableDefinition<&[u8; 36], &[u8]> = TableDefinition::new("coins");
/// Small named values: the tip the stored coins belong to, their statistics.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(super) const TIP_KEY: &str = "tip";

/// Blocks at least this large are stored in a file of their own rather than in the database. redb
/// holds a value it writes in its page buffer until the next durable commit, which for a big block
/// is a second copy in memory beside the one being validated (100 MB more for a 100 MB block); a
/// file goes through the kernel's page cache instead. 16 MiB keeps every ordinary block in the one
/// database file, and bounds what a block below it can add to memory on the way to the disk.
pub const FILE_BLOCK_MIN: usize = 16 << 20;
/// Folder of the block files, beside the database file.
const BLOCKS_DIR: &str = "blocks";
/// Gathers a block's small transactions into writes of this size.
const FILE_WRITE_BUFFER: usize = 64 * 1024;
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
    #[error("block file {path}: {source}")]
    File { path: String, source: std::io::Error },
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

/// The on-disk chain.
pub struct BlockStore {
    db: Arc<Database>,
    /// Where blocks of `file_block_min` bytes or more go; `None` in memory (every block in redb).
    blocks_dir: Option<PathBuf>,
    file_block_min: usize,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockStore")
    }
}

impl BlockStore {
    /// Opens (or creates) the database file with redb's page cache bounded to `cache_bytes`
    /// (redb's own default, 1 GiB, would be outside `-dbcache`). redb repairs an interrupted write
    /// on open.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<BlockStore, StoreError> {
        Self::open_with_file_min(path, cache_bytes, FILE_BLOCK_MIN)
    }

    /// [`Self::open`] with the size from which blocks go to files (tests store small ones there).
    pub fn open_with_file_min(
        path: &Path,
        cache_bytes: usize,
        file_block_min: usize,
    ) -> Result<BlockStore, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), source: Box::new(e) })?;
        let mut store = Self::init(db)?;
        store.blocks_dir = Some(path.parent().unwrap_or(Path::new(".")).join(BLOCKS_DIR));
        store.file_block_min = file_block_min;
        Ok(store)
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
        Ok(BlockStore { db: Arc::new(db), blocks_dir: None, file_block_min: usize::MAX })
    }

    /// The coin table, for the UTXO set's cache.
    pub fn coins_db(&self) -> CoinsDb {
        CoinsDb::new(self.db.clone())
    }

    fn begin(&self, durable: bool) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        Ok(txn)
    }

    /// Stores a block's bytes and its index entry (status: have data). The bytes are written from
    /// the transactions' own buffers, to the block's file or straight into the space redb reserves
    /// for them: no serialized copy of the block is made on the way.
    pub fn put_block(&self, hash: &BlockHash, height: u32, block: &Block) -> Result<(), StoreError> {
        let parts = block.payload_parts();
        let len = parts.iter().map(Bytes::len).sum();
        let in_file = match &self.blocks_dir {
            Some(dir) if len >= self.file_block_min => {
                write_block_file(dir, hash, &parts)?;
                true
            }
            _ => false,
        };
        let txn = self.begin(false)?;
        {
            let mut blocks = txn.open_table(BLOCKS)?;
            if in_file {
                blocks.insert(&hash.0, &[][..])?;
            } else {
                let mut value = blocks.insert_reserve(&hash.0, len)?;
                let mut rest: &mut [u8] = value.as_mut();
                for part in &parts {
                    let (this, tail) = rest.split_at_mut(part.len());
                    this.copy_from_slice(part);
                    rest = tail;
                }
            }
            drop(blocks);
            let entry = IndexEntry { height, status: STATUS_HAVE_DATA, header: block.header };
            txn.open_table(INDEX)?.insert(&hash.0, &entry.encode()[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn block(&self, hash: &BlockHash) -> Result<Option<Bytes>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        let Some(v) = table.get(&hash.0)? else { return Ok(None) };
        // A real block is at least 81 bytes: an empty value says the block is in its file.
        match (v.value().is_empty(), &self.blocks_dir) {
            (false, _) => Ok(Some(Bytes::copy_from_slice(v.value()))),
            (true, Some(dir)) => {
                let path = block_file(dir, hash);
                std::fs::read(&path)
                    .map(|raw| Some(Bytes::from(raw)))
                    .map_err(|source| StoreError::File { path: path.display().to_string(), source })
            }
            (true, None) => {
                Err(StoreError::Corrupt(format!("block {hash} is recorded as a file in a store without files")))
            }
        }
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

    /// Records the undo data of a connected block. The coins and the tip move with the cache's
    /// next flush; until then a restart connects the block again from its stored bytes. Undo data
    /// of a block disconnected again is kept: the stored coins may still be at that block.
    pub fn put_undo(&self, hash: &BlockHash, undo: &BlockUndo, durable: bool) -> Result<(), StoreError> {
        let txn = self.begin(durable)?;
        {
            let mut bytes = Vec::new();
            undo.consensus_encode(&mut bytes);
            txn.open_table(UNDO)?.insert(&hash.0, &bytes[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Forces everything committed so far onto the disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = self.begin(true)?;
        txn.commit()?;
        Ok(())
    }
}

fn block_file(dir: &Path, hash: &BlockHash) -> PathBuf {
    dir.join(format!("{hash}.blk"))
}

/// Writes a block's file: whole and synced under a temporary name, then renamed into place and the
/// folder synced, so the name only ever refers to a complete block.
fn write_block_file(dir: &Path, hash: &BlockHash, parts: &[Bytes]) -> Result<(), StoreError> {
    let path = block_file(dir, hash);
    let tmp = dir.join(format!("{hash}.blk.tmp"));
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |source| StoreError::File { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let file = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    let mut out = std::io::BufWriter::with_capacity(FILE_WRITE_BUFFER, file);
    for part in parts {
        out.write_all(part).map_err(err(&tmp))?;
    }
    let file = out.into_inner().map_err(|e| err(&tmp)(e.into_error()))?;
    file.sync_data().map_err(err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(err(&path))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::utxo::UtxoStats;
    use crate::validation::Coin;
    use crate::wire::OutPoint;

    #[test]
    fn a_flush_moves_coins_tip_and_statistics_together() {
        let store = BlockStore::in_memory();
        let coins = store.coins_db();
        assert_eq!(coins.stored_stats().expect("stats"), None);
        let a = OutPoint { txid: Hash256([1; 32]), vout: 0 };
        let coin = Coin { value: 50, script_pubkey: Bytes::from_static(&[0x51]), height: 1, is_coinbase: true };
        let hash = Hash256([9; 32]);
        let stats = UtxoStats { height: 1, best_block: hash, txouts: 1, total_amount: 50, bogosize: 51 };
        coins.write_flush([(&a, Some(&coin))], &hash, &stats).expect("flush");
        store.put_undo(&hash, &BlockUndo::default(), true).expect("undo");
        assert_eq!(coins.coins(&[a]).expect("coins"), vec![Some(coin)]);
        assert_eq!(store.tip().expect("tip"), Some(hash));
        assert_eq!(coins.stored_stats().expect("stats"), Some((1, 50, 51)));
        assert_eq!(coins.count().expect("count").txouts, 1);
        assert_eq!(store.undo(&hash).expect("undo"), Some(BlockUndo::default()));
        coins.write_flush([(&a, None)], &Hash256::ZERO, &UtxoStats { txouts: 0, ..stats }).expect("flush");
        assert_eq!(coins.coins(&[a]).expect("coins"), vec![None]);
        coins.clear().expect("clear");
        assert_eq!(store.tip().expect("tip"), None);
    }

    #[test]
    fn a_block_above_the_file_size_is_kept_in_its_file_and_read_back_after_reopening() {
        let dir =
            std::env::temp_dir().join(format!("bsv-relay-store-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("chainstate.redb");
        let genesis = crate::params::Network::Regtest.params().genesis_block();
        let raw = crate::chain::state::block_bytes(&genesis);
        let (small, big) = (Hash256([1; 32]), genesis.hash());
        {
            let store = BlockStore::open_with_file_min(&db, 1 << 20, raw.len()).expect("open");
            store.put_block(&big, 0, &genesis).expect("put");
            assert!(dir.join(BLOCKS_DIR).join(format!("{big}.blk")).exists());
            let short = Block::new(genesis.header, Vec::new());
            store.put_block(&small, 1, &short).expect("put");
            assert!(!dir.join(BLOCKS_DIR).join(format!("{small}.blk")).exists(), "below the size: in the database");
        }
        let store = BlockStore::open_with_file_min(&db, 1 << 20, raw.len()).expect("reopen");
        assert_eq!(store.block(&big).expect("read").as_deref(), Some(&raw[..]));
        assert_eq!(store.block(&small).expect("read").map(|b| b.len()), Some(81));
        std::fs::remove_file(dir.join(BLOCKS_DIR).join(format!("{big}.blk"))).expect("remove");
        assert!(matches!(store.block(&big), Err(StoreError::File { .. })), "a missing file is an error, not a panic");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
