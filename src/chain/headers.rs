//! The header tree: every valid header we know, the best chain by cumulative work, forks and
//! reorganisations, and the headers-first sync helpers (locators, answering `getheaders`/`getblocks`).
//!
//! Owns header validation (SV Node's `CheckBlockHeader` + `ContextualCheckBlockHeader`, svnode-protocol.md
//! §2.3/§2.5): proof of work, nBits as the network requires, timestamp above the median of the last
//! 11 and at most 2 h ahead of adjusted time, block version by height, checkpoints. It does not see
//! blocks or transactions; the block layer asks it for the best chain and is told the fork point of
//! every change of best tip so it can disconnect and connect blocks.
//!
//! With a minimum chain work set (the network's `nMinimumChainWork`, or `-minimumchainwork`), no
//! chain below it is stored; [`super::presync::HeadersSync`] validates such a chain without
//! storing it first.
//!
//! Protocol logic only: no I/O, no clock. The caller passes the network-adjusted time with each header,
//! so tests move a fake clock.
//!
//! Invariants (checked by the fuzz target `header_chain` through [`HeaderTree::check_invariants`]):
//! - entry 0 is genesis; every other entry's parent is stored at a smaller index;
//! - `by_hash` maps every stored hash to its index and nothing else;
//! - the best tip has the most work of all valid entries (first seen wins a tie), and `best_chain[h]`
//!   is its ancestor at height `h` for every `h` up to its height;
//! - an entry's `chain_work` is its parent's plus the work its nBits encodes.
//!
//! Hot path: extending the best chain hashes the header once, looks up its parent, and pushes one
//! entry; nothing else allocates.

use super::params::ChainParams;
use super::pow::{block_work, check_proof_of_work, next_work_required, ChainView, HeaderInfo, MEDIAN_TIME_SPAN};
use super::uint256::U256;
use crate::wire::{BlockHash, BlockHeader};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// How far ahead of network-adjusted time a header's timestamp may be (`MAX_FUTURE_BLOCK_TIME`,
/// src/block_index.h:31): two hours.
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;

/// Most headers in one `headers` message (`MAX_HEADERS_RESULTS`, src/validation.h:127); also the
/// most we send in answer to `getheaders`.
pub const MAX_HEADERS: usize = 2000;

/// Most block hashes we answer one `getblocks` with (SV Node's limit, net_processing.cpp:2551-2636).
pub const MAX_GETBLOCKS_RESULTS: usize = 500;

/// Index of an entry in the tree's arena.
pub type HeaderIndex = usize;

/// Parent index of the genesis entry, which has none.
const NO_PARENT: u32 = u32::MAX;

/// Whether a stored header may be built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStatus {
    /// Passed header validation; its block may still turn out invalid.
    Valid,
    /// Its block failed validation (reported by the block layer).
    Invalid,
    /// An ancestor's block failed validation.
    InvalidAncestor,
}

impl HeaderStatus {
    pub fn is_valid(self) -> bool {
        self == HeaderStatus::Valid
    }
}

/// One stored header and what the tree knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    pub header: BlockHeader,
    pub hash: BlockHash,
    pub height: u32,
    /// Total work of the chain from genesis up to and including this header.
    pub chain_work: U256,
    parent: u32,
    pub status: HeaderStatus,
}

impl HeaderEntry {
    /// Index of the parent entry; `None` for genesis.
    pub fn parent(&self) -> Option<HeaderIndex> {
        (self.parent != NO_PARENT).then_some(self.parent as usize)
    }
}

/// A block named by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub height: u32,
    pub hash: BlockHash,
}

/// The best tip moved. Blocks above `fork` on the old chain are to be disconnected (none when the
/// old tip is the fork: a plain extension), then blocks above `fork` up to `new_tip` connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipChange {
    pub fork: BlockRef,
    pub old_tip: BlockRef,
    pub new_tip: BlockRef,
}

impl TipChange {
    /// The new chain extends the old one: nothing to disconnect.
    pub fn is_extension(&self) -> bool {
        self.fork == self.old_tip
    }
}

/// A header the tree holds after `accept_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedHeader {
    pub index: HeaderIndex,
    pub hash: BlockHash,
    pub height: u32,
    /// False if we already had it.
    pub is_new: bool,
    /// Set when this header became the best tip.
    pub tip_change: Option<TipChange>,
}

/// The result of accepting a `headers` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersAccepted {
    /// Headers of the message now in the tree (new or already known), in order.
    pub accepted: usize,
    /// Of those, how many were new.
    pub new: usize,
    /// The last header accepted.
    pub last: Option<BlockRef>,
    /// The best tip before the message and after it, if it moved.
    pub tip_change: Option<TipChange>,
    /// Why the rest of the message was refused.
    pub error: Option<HeaderError>,
}

