//! The UTXO set: every unspent output of the active chain, with the undo data that disconnects a
//! block again. A set made with [`UtxoSet::new`] lives in memory only; one opened on the chain
//! database ([`UtxoSet::on_disk`]) keeps its coins on disk behind a bounded write-back cache
//! ([`super::coins_cache`]): coins missing from the cache are read from disk, changes stay in the
//! cache until [`UtxoSet::flush`] writes them with the tip in one transaction.
//!
//! Concurrency: one writer connects and disconnects blocks while any number of validation threads
//! read coins through [`CoinView`]. Writers are serialised by a mutex; a block is first *staged*
//! (every input looked up, every change collected in an overlay) while readers keep reading the
//! old state, then *committed* under a short write lock. Readers therefore see the set before or
//! after a block, never half of it.
//!
//! Invariants:
//! - a staged block that fails leaves the set untouched (nothing is written before the commit);
//! - `stats()` always equals a recount of the set (updated with every insert and removal);
//! - before a block is staged or undone, every coin it touches is loaded into the cache (read from
//!   disk in parallel), so staging never waits for the disk under the lock and the commit knows
//!   each replaced coin;
//! - `undo_block(b, apply_block(b))` restores the exact previous contents, height and stats
//!   (except for the two mainnet BIP30 exceptions, whose overwritten coins are gone, as in SV Node);
//! - provably unspendable outputs are never added (SV Node `AddCoin` skips them): before Genesis a
//!   script starting with OP_RETURN, after Genesis one starting with OP_FALSE OP_RETURN;
//! - script bytes are copied out of the block, so a coin never pins a whole block's buffer.
//! - maps are keyed with a random per-set salt ([`SaltedOutPointHasher`]): txids are chosen by
//!   whoever writes transactions, so an unkeyed hash would let them fill one bucket.
//!
//! This module checks only what the set itself needs to stay consistent (the input exists, an
//! output does not overwrite an unspent one). Consensus rules live in [`super::block_check`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use bytes::Bytes;
use thiserror::Error;

use super::coins_cache::CoinsCache;
use super::coins_db::CoinsDb;
use super::outpoint_hash::SaltedOutPointHasher;
use super::params::ChainParams;
use super::store::StoreError;
pub use super::undo::BlockUndo;
use crate::validation::{Coin, CoinView};
use crate::wire::{Block, BlockHash, OutPoint, Transaction, TxId};

/// `OP_RETURN`: an output script starting with it can never be spent.
const OP_RETURN: u8 = 0x6a;
/// `OP_FALSE` (`OP_0`): after Genesis, `OP_FALSE OP_RETURN` marks a data output.
const OP_FALSE: u8 = 0x00;
/// Before Genesis a script longer than this can never be spent (SV Node `MAX_SCRIPT_SIZE_BEFORE_GENESIS`).
const MAX_SCRIPT_SIZE_BEFORE_GENESIS: usize = 10_000;

/// Why a block cannot be applied to or removed from the set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectError {
    /// An input spends an outpoint that is not in the set, was spent earlier in the block, or is
    /// created later in the block.
    #[error("input {input} of {txid} spends {outpoint:?}, which is missing or spent")]
    MissingOrSpent { txid: TxId, input: usize, outpoint: OutPoint },
    /// An output would overwrite an unspent coin with the same outpoint (BIP30; two mainnet
    /// blocks are exempt, see [`is_bip30_exception`]).
    #[error("output {outpoint:?} of the block already exists unspent")]
    OutputExists { outpoint: OutPoint },
    /// Blocks must be connected one after the other on top of the set's best block.
    #[error("block at height {got} does not extend the set's best height {best}")]
    WrongHeight { best: u32, got: u32 },
    /// A block connected must have the set's best block as parent; one disconnected must be it.
    #[error("block {block} (parent {parent}) is not on the set's best block {best}")]
    NotOnTip { best: BlockHash, block: BlockHash, parent: BlockHash },
    /// The undo data does not belong to this block.
    #[error("undo data holds {got} coins but the block spends {expected}")]
    UndoMismatch { expected: usize, got: usize },
    /// Disconnecting found an output of the block missing: the block is not the set's tip.
    #[error("output {outpoint:?} of the block being disconnected is not in the set")]
    UndoMissingOutput { outpoint: OutPoint },
    /// The coins on disk could not be read: our fault, never the block's.
    #[error("cannot read coins from the chain database: {detail}")]
    Disk { detail: String },
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        ConnectError::Disk { detail: e.to_string() }
    }
}

impl ConnectError {
    /// SV Node's reject reason, for the errors a peer's block can cause.
    pub const fn reject_reason(&self) -> &'static str {
        match self {
            Self::MissingOrSpent { .. } => "bad-txns-inputs-missingorspent",
            Self::OutputExists { .. } => "bad-txns-BIP30",
            Self::WrongHeight { .. }
            | Self::NotOnTip { .. }
            | Self::UndoMismatch { .. }
            | Self::UndoMissingOutput { .. } => "bad-undo",
            Self::Disk { .. } => "database-error",
        }
    }
}

