//! The chain state: the header tree, the active chain of fully validated blocks, the UTXO set at its
//! tip, and the on-disk [`BlockStore`] that survives restarts.
//!
//! Shared as `Arc<ChainState>`: the relay and RPC read it while one block at a time is connected.
//! Changes are serialised by `writer`; readers use short read locks on the parts they need
//! (`active`, `have_data`, the header tree, the UTXO set) and never wait for a block's scripts.
//! Lock order, to rule out deadlocks: `writer` → header tree → `active` → `have_data` →
//! `validated`; readers never take `writer`.
//!
//! Choosing the active chain: the best *valid* header (most work) is the target. From the point
//! where its chain leaves the active one, as many blocks as we hold data for are connected, after
//! disconnecting the active blocks above that fork — but only when that reaches more work than the
//! active tip. A block that fails is marked invalid with its descendants (in the tree and on disk),
//! the header tree picks the next best header, and the loop tries again, so a failed reorganisation
//! returns to the chain it left.
//!
//! The UTXO set keeps its coins on disk behind a cache bounded by `-dbcache`
//! ([`ChainOptions::coins_cache_bytes`]). Connecting a block writes only its undo data; the cache
//! is flushed (every changed coin with the tip, one transaction) when it is over its bound, every
//! [`FLUSH_INTERVAL`], and at shutdown. After a crash the stored coins are those of the last
//! flush, and loading connects the stored blocks above that tip again (the startup replay).
//!
//! Invariants:
//! - `utxo` always reflects exactly the blocks in `active`; the stored coins and tip agree with
//!   each other after every flush, and the active chain at start is that tip;
//! - a block with a merkle-root or CVE-2012-2459 failure is neither stored nor marked invalid (the
//!   genuine block with that hash may still come);
//! - once a store write fails the state refuses further changes (`Poisoned`), so the disk never
//!   gets changes on top of a state it did not record.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tracing::{info, warn};

use super::block_check::{check_block, connect_block, BlockError};
use super::headers::{HeaderError, HeaderIndex, HeaderStatus, HeaderTree};
use super::params::ChainParams;
use super::store::{BlockStore, StoreError, STATUS_HAVE_DATA, STATUS_INVALID};
use super::uint256::U256;
use super::utxo::UtxoSet;
use crate::validation::InputVerifier;
use crate::wire::{Block, BlockHash, BlockHeader, Decodable, Encodable, Reader};

/// The header tree, written by the relay (headers-first sync) and read by RPC.
pub type SharedHeaders = Arc<RwLock<HeaderTree>>;

/// Name of the database file in the network data folder.
pub const CHAINSTATE_FILE: &str = "chainstate.redb";

/// SV Node's `DEFAULT_MAX_TIP_AGE`: a tip older than this means we are still catching up.
pub const MAX_TIP_AGE_SECS: u64 = 24 * 60 * 60;

/// While connecting old blocks, make every this many commits durable (an fsync each); in between,
/// commits are consistent but may be lost in a crash, costing a re-download of at most this many.
const DURABLE_EVERY: u32 = 100;

/// A block this recent is committed durably at once: near the tip every block counts.
const RECENT_BLOCK_SECS: u64 = 6 * 60 * 60;

/// The coins cache is flushed at least this often while blocks are connected, so a crash costs at
/// most this much replay of stored blocks at the next start (Core and SV Node write their
/// block index hourly and flush when the cache is full; a relay follows the tip, where a
/// shorter replay matters more than the write it saves).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// SV Node's `nDefaultDbCache`: 450 MB for the coins cache and the database's own caches.
pub const DEFAULT_DBCACHE_MB: u64 = 450;
/// SV Node's `nMinDbCache`: below 4 MB the cache would flush every block.
pub const MIN_DBCACHE_MB: u64 = 4;
/// One eighth of `-dbcache` goes to redb's page cache (the coin table's B-tree pages, so a cold
/// coin read costs one disk read, not one per tree level); the rest holds coins.
const DB_PAGE_CACHE_DIVISOR: usize = 8;