/// Why a header (or a `headers` message) was refused. Each variant knows SV Node's reject reason
/// and the misbehaviour score the sending peer earns (svnode-protocol.md §3.2–3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header {hash}: hash above the target of nBits {bits:#010x}")]
    HighHash { hash: BlockHash, bits: u32 },
    #[error("header {hash}: previous block {prev} not found")]
    PrevNotFound { hash: BlockHash, prev: BlockHash },
    #[error("header {hash}: previous block {prev} is invalid")]
    BadPrevBlock { hash: BlockHash, prev: BlockHash },
    #[error("header {hash} is already known to be invalid")]
    KnownInvalid { hash: BlockHash },
    #[error("header {hash} at height {height}: nBits {bits:#010x}, the chain requires {expected:#010x}")]
    BadDiffBits { hash: BlockHash, height: u32, bits: u32, expected: u32 },
    #[error("header {hash} at height {height}: time {time} is not after the median time past {median_time_past}")]
    TimeTooOld { hash: BlockHash, height: u32, time: u32, median_time_past: u32 },
    #[error("header {hash} at height {height}: time {time} is more than 2 h ahead of adjusted time (max {max})")]
    TimeTooNew { hash: BlockHash, height: u32, time: u32, max: u64 },
    #[error("header {hash} at height {height}: bad-version({version:#010x})")]
    BadVersion { hash: BlockHash, height: u32, version: i32 },
    #[error("header {hash} at height {height} contradicts checkpoint {expected}")]
    CheckpointMismatch { hash: BlockHash, height: u32, expected: BlockHash },
    #[error("header {hash} at height {height} forks below the checkpoint at height {checkpoint_height}")]
    ForkBeforeCheckpoint { hash: BlockHash, height: u32, checkpoint_height: u32 },
    #[error("{count} headers in one message (max {max})")]
    TooManyHeaders { count: usize, max: usize },
    #[error("header {position} of the message ({hash}) does not follow the one before it")]
    NonContinuous { position: usize, hash: BlockHash },
    #[error(
        "header {hash} at height {height}: its chain has {chain_work} work, below the minimum chain work {minimum}"
    )]
    LowWork { hash: BlockHash, height: u32, chain_work: U256, minimum: U256 },
}

impl HeaderError {
    /// The reason string SV Node puts in its `reject` message and logs.
    pub fn reject_reason(&self) -> &'static str {
        match self {
            Self::HighHash { .. } => "high-hash",
            Self::PrevNotFound { .. } => "prev-blk-not-found",
            Self::BadPrevBlock { .. } => "bad-prevblk",
            Self::KnownInvalid { .. } => "duplicate",
            Self::BadDiffBits { .. } => "bad-diffbits",
            Self::TimeTooOld { .. } => "time-too-old",
            Self::TimeTooNew { .. } => "time-too-new",
            Self::BadVersion { .. } => "bad-version",
            Self::CheckpointMismatch { .. } => "checkpoint mismatch",
            Self::ForkBeforeCheckpoint { .. } => "bad-fork-prior-to-checkpoint",
            Self::TooManyHeaders { .. } => "too-many-headers",
            Self::NonContinuous { .. } => "disconnected-header",
            Self::LowWork { .. } => "low-work-headers",
        }
    }

    /// The `reject` code (src/consensus/validation.h): INVALID 0x10, OBSOLETE 0x11 for old versions,
    /// CHECKPOINT 0x43 for checkpoint violations.
    pub fn reject_code(&self) -> u8 {
        match self {
            Self::BadVersion { .. } => 0x11,
            Self::CheckpointMismatch { .. } | Self::ForkBeforeCheckpoint { .. } => 0x43,
            _ => 0x10,
        }
    }

    /// The misbehaviour score SV Node gives the peer that sent this header, `None` where it gives 0.
    /// A timestamp too far ahead is not punished: the peer's clock, or ours, may be off.
    pub fn misbehavior(&self) -> Option<u32> {
        let score = match self {
            Self::HighHash { .. } => 50,
            Self::PrevNotFound { .. } => 10,
            Self::BadPrevBlock { .. } => 100,
            Self::BadDiffBits { .. } => 100,
            Self::CheckpointMismatch { .. } | Self::ForkBeforeCheckpoint { .. } => 100,
            Self::TooManyHeaders { .. } | Self::NonContinuous { .. } => 20,
            Self::KnownInvalid { .. }
            | Self::TimeTooOld { .. }
            | Self::TimeTooNew { .. }
            | Self::BadVersion { .. }
            | Self::LowWork { .. } => 0,
        };
        (score > 0).then_some(score)
    }
}

/// Block hashes are sha256d outputs that must meet a target: their low 8 bytes are uniformly
/// random and cannot be ground to collide (that takes ~2^64 hashes), so they serve as the map hash
/// directly, skipping SipHash on the hot path.
#[derive(Default)]
pub struct BlockHashHasher(u64);

