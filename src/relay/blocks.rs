//! Block download: which block to ask which peer for, and when to give up on a peer.
//!
//! A pure state machine, tested with a fake clock (`now` in milliseconds is a parameter). The relay
//! task feeds it the blocks the chain lacks (`ChainState::blocks_to_download`, ascending height) and
//! the peers that can serve them, and sends the `getdata` it returns.
//!
//! Rules (SV Node's, svnode-protocol.md §5, with a shorter timeout):
//! - at most [`MAX_BLOCKS_IN_FLIGHT_PER_PEER`] blocks requested from one peer at a time;
//! - a block is requested from one peer at a time; the least-loaded peer that has announced a
//!   chain at least that high gets it, so several peers download in parallel;
//! - a block not delivered within [`BLOCK_TIMEOUT_MS`] is freed and re-requested from another
//!   peer; the slow peer is not asked for that block again while another peer can serve it;
//! - a peer that leaves frees its blocks at once.
//!
//! Blocks may arrive in any order; the chain state connects them in order.

use std::collections::{HashMap, HashSet};

use crate::peer::PeerId;
use crate::wire::{BlockHash, InvItem, Message};

/// SV Node's `MAX_BLOCKS_IN_TRANSIT_PER_PEER` (src/validation.h:111).
pub const MAX_BLOCKS_IN_FLIGHT_PER_PEER: usize = 16;

/// How long a requested block may take before another peer is asked. SV Node waits a block interval
/// and more (10 min on every network, also regtest); a relay on a local or well-connected network
/// gets a 1 MB block in well under a second, so a minute already means the peer is not serving.
/// Mainnet blocks of hundreds of MB from a slow peer may need longer: it scales with the blocks the
/// peer has queued ahead of this one.
pub const BLOCK_TIMEOUT_MS: u64 = 60_000;

/// Extra time per block queued at the same peer before this one.
const TIMEOUT_PER_QUEUED_MS: u64 = 10_000;

/// How far past the active tip we request blocks (SV Node's `-blockdownloadwindow` default 1024):
/// blocks further ahead could not be connected yet and would only fill memory.
pub const DOWNLOAD_WINDOW: u32 = 1024;

#[derive(Debug, Clone, Copy)]
struct Request {
    peer: PeerId,
    deadline: u64,
}

#[derive(Debug, Default, Clone)]
struct PeerState {
    in_flight: usize,
    /// The height of the best chain the peer has shown us (version start height, headers, invs).
    best_height: u32,
    /// Its reputation: among equally loaded peers the better one is asked first.
    rank: f64,
}

/// The download schedule.
#[derive(Debug, Default)]
pub struct BlockDownload {
    requests: HashMap<BlockHash, Request>,
    peers: HashMap<PeerId, PeerState>,
    /// Peers that timed out on a block: asked again only if nobody else can serve it.
    slow: HashMap<BlockHash, HashSet<PeerId>>,
}

impl BlockDownload {
    pub fn new() -> BlockDownload {
        BlockDownload::default()
    }

    /// A peer that serves blocks (NODE_NETWORK) finished its handshake.
    pub fn add_peer(&mut self, peer: PeerId, best_height: u32) {
        self.peers.entry(peer).or_default().best_height = best_height;
    }

