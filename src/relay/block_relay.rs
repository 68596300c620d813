//! Compact block relay (BIP152 version 1, as SV Node v1.0.13 speaks it) wired into the relay task.
//!
//! What it owns: each peer's compact block state (`sendcmpct` both ways), the choice of the peers
//! we ask to announce blocks to us high-bandwidth, the blocks being rebuilt from a `cmpctblock`,
//! and the most recent block for answering `getblocktxn` and `getdata(MSG_CMPCT_BLOCK)`. The pure
//! arithmetic (short ids, reconstruction, index coding) is in [`super::compact`]; downloads that
//! are not compact stay in [`super::blocks`].
//!
//! The flow, as SV Node's `ProcessCompactBlockMessage`:
//! - every peer gets `sendcmpct(0,1)` after the handshake; another bsv-relay node gets
//!   `sendcmpct(1,1)`, and so do the last [`MAX_HB_PEERS`] other peers whose block became our
//!   tip first (BIP152's high-bandwidth selection; the one pushed out gets `sendcmpct(0,1)`);
//! - a `cmpctblock` goes through the header checks of a `headers` message first (scored the same
//!   way); a block we have, one that is not more work than our tip, or one more than two blocks
//!   ahead is not rebuilt (the header is enough, and the normal download fetches what we lack);
//! - otherwise the block is claimed from that peer in the download schedule, rebuilt from the
//!   mempool, the transactions that left it in the last 15 minutes and the orphan pool, and what
//!   is missing is asked for in one `getblocktxn`;
//! - a malformed `cmpctblock` or a `blocktxn` with the wrong count costs 100 (SV Node's
//!   "invalid-cmpctblk", "invalid-cmpctblk-txns"); equal short ids, or a rebuilt block whose
//!   merkle root is wrong (a short-id collision can do it, so it is not an offence), fall back to
//!   `getdata` of the full block from the same peer;
//! - a block rebuilt from a compact block that turns out invalid is not scored (SV Node and Core
//!   do not: BIP152 lets a peer announce before it validated), but that peer is never again
//!   asked for high-bandwidth announcements.
//!
//! Nothing here blocks on I/O; a reconstruction runs on the relay task and costs one SipHash per
//! pool transaction plus one decode per transaction found.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::compact::{self, CandidateTxs, CandidateVisitor, CompactError, PartialBlock, Remedy};
use super::{millis_now, Relay};
use crate::chain::block_check::check_block;
use crate::mempool::orphans::OrphanPool;
use crate::mempool::Mempool;
use crate::peer::PeerId;
use crate::wire::msg::{BlockTxn, CompactBlock, GetBlockTxn, SendCmpct};
use crate::wire::{inv_type, Block, BlockHash, InvItem, Message};

/// How many peers that are not bsv-relay nodes we ask to announce blocks to us high-bandwidth:
/// BIP152's 3, as SV Node (`block_download_tracker.cpp`) and Core.
pub const MAX_HB_PEERS: usize = 3;

/// The deepest block a `getdata(MSG_CMPCT_BLOCK)` is answered with a `cmpctblock` for (SV Node's
/// `MAX_CMPCTBLOCK_DEPTH`, 5); deeper blocks are sent whole, as the peer's mempool will not help.
pub const MAX_CMPCTBLOCK_DEPTH: u32 = 5;

/// How long a `blocktxn` may take before the block is left to the normal download. Short: the
/// peer sent the compact block a moment ago, so it has the transactions and is reachable.
pub const BLOCKTXN_TIMEOUT_MS: u64 = 10_000;

/// Header-seen times kept for the latency metric; older ones are dropped (a bound, not a cache).
const MAX_TIMED_BLOCKS: usize = 64;

/// A block is rebuilt from a compact block only this close to our tip (SV Node's `+ 2`): further
/// ahead, our mempool is unlikely to hold its transactions and the normal download is better.
const MAX_COMPACT_AHEAD: u32 = 2;

/// What we know of one peer's compact block support.
#[derive(Debug, Default, Clone)]
pub struct CompactPeer {
    /// It sent `sendcmpct` with version 1: it understands our compact blocks.
    pub supports: bool,
    /// It asked us for high-bandwidth announcements (`sendcmpct(1,1)`).
    pub wants_hb: bool,
    /// We asked it for high-bandwidth announcements.
    pub asked_hb: bool,
    /// Another bsv-relay node: high-bandwidth both ways from the start.
    pub bsv_relay: bool,
    /// A block it announced as a compact block turned out invalid.
    pub sent_invalid: bool,
}