impl Hasher for BlockHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(w);
            // A full hash contributes its first 8 bytes only: enough, and 4× cheaper.
            if bytes.len() == 32 {
                break;
            }
        }
    }
    fn write_usize(&mut self, _len: usize) {
        // The length prefix of a `[u8; 32]` carries no information.
    }
}

type HashIndex = HashMap<BlockHash, u32, BuildHasherDefault<BlockHashHasher>>;

/// What `check_header` learned about a valid header.
#[derive(Debug, Clone, Copy)]
struct Checked {
    parent: HeaderIndex,
    height: u32,
    chain_work: U256,
}

/// Every valid header, the best chain, and the rules.
#[derive(Debug, Clone)]
pub struct HeaderTree {
    params: ChainParams,
    entries: Vec<HeaderEntry>,
    by_hash: HashIndex,
    /// `best_chain[h]` is the index of the best chain's block at height `h`.
    best_chain: Vec<u32>,
    checkpoints: Vec<(u32, BlockHash)>,
    /// Height of the highest checkpoint we hold; nothing may fork below it.
    last_checkpoint_height: u32,
    minimum_chain_work: U256,
    /// The work of the most recent nBits seen: consecutive headers nearly always share it.
    work_cache: (u32, U256),
    /// Reused by reorganisations, so a reorg allocates only when it is deeper than any before.
    scratch: Vec<u32>,
    /// The hashes of the `headers` message being accepted, reused between messages.
    hash_scratch: Vec<BlockHash>,
}

impl HeaderTree {
    /// A tree holding the network's genesis header, with the network's default minimum chain work
    /// (SV Node's `nMinimumChainWork`; zero on regtest and STN).
    pub fn new(params: ChainParams) -> HeaderTree {
        let minimum_chain_work = U256::from_be_hex(params.minimum_chain_work)
            .expect("minimum_chain_work constants are 64 hex digits (params tests)");
        let genesis = params.genesis_block().header;
        let hash = genesis.hash();
        let checkpoints = params
            .checkpoints
            .iter()
            .map(|(h, s)| (*h, s.parse().expect("checkpoint constants are valid hashes")))
            .collect();
        let chain_work = block_work(genesis.bits);
        let mut by_hash = HashIndex::default();
        by_hash.insert(hash, 0);
        HeaderTree {
            entries: vec![HeaderEntry {
                header: genesis,
                hash,
                height: 0,
                chain_work,
                parent: NO_PARENT,
                status: HeaderStatus::Valid,
            }],
            by_hash,
            best_chain: vec![0],
            checkpoints,
            last_checkpoint_height: 0,
            minimum_chain_work,
            work_cache: (genesis.bits, chain_work),
            scratch: Vec::new(),
            hash_scratch: Vec::new(),
            params,
        }
    }

    /// Overrides the minimum chain work (`-minimumchainwork`; zero turns the rule off). See
    /// [`HeaderTree::accept_headers`] for its effect.
    pub fn with_minimum_chain_work(mut self, work: U256) -> HeaderTree {
        self.minimum_chain_work = work;
        self
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    pub fn minimum_chain_work(&self) -> U256 {
        self.minimum_chain_work
    }

    /// Number of stored headers, genesis included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: genesis is always stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, index: HeaderIndex) -> &HeaderEntry {
        &self.entries[index]
    }

    pub fn entries(&self) -> &[HeaderEntry] {
        &self.entries
    }