#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// `-excessiveblocksize`.
    pub max_block_size: u64,
    /// `-minimumchainwork`; `None` keeps the network's default.
    pub minimum_chain_work: Option<U256>,
    /// `-dbcache` in bytes: the coins cache plus the database's page cache.
    pub coins_cache_bytes: usize,
    /// `-reindex-chainstate`: forget the stored coins and connect the stored blocks again.
    pub reindex_chainstate: bool,
    /// The coins cache is flushed when a block is connected this long after the last flush
    /// ([`FLUSH_INTERVAL`]; tests shorten it).
    pub flush_interval: Duration,
}

impl ChainOptions {
    /// Unlimited block size, the network's minimum chain work, SV Node's default `-dbcache`.
    pub fn new() -> ChainOptions {
        ChainOptions {
            max_block_size: u64::MAX,
            minimum_chain_work: None,
            coins_cache_bytes: (DEFAULT_DBCACHE_MB << 20) as usize,
            reindex_chainstate: false,
            flush_interval: FLUSH_INTERVAL,
        }
    }

    fn page_cache_bytes(&self) -> usize {
        self.coins_cache_bytes / DB_PAGE_CACHE_DIVISOR
    }

    fn coins_bytes(&self) -> usize {
        self.coins_cache_bytes - self.page_cache_bytes()
    }
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions::new()
    }
}

#[derive(Debug, Error)]
pub enum ChainError {
    #[error("block header refused: {0}")]
    Header(#[from] HeaderError),
    #[error("block invalid: {0}")]
    Block(#[from] BlockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("block {0} is not known")]
    UnknownBlock(BlockHash),
    #[error("the genesis block cannot be invalidated")]
    Genesis,
    #[error("block {0} is already known to be invalid")]
    KnownInvalid(BlockHash),
    #[error("the chain database could not be written earlier ({0}); restart the node")]
    Poisoned(String),
    #[error("stored block {hash} cannot be decoded: {detail}")]
    CorruptBlock { hash: BlockHash, detail: String },
}

impl ChainError {
    /// The misbehaviour score the peer that sent the block earns, if any.
    pub fn misbehavior(&self) -> Option<u32> {
        match self {
            ChainError::Header(e) => e.misbehavior(),
            ChainError::Block(e) => e.misbehavior(),
            _ => None,
        }
    }

    /// SV Node's reject reason, when the block itself is at fault.
    pub fn reject_reason(&self) -> Option<&'static str> {
        match self {
            ChainError::Header(e) => Some(e.reject_reason()),
            ChainError::Block(e) => Some(e.reject_reason()),
            ChainError::KnownInvalid(_) => Some("duplicate-invalid"),
            _ => None,
        }
    }
}

/// What one call changed on the active chain.
#[derive(Debug, Default, Clone)]
pub struct ChainUpdate {
    /// Blocks connected, in order.
    pub connected: Vec<(Arc<Block>, u32)>,
    /// Blocks disconnected, tip first.
    pub disconnected: Vec<(Arc<Block>, u32)>,
    /// Blocks found invalid while connecting.
    pub invalid: Vec<(BlockHash, BlockError)>,
    /// The new active tip, if it moved.
    pub new_tip: Option<(u32, BlockHash)>,
    /// The block was already stored (a duplicate).
    pub duplicate: bool,
}

/// `getchaintips` status of a branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipStatus {
    Active,
    ValidFork,
    ValidHeaders,
    HeadersOnly,
    Invalid,
}

impl TipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TipStatus::Active => "active",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::ValidHeaders => "valid-headers",
            TipStatus::HeadersOnly => "headers-only",
            TipStatus::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    pub height: u32,
    pub hash: BlockHash,
    /// Blocks between the tip and the active chain.
    pub branch_len: u32,
    pub status: TipStatus,
}

/// The active chain by height, with its tip header.
#[derive(Debug, Clone)]
struct Active {
    hashes: Vec<BlockHash>,
    tip_header: BlockHeader,
}