struct Pending {
    peer: PeerId,
    partial: PartialBlock,
    deadline: u64,
}

/// The block relay state.
#[derive(Default)]
pub struct BlockRelay {
    peers: HashMap<PeerId, CompactPeer>,
    /// Peers other than bsv-relay nodes we asked for high-bandwidth announcements, newest first.
    hb: VecDeque<PeerId>,
    /// Blocks waiting for a `blocktxn`.
    pending: HashMap<BlockHash, Pending>,
    /// Blocks rebuilt from a compact block and queued for validation, with the peer they came from.
    via_compact: HashMap<BlockHash, PeerId>,
    /// When each recent block's header was first seen (bounded by [`MAX_TIMED_BLOCKS`]).
    header_seen: HashMap<BlockHash, Instant>,
    header_order: VecDeque<BlockHash>,
    /// Our newest block and its compact form, for `getblocktxn` and `getdata(MSG_CMPCT_BLOCK)`.
    recent: Option<(Arc<Block>, CompactBlock)>,
    /// The last block forwarded before validation, and to whom.
    early: Option<(BlockHash, std::collections::HashSet<PeerId>)>,
}

impl BlockRelay {
    pub fn new() -> BlockRelay {
        BlockRelay::default()
    }

    /// A peer finished its handshake; returns the `sendcmpct` to send it.
    pub fn add_peer(&mut self, id: PeerId, bsv_relay: bool) -> Message {
        self.peers.insert(id, CompactPeer { bsv_relay, asked_hb: bsv_relay, ..CompactPeer::default() });
        Message::SendCmpct(SendCmpct { announce: bsv_relay, version: compact::COMPACT_BLOCK_VERSION })
    }

    pub fn remove_peer(&mut self, id: PeerId) {
        self.peers.remove(&id);
        self.hb.retain(|p| *p != id);
        self.pending.retain(|_, p| p.peer != id);
    }

    pub fn peer(&self, id: PeerId) -> Option<&CompactPeer> {
        self.peers.get(&id)
    }

    /// The peer sent `sendcmpct`. Only version 1 counts (SV Node ignores other versions).
    pub fn on_sendcmpct(&mut self, id: PeerId, msg: &SendCmpct) {
        if msg.version != compact::COMPACT_BLOCK_VERSION {
            return;
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.supports = true;
            p.wants_hb = msg.announce;
        }
    }

    /// Whether new blocks go to this peer as `cmpctblock`.
    pub fn announces_compact(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(|p| p.supports && p.wants_hb)
    }

    /// A block from `id` became our tip first: BIP152's high-bandwidth selection. Returns the
    /// `sendcmpct` messages to send (to `id`, and to the peer it displaces).
    pub fn delivered_first(&mut self, id: PeerId) -> Vec<(PeerId, Message)> {
        let Some(p) = self.peers.get(&id) else { return Vec::new() };
        if !p.supports || p.bsv_relay || p.sent_invalid {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(pos) = self.hb.iter().position(|x| *x == id) {
            self.hb.remove(pos);
        } else {
            out.push((id, sendcmpct(true)));
        }
        self.hb.push_front(id);
        if let Some(p) = self.peers.get_mut(&id) {
            p.asked_hb = true;
        }
        while self.hb.len() > MAX_HB_PEERS {
            if let Some(old) = self.hb.pop_back() {
                if let Some(p) = self.peers.get_mut(&old) {
                    p.asked_hb = false;
                }
                out.push((old, sendcmpct(false)));
            }
        }
        out
    }

    /// A block `id` announced compactly turned out invalid: it is not asked for high-bandwidth
    /// announcements again. Returns the `sendcmpct(0,1)` to send if it was.
    pub fn sent_invalid(&mut self, id: PeerId) -> Option<Message> {
        let p = self.peers.get_mut(&id)?;
        p.sent_invalid = true;
        let was = p.asked_hb;
        p.asked_hb = false;
        self.hb.retain(|x| *x != id);
        was.then(|| sendcmpct(false))
    }

    /// Remembers when a block's header was first seen (later sightings keep the first).
    pub fn saw_header(&mut self, hash: BlockHash) {
        if self.header_seen.contains_key(&hash) {
            return;
        }
        self.header_seen.insert(hash, Instant::now());
        self.header_order.push_back(hash);
        while self.header_order.len() > MAX_TIMED_BLOCKS {
            if let Some(old) = self.header_order.pop_front() {
                self.header_seen.remove(&old);
            }
        }
    }

    /// Seconds since the block's header was first seen, if we timed it.
    pub fn since_header(&self, hash: &BlockHash) -> Option<f64> {
        self.header_seen.get(hash).map(|t| t.elapsed().as_secs_f64())
    }

    /// The compact form of `block`, made once per block (one nonce for every peer, as Core).
    pub fn compact_of(&mut self, block: &Arc<Block>) -> Option<CompactBlock> {
        if let Some((b, c)) = &self.recent {
            if b.hash() == block.hash() {
                return Some(c.clone());
            }
        }
        let c = compact::compact_block(block, rand::random()).ok()?;
        self.recent = Some((block.clone(), c.clone()));
        Some(c)
    }

    fn recent_block(&self, hash: &BlockHash) -> Option<Arc<Block>> {
        self.recent.as_ref().filter(|(b, _)| b.hash() == *hash).map(|(b, _)| b.clone())
    }

    /// The whole block arrived (our fallback `getdata`, or another peer): no `blocktxn` awaited.
    pub fn block_arrived(&mut self, hash: &BlockHash) {
        self.pending.remove(hash);
    }

    /// Blocks whose `blocktxn` is overdue, with the peer that owes it.
    pub fn expire(&mut self, now: u64) -> Vec<(BlockHash, PeerId)> {
        let late: Vec<(BlockHash, PeerId)> =
            self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(h, p)| (*h, p.peer)).collect();
        for (h, _) in &late {
            self.pending.remove(h);
        }
        late
    }
}