/// What `gettxoutsetinfo` reports, kept up to date with every change and read as one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtxoStats {
    /// Height of the best block the set reflects.
    pub height: u32,
    pub best_block: BlockHash,
    /// Number of unspent outputs.
    pub txouts: u64,
    /// Sum of their values, in satoshis.
    pub total_amount: i64,
    /// `gettxoutsetinfo`'s database-independent size estimate: [`BOGO_BYTES_PER_COIN`] plus the
    /// script length, summed over the coins.
    pub bogosize: u64,
}

/// Per-coin overhead in `bogosize`: txid 32 + vout 4 + height/coinbase 4 + amount 8 + script
/// length 2 (SV Node and Core `ApplyStats`).
pub const BOGO_BYTES_PER_COIN: u64 = 50;

impl UtxoStats {
    fn add(&mut self, coin: &Coin) {
        self.txouts += 1;
        // Wrapping: every coin added is later subtracted exactly, so the sum stays exact even if a
        // corrupted coin were ever inserted; consensus keeps the true total below MAX_MONEY.
        self.total_amount = self.total_amount.wrapping_add(coin.value);
        self.bogosize += BOGO_BYTES_PER_COIN + coin.script_pubkey.len() as u64;
    }

    fn remove(&mut self, coin: &Coin) {
        self.txouts -= 1;
        self.total_amount = self.total_amount.wrapping_sub(coin.value);
        self.bogosize -= BOGO_BYTES_PER_COIN + coin.script_pubkey.len() as u64;
    }
}

/// The two mainnet blocks allowed to break BIP30: their coinbases repeat the txids of the
/// still-unspent coinbases of blocks 91812 and 91722 (BIP30 specification; SV Node and Core
/// `ConnectBlock`). Their outputs overwrite the earlier ones, which are lost for good.
const BIP30_EXCEPTIONS: [(u32, &str); 2] = [
    (91_842, "00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec"),
    (91_880, "00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721"),
];

/// Whether the block at `height` with `hash` may overwrite unspent outputs (see `BIP30_EXCEPTIONS`).
pub fn is_bip30_exception(height: u32, hash: &BlockHash) -> bool {
    BIP30_EXCEPTIONS.iter().any(|(h, exception)| *h == height && hash.to_string() == *exception)
}

/// Blocks whose timestamps make up the median time past (SV Node `nMedianTimeSpan`, BIP113).
const MEDIAN_TIME_SPAN: usize = 11;

/// Median of the last `MEDIAN_TIME_SPAN` timestamps (fewer near genesis), as SV Node's
/// `CBlockIndex::GetMedianTimePast`: sorted, the element at index len / 2.
fn median_time_past(times: &[u32]) -> i64 {
    let mut last: Vec<u32> = times[times.len().saturating_sub(MEDIAN_TIME_SPAN)..].to_vec();
    last.sort_unstable();
    last.get(last.len() / 2).map_or(0, |t| i64::from(*t))
}

/// The timestamps of the chain a set reflects, by height: what a block being staged reads for its
/// BIP68 time locks while the set is locked.
#[derive(Debug, Clone, Copy)]
pub struct BlockTimes<'a>(&'a [u32]);

impl crate::validation::ChainTimes for BlockTimes<'_> {
    fn median_time_past(&self) -> i64 {
        median_time_past(self.0)
    }

    fn median_time_past_at(&self, height: u32) -> Option<i64> {
        let end = usize::try_from(height).ok()?.checked_add(1)?;
        (end <= self.0.len()).then(|| median_time_past(&self.0[..end]))
    }
}

type CoinMap<V> = HashMap<OutPoint, V, SaltedOutPointHasher>;

/// Below this many coins to read from disk, one thread reads them all: starting threads would
/// cost more than the reads (a cached redb lookup takes a few microseconds).
const PARALLEL_MIN_READS: usize = 256;

/// How much of a set's size, at most, is loaded whole at start: a set that fills less than this
/// share of the cache is read into it at once (a node restarted with a small set runs as fast as
/// one that never restarted, and misses need no disk read); a bigger one warms up as it is used.
const LOAD_WHOLE_PERCENT: u64 = 50;

/// Whether an output can never be spent, so it is not stored (SV Node `CScript::IsUnspendable`).
pub fn is_unspendable(script: &[u8], genesis_enabled: bool) -> bool {
    if genesis_enabled {
        script.len() > 1 && script[0] == OP_FALSE && script[1] == OP_RETURN
    } else {
        script.first() == Some(&OP_RETURN) || script.len() > MAX_SCRIPT_SIZE_BEFORE_GENESIS
    }
}

#[derive(Debug)]
struct Inner {
    cache: CoinsCache,
    median_time_past: i64,
    /// Timestamp of every block of the chain the set reflects, by height (4 bytes a block, so
    /// 4 MB for a million blocks): enough to keep the median time past exact across disconnects.
    times: Vec<u32>,
    stats: UtxoStats,
}