/// State only the writer touches.
#[derive(Debug)]
struct Writer {
    poisoned: Option<String>,
    since_durable: u32,
    last_flush: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ChainState {
    params: &'static ChainParams,
    opts: ChainOptions,
    store: BlockStore,
    headers: SharedHeaders,
    utxo: UtxoSet,
    active: RwLock<Active>,
    have_data: RwLock<HashSet<BlockHash>>,
    /// Blocks connected at some point (for `getchaintips`' valid-fork).
    validated: RwLock<HashSet<BlockHash>>,
    writer: Mutex<Writer>,
    /// Latched once the tip is recent: SV Node never returns to initial block download.
    synced: AtomicBool,
    /// Flushes of the coins cache since start, and the entries they wrote.
    flushes: AtomicU64,
    flushed_entries: AtomicU64,
}

/// What the coins cache holds and has written, for metrics ([`ChainState::coins_cache_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoinsCacheStats {
    /// Bytes the cache holds, and its bound (`-dbcache`'s share for coins).
    pub bytes: usize,
    pub limit: usize,
    /// Entries held, and those a flush would write.
    pub entries: usize,
    pub dirty: usize,
    /// Flushes since start, and the entries (changed and spent coins) they wrote.
    pub flushes: u64,
    pub flushed_entries: u64,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Where a branch leaves the active chain (its height) and the branch's blocks above it, ascending.
type ForkPath = (u32, Vec<(BlockHash, u32)>);

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The raw bytes of a decoded block.
pub fn block_bytes(block: &Block) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.size());
    block.consensus_encode(&mut out);
    out
}

impl ChainState {
    /// Opens the chain in `<netdir>/chainstate.redb`, creating it for a new node, and connects any
    /// stored blocks beyond the stored tip.
    pub fn open(netdir: &Path, params: &'static ChainParams, opts: ChainOptions) -> Result<ChainState, ChainError> {
        let store = BlockStore::open(&netdir.join(CHAINSTATE_FILE), opts.page_cache_bytes())?;
        if opts.reindex_chainstate {
            info!("-reindex-chainstate: forgetting the stored coins; stored blocks are connected again");
            store.coins_db().clear()?;
        }
        Self::load(store, params, opts)
    }

    /// A chain state kept in memory only, for tests and benchmarks.
    pub fn in_memory(params: &'static ChainParams, opts: ChainOptions) -> ChainState {
        Self::load(BlockStore::in_memory(), params, opts).expect("an empty in-memory store loads")
    }

    fn load(store: BlockStore, params: &'static ChainParams, opts: ChainOptions) -> Result<ChainState, ChainError> {
        let mut tree = HeaderTree::new(params.clone());
        if let Some(work) = opts.minimum_chain_work {
            tree = tree.with_minimum_chain_work(work);
        }
        let mut index = store.index()?;
        index.sort_by_key(|(_, e)| e.height);
        let mut have_data = HashSet::new();
        let mut invalid = Vec::new();
        for (hash, entry) in &index {
            if *hash != params.genesis_hash() {
                if let Err(e) = tree.accept_stored_header(&entry.header, *hash) {
                    warn!(%hash, error = %e, "stored block header no longer accepted; ignoring it");
                    continue;
                }
            }
            if entry.status & STATUS_HAVE_DATA != 0 {
                have_data.insert(*hash);
            }
            if entry.status & STATUS_INVALID != 0 {
                invalid.push(*hash);
            }
        }
        for hash in &invalid {
            tree.mark_invalid(hash);
        }
        let tip = store.tip()?.unwrap_or_else(|| params.genesis_hash());
        let mut tip_index = tree
            .index_of(&tip)
            .ok_or_else(|| StoreError::Corrupt(format!("the stored tip {tip} is not in the stored block index")))?;
        let mut hashes = vec![tree.entry(tip_index).hash; tree.entry(tip_index).height as usize + 1];
        let mut times = vec![0u32; hashes.len()];
        loop {
            let e = tree.entry(tip_index);
            hashes[e.height as usize] = e.hash;
            times[e.height as usize] = e.header.time;
            match e.parent() {
                Some(p) => tip_index = p,
                None => break,
            }
        }
        let tip_entry = tree.get(&tip).expect("the tip was found above");
        let (tip_height, tip_header) = (tip_entry.height, tip_entry.header);
        let utxo = UtxoSet::on_disk(params, store.coins_db(), opts.coins_bytes(), (tip_height, tip), times)?;
        let (cached, limit) = utxo.cache_usage();
        info!(height = tip_height, %tip, coins = utxo.len(), cached, limit, blocks = have_data.len(), "chain state loaded");
        let state = ChainState {
            params,
            opts,
            store,
            headers: Arc::new(RwLock::new(tree)),
            utxo,
            active: RwLock::new(Active { hashes, tip_header }),
            have_data: RwLock::new(have_data),
            validated: RwLock::new(HashSet::new()),
            writer: Mutex::new(Writer { poisoned: None, since_durable: 0, last_flush: Instant::now() }),
            flushes: AtomicU64::new(0),
            flushed_entries: AtomicU64::new(0),
            synced: AtomicBool::new(false),
        };
        // Blocks stored but not connected before a restart are connected by `activate`, which the
        // node calls with its script verifier before it starts syncing: no download needed.
        Ok(state)
    }