fn sendcmpct(announce: bool) -> Message {
    Message::SendCmpct(SendCmpct { announce, version: compact::COMPACT_BLOCK_VERSION })
}

/// The transactions a compact block is rebuilt from: the mempool, what left it in the last 15
/// minutes (SV Node's relay window: mined in a block we lost to a reorg, evicted, replaced), and
/// the orphan pool (transactions whose parents are in the same block).
struct NodeCandidates<'a> {
    pool: &'a Mempool,
    orphans: &'a OrphanPool,
    now: u64,
}

impl CandidateTxs for NodeCandidates<'_> {
    fn visit(&self, visit: &mut CandidateVisitor<'_>) {
        let mut stopped = false;
        self.pool.visit_candidates(self.now, &mut |entry| {
            let flow = visit(&entry.txid, &|| Some(Arc::new(entry.tx())));
            stopped = flow.is_break();
            flow
        });
        if stopped {
            return;
        }
        self.orphans.visit(&mut |txid, tx| visit(txid, &|| Some(Arc::clone(tx))));
    }
}

/// How a compact block ended, for the metric.
#[derive(Clone, Copy)]
enum Ending {
    Reconstructed,
    AfterGetBlockTxn,
    FullBlock,
    Invalid,
    Ignored,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Ending::Reconstructed => "reconstructed",
            Ending::AfterGetBlockTxn => "reconstructed_after_getblocktxn",
            Ending::FullBlock => "full_block",
            Ending::Invalid => "invalid",
            Ending::Ignored => "ignored",
        }
    }
}

impl Relay {
    /// Handles the compact block messages and `getdata` items of type MSG_CMPCT_BLOCK; returns
    /// any other message (and a `getdata`'s other items) for the rest of the relay.
    pub(super) fn on_block_relay_message(&mut self, id: PeerId, msg: Message) -> Option<Message> {
        match msg {
            Message::SendCmpct(s) => self.block_relay.on_sendcmpct(id, &s),
            Message::CmpctBlock(c) => self.on_cmpctblock(id, c),
            Message::BlockTxn(t) => self.on_blocktxn(id, t),
            Message::GetBlockTxn(r) => self.on_getblocktxn(id, &r),
            Message::GetData(items) if items.iter().any(|i| self.unstored_recent(i)) => {
                let mut rest = Vec::with_capacity(items.len());
                for item in items {
                    if !self.unstored_recent(&item) {
                        rest.push(item);
                    } else if let (Some((block, compact)), Some(peer)) = (&self.block_relay.recent, self.peers.get(&id))
                    {
                        let msg = if item.kind == inv_type::CMPCT_BLOCK {
                            Message::CmpctBlock(compact.clone())
                        } else {
                            Message::Block((**block).clone())
                        };
                        peer.sender.send(&msg);
                    }
                }
                return (!rest.is_empty()).then_some(Message::GetData(rest));
            }
            Message::GetData(items) if items.iter().any(|i| i.kind == inv_type::CMPCT_BLOCK) => {
                let mut rest = Vec::with_capacity(items.len());
                for item in items {
                    if item.kind == inv_type::CMPCT_BLOCK {
                        self.serve_compact(id, &item.hash);
                    } else {
                        rest.push(item);
                    }
                }
                return (!rest.is_empty()).then_some(Message::GetData(rest));
            }
            other => return Some(other),
        }
        None
    }