/// The UTXO set of the active chain. See the module documentation for its concurrency model.
#[derive(Debug)]
pub struct UtxoSet {
    inner: RwLock<Inner>,
    /// The coin table on disk; `None` for a set in memory only.
    db: Option<CoinsDb>,
    /// Held by the one writer from staging to commit, so the state it staged against cannot change.
    writer: Mutex<()>,
    genesis_height: u32,
    /// Above the BIP34 block, coinbases carry their height, so no new transaction can repeat an
    /// unspent txid: SV Node then skips BIP30's lookups (when the BIP34 block is on the chain;
    /// here the checkpoints pin it), and staging skips their disk reads (the check against coins
    /// already cached stays).
    bip34_height: u32,
    hasher: SaltedOutPointHasher,
}

/// A block whose changes are collected but not yet written. Holds the writer lock; dropping it
/// without [`StagedBlock::commit`] discards the block.
pub struct StagedBlock<'a> {
    set: &'a UtxoSet,
    _writer: MutexGuard<'a, ()>,
    /// Final value of every outpoint the block touches: `None` = removed.
    overlay: CoinMap<Option<Coin>>,
    undo: BlockUndo,
    new_tip: (u32, BlockHash, u32),
}

impl StagedBlock<'_> {
    /// The coins the block spends, in block order.
    pub fn undo(&self) -> &BlockUndo {
        &self.undo
    }

    /// Writes the block's changes under one short write lock and returns its undo data.
    pub fn commit(self) -> BlockUndo {
        self.set.write_overlay(self.overlay, self.new_tip, false);
        self.undo
    }
}

/// Reads through an overlay of pending changes to the locked cache, into which every coin the
/// change touches was loaded first.
fn lookup<'o>(base: &'o CoinsCache, overlay: &'o CoinMap<Option<Coin>>, op: &OutPoint) -> Option<&'o Coin> {
    match overlay.get(op) {
        Some(pending) => pending.as_ref(),
        None => base.get(op).and_then(|e| e.coin.as_ref()),
    }
}

/// Reads `outpoints` from disk, spread over the available cores when there are many.
fn read_parallel(db: &CoinsDb, outpoints: &[OutPoint]) -> Result<Vec<Option<Coin>>, StoreError> {
    in_parallel(outpoints, |chunk| db.coins(chunk))
}

/// `read` over chunks of `items` on every core (one chunk per core), results in order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    read: impl Fn(&[T]) -> Result<Vec<R>, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len() / PARALLEL_MIN_READS);
    if threads <= 1 {
        return read(items);
    }
    let per_thread = items.len().div_ceil(threads);
    let read = &read;
    std::thread::scope(|s| {
        let workers: Vec<_> = items.chunks(per_thread).map(|chunk| s.spawn(move || read(chunk))).collect();
        let mut out = Vec::with_capacity(items.len());
        for w in workers {
            out.extend(w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
        }
        Ok(out)
    })
}

impl UtxoSet {
    /// An empty set at the genesis block: its coinbase is unspendable and never added (as in SV Node).
    pub fn new(params: &ChainParams) -> UtxoSet {
        let hasher = SaltedOutPointHasher::random();
        let stats = UtxoStats { height: 0, best_block: params.genesis_hash(), txouts: 0, total_amount: 0, bogosize: 0 };
        let inner = Inner {
            cache: CoinsCache::new(hasher, usize::MAX),
            median_time_past: i64::from(params.genesis_time),
            times: vec![params.genesis_time],
            stats,
        };
        UtxoSet {
            inner: RwLock::new(inner),
            db: None,
            writer: Mutex::new(()),
            genesis_height: params.activations.genesis,
            bip34_height: params.activations.bip34,
            hasher,
        }
    }