    pub fn index_of(&self, hash: &BlockHash) -> Option<HeaderIndex> {
        self.by_hash.get(hash).map(|&i| i as usize)
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&HeaderEntry> {
        self.index_of(hash).map(|i| &self.entries[i])
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn genesis(&self) -> &HeaderEntry {
        &self.entries[0]
    }

    pub fn best_index(&self) -> HeaderIndex {
        *self.best_chain.last().expect("the best chain holds at least genesis") as usize
    }

    pub fn best_tip(&self) -> &HeaderEntry {
        &self.entries[self.best_index()]
    }

    pub fn best_height(&self) -> u32 {
        self.best_tip().height
    }

    pub fn best_hash(&self) -> BlockHash {
        self.best_tip().hash
    }

    /// Indices of the best chain by height, genesis first.
    pub fn best_chain(&self) -> &[u32] {
        &self.best_chain
    }

    /// The best chain's block at `height`.
    pub fn best_at_height(&self, height: u32) -> Option<&HeaderEntry> {
        self.best_chain.get(height as usize).map(|&i| &self.entries[i as usize])
    }

    pub fn is_on_best_chain(&self, index: HeaderIndex) -> bool {
        let height = self.entries[index].height as usize;
        self.best_chain.get(height) == Some(&(index as u32))
    }

    /// The ancestor of `index` at `height` (itself at its own height), `None` above it. O(1) on the
    /// best chain; elsewhere walks back to where the branch meets the best chain.
    pub fn ancestor(&self, index: HeaderIndex, height: u32) -> Option<HeaderIndex> {
        let mut i = index;
        loop {
            let e = &self.entries[i];
            if height > e.height {
                return None;
            }
            if height == e.height {
                return Some(i);
            }
            if self.is_on_best_chain(i) {
                return Some(self.best_chain[height as usize] as usize);
            }
            i = e.parent as usize;
        }
    }

    /// The last common ancestor of two entries.
    pub fn fork_point(&self, a: HeaderIndex, b: HeaderIndex) -> HeaderIndex {
        let height = self.entries[a].height.min(self.entries[b].height);
        let (mut a, mut b) = (
            self.ancestor(a, height).expect("height is at most a's"),
            self.ancestor(b, height).expect("height is at most b's"),
        );
        while a != b {
            a = self.entries[a].parent as usize;
            b = self.entries[b].parent as usize;
        }
        a
    }

    /// Median timestamp of `index` and its 10 predecessors (fewer near genesis).
    pub fn median_time_past(&self, index: HeaderIndex) -> u32 {
        let mut times = [0u32; MEDIAN_TIME_SPAN];
        let mut n = 0;
        let mut i = index as u32;
        while n < MEDIAN_TIME_SPAN && i != NO_PARENT {
            let e = &self.entries[i as usize];
            times[n] = e.header.time;
            n += 1;
            i = e.parent;
        }
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }

    /// The chain ending at `index`, as the difficulty rules see it.
    pub fn view(&self, index: HeaderIndex) -> TreeView<'_> {
        TreeView { tree: self, tip: index, cursor: std::cell::Cell::new(index) }
    }

    /// The nBits a header on top of `index` with timestamp `time` must have.
    pub fn next_work_required(&self, index: HeaderIndex, time: u32) -> u32 {
        next_work_required(&self.view(index), time, &self.params)
    }

    /// Validates `header` and stores it, with `now_adjusted` the network-adjusted time in seconds.
    /// A header we already have is accepted again (`is_new: false`) without revalidation.
    pub fn accept_header(&mut self, header: &BlockHeader, now_adjusted: u32) -> Result<AcceptedHeader, HeaderError> {
        self.accept_header_with_hash(header, header.hash(), now_adjusted)
    }

    /// As [`HeaderTree::accept_header`], for a caller that has already hashed the header's bytes.
    /// `hash` must be `header.hash()`.
    pub fn accept_header_with_hash(
        &mut self,
        header: &BlockHeader,
        hash: BlockHash,
        now_adjusted: u32,
    ) -> Result<AcceptedHeader, HeaderError> {
        self.accept_one(header, hash, now_adjusted, true)
    }

    fn accept_one(
        &mut self,
        header: &BlockHeader,
        hash: BlockHash,
        now_adjusted: u32,
        enforce_minimum_work: bool,
    ) -> Result<AcceptedHeader, HeaderError> {
        debug_assert_eq!(hash, header.hash());
        if let Some(&i) = self.by_hash.get(&hash) {
            let e = &self.entries[i as usize];
            if !e.status.is_valid() {
                return Err(HeaderError::KnownInvalid { hash });
            }
            return Ok(AcceptedHeader { index: i as usize, hash, height: e.height, is_new: false, tip_change: None });
        }
        let checked = self.check_header(header, &hash, now_adjusted, enforce_minimum_work)?;
        Ok(self.store(header, hash, checked))
    }

    /// Every rule, without changing the tree.
    fn check_header(
        &self,
        header: &BlockHeader,
        hash: &BlockHash,
        now_adjusted: u32,
        enforce_minimum_work: bool,
    ) -> Result<Checked, HeaderError> {
        let hash = *hash;
        if !check_proof_of_work(&hash, header.bits, &self.params) {
            return Err(HeaderError::HighHash { hash, bits: header.bits });
        }
        let prev = header.prev_block;
        let parent = match self.by_hash.get(&prev) {
            Some(&p) => p as usize,
            None => return Err(HeaderError::PrevNotFound { hash, prev }),
        };
        let pe = &self.entries[parent];
        if !pe.status.is_valid() {
            return Err(HeaderError::BadPrevBlock { hash, prev });
        }
        let height = pe.height + 1;

        let expected = self.next_work_required(parent, header.time);
        if header.bits != expected {
            return Err(HeaderError::BadDiffBits { hash, height, bits: header.bits, expected });
        }
        if let Ok(pos) = self.checkpoints.binary_search_by_key(&height, |c| c.0) {
            let expected = self.checkpoints[pos].1;
            if expected != hash {
                return Err(HeaderError::CheckpointMismatch { hash, height, expected });
            }
        }
        if height < self.last_checkpoint_height {
            return Err(HeaderError::ForkBeforeCheckpoint {
                hash,
                height,
                checkpoint_height: self.last_checkpoint_height,
            });
        }
        let median_time_past = self.median_time_past(parent);
        if header.time <= median_time_past {
            return Err(HeaderError::TimeTooOld { hash, height, time: header.time, median_time_past });
        }
        let max = now_adjusted as u64 + MAX_FUTURE_BLOCK_TIME as u64;
        if header.time as u64 > max {
            return Err(HeaderError::TimeTooNew { hash, height, time: header.time, max });
        }
        let a = &self.params.activations;
        let min_version = if height >= a.bip65 {
            4
        } else if height >= a.bip66 {
            3
        } else if height >= a.bip34 {
            2
        } else {
            i32::MIN
        };
        if header.version < min_version {
            return Err(HeaderError::BadVersion { hash, height, version: header.version });
        }
        let work = if self.work_cache.0 == header.bits { self.work_cache.1 } else { block_work(header.bits) };
        let chain_work = pe.chain_work.saturating_add(work);
        let minimum = self.minimum_chain_work;
        if enforce_minimum_work && chain_work < minimum {
            return Err(HeaderError::LowWork { hash, height, chain_work, minimum });
        }
        Ok(Checked { parent, height, chain_work })
    }

    fn store(&mut self, header: &BlockHeader, hash: BlockHash, checked: Checked) -> AcceptedHeader {
        let Checked { parent, height, chain_work } = checked;
        self.work_cache = (header.bits, chain_work - self.entries[parent].chain_work);
        let index = self.entries.len();
        self.entries.push(HeaderEntry {
            header: *header,
            hash,
            height,
            chain_work,
            parent: parent as u32,
            status: HeaderStatus::Valid,
        });
        self.by_hash.insert(hash, index as u32);
        if self.checkpoints.binary_search_by_key(&height, |c| c.0).is_ok() {
            self.last_checkpoint_height = self.last_checkpoint_height.max(height);
        }
        let tip_change = if chain_work > self.best_tip().chain_work { Some(self.set_best(index)) } else { None };
        AcceptedHeader { index, hash, height, is_new: true, tip_change }
    }

    /// Makes `index` the best tip, rewriting `best_chain` above the fork point.
    fn set_best(&mut self, index: HeaderIndex) -> TipChange {
        let old = self.best_index();
        let old_tip = self.block_ref(old);
        let parent = self.entries[index].parent;
        if parent as usize == old {
            self.best_chain.push(index as u32);
            return TipChange { fork: old_tip, old_tip, new_tip: self.block_ref(index) };
        }
        let mut branch = std::mem::take(&mut self.scratch);
        branch.clear();
        let mut i = index as u32;
        while i != NO_PARENT && !self.is_on_best_chain(i as usize) {
            branch.push(i);
            i = self.entries[i as usize].parent;
        }
        let fork = i as usize;
        self.best_chain.truncate(self.entries[fork].height as usize + 1);
        self.best_chain.extend(branch.iter().rev());
        self.scratch = branch;
        TipChange { fork: self.block_ref(fork), old_tip, new_tip: self.block_ref(index) }
    }

    fn block_ref(&self, index: HeaderIndex) -> BlockRef {
        let e = &self.entries[index];
        BlockRef { height: e.height, hash: e.hash }
    }

    /// Accepts the headers of one `headers` message, in order: at most [`MAX_HEADERS`], each the
    /// parent of the next. Stops at the first invalid header and reports it in `error` with what
    /// was accepted before it. A message over the limit, or not a chain, is refused whole.
    ///
    /// With a minimum chain work set (`-minimumchainwork`), no chain below it is stored: a message
    /// whose proven work (its parent's chain work plus the work of its headers that meet their
    /// targets) stays below the minimum is refused whole with [`HeaderError::LowWork`] before
    /// anything is stored, and so is a single header (`accept_header`) whose chain is below it. A
    /// chain that has not reached the minimum yet (initial sync) goes through
    /// [`HeadersSync`](super::presync::HeadersSync) instead, which validates it without storing and
    /// then stores it on a second download.
    pub fn accept_headers(
        &mut self,
        headers: &[BlockHeader],
        now_adjusted: u32,
    ) -> Result<HeadersAccepted, HeaderError> {
        self.accept_headers_inner(headers, now_adjusted, true)
    }

    /// `accept_headers` without the minimum-work rule, for headers `HeadersSync` has matched
    /// against a chain it already saw reach the minimum.
    pub(super) fn accept_presynced_headers(
        &mut self,
        headers: &[BlockHeader],
        now_adjusted: u32,
    ) -> Result<HeadersAccepted, HeaderError> {
        self.accept_headers_inner(headers, now_adjusted, false)
    }

    fn accept_headers_inner(
        &mut self,
        headers: &[BlockHeader],
        now_adjusted: u32,
        enforce_minimum_work: bool,
    ) -> Result<HeadersAccepted, HeaderError> {
        if headers.len() > MAX_HEADERS {
            return Err(HeaderError::TooManyHeaders { count: headers.len(), max: MAX_HEADERS });
        }
        // Each header is hashed once, into a buffer kept between messages.
        let mut hashes = std::mem::take(&mut self.hash_scratch);
        hashes.clear();
        hashes.extend(headers.iter().map(BlockHeader::hash));
        let result = self.accept_hashed_headers(headers, &hashes, now_adjusted, enforce_minimum_work);
        self.hash_scratch = hashes;
        result
    }

    fn accept_hashed_headers(
        &mut self,
        headers: &[BlockHeader],
        hashes: &[BlockHash],
        now_adjusted: u32,
        enforce_minimum_work: bool,
    ) -> Result<HeadersAccepted, HeaderError> {
        for (position, pair) in headers.windows(2).enumerate() {
            if pair[1].prev_block != hashes[position] {
                return Err(HeaderError::NonContinuous { position: position + 1, hash: hashes[position + 1] });
            }
        }
        if enforce_minimum_work {
            if let Some(err) = self.low_work_batch(headers, hashes) {
                return Err(err);
            }
        }
        let old_best = self.best_index();
        let mut out = HeadersAccepted { accepted: 0, new: 0, last: None, tip_change: None, error: None };
        for (h, &hash) in headers.iter().zip(hashes) {
            // The message as a whole reaches the minimum work (checked above), so its first
            // headers may be below it.
            match self.accept_one(h, hash, now_adjusted, false) {
                Ok(a) => {
                    out.accepted += 1;
                    out.new += a.is_new as usize;
                    out.last = Some(BlockRef { height: a.height, hash: a.hash });
                }
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            }
        }
        let new_best = self.best_index();
        if new_best != old_best {
            let fork = self.fork_point(old_best, new_best);
            out.tip_change = Some(TipChange {
                fork: self.block_ref(fork),
                old_tip: self.block_ref(old_best),
                new_tip: self.block_ref(new_best),
            });
        }
        Ok(out)
    }

    /// The minimum-chain-work rule of [`HeaderTree::accept_headers`]: the work the message proves
    /// (headers up to the first that misses its target), compared before anything is stored. A
    /// header meeting a harder target than required still proves that work was done, so a peer
    /// cannot get past this rule without paying for the minimum work.
    fn low_work_batch(&self, headers: &[BlockHeader], hashes: &[BlockHash]) -> Option<HeaderError> {
        let minimum = self.minimum_chain_work;
        if minimum.is_zero() {
            return None;
        }
        let parent = self.get(&headers.first()?.prev_block)?;
        let mut work = parent.chain_work;
        for (h, hash) in headers.iter().zip(hashes) {
            if work >= minimum {
                return None;
            }
            if !check_proof_of_work(hash, h.bits, &self.params) {
                break;
            }
            work = work.saturating_add(block_work(h.bits));
        }
        if work >= minimum {
            return None;
        }
        Some(HeaderError::LowWork {
            hash: *hashes.last().expect("as many hashes as headers"),
            height: parent.height + headers.len() as u32,
            chain_work: work,
            minimum,
        })
    }

    /// The checkpointed hash at `height`, if the network pins one.
    pub fn checkpoint_at(&self, height: u32) -> Option<BlockHash> {
        self.checkpoints.binary_search_by_key(&height, |c| c.0).ok().map(|i| self.checkpoints[i].1)
    }

    /// Marks the block at `hash` and all its descendants invalid (the block layer found it so) and
    /// moves the best tip to the valid entry with the most work. `None` if the hash is unknown or
    /// genesis; otherwise the change of best tip, if any.
    pub fn mark_invalid(&mut self, hash: &BlockHash) -> Option<Option<TipChange>> {
        let index = self.index_of(hash)?;
        if index == 0 {
            return None;
        }
        let old_best = self.best_index();
        self.entries[index].status = HeaderStatus::Invalid;
        // Children are always stored after their parents, so one forward pass reaches every descendant.
        for i in index + 1..self.entries.len() {
            let parent = self.entries[i].parent as usize;
            if !self.entries[parent].status.is_valid() && self.entries[i].status.is_valid() {
                self.entries[i].status = HeaderStatus::InvalidAncestor;
            }
        }
        if self.entries[old_best].status.is_valid() {
            return Some(None);
        }
        Some(self.recompute_best())
    }

    /// Clears the invalid marks of the block at `hash`, its descendants and its ancestors (SV Node's
    /// `reconsiderblock`), and moves the best tip to the valid entry with the most work. `None` if
    /// the hash is unknown; otherwise the change of best tip, if any.
    pub fn reconsider(&mut self, hash: &BlockHash) -> Option<Option<TipChange>> {
        let index = self.index_of(hash)?;
        let mut i = index;
        loop {
            self.entries[i].status = HeaderStatus::Valid;
            match self.entries[i].parent() {
                Some(p) => i = p,
                None => break,
            }
        }
        // Descendants: children come after parents, so one forward pass sees each parent first.
        let mut cleared = vec![false; self.entries.len()];
        cleared[index] = true;
        for i in index + 1..self.entries.len() {
            let parent = self.entries[i].parent as usize;
            if cleared[parent] && self.entries[i].status == HeaderStatus::InvalidAncestor {
                self.entries[i].status = HeaderStatus::Valid;
                cleared[i] = true;
            }
        }
        Some(self.recompute_best())
    }

    /// Moves the best chain to the valid entry with the most work (first stored wins ties).
    fn recompute_best(&mut self) -> Option<TipChange> {
        let old_best = self.best_index();
        let mut best = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if e.status.is_valid() && e.chain_work > self.entries[best].chain_work {
                best = i;
            }
        }
        if best == old_best {
            return None;
        }
        let fork = self.fork_point(old_best, best);
        self.best_chain.truncate(self.entries[fork].height as usize + 1);
        let mut branch = Vec::new();
        let mut i = best;
        while i != fork {
            branch.push(i as u32);
            i = self.entries[i].parent as usize;
        }
        self.best_chain.extend(branch.iter().rev());
        Some(TipChange { fork: self.block_ref(fork), old_tip: self.block_ref(old_best), new_tip: self.block_ref(best) })
    }

