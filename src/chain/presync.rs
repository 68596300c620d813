//! Headers-first sync of a chain that has not reached the minimum chain work yet, in two passes
//! (the design of Bitcoin Core 24's `HeadersSyncState`; SV Node has no equivalent and simply stores
//! every valid header).
//!
//! A peer could feed us millions of valid but cheap headers (minimum-difficulty chains forking off
//! early in history); storing them costs memory we never get back. So a chain below the minimum
//! chain work is first downloaded and fully validated *without being stored* (presync), keeping
//! only a sliding window of the last [`LOOKBACK`] headers (what the difficulty and time rules look
//! at) and the hash of every [`MAX_HEADERS`]-th header. Once the chain's work reaches the minimum it
//! is downloaded again from the start (redownload) and each `headers` message is stored only after
//! its last hash matches the one recorded at that height, which proves (by the hash chain) that
//! the whole message is the chain already validated.
//!
//! One `HeadersSync` belongs to one peer (the relay layer owns it and sends the `getheaders` it asks
//! for). Memory per sync: the window (about 85 kB) and 32 bytes per 2000 headers.
//!
//! Invariants: the window holds the headers directly below the presync tip, contiguous, never more
//! than `LOOKBACK`; nothing reaches the tree before its message's last hash matched a commitment
//! or the presync tip.

use super::headers::{BlockRef, HeaderError, HeaderIndex, HeaderTree, MAX_FUTURE_BLOCK_TIME, MAX_HEADERS};
use super::pow::{block_work, check_proof_of_work, next_work_required, ChainView, HeaderInfo};
use super::uint256::U256;
use crate::wire::{BlockHash, BlockHeader};
use std::collections::VecDeque;

/// Headers kept below the presync tip: the longest look-back of any rule (the legacy retarget
/// reads the block 2015 below its parent; testnet walks back at most to the last retarget), plus
/// the median-time window, rounded up.
pub const LOOKBACK: usize = 2100;

/// Why a sync was abandoned. The relay layer disconnects the peer; only invalid headers are scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("the peer's chain ends at height {height} with work {chain_work}, below the minimum {minimum}")]
    ChainTooLittleWork { height: u32, chain_work: U256, minimum: U256 },
    #[error("redownloaded header at height {height} is {hash}, the presync saw {expected}")]
    Mismatch { height: u32, hash: BlockHash, expected: BlockHash },
    #[error("redownload message of {count} headers ends at height {height}, short of a checked height")]
    ShortRedownload { count: usize, height: u32 },
}