    // A panic while holding a lock cannot leave `Inner` half-written: commits only insert and
    // remove after all checks, so a poisoned lock still guards consistent data.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> UtxoStats {
        self.read().stats
    }

    /// Number of unspent coins (on disk and in the cache).
    pub fn len(&self) -> usize {
        usize::try_from(self.read().stats.txouts).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every coin (read from disk too), for tests: it holds the whole set in memory.
    pub fn snapshot(&self) -> HashMap<OutPoint, Coin> {
        let _writer = self.lock_writer();
        let inner = self.read();
        let mut all = HashMap::new();
        if let Some(db) = &self.db {
            db.for_each(|op, coin| drop(all.insert(op, coin))).expect("the coins on disk are readable in tests");
        }
        for (op, entry) in inner.cache.dirty_entries() {
            match entry {
                Some(coin) => all.insert(*op, coin.clone()),
                None => all.remove(op),
            };
        }
        all.extend(inner.cache.coins().map(|(op, c)| (*op, c.clone())));
        all
    }

    /// Memory the cache holds and its bound, in bytes.
    pub fn cache_usage(&self) -> (usize, usize) {
        let inner = self.read();
        (inner.cache.usage(), inner.cache.limit())
    }

    /// Entries in the cache (spent ones waiting for a flush included) and how many of them a flush
    /// would write.
    pub fn cache_entries(&self) -> (usize, usize) {
        let inner = self.read();
        (inner.cache.entries(), inner.cache.dirty_len())
    }

    /// What the whole set would take in the cache, in bytes (compare with `cache_usage`).
    pub fn whole_set_bytes(&self) -> u64 {
        let s = self.read().stats;
        CoinsCache::bytes_for(s.txouts, s.bogosize.saturating_sub(s.txouts * BOGO_BYTES_PER_COIN))
    }

    /// Whether the cache is over its bound and should be flushed.
    pub fn needs_flush(&self) -> bool {
        let inner = self.read();
        inner.cache.usage() > inner.cache.limit()
    }

    /// Loads into the cache every coin among `outpoints` that only the disk holds (one parallel
    /// read), while the cache has room: a validation batch calls it before its scripts run, so
    /// each input is read from disk once, and the block that confirms them finds them cached.
    pub fn prefetch<'a>(&self, outpoints: impl IntoIterator<Item = &'a OutPoint>) {
        let Some(db) = &self.db else { return };
        let (missing, epoch) = {
            let inner = self.read();
            if inner.cache.complete || !inner.cache.has_room() {
                return;
            }
            let missing: Vec<OutPoint> =
                outpoints.into_iter().filter(|op| inner.cache.get(op).is_none()).copied().collect();
            (missing, inner.cache.epoch)
        };
        if missing.is_empty() {
            return;
        }
        match read_parallel(db, &missing) {
            Ok(coins) => self.cache_read(missing.into_iter().zip(coins), epoch),
            Err(e) => tracing::warn!(error = %e, "cannot read coins from the chain database"),
        }
    }

    /// Adds coins read from disk at `epoch` as clean entries, unless a flush came in between.
    fn cache_read(&self, read: impl IntoIterator<Item = (OutPoint, Option<Coin>)>, epoch: u64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.cache.epoch != epoch {
            return;
        }
        for (op, coin) in read {
            if let Some(coin) = coin {
                if !inner.cache.has_room() {
                    break;
                }
                inner.cache.insert_clean(op, coin);
            }
        }
    }

    /// Loads every coin at `outpoints` and every stored output of `txids` that the cache lacks, for
    /// a change made under the writer lock (no flush can run in between, so what was read stays
    /// true until the change is committed). Ignores the cache bound: the next flush restores it.
    fn load_for_change(&self, outpoints: Vec<OutPoint>, txids: &[TxId]) -> Result<(), ConnectError> {
        let Some(db) = &self.db else { return Ok(()) };
        let missing: Vec<OutPoint> = {
            let inner = self.read();
            if inner.cache.complete {
                return Ok(());
            }
            outpoints.into_iter().filter(|op| inner.cache.get(op).is_none()).collect()
        };
        let coins = read_parallel(db, &missing)?;
        let existing = if txids.is_empty() { Vec::new() } else { in_parallel(txids, |chunk| db.outputs_of(chunk))? };
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for (op, coin) in missing.into_iter().zip(coins).filter_map(|(op, c)| c.map(|c| (op, c))).chain(existing) {
            inner.cache.insert_clean(op, coin);
        }
        Ok(())
    }

    /// Writes every change since the last flush, with the tip and the statistics, in one durable
    /// transaction; then the cache keeps what fits. Returns the number of entries written. A set
    /// with no disk has nothing to flush.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let Some(db) = &self.db else { return Ok(0) };
        let _writer = self.lock_writer();
        let written = {
            // Readers go on while the disk is written: only the writer changes the cache's entries.
            let inner = self.read();
            db.write_flush(inner.cache.dirty_entries(), &inner.stats.best_block, &inner.stats)?;
            inner.cache.dirty_len()
        };
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.cache.flushed();
        Ok(written)
    }

    /// Counts the whole set on disk after a flush (`gettxoutsetinfo`): what the kept statistics
    /// must equal, plus the number of transactions, which only a scan can tell.
    pub fn count(&self) -> Result<super::coins_db::StoredCounts, StoreError> {
        let Some(db) = &self.db else {
            let inner = self.read();
            let txids: std::collections::HashSet<TxId> = inner.cache.coins().map(|(op, _)| op.txid).collect();
            let s = inner.stats;
            let transactions = txids.len() as u64;
            return Ok(super::coins_db::StoredCounts {
                txouts: s.txouts,
                total_amount: s.total_amount,
                bogosize: s.bogosize,
                transactions,
            });
        };
        self.flush()?;
        db.count()
    }

    /// Applies a block without consensus checks: spends its inputs and adds its outputs.
    pub fn apply_block(&self, block: &Block, height: u32) -> Result<BlockUndo, ConnectError> {
        Ok(self.stage_block(block, height, |_, _, _| Ok::<(), ConnectError>(()))?.commit())
    }

    /// Stages `block` at `height` on top of the set. `check` is called for every transaction in
    /// order with the coins its inputs spend (empty for a coinbase) and the times of the chain the
    /// block extends, before anything is written; its first error aborts staging.
    pub fn stage_block<E: From<ConnectError>>(
        &self,
        block: &Block,
        height: u32,
        mut check: impl FnMut(&Transaction, &[Coin], BlockTimes<'_>) -> Result<(), E>,
    ) -> Result<StagedBlock<'_>, E> {
        let writer = self.lock_writer();
        if self.db.is_some() {
            let inputs: Vec<OutPoint> =
                block.transactions.iter().skip(1).flat_map(|tx| tx.inputs.iter().map(|i| i.prev_out)).collect();
            let txids: Vec<TxId> = if height > self.bip34_height {
                Vec::new()
            } else {
                block.transactions.iter().map(|tx| tx.txid()).collect()
            };
            self.load_for_change(inputs, &txids)?;
        }
        let inner = self.read();
        let best = inner.stats;
        if height != best.height.wrapping_add(1) {
            return Err(ConnectError::WrongHeight { best: best.height, got: height }.into());
        }
        if block.header.prev_block != best.best_block {
            let (block, parent) = (block.hash(), block.header.prev_block);
            return Err(ConnectError::NotOnTip { best: best.best_block, block, parent }.into());
        }
        let genesis_enabled = height >= self.genesis_height;
        let may_overwrite = is_bip30_exception(height, &block.hash());
        let n_outputs: usize = block.transactions.iter().map(|tx| tx.outputs.len() + tx.inputs.len()).sum();
        let mut overlay = CoinMap::with_capacity_and_hasher(n_outputs, self.hasher);
        let mut undo = BlockUndo::default();
        let mut tx_coins = Vec::new();
        for tx in &block.transactions {
            let txid = tx.txid();
            tx_coins.clear();
            if !tx.is_coinbase() {
                for (input, txin) in tx.inputs.iter().enumerate() {
                    let outpoint = txin.prev_out;
                    let coin = lookup(&inner.cache, &overlay, &outpoint)
                        .cloned()
                        .ok_or(ConnectError::MissingOrSpent { txid, input, outpoint })?;
                    overlay.insert(outpoint, None);
                    tx_coins.push(coin);
                }
            }
            check(tx, &tx_coins, BlockTimes(&inner.times))?;
            undo.spent.append(&mut tx_coins);
            for (vout, out) in tx.outputs.iter().enumerate() {
                if is_unspendable(&out.script_pubkey, genesis_enabled) {
                    continue;
                }
                let outpoint = OutPoint { txid, vout: vout as u32 };
                if !may_overwrite && lookup(&inner.cache, &overlay, &outpoint).is_some() {
                    return Err(ConnectError::OutputExists { outpoint }.into());
                }
                let coin = Coin {
                    value: out.value,
                    script_pubkey: Bytes::copy_from_slice(&out.script_pubkey),
                    height,
                    is_coinbase: tx.is_coinbase(),
                };
                overlay.insert(outpoint, Some(coin));
            }
        }
        drop(inner);
        Ok(StagedBlock {
            set: self,
            _writer: writer,
            overlay,
            undo,
            new_tip: (height, block.hash(), block.header.time),
        })
    }

    /// Disconnects `block`, the set's best block, restoring the coins in `undo`.
    pub fn undo_block(&self, block: &Block, undo: &BlockUndo) -> Result<(), ConnectError> {
        let _writer = self.lock_writer();
        if self.db.is_some() {
            let outputs: Vec<OutPoint> = block
                .transactions
                .iter()
                .flat_map(|tx| {
                    let txid = tx.txid();
                    (0..tx.outputs.len() as u32).map(move |vout| OutPoint { txid, vout })
                })
                .collect();
            self.load_for_change(outputs, &[])?;
        }
        let inner = self.read();
        let (height, best) = (inner.stats.height, inner.stats.best_block);
        if height == 0 || block.hash() != best {
            return Err(ConnectError::NotOnTip { best, block: block.hash(), parent: block.header.prev_block });
        }
        let expected: usize = block.transactions.iter().filter(|tx| !tx.is_coinbase()).map(|tx| tx.inputs.len()).sum();
        if expected != undo.spent.len() {
            return Err(ConnectError::UndoMismatch { expected, got: undo.spent.len() });
        }
        let genesis_enabled = height >= self.genesis_height;
        let mut overlay = CoinMap::with_capacity_and_hasher(expected * 2, self.hasher);
        let mut restore = undo.spent.iter().rev();
        // In reverse, so a coin created and spent inside the block is restored before it is removed.
        for tx in block.transactions.iter().rev() {
            let txid = tx.txid();
            for (vout, out) in tx.outputs.iter().enumerate() {
                if is_unspendable(&out.script_pubkey, genesis_enabled) {
                    continue;
                }
                let outpoint = OutPoint { txid, vout: vout as u32 };
                if lookup(&inner.cache, &overlay, &outpoint).is_none() {
                    return Err(ConnectError::UndoMissingOutput { outpoint });
                }
                overlay.insert(outpoint, None);
            }
            if tx.is_coinbase() {
                continue;
            }
            for txin in tx.inputs.iter().rev() {
                let coin = restore.next().expect("undo length was checked against the block's inputs");
                overlay.insert(txin.prev_out, Some(coin.clone()));
            }
        }
        drop(inner);
        self.write_overlay(overlay, (height - 1, block.header.prev_block, block.header.time), true);
        Ok(())
    }

    /// A set restored from disk: `coins` as stored, `tip` its best block, `times` the timestamp of
    /// every block of the active chain by height (genesis first), for the median time past.
    pub fn restore(
        params: &ChainParams,
        coins: impl IntoIterator<Item = (OutPoint, Coin)>,
        tip: (u32, BlockHash),
        times: Vec<u32>,
    ) -> UtxoSet {
        let set = UtxoSet::new(params);
        {
            let mut inner = set.inner.write().unwrap_or_else(PoisonError::into_inner);
            let inner = &mut *inner;
            for (outpoint, coin) in coins {
                inner.stats.add(&coin);
                if let Some(old) = inner.cache.set(outpoint, Some(coin), false) {
                    inner.stats.remove(&old);
                }
            }
            inner.stats.height = tip.0;
            inner.stats.best_block = tip.1;
            inner.median_time_past = median_time_past(&times);
            inner.times = times;
        }
        set
    }

    /// The set stored in the chain database at `tip` (`times`: every active block's timestamp by
    /// height, genesis first), with a cache bounded to `cache_bytes`. A set that fits in part of
    /// the cache is loaded whole; a bigger one is read from disk as it is used.
    pub fn on_disk(
        params: &ChainParams,
        db: CoinsDb,
        cache_bytes: usize,
        tip: (u32, BlockHash),
        times: Vec<u32>,
    ) -> Result<UtxoSet, StoreError> {
        let mut set = UtxoSet::new(params);
        let (txouts, total_amount, bogosize) = match db.stored_stats()? {
            Some(stats) => stats,
            None => {
                // Written before the statistics were stored: count once; the next flush stores them.
                let c = db.count()?;
                (c.txouts, c.total_amount, c.bogosize)
            }
        };
        let script_bytes = bogosize.saturating_sub(txouts * BOGO_BYTES_PER_COIN);
        let whole = CoinsCache::bytes_for(txouts, script_bytes);
        {
            let inner = set.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
            inner.cache = CoinsCache::new(set.hasher, cache_bytes);
            if whole <= cache_bytes as u64 / 100 * LOAD_WHOLE_PERCENT {
                inner.cache.reserve(usize::try_from(txouts).unwrap_or(0));
                db.for_each(|op, coin| inner.cache.insert_clean(op, coin))?;
            } else {
                inner.cache.complete = false;
                // Room for readers to cache what they read before the first block grows the map.
                inner.cache.reserve(cache_bytes / 4 / CoinsCache::bytes_for(1, 25) as usize);
            }
            inner.stats = UtxoStats { height: tip.0, best_block: tip.1, txouts, total_amount, bogosize };
            inner.median_time_past = median_time_past(&times);
            inner.times = times;
        }
        set.db = Some(db);
        Ok(set)
    }

    /// Writes `overlay` and moves the tip to `height` / `best_block`; `time` is the timestamp of
    /// the block connected (pushed) or disconnected (popped). `restoring`: the overlay puts back
    /// coins from undo data (see [`CoinsCache::set`]).
    fn write_overlay(
        &self,
        overlay: CoinMap<Option<Coin>>,
        (height, best_block, time): (u32, BlockHash, u32),
        restoring: bool,
    ) {
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *guard;
        for (outpoint, value) in overlay {
            if let Some(coin) = &value {
                inner.stats.add(coin);
            }
            if let Some(old) = inner.cache.set(outpoint, value, restoring) {
                inner.stats.remove(&old);
            }
        }
        if height > inner.stats.height {
            inner.times.push(time);
        } else {
            inner.times.pop();
        }
        inner.median_time_past = median_time_past(&inner.times);
        inner.stats.height = height;
        inner.stats.best_block = best_block;
    }
}