    /// Re-adds a header loaded from our own block store at start-up: every rule is checked except
    /// the minimum chain work and the future-time limit (it was accepted before; the clock may have
    /// been wrong then, or the work limit set since).
    pub fn accept_stored_header(
        &mut self,
        header: &BlockHeader,
        hash: BlockHash,
    ) -> Result<AcceptedHeader, HeaderError> {
        self.accept_one(header, hash, u32::MAX - MAX_FUTURE_BLOCK_TIME, false)
    }

    /// A block locator for our best tip (what we send in `getheaders`).
    pub fn locator(&self) -> Vec<BlockHash> {
        self.locator_from(self.best_index())
    }

    /// SV Node's locator for the chain ending at `index` (src/chain.cpp:27-56): the tip, then ten
    /// single steps back, then steps doubling in size, always ending with genesis.
    pub fn locator_from(&self, index: HeaderIndex) -> Vec<BlockHash> {
        let mut out = Vec::with_capacity(32);
        let mut i = index;
        let mut step = 1u32;
        loop {
            let e = &self.entries[i];
            out.push(e.hash);
            if e.height == 0 {
                break;
            }
            let height = e.height.saturating_sub(step);
            i = self.ancestor(i, height).expect("a lower height has an ancestor");
            if out.len() > 10 {
                step = step.saturating_mul(2);
            }
        }
        out
    }