    /// Whether a `getdata` item asks for the block we forwarded before validation and the block
    /// thread has not stored yet (a peer whose reconstruction failed): it is served from memory.
    fn unstored_recent(&self, item: &InvItem) -> bool {
        (item.kind == inv_type::BLOCK || item.kind == inv_type::CMPCT_BLOCK)
            && self.block_relay.recent_block(&item.hash).is_some()
            && !self.ctx.chain.has_block(&item.hash)
    }

    /// `getdata(MSG_CMPCT_BLOCK)`: a `cmpctblock` for a block at most 5 deep, else the full block
    /// (SV Node's rule); nothing for a block we do not have on the active chain.
    fn serve_compact(&mut self, id: PeerId, hash: &BlockHash) {
        let chain = &self.ctx.chain;
        let Some(height) = chain.active_height_of(hash) else { return };
        let (tip, _) = chain.tip();
        let compact = if height + MAX_CMPCTBLOCK_DEPTH >= tip {
            let block = self.block_relay.recent_block(hash).or_else(|| chain.block(hash).map(Arc::new));
            block.and_then(|b| self.block_relay.compact_of(&b))
        } else {
            None
        };
        match compact {
            Some(c) => self.send(id, &Message::CmpctBlock(c)),
            None => {
                if let Some(raw) = chain.block_bytes(hash) {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.sender.send_shared_payload("block", &raw);
                    }
                }
            }
        }
    }

    /// `getblocktxn`: the transactions asked for, from a block at most 10 deep; a deeper block is
    /// sent whole (SV Node's `MAX_BLOCKTXN_DEPTH`). An index past the block's end costs 100.
    fn on_getblocktxn(&mut self, id: PeerId, req: &GetBlockTxn) {
        let chain = &self.ctx.chain;
        let hash = req.block_hash;
        let recent = self.block_relay.recent_block(&hash);
        let block = match (recent, chain.active_height_of(&hash)) {
            (Some(b), _) => b,
            (None, Some(height)) if height + compact::MAX_BLOCKTXN_DEPTH >= chain.tip().0 => match chain.block(&hash) {
                Some(b) => Arc::new(b),
                None => return,
            },
            (None, Some(_)) => {
                if let (Some(raw), Some(peer)) = (chain.block_bytes(&hash), self.peers.get(&id)) {
                    peer.sender.send_shared_payload("block", &raw);
                }
                return;
            }
            (None, None) => {
                debug!(peer = %id, %hash, "getblocktxn for a block we do not have");
                return;
            }
        };
        match compact::block_txn(&block, req) {
            Ok(txn) => self.send(id, &Message::BlockTxn(txn)),
            Err(e) => {
                debug!(peer = %id, %hash, error = %e, "getblocktxn refused");
                if let Some(offence) = e.misbehavior() {
                    let _ = self.ctx.registry.punish(id, offence);
                }
            }
        }
    }

    fn on_cmpctblock(&mut self, id: PeerId, cmpct: CompactBlock) {
        let hash = cmpct.header.hash();
        self.block_relay.saw_header(hash);
        let parent_known =
            self.ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner()).contains(&cmpct.header.prev_block);
        if !parent_known {
            // As SV Node: it does not connect, so ask for the headers between (not an offence).
            if !self.ctx.chain.is_initial_block_download(super::unix_now()) {
                let tree = self.ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
                let msg = super::sync::getheaders(&tree, crate::wire::Hash256::ZERO);
                drop(tree);
                self.send(id, &msg);
            }
            return;
        }
        // Claim the block before the header reaches the tree, so the schedule that runs with
        // the header does not ask another peer for it meanwhile.
        let now = millis_now();
        let claimed = self.download.claim(id, hash, now);
        self.on_headers(id, std::slice::from_ref(&cmpct.header));
        let release = |relay: &mut Relay, ending: Ending| {
            if claimed {
                relay.download.cancel(&hash);
            }
            relay.count_compact(ending);
        };
        let chain = &self.ctx.chain;
        let (tip_height, tip_hash) = chain.tip();
        let status = {
            let tree = chain.headers().read().unwrap_or_else(|e| e.into_inner());
            let tip_work = tree.get(&tip_hash).map(|e| e.chain_work);
            tree.get(&hash).map(|e| (e.status.is_valid(), e.height, Some(e.chain_work) > tip_work))
        };
        let Some((true, height, more_work)) = status else {
            // An invalid header was scored by the header checks.
            return release(self, Ending::Invalid);
        };
        if chain.has_block(&hash) || self.processing.contains(&hash) || self.block_relay.pending.contains_key(&hash) {
            return release(self, Ending::Ignored);
        }
        if !more_work || height > tip_height + MAX_COMPACT_AHEAD {
            // Not a new tip, or too far ahead: the header was enough; the download takes over.
            let ending = if claimed || self.download.requested_from(&hash) != Some(id) {
                Ending::Ignored
            } else {
                // We asked this peer for it as a compact block: fetch it whole instead.
                self.send(id, &Message::GetData(vec![InvItem::block(hash)]));
                Ending::FullBlock
            };
            return release(self, ending);
        }
        let ours = claimed || self.download.requested_from(&hash) == Some(id);
        let partial = {
            let txs = &self.ctx.txs;
            let candidates = NodeCandidates { pool: txs.mempool(), orphans: txs.orphans(), now: super::unix_now() };
            PartialBlock::new(cmpct, &candidates, chain.max_block_size())
        };
        let partial = match partial {
            Ok(p) => p,
            Err(e) => {
                debug!(peer = %id, %hash, error = %e, "compact block not usable");
                return self.compact_failed(id, hash, ours, &e);
            }
        };
        let stats = partial.stats();
        let m = &self.ctx.metrics.block_relay;
        m.compact_txs.with_label_values(&["prefilled"]).inc_by(stats.prefilled as u64);
        m.compact_txs.with_label_values(&["pool"]).inc_by(stats.found as u64);
        m.compact_txs.with_label_values(&["missing"]).inc_by(stats.missing as u64);
        debug!(peer = %id, %hash, found = stats.found, missing = stats.missing, "compact block");
        if partial.is_complete() {
            return self.compact_rebuilt(id, hash, ours, partial.complete(), Ending::Reconstructed);
        }
        if !ours {
            // Someone else is delivering it; without a round trip of our own we cannot finish.
            return self.count_compact(Ending::Ignored);
        }
        if let Some(req) = partial.request() {
            self.send(id, &Message::GetBlockTxn(req));
        }
        self.block_relay.pending.insert(hash, Pending { peer: id, partial, deadline: now + BLOCKTXN_TIMEOUT_MS });
    }

    fn on_blocktxn(&mut self, id: PeerId, txn: BlockTxn) {
        let hash = txn.block_hash;
        let Some(pending) = self.block_relay.pending.remove(&hash) else {
            debug!(peer = %id, %hash, "blocktxn for a block we are not rebuilding");
            return;
        };
        if pending.peer != id {
            self.block_relay.pending.insert(hash, pending);
            return;
        }
        let result = pending.partial.fill(txn);
        self.compact_rebuilt(id, hash, true, result, Ending::AfterGetBlockTxn);
    }

    /// A block rebuilt (or not) from a compact block and perhaps a `blocktxn`.
    fn compact_rebuilt(
        &mut self,
        id: PeerId,
        hash: BlockHash,
        ours: bool,
        block: Result<Block, CompactError>,
        ending: Ending,
    ) {
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                debug!(peer = %id, %hash, error = %e, "compact block not rebuilt");
                return self.compact_failed(id, hash, ours, &e);
            }
        };
        // The context-free checks (SV Node's `CheckBlock`: merkle root, size, coinbase, each
        // transaction's form) once, here: a wrong merkle root means a collision or a lie, and
        // the full block is fetched; any other failure is the block's, found again (and reported)
        // by the block thread.
        let height = {
            let tree = self.ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
            tree.get(&hash).map_or(self.ctx.chain.tip().0 + 1, |e| e.height)
        };
        let checked = check_block(&block, height, self.ctx.chain.params(), self.ctx.chain.max_block_size());
        if let Err(e) = &checked {
            if e.may_be_corrupted() {
                debug!(peer = %id, %hash, error = %e, "rebuilt block does not match its header");
                let err = CompactError::MerkleMismatch {
                    expected: block.header.merkle_root,
                    computed: block.merkle_root().0,
                };
                return self.compact_failed(id, hash, ours, &err);
            }
        }
        if let Some(s) = self.block_relay.since_header(&hash) {
            self.ctx.metrics.block_relay.latency.with_label_values(&["reconstructed"]).observe(s);
        }
        self.count_compact(ending);
        self.download.received(id, &hash);
        let block = Arc::new(block);
        if checked.is_ok() {
            self.forward_early(id, &block);
        }
        match self.ctx.blocks.submit_from_peer(block, id) {
            Ok(()) => {
                self.processing.insert(hash);
                self.block_relay.via_compact.insert(hash, id);
            }
            Err(e) => info!(peer = %id, %hash, error = %e, "rebuilt block dropped; it will be requested again"),
        }
    }

    /// A whole block from a peer (the answer to our fallback `getdata`, or a peer without compact
    /// blocks) goes on before validation on the same terms as a rebuilt one ([`Self::forward_early`]),
    /// once it passes the context-free checks here. Those are skipped when nobody would get it.
    pub(super) fn forward_full_block_early(&mut self, from: PeerId, block: &Arc<Block>) {
        let wanted = self.peers.keys().any(|id| *id != from && self.block_relay.announces_compact(*id));
        if !wanted || block.header.prev_block != self.ctx.chain.tip().1 {
            return;
        }
        let hash = block.hash();
        let valid_header = {
            let tree = self.ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
            tree.get(&hash).map(|e| (e.status.is_valid(), e.height))
        };
        let Some((true, height)) = valid_header else { return };
        if check_block(block, height, self.ctx.chain.params(), self.ctx.chain.max_block_size()).is_ok() {
            self.forward_early(from, block);
        }
    }

    /// Relay before full validation, as BIP152 allows for high-bandwidth peers: a block rebuilt
    /// from a compact block goes on at once to the peers that asked for high-bandwidth compact
    /// blocks, when its header is valid (proof of work, difficulty, time, version; checked by the
    /// header tree), it extends our active tip, every transaction is known and hashes to the
    /// header's merkle root, and it passed the context-free checks; scripts, inputs and amounts
    /// are checked after. Never for a peer that already sent us an invalid compact block.
    fn forward_early(&mut self, from: PeerId, block: &Arc<Block>) {
        let trusted = self.block_relay.peer(from).is_some_and(|p| !p.sent_invalid);
        let extends_tip = block.header.prev_block == self.ctx.chain.tip().1;
        if !trusted || !extends_tip || self.ctx.chain.is_initial_block_download(super::unix_now()) {
            return;
        }
        let Some(compact) = self.block_relay.compact_of(block) else { return };
        let msg = Message::CmpctBlock(compact);
        let mut sent = std::collections::HashSet::new();
        for (id, peer) in &self.peers {
            if *id != from && self.block_relay.announces_compact(*id) {
                peer.sender.send(&msg);
                sent.insert(*id);
            }
        }
        if !sent.is_empty() {
            if let Some(s) = self.block_relay.since_header(&block.hash()) {
                self.ctx.metrics.block_relay.latency.with_label_values(&["announced"]).observe(s);
            }
            debug!(hash = %block.hash(), peers = sent.len(), "compact block forwarded before validation");
        }
        self.block_relay.early = Some((block.hash(), sent));
    }

    /// Whether `peer` already got `hash` before validation.
    pub(super) fn forwarded_early(&self, hash: &BlockHash, peer: PeerId) -> bool {
        self.block_relay.early.as_ref().is_some_and(|(h, sent)| h == hash && sent.contains(&peer))
    }

    /// What SV Node does when a compact block cannot be used: score a malformed one, fetch the
    /// full block after a collision or a wrong merkle root.
    fn compact_failed(&mut self, id: PeerId, hash: BlockHash, ours: bool, err: &CompactError) {
        match err.remedy() {
            Remedy::Punish(_) => {
                if ours {
                    self.download.cancel(&hash);
                }
                if let Some(offence) = err.misbehavior() {
                    let _ = self.ctx.registry.punish(id, offence);
                }
                self.count_compact(Ending::Invalid);
            }
            Remedy::RequestFullBlock if ours => {
                self.send(id, &Message::GetData(vec![InvItem::block(hash)]));
                self.count_compact(Ending::FullBlock);
            }
            Remedy::RequestFullBlock | Remedy::Ignore => {
                if ours {
                    self.download.cancel(&hash);
                }
                self.count_compact(Ending::Ignored);
            }
        }
    }

    fn count_compact(&self, ending: Ending) {
        self.ctx.metrics.block_relay.compact_blocks.with_label_values(&[ending.label()]).inc();
    }

    /// Before a chain event is handled: high-bandwidth selection, latency, and whether the block
    /// came from a compact block (then an invalid one is not scored, as SV Node). Returns the
    /// peer to score for the block, `None` when it must not be.
    pub(super) fn block_relay_chain_event(&mut self, event: &super::ChainEvent) -> Option<PeerId> {
        let source = match event.source {
            super::BlockSource::Peer(id) => Some(id),
            super::BlockSource::Local => None,
        };
        let Some(hash) = event.hash else { return source };
        let via_compact = self.block_relay.via_compact.remove(&hash);
        let Ok(update) = &event.result else {
            if let Some(id) = via_compact {
                self.compact_block_invalid(id);
                return None;
            }
            return source;
        };
        if update.connected.iter().any(|(b, _)| b.hash() == hash) {
            if let Some(s) = self.block_relay.since_header(&hash) {
                self.ctx.metrics.block_relay.latency.with_label_values(&["validated"]).observe(s);
            }
            if let (Some(id), Some(_)) = (source, update.new_tip) {
                for (to, msg) in self.block_relay.delivered_first(id) {
                    self.send(to, &msg);
                }
            }
        }
        if update.invalid.iter().any(|(h, _)| *h == hash) {
            if let Some(id) = via_compact {
                self.compact_block_invalid(id);
                return None;
            }
        }
        source
    }

    fn compact_block_invalid(&mut self, id: PeerId) {
        debug!(peer = %id, "a block rebuilt from its compact block is invalid");
        if let Some(msg) = self.block_relay.sent_invalid(id) {
            self.send(id, &msg);
        }
    }

    /// The `cmpctblock` announcing `connected` to high-bandwidth peers, when it is one block.
    pub(super) fn compact_announcement(&mut self, connected: &[(Arc<Block>, u32)]) -> Option<Message> {
        let [(block, _)] = connected else { return None };
        self.block_relay.compact_of(block).map(Message::CmpctBlock)
    }

    /// After an announcement went out: the latency metric (unless it went out before validation).
    pub(super) fn announced(&self, connected: &[(Arc<Block>, u32)]) {
        if let Some((b, _)) = connected.last() {
            if self.block_relay.early.as_ref().is_some_and(|(h, sent)| *h == b.hash() && !sent.is_empty()) {
                return;
            }
            if let Some(s) = self.block_relay.since_header(&b.hash()) {
                self.ctx.metrics.block_relay.latency.with_label_values(&["announced"]).observe(s);
            }
        }
    }

    /// Peers that owe a `blocktxn` for too long: the block goes back to the normal download.
    pub(super) fn expire_compact(&mut self, now: u64) {
        for (hash, peer) in self.block_relay.expire(now) {
            debug!(%hash, %peer, "blocktxn timed out; fetching the block normally");
            if self.download.requested_from(&hash) == Some(peer) {
                self.download.cancel(&hash);
            }
        }
    }

    /// A single new block at our tip from a peer that speaks compact blocks is asked for as a
    /// compact block (SV Node's and Core's direct fetch): a round trip of short ids instead of the
    /// whole block when we have its transactions.
    pub(super) fn prefer_compact(&self, requests: &mut [(PeerId, Message)], wanted: &[(BlockHash, u32)]) {
        let tip = self.ctx.chain.tip().0;
        for (peer, msg) in requests.iter_mut() {
            let Message::GetData(items) = msg else { continue };
            let [item] = items.as_mut_slice() else { continue };
            let next = wanted.iter().any(|(h, height)| *h == item.hash && *height == tip + 1);
            let supports = self.block_relay.peer(*peer).is_some_and(|p| p.supports);
            if next && supports {
                item.kind = inv_type::CMPCT_BLOCK;
            }
        }
    }
}

#[cfg(test)]
#[path = "block_relay_tests.rs"]
mod tests;