    pub fn params(&self) -> &'static ChainParams {
        self.params
    }

    pub fn headers(&self) -> &SharedHeaders {
        &self.headers
    }

    pub fn utxo(&self) -> &UtxoSet {
        &self.utxo
    }

    /// The active (fully connected) tip.
    pub fn tip(&self) -> (u32, BlockHash) {
        let a = read(&self.active);
        ((a.hashes.len() - 1) as u32, *a.hashes.last().expect("the active chain holds genesis"))
    }

    pub fn tip_header(&self) -> BlockHeader {
        read(&self.active).tip_header
    }

    pub fn tip_median_time_past(&self) -> i64 {
        crate::validation::CoinView::median_time_past(&self.utxo)
    }

    pub fn has_block(&self, hash: &BlockHash) -> bool {
        read(&self.have_data).contains(hash)
    }

    /// The block's bytes as stored.
    pub fn block_bytes(&self, hash: &BlockHash) -> Option<Bytes> {
        if *hash == self.params.genesis_hash() {
            return Some(Bytes::from(block_bytes(&self.params.genesis_block())));
        }
        if !self.has_block(hash) {
            return None;
        }
        match self.store.block(hash) {
            Ok(b) => b,
            Err(e) => {
                warn!(%hash, error = %e, "cannot read a stored block");
                None
            }
        }
    }

    /// The stored block, decoded.
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        let bytes = self.block_bytes(hash)?;
        Block::consensus_decode(&mut Reader::new(&bytes)).ok()
    }

    /// `-excessiveblocksize`: the largest block accepted.
    pub fn max_block_size(&self) -> u64 {
        self.opts.max_block_size
    }

    pub fn active_hash_at(&self, height: u32) -> Option<BlockHash> {
        read(&self.active).hashes.get(height as usize).copied()
    }

    /// The height of `hash` if it is on the active chain.
    pub fn active_height_of(&self, hash: &BlockHash) -> Option<u32> {
        let height = self.headers.read().unwrap_or_else(PoisonError::into_inner).get(hash)?.height;
        (self.active_hash_at(height) == Some(*hash)).then_some(height)
    }

    /// The blocks of the best valid header chain we lack, ascending, from where it leaves the
    /// active chain, at most `max` and at most `window` above the active tip.
    pub fn blocks_to_download(&self, max: usize, window: u32) -> Vec<(BlockHash, u32)> {
        let tree = self.headers.read().unwrap_or_else(PoisonError::into_inner);
        let active = read(&self.active);
        let have = read(&self.have_data);
        let limit = active.hashes.len() as u32 - 1 + window;
        let mut path = Vec::new();
        let mut i = tree.best_index();
        loop {
            let e = tree.entry(i);
            if active.hashes.get(e.height as usize) == Some(&e.hash) {
                break;
            }
            if e.height <= limit && !have.contains(&e.hash) {
                path.push((e.hash, e.height));
            }
            i = e.parent().expect("genesis is on the active chain");
        }
        path.reverse();
        path.truncate(max);
        path
    }

    /// SV Node's `IsInitialBlockDownload`: the tip is older than 24 hours or below the minimum chain
    /// work. Once false it stays false.
    pub fn is_initial_block_download(&self, now: u64) -> bool {
        if self.synced.load(Ordering::Relaxed) {
            return false;
        }
        let tip = self.tip_header();
        let tree = self.headers.read().unwrap_or_else(PoisonError::into_inner);
        let work = tree.get(&self.tip().1).map(|e| e.chain_work).unwrap_or_default();
        if work < tree.minimum_chain_work() || u64::from(tip.time) + MAX_TIP_AGE_SECS < now {
            return true;
        }
        self.synced.store(true, Ordering::Relaxed);
        false
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts a block from a peer, RPC or our miner: header, context-free checks, storage, then
    /// the active chain moves to the most work we can reach.
    pub fn accept_block(&self, block: Arc<Block>, verifier: &dyn InputVerifier) -> Result<ChainUpdate, ChainError> {
        let mut w = self.lock_writer();
        if let Some(p) = &w.poisoned {
            return Err(ChainError::Poisoned(p.clone()));
        }
        let hash = block.hash();
        let height = {
            let mut tree = self.headers.write().unwrap_or_else(PoisonError::into_inner);
            match tree.get(&hash) {
                Some(e) if !e.status.is_valid() => return Err(ChainError::KnownInvalid(hash)),
                Some(e) => e.height,
                None => {
                    let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
                    tree.accept_header_with_hash(&block.header, hash, now)?.height
                }
            }
        };
        if self.has_block(&hash) {
            return Ok(ChainUpdate { duplicate: true, ..ChainUpdate::default() });
        }
        if let Err(e) = check_block(&block, height, self.params, self.opts.max_block_size) {
            if !e.may_be_corrupted() {
                self.mark_invalid(&mut w, &hash)?;
            }
            return Err(e.into());
        }
        self.store.put_block(&hash, height, &block)?;
        write(&self.have_data).insert(hash);
        self.activate_locked(&mut w, Some(block), verifier)
    }

    /// Connects whatever stored blocks lead to more work (after a restart, or a `reconsiderblock`).
    pub fn activate(&self, verifier: &dyn InputVerifier) -> Result<ChainUpdate, ChainError> {
        let mut w = self.lock_writer();
        self.activate_locked(&mut w, None, verifier)
    }

    fn mark_invalid(&self, w: &mut Writer, hash: &BlockHash) -> Result<(), ChainError> {
        let mut tree = self.headers.write().unwrap_or_else(PoisonError::into_inner);
        tree.mark_invalid(hash);
        // Descendants we hold are marked on disk too, so a restart does not reconnect them.
        let have = read(&self.have_data);
        let invalid: Vec<BlockHash> =
            have.iter().filter(|h| tree.get(h).is_some_and(|e| !e.status.is_valid())).copied().collect();
        drop(have);
        drop(tree);
        self.store_write(w, |s| s.set_invalid(&invalid, true))
    }

    fn store_write(
        &self,
        w: &mut Writer,
        f: impl FnOnce(&BlockStore) -> Result<(), StoreError>,
    ) -> Result<(), ChainError> {
        f(&self.store).map_err(|e| {
            w.poisoned = Some(e.to_string());
            ChainError::Store(e)
        })
    }

    /// The path of the best valid header from where it leaves the active chain, cut where block
    /// data is missing; empty if that does not lead to more work than the active tip.
    fn next_path(&self) -> ForkPath {
        let tree = self.headers.read().unwrap_or_else(PoisonError::into_inner);
        let active = read(&self.active);
        let have = read(&self.have_data);
        let mut path: Vec<HeaderIndex> = Vec::new();
        let mut i = tree.best_index();
        let fork_height = loop {
            let e = tree.entry(i);
            if active.hashes.get(e.height as usize) == Some(&e.hash) {
                break e.height;
            }
            path.push(i);
            i = e.parent().expect("genesis is on the active chain");
        };
        path.reverse();
        let reachable = path.iter().take_while(|i| have.contains(&tree.entry(**i).hash)).count();
        path.truncate(reachable);
        let tip_work = tree.get(active.hashes.last().expect("genesis")).map(|e| e.chain_work).unwrap_or_default();
        match path.last() {
            Some(last) if tree.entry(*last).chain_work > tip_work => {
                (fork_height, path.iter().map(|i| (tree.entry(*i).hash, tree.entry(*i).height)).collect())
            }
            _ => Self::best_side_path(&tree, &active.hashes, &have, tip_work).unwrap_or((fork_height, Vec::new())),
        }
    }

    /// When the best header's chain lacks block data, the best valid block off that chain whose
    /// whole branch we hold and that has more work than the tip: a header seen first at equal
    /// work (or one whose block never comes) must not keep a block we have out of the active
    /// chain (Core's candidates hold only blocks with data). Only side branches are walked, so a
    /// download running ahead on the best chain costs one pass over the headers.
    fn best_side_path(
        tree: &HeaderTree,
        active: &[BlockHash],
        have: &HashSet<BlockHash>,
        tip_work: U256,
    ) -> Option<ForkPath> {
        let on_active = |e: &super::headers::HeaderEntry| active.get(e.height as usize) == Some(&e.hash);
        let mut best: Option<(U256, ForkPath)> = None;
        for (i, e) in tree.entries().iter().enumerate() {
            if e.chain_work <= tip_work
                || !e.status.is_valid()
                || tree.is_on_best_chain(i)
                || best.as_ref().is_some_and(|(w, _)| e.chain_work <= *w)
                || !have.contains(&e.hash)
            {
                continue;
            }
            let mut path = Vec::new();
            let mut j = i;
            let fork = loop {
                let b = tree.entry(j);
                if on_active(b) {
                    break Some(b.height);
                }
                if !have.contains(&b.hash) {
                    break None;
                }
                path.push((b.hash, b.height));
                j = b.parent()?;
            };
            if let Some(fork) = fork {
                path.reverse();
                best = Some((e.chain_work, (fork, path)));
            }
        }
        best.map(|(_, path)| path)
    }

    fn load_block(&self, hash: &BlockHash, have: &Option<Arc<Block>>) -> Result<Arc<Block>, ChainError> {
        if let Some(b) = have.as_ref().filter(|b| b.hash() == *hash) {
            return Ok(b.clone());
        }
        let bytes = self.store.block(hash)?.ok_or(ChainError::UnknownBlock(*hash))?;
        Block::consensus_decode(&mut Reader::new(&bytes))
            .map(Arc::new)
            .map_err(|e| ChainError::CorruptBlock { hash: *hash, detail: e.to_string() })
    }

    fn durable(&self, w: &mut Writer, header: &BlockHeader) -> bool {
        w.since_durable += 1;
        let recent = u64::from(header.time) + RECENT_BLOCK_SECS > unix_now();
        if recent || w.since_durable >= DURABLE_EVERY {
            w.since_durable = 0;
            true
        } else {
            false
        }
    }

    fn activate_locked(
        &self,
        w: &mut Writer,
        arrived: Option<Arc<Block>>,
        verifier: &dyn InputVerifier,
    ) -> Result<ChainUpdate, ChainError> {
        let mut update = ChainUpdate::default();
        loop {
            let (fork_height, path) = self.next_path();
            if path.is_empty() {
                break;
            }
            while self.tip().0 > fork_height {
                let (height, hash) = self.tip();
                let block = self.load_block(&hash, &arrived)?;
                self.disconnect_tip(w, &block, height)?;
                update.disconnected.push((block, height));
            }
            for (hash, height) in path {
                let block = self.load_block(&hash, &arrived)?;
                match connect_block(&self.utxo, &block, height, self.params, self.opts.max_block_size, verifier) {
                    Ok(undo) => {
                        let durable = self.durable(w, &block.header);
                        self.store_write(w, |s| s.put_undo(&hash, &undo, durable))?;
                        self.maybe_flush(w)?;
                        {
                            let mut a = write(&self.active);
                            a.hashes.push(hash);
                            a.tip_header = block.header;
                        }
                        write(&self.validated).insert(hash);
                        update.connected.push((block, height));
                    }
                    Err(e) if e.misbehavior().is_none() => {
                        // Our own state disagrees with the block (undo data, tip): not the block's fault.
                        warn!(%hash, height, error = %e, "cannot connect block");
                        return Err(e.into());
                    }
                    Err(e) => {
                        warn!(%hash, height, reason = e.reject_reason(), error = %e, "invalid block");
                        self.mark_invalid(w, &hash)?;
                        update.invalid.push((hash, e));
                        break;
                    }
                }
            }
        }
        if !update.connected.is_empty() || !update.disconnected.is_empty() {
            update.new_tip = Some(self.tip());
        }
        Ok(update)
    }

    fn disconnect_tip(&self, w: &mut Writer, block: &Block, height: u32) -> Result<(), ChainError> {
        let hash = block.hash();
        let undo = self.store.undo(&hash)?.ok_or_else(|| StoreError::Corrupt(format!("no undo data for {hash}")))?;
        self.utxo.undo_block(block, &undo).map_err(BlockError::from)?;
        let parent = block.header.prev_block;
        self.maybe_flush(w)?;
        let parent_header = self
            .headers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&parent)
            .map(|e| e.header)
            .expect("the parent of an active block is in the tree");
        let mut a = write(&self.active);
        a.hashes.truncate(height as usize);
        a.tip_header = parent_header;
        Ok(())
    }

    /// `invalidateblock`: marks the block and its descendants invalid and moves the active chain to
    /// the best remaining chain.
    pub fn invalidate_block(&self, hash: &BlockHash, verifier: &dyn InputVerifier) -> Result<ChainUpdate, ChainError> {
        let mut w = self.lock_writer();
        if let Some(p) = &w.poisoned {
            return Err(ChainError::Poisoned(p.clone()));
        }
        if *hash == self.params.genesis_hash() {
            return Err(ChainError::Genesis);
        }
        let height = self
            .headers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .map(|e| e.height)
            .ok_or(ChainError::UnknownBlock(*hash))?;
        let mut update = ChainUpdate::default();
        if self.active_hash_at(height) == Some(*hash) {
            while self.tip().0 >= height {
                let (h, tip) = self.tip();
                let block = self.load_block(&tip, &None)?;
                self.disconnect_tip(&mut w, &block, h)?;
                update.disconnected.push((block, h));
            }
        }
        self.mark_invalid(&mut w, hash)?;
        let more = self.activate_locked(&mut w, None, verifier)?;
        update.connected = more.connected;
        update.invalid = more.invalid;
        update.disconnected.extend(more.disconnected);
        update.new_tip = Some(self.tip());
        Ok(update)
    }

    /// `reconsiderblock`: clears the invalid marks of the block, its ancestors and descendants, and
    /// activates the best chain again.
    pub fn reconsider_block(&self, hash: &BlockHash, verifier: &dyn InputVerifier) -> Result<ChainUpdate, ChainError> {
        let mut w = self.lock_writer();
        if let Some(p) = &w.poisoned {
            return Err(ChainError::Poisoned(p.clone()));
        }
        let cleared: Vec<BlockHash> = {
            let mut tree = self.headers.write().unwrap_or_else(PoisonError::into_inner);
            let before: HashSet<BlockHash> =
                tree.entries().iter().filter(|e| !e.status.is_valid()).map(|e| e.hash).collect();
            tree.reconsider(hash).ok_or(ChainError::UnknownBlock(*hash))?;
            before.into_iter().filter(|h| tree.get(h).is_some_and(|e| e.status.is_valid())).collect()
        };
        self.store_write(&mut w, |s| s.set_invalid(&cleared, false))?;
        self.activate_locked(&mut w, None, verifier)
    }

    /// `getchaintips`: every leaf of the header tree, and the active tip.
    pub fn chain_tips(&self) -> Vec<ChainTip> {
        let tree = self.headers.read().unwrap_or_else(PoisonError::into_inner);
        let active = read(&self.active);
        let have = read(&self.have_data);
        let validated = read(&self.validated);
        let entries = tree.entries();
        let mut has_child = vec![false; entries.len()];
        for e in entries {
            if let Some(p) = e.parent() {
                has_child[p] = true;
            }
        }
        let is_active = |e: &super::headers::HeaderEntry| active.hashes.get(e.height as usize) == Some(&e.hash);
        let mut tips = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let active_tip = is_active(e) && e.height as usize == active.hashes.len() - 1;
            if has_child[i] && !active_tip {
                continue;
            }
            let mut j = i;
            let mut all_data = true;
            let mut all_validated = true;
            while !is_active(tree.entry(j)) {
                let b = tree.entry(j);
                all_data &= have.contains(&b.hash);
                all_validated &= validated.contains(&b.hash);
                j = b.parent().expect("genesis is active");
            }
            let fork = tree.entry(j).height;
            let status = if active_tip {
                TipStatus::Active
            } else if e.status != HeaderStatus::Valid {
                TipStatus::Invalid
            } else if !all_data {
                TipStatus::HeadersOnly
            } else if all_validated {
                TipStatus::ValidFork
            } else {
                TipStatus::ValidHeaders
            };
            tips.push(ChainTip { height: e.height, hash: e.hash, branch_len: e.height - fork, status });
        }
        tips.sort_by(|a, b| b.height.cmp(&a.height).then(a.hash.0.cmp(&b.hash.0)));
        tips
    }

    /// Flushes the coins cache when it is over its bound or the last flush is `flush_interval` old.
    fn maybe_flush(&self, w: &mut Writer) -> Result<(), ChainError> {
        if self.utxo.needs_flush() || w.last_flush.elapsed() >= self.opts.flush_interval {
            self.flush_coins(w)?;
        }
        Ok(())
    }

    fn flush_coins(&self, w: &mut Writer) -> Result<(), ChainError> {
        let started = Instant::now();
        let written = self.utxo.flush().map_err(|e| {
            w.poisoned = Some(e.to_string());
            ChainError::Store(e)
        })?;
        w.last_flush = Instant::now();
        w.since_durable = 0;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flushed_entries.fetch_add(written as u64, Ordering::Relaxed);
        let (cached, limit) = self.utxo.cache_usage();
        tracing::debug!(written, cached, limit, ms = started.elapsed().as_millis() as u64, "coins cache flushed");
        Ok(())
    }

    /// The coins cache's size, bound and flushes (takes the cache's read lock briefly; call it off
    /// the async runtime, as the block thread does after each block).
    pub fn coins_cache_stats(&self) -> CoinsCacheStats {
        let (bytes, limit) = self.utxo.cache_usage();
        let (entries, dirty) = self.utxo.cache_entries();
        CoinsCacheStats {
            bytes,
            limit,
            entries,
            dirty,
            flushes: self.flushes.load(Ordering::Relaxed),
            flushed_entries: self.flushed_entries.load(Ordering::Relaxed),
        }
    }

    /// Writes the coins cache and makes everything committed so far durable (at shutdown; dropping
    /// the state does the same).
    pub fn flush(&self) -> Result<(), ChainError> {
        let mut w = self.lock_writer();
        self.flush_coins(&mut w)?;
        Ok(self.store.flush()?)
    }

    /// `gettxoutsetinfo`: flushes the cache, then counts the stored set (SV Node flushes first too).
    pub fn utxo_counts(&self) -> Result<super::coins_db::StoredCounts, ChainError> {
        let mut w = self.lock_writer();
        self.flush_coins(&mut w)?;
        Ok(self.utxo.count()?)
    }
}

impl Drop for ChainState {
    /// A state dropped without a crash keeps the blocks it connected: the cache is flushed, unless
    /// a store write failed before (then the disk keeps its last consistent state).
    fn drop(&mut self) {
        let w = self.writer.get_mut().unwrap_or_else(PoisonError::into_inner);
        if w.poisoned.is_some() {
            return;
        }
        if let Err(e) = self.utxo.flush() {
            warn!(error = %e, "cannot write the coins cache at shutdown; blocks since the last flush are connected again at start");
        }
    }
}