    /// `FindForkInGlobalIndex`: the first locator hash (the newest) on our best chain, or the best
    /// tip if the hash is a known block whose chain contains our tip; genesis if none is.
    pub fn find_fork(&self, locator: &[BlockHash]) -> HeaderIndex {
        let best = self.best_index();
        let best_height = self.entries[best].height;
        for hash in locator {
            if let Some(i) = self.index_of(hash) {
                if self.is_on_best_chain(i) {
                    return i;
                }
                if self.ancestor(i, best_height) == Some(best) {
                    return best;
                }
            }
        }
        0
    }

    /// The answer to `getheaders(locator, stop)`: at most `max` headers of our best chain after the
    /// fork point of `locator`, ending at `stop` if it comes first. A null (empty) locator asks for
    /// the header of `stop` alone; nothing if we do not know it.
    pub fn headers_after(&self, locator: &[BlockHash], stop: &BlockHash, max: usize) -> Vec<BlockHeader> {
        let max = max.min(MAX_HEADERS);
        if locator.is_empty() {
            return match self.get(stop) {
                Some(e) if max > 0 => vec![e.header],
                _ => Vec::new(),
            };
        }
        let start = self.entries[self.find_fork(locator)].height as usize + 1;
        let mut out = Vec::new();
        for &i in self.best_chain.iter().skip(start).take(max) {
            let e = &self.entries[i as usize];
            out.push(e.header);
            if e.hash == *stop {
                break;
            }
        }
        out
    }