    /// The peer's reputation changed.
    pub fn set_rank(&mut self, peer: PeerId, rank: f64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.rank = rank;
        }
    }

    /// The peer showed a chain this high.
    pub fn peer_height(&mut self, peer: PeerId, height: u32) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.best_height = p.best_height.max(height);
        }
    }

    /// The peer left: its requests are freed for others.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<BlockHash> {
        self.peers.remove(&peer);
        let freed: Vec<BlockHash> = self.requests.iter().filter(|(_, r)| r.peer == peer).map(|(h, _)| *h).collect();
        for h in &freed {
            self.requests.remove(h);
        }
        for set in self.slow.values_mut() {
            set.remove(&peer);
        }
        freed
    }

    pub fn is_requested(&self, hash: &BlockHash) -> bool {
        self.requests.contains_key(hash)
    }

    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    pub fn peer_in_flight(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.in_flight)
    }

    /// A block arrived from `peer`. Returns whether we had asked that peer for it (a block from a
    /// peer we did not ask is unsolicited; it is still processed, and frees the request).
    pub fn received(&mut self, peer: PeerId, hash: &BlockHash) -> bool {
        self.slow.remove(hash);
        match self.requests.remove(hash) {
            Some(r) => {
                if let Some(p) = self.peers.get_mut(&r.peer) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
                r.peer == peer
            }
            None => false,
        }
    }

    /// The peer said it does not have the block: free it for someone else now.
    pub fn not_found(&mut self, peer: PeerId, hash: &BlockHash) {
        if self.requests.get(hash).is_some_and(|r| r.peer == peer) {
            self.free(hash, peer);
        }
    }

    fn free(&mut self, hash: &BlockHash, peer: PeerId) {
        self.requests.remove(hash);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
        self.slow.entry(*hash).or_default().insert(peer);
    }

    /// The peer the block is requested from, if it is.
    pub fn requested_from(&self, hash: &BlockHash) -> Option<PeerId> {
        self.requests.get(hash).map(|r| r.peer)
    }

    /// Records that `peer` is delivering the block outside the schedule (it announced it as a
    /// compact block and we are rebuilding it), so the schedule does not ask anyone else meanwhile.
    /// Returns false, and changes nothing, if the block is already requested.
    pub fn claim(&mut self, peer: PeerId, hash: BlockHash, now: u64) -> bool {
        if self.requests.contains_key(&hash) {
            return false;
        }
        let state = self.peers.entry(peer).or_default();
        state.in_flight += 1;
        self.requests.insert(hash, Request { peer, deadline: now + BLOCK_TIMEOUT_MS });
        true
    }

    /// Forgets a request without blaming its peer (the block is not wanted from it after all).
    pub fn cancel(&mut self, hash: &BlockHash) {
        if let Some(r) = self.requests.remove(hash) {
            if let Some(p) = self.peers.get_mut(&r.peer) {
                p.in_flight = p.in_flight.saturating_sub(1);
            }
        }
    }

    /// Frees requests past their deadline; returns the blocks and the peers that let them time out.
    pub fn expire(&mut self, now: u64) -> Vec<(BlockHash, PeerId)> {
        let late: Vec<(BlockHash, PeerId)> =
            self.requests.iter().filter(|(_, r)| r.deadline <= now).map(|(h, r)| (*h, r.peer)).collect();
        for (hash, peer) in &late {
            self.free(hash, *peer);
        }
        late
    }

    /// Assigns the wanted blocks (ascending height, already limited to the download window) to
    /// peers; returns one `getdata` per peer that got blocks.
    pub fn schedule(&mut self, wanted: &[(BlockHash, u32)], now: u64) -> Vec<(PeerId, Message)> {
        let mut batches: HashMap<PeerId, Vec<InvItem>> = HashMap::new();
        for (hash, height) in wanted {
            if self.requests.contains_key(hash) {
                continue;
            }
            let slow = self.slow.get(hash);
            let candidate = |fresh_only: bool| {
                self.peers
                    .iter()
                    .filter(|(_, p)| p.in_flight < MAX_BLOCKS_IN_FLIGHT_PER_PEER && p.best_height >= *height)
                    .filter(|(id, _)| !fresh_only || slow.is_none_or(|s| !s.contains(id)))
                    .min_by(|(a, p), (b, q)| {
                        (p.in_flight, -p.rank)
                            .partial_cmp(&(q.in_flight, -q.rank))
                            .unwrap_or(std::cmp::Ordering::Equal)
                            .then(a.cmp(b))
                    })
                    .map(|(id, _)| *id)
            };
            let Some(peer) = candidate(true).or_else(|| candidate(false)) else { continue };
            let state = self.peers.get_mut(&peer).expect("candidate is a known peer");
            let deadline = now + BLOCK_TIMEOUT_MS + TIMEOUT_PER_QUEUED_MS * state.in_flight as u64;
            state.in_flight += 1;
            self.requests.insert(*hash, Request { peer, deadline });
            batches.entry(peer).or_default().push(InvItem::block(*hash));
        }
        let mut out: Vec<(PeerId, Message)> =
            batches.into_iter().map(|(p, items)| (p, Message::GetData(items))).collect();
        out.sort_by_key(|(p, _)| *p);
        out
    }
}

/// Most new blocks announced by `headers` at once (SV Node's `MAX_BLOCKS_TO_ANNOUNCE`,
/// src/validation.h:206); more than that, and peers get an `inv` of the newest and sync the rest.
pub const MAX_BLOCKS_TO_ANNOUNCE: usize = 8;