impl SyncError {
    /// A reason string for logs: SV Node's for invalid headers, our own for the sync itself.
    pub fn reject_reason(&self) -> &'static str {
        match self {
            Self::Header(e) => e.reject_reason(),
            Self::ChainTooLittleWork { .. } => "low-work-headers",
            Self::Mismatch { .. } | Self::ShortRedownload { .. } => "headers-sync-mismatch",
        }
    }

    /// Invalid headers score as in the tree; a chain with too little work or a peer that changed
    /// its chain between the passes is not an SV Node offence (disconnect only).
    pub fn misbehavior(&self) -> Option<u32> {
        match self {
            Self::Header(e) => e.misbehavior(),
            _ => None,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncProgress {
    /// Still below the minimum work (or still redownloading): send `getheaders` with this locator.
    Continue { locator: Vec<BlockHash> },
    /// The chain reached the minimum work: send `getheaders` with this locator to download it again,
    /// this time into the tree.
    Redownload { locator: Vec<BlockHash> },
    /// Stored up to and past the point where the chain reaches the minimum work: continue with
    /// ordinary `HeaderTree::accept_headers` from `last`.
    Done { last: BlockRef },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Presync,
    Redownload,
    Done,
}

/// The two-pass sync with one peer.
#[derive(Debug, Clone)]
pub struct HeadersSync {
    phase: Phase,
    /// Where the peer's chain joins the tree.
    start: HeaderIndex,
    start_height: u32,
    /// Presync: the last `LOOKBACK` headers' times, bits and chain work, oldest first.
    window: VecDeque<HeaderInfo>,
    /// Presync tip.
    tip_height: u32,
    tip_hash: BlockHash,
    tip_work: U256,
    /// Hash at heights `start_height + k * MAX_HEADERS`, k = 1, 2, ….
    commitments: Vec<BlockHash>,
    /// Redownload: the last header stored.
    stored: BlockRef,
}

impl HeadersSync {
    /// Starts a sync of the peer's chain from `start` (an entry of `tree`, usually our best tip).
    /// The first `getheaders` uses the returned locator.
    pub fn new(tree: &HeaderTree, start: HeaderIndex) -> (HeadersSync, Vec<BlockHash>) {
        let e = tree.entry(start);
        let sync = HeadersSync {
            phase: Phase::Presync,
            start,
            start_height: e.height,
            window: VecDeque::with_capacity(LOOKBACK),
            tip_height: e.height,
            tip_hash: e.hash,
            tip_work: e.chain_work,
            commitments: Vec::new(),
            stored: BlockRef { height: e.height, hash: e.hash },
        };
        (sync, tree.locator_from(start))
    }

    /// Processes one `headers` message from the peer.
    pub fn process(
        &mut self,
        tree: &mut HeaderTree,
        headers: &[BlockHeader],
        now_adjusted: u32,
    ) -> Result<SyncProgress, SyncError> {
        if headers.len() > MAX_HEADERS {
            return Err(HeaderError::TooManyHeaders { count: headers.len(), max: MAX_HEADERS }.into());
        }
        match self.phase {
            Phase::Presync => self.presync(tree, headers, now_adjusted),
            Phase::Redownload => self.redownload(tree, headers, now_adjusted),
            Phase::Done => Ok(SyncProgress::Done { last: self.stored }),
        }
    }

    /// Height of the presync tip (how far the first pass has validated).
    pub fn presync_height(&self) -> u32 {
        self.tip_height
    }

    fn presync(&mut self, tree: &HeaderTree, headers: &[BlockHeader], now: u32) -> Result<SyncProgress, SyncError> {
        let minimum = tree.minimum_chain_work();
        for (position, h) in headers.iter().enumerate() {
            let hash = h.hash();
            if h.prev_block != self.tip_hash {
                return Err(if position == 0 {
                    HeaderError::PrevNotFound { hash, prev: h.prev_block }
                } else {
                    HeaderError::NonContinuous { position, hash }
                }
                .into());
            }
            self.check(tree, h, &hash, now)?;
            let height = self.tip_height + 1;
            self.tip_work = self.tip_work.saturating_add(block_work(h.bits));
            if self.window.len() == LOOKBACK {
                self.window.pop_front();
            }
            self.window.push_back(HeaderInfo { time: h.time, bits: h.bits, chain_work: self.tip_work });
            self.tip_height = height;
            self.tip_hash = hash;
            if (height - self.start_height) % MAX_HEADERS as u32 == 0 {
                self.commitments.push(hash);
            }
            if self.tip_work >= minimum {
                // Enough: the rest of the chain is synced the ordinary way after the redownload.
                self.phase = Phase::Redownload;
                self.window = VecDeque::new();
                return Ok(SyncProgress::Redownload { locator: tree.locator_from(self.start) });
            }
        }
        if headers.len() < MAX_HEADERS {
            return Err(SyncError::ChainTooLittleWork { height: self.tip_height, chain_work: self.tip_work, minimum });
        }
        let mut locator = vec![self.tip_hash];
        locator.extend(tree.locator_from(self.start));
        Ok(SyncProgress::Continue { locator })
    }

    /// The header rules, against the window instead of the tree.
    fn check(&self, tree: &HeaderTree, h: &BlockHeader, hash: &BlockHash, now: u32) -> Result<(), HeaderError> {
        let params = tree.params();
        let hash = *hash;
        let height = self.tip_height + 1;
        if !check_proof_of_work(&hash, h.bits, params) {
            return Err(HeaderError::HighHash { hash, bits: h.bits });
        }
        let view = WindowView { tree, sync: self };
        let expected = next_work_required(&view, h.time, params);
        if h.bits != expected {
            return Err(HeaderError::BadDiffBits { hash, height, bits: h.bits, expected });
        }
        if let Some(expected) = tree.checkpoint_at(height) {
            if expected != hash {
                return Err(HeaderError::CheckpointMismatch { hash, height, expected });
            }
        }
        let median_time_past = view.median_time_past(self.tip_height);
        if h.time <= median_time_past {
            return Err(HeaderError::TimeTooOld { hash, height, time: h.time, median_time_past });
        }
        let max = now as u64 + MAX_FUTURE_BLOCK_TIME as u64;
        if h.time as u64 > max {
            return Err(HeaderError::TimeTooNew { hash, height, time: h.time, max });
        }
        // Version rules: the tree applies them again on redownload; checked here so that a chain
        // failing them never gets that far.
        let a = &params.activations;
        let min_version = if height >= a.bip65 {
            4
        } else if height >= a.bip66 {
            3
        } else if height >= a.bip34 {
            2
        } else {
            i32::MIN
        };
        if h.version < min_version {
            return Err(HeaderError::BadVersion { hash, height, version: h.version });
        }
        Ok(())
    }

    fn redownload(
        &mut self,
        tree: &mut HeaderTree,
        headers: &[BlockHeader],
        now: u32,
    ) -> Result<SyncProgress, SyncError> {
        let Some(first) = headers.first() else {
            return Err(SyncError::ShortRedownload { count: 0, height: self.stored.height });
        };
        if first.prev_block != self.stored.hash {
            return Err(SyncError::Mismatch {
                height: self.stored.height,
                hash: first.prev_block,
                expected: self.stored.hash,
            });
        }
        // The checked height this message must reach: the presync tip, or else exactly the next
        // commitment (messages of MAX_HEADERS from a commitment), so nothing unchecked is stored.
        let end = self.stored.height + headers.len() as u32;
        let (check_height, expected) = if end >= self.tip_height {
            (self.tip_height, self.tip_hash)
        } else {
            let offset = (end - self.start_height) as usize;
            match self.commitments.get((offset / MAX_HEADERS).wrapping_sub(1)) {
                Some(&c) if offset % MAX_HEADERS == 0 => (end, c),
                _ => return Err(SyncError::ShortRedownload { count: headers.len(), height: end }),
            }
        };
        let pos = (check_height - self.stored.height - 1) as usize;
        let hash = headers[pos].hash();
        if hash != expected {
            return Err(SyncError::Mismatch { height: check_height, hash, expected });
        }
        // Everything up to the checked header is the presynced chain; what follows the presync tip
        // in the same message has the minimum work behind it.
        let out = tree.accept_presynced_headers(headers, now)?;
        if let Some(e) = out.error {
            return Err(e.into());
        }
        self.stored = out.last.expect("a non-empty message was accepted");
        if self.stored.height >= self.tip_height {
            self.phase = Phase::Done;
            self.commitments = Vec::new();
            return Ok(SyncProgress::Done { last: self.stored });
        }
        let index = tree.index_of(&self.stored.hash).expect("just stored");
        Ok(SyncProgress::Continue { locator: tree.locator_from(index) })
    }
}

/// The presync chain as the difficulty rules see it: the window above, the tree below.
struct WindowView<'a> {
    tree: &'a HeaderTree,
    sync: &'a HeadersSync,
}

impl ChainView for WindowView<'_> {
    fn tip_height(&self) -> u32 {
        self.sync.tip_height
    }
    fn at(&self, height: u32) -> HeaderInfo {
        let window_base = self.sync.tip_height + 1 - self.sync.window.len() as u32;
        if height >= window_base && height > self.sync.start_height {
            return self.sync.window[(height - window_base) as usize];
        }
        // Below the window: only the tree's part of the chain, since the window covers every
        // look-back of the rules (LOOKBACK).
        let i = self
            .tree
            .ancestor(self.sync.start, height.min(self.sync.start_height))
            .expect("heights up to the start are in the tree");
        let e = self.tree.entry(i);
        HeaderInfo { time: e.header.time, bits: e.header.bits, chain_work: e.chain_work }
    }
}