    /// The answer to `getblocks(locator, stop)`: at most [`MAX_GETBLOCKS_RESULTS`] hashes of our best
    /// chain after the fork point, stopping before `stop` (SV Node does not include it).
    pub fn block_hashes_after(&self, locator: &[BlockHash], stop: &BlockHash) -> Vec<BlockHash> {
        let start = self.entries[self.find_fork(locator)].height as usize + 1;
        self.best_chain
            .iter()
            .skip(start)
            .map(|&i| self.entries[i as usize].hash)
            .take_while(|h| h != stop)
            .take(MAX_GETBLOCKS_RESULTS)
            .collect()
    }

    /// Checks the structural invariants listed in the module docs; for tests and fuzzing (O(n)).
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.entries.is_empty() || self.entries[0].height != 0 || self.entries[0].parent().is_some() {
            return Err("entry 0 is not genesis".into());
        }
        if self.by_hash.len() != self.entries.len() {
            return Err(format!("{} hashes for {} entries", self.by_hash.len(), self.entries.len()));
        }
        let mut max_work = U256::ZERO;
        for (i, e) in self.entries.iter().enumerate() {
            if self.by_hash.get(&e.hash) != Some(&(i as u32)) {
                return Err(format!("entry {i} is not indexed by its hash"));
            }
            if e.status.is_valid() {
                max_work = max_work.max(e.chain_work);
            }
            let Some(p) = e.parent() else {
                if i != 0 {
                    return Err(format!("entry {i} has no parent"));
                }
                continue;
            };
            if p >= i {
                return Err(format!("entry {i} has parent {p} stored after it"));
            }
            let pe = &self.entries[p];
            if pe.hash != e.header.prev_block || pe.height + 1 != e.height {
                return Err(format!("entry {i} does not follow its parent"));
            }
            if pe.chain_work.saturating_add(block_work(e.header.bits)) != e.chain_work {
                return Err(format!("entry {i} has the wrong chain work"));
            }
        }
        let best = self.best_tip();
        if best.chain_work != max_work || !best.status.is_valid() {
            return Err("the best tip does not have the most work".into());
        }
        if self.best_chain.len() != best.height as usize + 1 {
            return Err("best_chain length differs from the tip height".into());
        }
        let mut i = self.best_index();
        loop {
            let e = &self.entries[i];
            if self.best_chain[e.height as usize] as usize != i {
                return Err(format!("best_chain[{}] is not the tip's ancestor", e.height));
            }
            match e.parent() {
                Some(p) => i = p,
                None => break,
            }
        }
        Ok(())
    }
}