/// How we tell a peer about blocks newly connected to our active chain (ascending height), as SV
/// Node does: `headers` to a peer that sent `sendheaders`, when there are few enough; an `inv` of
/// the newest block otherwise.
pub fn announcement(new_blocks: &[crate::wire::BlockHeader], prefers_headers: bool) -> Option<Message> {
    let newest = new_blocks.last()?;
    if prefers_headers && new_blocks.len() <= MAX_BLOCKS_TO_ANNOUNCE {
        Some(Message::Headers(new_blocks.to_vec()))
    } else {
        Some(Message::Inv(vec![InvItem::block(newest.hash())]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hash256;

    fn hashes(n: u32) -> Vec<(BlockHash, u32)> {
        (1..=n).map(|h| (Hash256::sha256d(&h.to_le_bytes()), h)).collect()
    }

    fn requested(out: &[(PeerId, Message)], peer: PeerId) -> usize {
        out.iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, m)| match m {
                Message::GetData(items) => items.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn announcements_are_headers_for_peers_that_asked_and_few_blocks() {
        let params = crate::chain::Network::Regtest.params();
        let genesis = params.genesis_block().header;
        let mut headers = Vec::new();
        let mut prev = genesis;
        for i in 0..9u32 {
            prev = crate::wire::BlockHeader { prev_block: prev.hash(), nonce: i, ..prev };
            headers.push(prev);
        }
        assert_eq!(announcement(&headers[..8], true), Some(Message::Headers(headers[..8].to_vec())));
        let newest_inv = |h: &crate::wire::BlockHeader| Some(Message::Inv(vec![InvItem::block(h.hash())]));
        assert_eq!(announcement(&headers, true), newest_inv(&headers[8]), "more than 8: inv of the newest");
        assert_eq!(announcement(&headers[..1], false), newest_inv(&headers[0]));
        assert_eq!(announcement(&[], true), None);
    }

    #[test]
    fn at_most_sixteen_per_peer_spread_over_peers() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 100);
        d.add_peer(PeerId(2), 100);
        let out = d.schedule(&hashes(100), 0);
        assert_eq!(requested(&out, PeerId(1)), MAX_BLOCKS_IN_FLIGHT_PER_PEER);
        assert_eq!(requested(&out, PeerId(2)), MAX_BLOCKS_IN_FLIGHT_PER_PEER);
        assert_eq!(d.in_flight(), 32);
        // Nothing more until something arrives.
        assert!(d.schedule(&hashes(100), 1).is_empty());
        let (first, _) = hashes(1)[0];
        // Ties go to the lower peer id, so the first block was asked of peer 1.
        assert!(d.received(PeerId(1), &first));
        assert_eq!(d.in_flight(), 31);
        assert_eq!(d.schedule(&hashes(100), 2).len(), 1);
    }

    #[test]
    fn a_peer_is_not_asked_for_blocks_above_its_chain() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 5);
        let out = d.schedule(&hashes(10), 0);
        assert_eq!(requested(&out, PeerId(1)), 5);
        d.peer_height(PeerId(1), 10);
        assert_eq!(requested(&d.schedule(&hashes(10), 0), PeerId(1)), 5);
    }

    #[test]
    fn timeouts_move_the_block_to_another_peer() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 10);
        let wanted = hashes(1);
        assert_eq!(requested(&d.schedule(&wanted, 0), PeerId(1)), 1);
        d.add_peer(PeerId(2), 10);
        assert!(d.expire(BLOCK_TIMEOUT_MS - 1).is_empty());
        assert_eq!(d.expire(BLOCK_TIMEOUT_MS), vec![(wanted[0].0, PeerId(1))]);
        assert_eq!(d.peer_in_flight(PeerId(1)), 0);
        let out = d.schedule(&wanted, BLOCK_TIMEOUT_MS);
        assert_eq!(requested(&out, PeerId(2)), 1, "the slow peer is passed over");
        // The block from the slow peer still counts (unsolicited now), and frees the request.
        assert!(!d.received(PeerId(1), &wanted[0].0));
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn the_slow_peer_is_asked_again_when_it_is_the_only_one() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 10);
        let wanted = hashes(1);
        d.schedule(&wanted, 0);
        d.expire(BLOCK_TIMEOUT_MS);
        assert_eq!(requested(&d.schedule(&wanted, BLOCK_TIMEOUT_MS), PeerId(1)), 1);
    }

    #[test]
    fn a_leaving_peer_frees_its_blocks() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 10);
        d.add_peer(PeerId(2), 10);
        d.schedule(&hashes(4), 0);
        let freed = d.remove_peer(PeerId(1));
        assert_eq!(freed.len(), 2);
        assert_eq!(d.in_flight(), 2);
        let out = d.schedule(&hashes(4), 1);
        assert_eq!(requested(&out, PeerId(2)), 2);
        assert_eq!(d.peer_in_flight(PeerId(2)), 4);
    }

    #[test]
    fn notfound_frees_the_block_at_once() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 10);
        d.add_peer(PeerId(2), 10);
        let wanted = hashes(1);
        let out = d.schedule(&wanted, 0);
        let asked = out[0].0;
        d.not_found(asked, &wanted[0].0);
        let out = d.schedule(&wanted, 1);
        assert_ne!(out[0].0, asked);
    }

    #[test]
    fn a_claimed_block_is_not_scheduled_and_a_cancelled_one_is() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 10);
        d.add_peer(PeerId(2), 10);
        let wanted = hashes(1);
        assert!(d.claim(PeerId(2), wanted[0].0, 0));
        assert!(!d.claim(PeerId(1), wanted[0].0, 0), "one claim at a time");
        assert_eq!(d.requested_from(&wanted[0].0), Some(PeerId(2)));
        assert!(d.schedule(&wanted, 0).is_empty());
        d.cancel(&wanted[0].0);
        assert_eq!(d.peer_in_flight(PeerId(2)), 0);
        let out = d.schedule(&wanted, 1);
        assert_eq!(out.len(), 1, "free again, and the claiming peer is not marked slow");
    }

    #[test]
    fn later_requests_at_a_busy_peer_get_more_time() {
        let mut d = BlockDownload::new();
        d.add_peer(PeerId(1), 10);
        d.schedule(&hashes(3), 0);
        let expired = d.expire(BLOCK_TIMEOUT_MS);
        assert_eq!(expired.len(), 1, "only the first request is late at the base timeout");
    }
}