impl CoinView for UtxoSet {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        let epoch = {
            let inner = self.read();
            if let Some(entry) = inner.cache.get(outpoint) {
                return entry.coin.clone();
            }
            if inner.cache.complete {
                return None;
            }
            inner.cache.epoch
        };
        let db = self.db.as_ref()?;
        match db.coins(std::slice::from_ref(outpoint)) {
            Ok(mut read) => {
                let coin = read.pop().flatten();
                if coin.is_some() && self.read().cache.has_room() {
                    self.cache_read([(*outpoint, coin.clone())], epoch);
                }
                coin
            }
            Err(e) => {
                // Validation sees a missing input (the transaction is refused, not accepted).
                tracing::warn!(error = %e, %outpoint.txid, "cannot read a coin from the chain database");
                None
            }
        }
    }

    fn best_height(&self) -> u32 {
        self.read().stats.height
    }

    fn median_time_past(&self) -> i64 {
        self.read().median_time_past
    }

    fn median_time_past_at(&self, height: u32) -> Option<i64> {
        crate::validation::ChainTimes::median_time_past_at(&BlockTimes(&self.read().times), height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::params::REGTEST;
    use crate::wire::{BlockHeader, Hash256, TxFields, TxIn, TxOut};

    fn coinbase(tag: u8, value: i64) -> Transaction {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint::NULL,
                script_sig: Bytes::from(vec![tag, tag]),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        })
    }

    fn spend(prev: OutPoint, outputs: &[(i64, &'static [u8])]) -> Transaction {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
            outputs: outputs.iter().map(|(v, s)| TxOut { value: *v, script_pubkey: Bytes::from_static(s) }).collect(),
            lock_time: 0,
        })
    }

    fn block(prev_block: BlockHash, txs: Vec<Transaction>) -> Block {
        let header = BlockHeader { version: 1, prev_block, merkle_root: Hash256::ZERO, time: 0, bits: 0, nonce: 0 };
        Block::new(header, txs)
    }

    fn counts(set: &UtxoSet) -> (u64, i64) {
        let stats = set.stats();
        (stats.txouts, stats.total_amount)
    }

    #[test]
    fn apply_spend_within_block_and_undo() {
        let set = UtxoSet::new(&REGTEST);
        assert_eq!(set.stats().best_block, REGTEST.genesis_hash());
        let cb1 = coinbase(1, 50);
        let b1 = block(REGTEST.genesis_hash(), vec![cb1.clone()]);
        let u1 = set.apply_block(&b1, 1).unwrap();
        assert!(u1.spent.is_empty());
        assert_eq!(counts(&set), (1, 50));
        let before = (set.snapshot(), set.stats());

        let t1 = spend(OutPoint { txid: cb1.txid(), vout: 0 }, &[(30, &[0x51]), (10, &[0x6a, 1])]);
        let t2 = spend(OutPoint { txid: t1.txid(), vout: 0 }, &[(25, &[0x52])]);
        let b2 = block(b1.hash(), vec![coinbase(2, 60), t1.clone(), t2.clone()]);
        let u2 = set.apply_block(&b2, 2).unwrap();
        assert_eq!(u2.spent.len(), 2);
        // OP_RETURN output skipped, t1:0 spent inside the block.
        let bogosize = 2 * (BOGO_BYTES_PER_COIN + 1);
        assert_eq!(set.stats(), UtxoStats { height: 2, best_block: b2.hash(), txouts: 2, total_amount: 85, bogosize });
        assert_eq!(set.best_height(), 2);

        assert!(matches!(set.undo_block(&b1, &u1), Err(ConnectError::NotOnTip { .. })));
        set.undo_block(&b2, &u2).unwrap();
        assert_eq!((set.snapshot(), set.stats()), before);
        assert_eq!(set.best_height(), 1);
    }

    /// A chain of `n` blocks, each with a 3-output coinbase and a transaction spending two coins of
    /// the block before (one from disk once the cache has been flushed), mirrored on a set in
    /// memory and one on disk with a cache of a few entries; then undone block by block.
    #[test]
    fn a_set_on_disk_with_a_tiny_cache_matches_one_in_memory_through_flushes_and_undo() {
        let store = crate::chain::store::BlockStore::in_memory();
        let tip = (0, REGTEST.genesis_hash());
        let disk = UtxoSet::on_disk(&REGTEST, store.coins_db(), 4096, tip, vec![REGTEST.genesis_time]).unwrap();
        let memory = UtxoSet::new(&REGTEST);
        let mut prev = REGTEST.genesis_hash();
        let mut last_cb: Option<Transaction> = None;
        let mut chain = Vec::new();
        for h in 1..=40u8 {
            let mut cb: TxFields = (*coinbase(h, 30)).clone();
            cb.outputs = vec![TxOut { value: 10, script_pubkey: Bytes::from(vec![h; 30]) }; 3];
            let cb = Transaction::from_fields(cb);
            let mut txs = vec![cb.clone()];
            if let Some(p) = &last_cb {
                let mut t: TxFields = (*spend(OutPoint { txid: p.txid(), vout: 0 }, &[(15, &[0x51])])).clone();
                t.inputs.push(TxIn { prev_out: OutPoint { txid: p.txid(), vout: 2 }, ..t.inputs[0].clone() });
                txs.push(Transaction::from_fields(t));
            }
            let b = block(prev, txs);
            let undo = disk.apply_block(&b, u32::from(h)).unwrap();
            assert_eq!(memory.apply_block(&b, u32::from(h)).unwrap(), undo);
            if disk.needs_flush() || h % 7 == 0 {
                disk.flush().unwrap();
            }
            assert_eq!(disk.stats(), memory.stats(), "height {h}");
            prev = b.hash();
            last_cb = Some(cb);
            chain.push((b, undo));
        }
        assert!(!disk.read().cache.complete, "the cache evicted coins");
        assert_eq!(disk.snapshot(), memory.snapshot());
        // Every coin reads back, from the cache or the disk.
        for (op, coin) in memory.snapshot() {
            assert_eq!(disk.coin(&op), Some(coin));
        }
        assert_eq!(disk.count().unwrap().txouts, memory.stats().txouts);
        for (i, (b, undo)) in chain.iter().enumerate().rev() {
            disk.undo_block(b, undo).unwrap();
            memory.undo_block(b, undo).unwrap();
            if i % 5 == 0 {
                disk.flush().unwrap();
            }
            assert_eq!(disk.stats(), memory.stats(), "undone to {i}");
        }
        assert_eq!(disk.snapshot(), memory.snapshot());
        disk.flush().unwrap();
        assert_eq!(disk.count().unwrap().txouts, 0);
    }

    #[test]
    fn failures_leave_the_set_unchanged() {
        let set = UtxoSet::new(&REGTEST);
        let cb1 = coinbase(1, 50);
        let b1 = block(REGTEST.genesis_hash(), vec![cb1.clone()]);
        set.apply_block(&b1, 1).unwrap();
        let before = (set.snapshot(), set.stats());
        let missing = OutPoint { txid: Hash256([7; 32]), vout: 0 };
        let good_spend = spend(OutPoint { txid: cb1.txid(), vout: 0 }, &[(1, &[1])]);
        let bad = block(b1.hash(), vec![coinbase(2, 1), good_spend, spend(missing, &[(1, &[1])])]);
        assert!(matches!(set.apply_block(&bad, 2), Err(ConnectError::MissingOrSpent { input: 0, .. })));
        assert_eq!((set.snapshot(), set.stats()), before);
        let dup = block(b1.hash(), vec![coinbase(1, 50)]);
        assert!(matches!(set.apply_block(&dup, 2), Err(ConnectError::OutputExists { .. })));
        assert!(matches!(set.apply_block(&dup, 5), Err(ConnectError::WrongHeight { best: 1, got: 5 })));
        let orphan = block(Hash256([1; 32]), vec![coinbase(3, 50)]);
        assert!(matches!(set.apply_block(&orphan, 2), Err(ConnectError::NotOnTip { .. })));
        assert_eq!((set.snapshot(), set.stats()), before);
    }

    #[test]
    fn median_time_past_follows_connects_and_disconnects() {
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[3, 1, 2]), 2);
        assert_eq!(median_time_past(&(0..20).collect::<Vec<_>>()), 14);
        let set = UtxoSet::new(&REGTEST);
        assert_eq!(set.median_time_past(), i64::from(REGTEST.genesis_time));
        let mut prev = REGTEST.genesis_hash();
        let mut chain = Vec::new();
        for h in 1..=15u8 {
            let mut b = block(prev, vec![coinbase(h, 1)]);
            b.header.time = REGTEST.genesis_time + 1000 * u32::from(h);
            let b = Block::new(b.header, b.transactions);
            chain.push((set.apply_block(&b, u32::from(h)).unwrap(), b.clone()));
            prev = b.hash();
        }
        // Times of heights 5..=15; the median is height 10's.
        assert_eq!(set.median_time_past(), i64::from(REGTEST.genesis_time + 10_000));
        for (undo, b) in chain.iter().rev().take(5) {
            set.undo_block(b, undo).unwrap();
        }
        assert_eq!(set.median_time_past(), i64::from(REGTEST.genesis_time + 5_000));
    }

    #[test]
    fn only_the_two_mainnet_blocks_may_break_bip30() {
        let hash = |s: &str| s.parse::<BlockHash>().unwrap();
        assert!(is_bip30_exception(91_842, &hash(BIP30_EXCEPTIONS[0].1)));
        assert!(is_bip30_exception(91_880, &hash(BIP30_EXCEPTIONS[1].1)));
        assert!(!is_bip30_exception(91_843, &hash(BIP30_EXCEPTIONS[0].1)));
        assert!(!is_bip30_exception(91_842, &REGTEST.genesis_hash()));
    }

    #[test]
    fn unspendable_rule_depends_on_genesis() {
        assert!(is_unspendable(&[0x6a], false));
        assert!(!is_unspendable(&[0x6a], true));
        assert!(is_unspendable(&[0x00, 0x6a], true));
        assert!(!is_unspendable(&[0x00, 0x6a], false));
        assert!(!is_unspendable(&[], true));
    }
}