/// The chain ending at one entry of a [`HeaderTree`], for the difficulty rules.
///
/// On the best chain every lookup is O(1). On a side branch a lookup walks parents, so the view
/// remembers the last entry it reached and walks on from there when asked for a lower height: the
/// rules look back in descending order (testnet's walk over up to 2015 min-difficulty blocks, the
/// DAA's two medians), which keeps each header's validation linear in its look-back, not quadratic.
#[derive(Clone)]
pub struct TreeView<'a> {
    tree: &'a HeaderTree,
    tip: HeaderIndex,
    cursor: std::cell::Cell<HeaderIndex>,
}

impl ChainView for TreeView<'_> {
    fn tip_height(&self) -> u32 {
        self.tree.entries[self.tip].height
    }
    fn at(&self, height: u32) -> HeaderInfo {
        let cursor = self.cursor.get();
        let from = if height <= self.tree.entries[cursor].height { cursor } else { self.tip };
        let i = self.tree.ancestor(from, height).expect("ChainView::at is asked for heights up to the tip");
        self.cursor.set(i);
        let e = &self.tree.entries[i];
        HeaderInfo { time: e.header.time, bits: e.header.bits, chain_work: e.chain_work }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::params::Network;

    #[test]
    fn every_network_starts_at_genesis_with_its_minimum_chain_work() {
        for net in Network::ALL {
            let tree = HeaderTree::new(net.params().clone());
            assert_eq!(tree.best_hash(), net.params().genesis_hash(), "{net}");
            assert_eq!(tree.best_tip().chain_work, block_work(net.params().genesis_bits));
            assert_eq!(tree.minimum_chain_work().to_string(), net.params().minimum_chain_work);
            assert_eq!(tree.locator(), vec![tree.best_hash()]);
            tree.check_invariants().unwrap();
        }
    }

    #[test]
    fn scores_follow_sv_node() {
        let h = BlockHash::default();
        let table = [
            (HeaderError::HighHash { hash: h, bits: 0 }, "high-hash", Some(50)),
            (HeaderError::BadDiffBits { hash: h, height: 1, bits: 0, expected: 1 }, "bad-diffbits", Some(100)),
            (HeaderError::PrevNotFound { hash: h, prev: h }, "prev-blk-not-found", Some(10)),
            (HeaderError::TimeTooNew { hash: h, height: 1, time: 0, max: 0 }, "time-too-new", None),
            (HeaderError::TimeTooOld { hash: h, height: 1, time: 0, median_time_past: 0 }, "time-too-old", None),
            (HeaderError::BadVersion { hash: h, height: 1, version: 1 }, "bad-version", None),
            (HeaderError::TooManyHeaders { count: 2001, max: 2000 }, "too-many-headers", Some(20)),
            (HeaderError::NonContinuous { position: 1, hash: h }, "disconnected-header", Some(20)),
        ];
        for (err, reason, score) in table {
            assert_eq!((err.reject_reason(), err.misbehavior()), (reason, score), "{err}");
        }
    }

    #[test]
    fn block_hash_hasher_uses_the_hash_bytes() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<BlockHashHasher>::default();
        let hash_of = |h: &BlockHash| build.hash_one(h);
        let mut a = [0u8; 32];
        a[0] = 1;
        let mut b = a;
        b[0] = 2;
        assert_ne!(hash_of(&crate::wire::Hash256(a)), hash_of(&crate::wire::Hash256(b)));
    }
}
