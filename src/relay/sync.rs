//! Headers-first sync: what to send and whom to blame when `headers`, `getheaders` and block
//! `inv`s arrive.
//!
//! SV Node's behaviour (svnode-protocol.md §1.7, §3.2, §5): after the handshake we ask every
//! NODE_NETWORK peer for headers from our locator; a full reply (2000 headers) is followed at once
//! by another `getheaders`; a reply whose first header does not connect gets a `getheaders` back
//! and, every tenth time, +20 (`too-many-unconnected-headers`); invalid headers cost what
//! `HeaderError::misbehavior` says; a block `inv` for an unknown hash is answered with
//! `getheaders` up to it. We answer peers' `getheaders` from our header tree.
//!
//! Plain functions over the tree and a per-peer counter, tested without sockets.

use crate::chain::{HeaderError, HeaderTree};
use crate::peer::protocol::PROTOCOL_VERSION;
use crate::peer::Misbehavior;
use crate::wire::msg::BlockLocator;
use crate::wire::{inv_type, BlockHeader, Hash256, InvItem, Message};

/// A full `headers` reply: the peer has more.
const MAX_HEADERS_RESULTS: usize = 2000;
/// Every this many unconnecting announcements costs the peer +20 (SV Node's `MAX_UNCONNECTING_HEADERS`).
const MAX_UNCONNECTING_HEADERS: u32 = 10;

/// Per-peer sync state.
#[derive(Debug, Default, Clone)]
pub struct PeerSync {
    unconnecting: u32,
}

/// What handling one message asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncActions {
    pub reply: Vec<Message>,
    pub offence: Option<Misbehavior>,
    /// The best header changed (for logs and metrics).
    pub new_best: Option<(u32, Hash256)>,
    /// How many headers of the new best chain this message brought.
    pub new_blocks: u32,
}

/// The `getheaders` we send: our locator, no stop.
pub fn getheaders(tree: &HeaderTree, stop: Hash256) -> Message {
    Message::GetHeaders(BlockLocator { version: PROTOCOL_VERSION as u32, hashes: tree.locator(), stop })
}

/// The offence a header error earns, from the one table.
pub fn offence(err: &HeaderError) -> Option<Misbehavior> {
    err.misbehavior()?;
    Some(match err {
        HeaderError::HighHash { .. } => Misbehavior::HeaderHighHash,
        HeaderError::BadDiffBits { .. } => Misbehavior::HeaderBadDiffBits,
        HeaderError::PrevNotFound { .. } => Misbehavior::HeaderPrevNotFound,
        HeaderError::BadPrevBlock { .. } => Misbehavior::HeaderBadPrev,
        HeaderError::CheckpointMismatch { .. } | HeaderError::ForkBeforeCheckpoint { .. } => {
            Misbehavior::HeaderCheckpoint
        }
        HeaderError::TooManyHeaders { .. } => Misbehavior::TooManyHeaders,
        HeaderError::NonContinuous { .. } => Misbehavior::NonContinuousHeaders,
        _ => return None,
    })
}

/// Handles a `headers` message from a peer.
pub fn on_headers(tree: &mut HeaderTree, peer: &mut PeerSync, headers: &[BlockHeader], now: u32) -> SyncActions {
    let mut out = SyncActions::default();
    let Some(first) = headers.first() else { return out };
    if !tree.contains(&first.prev_block) {
        // Announcement of a chain we cannot place: ask for the path to it.
        peer.unconnecting += 1;
        out.reply.push(getheaders(tree, Hash256::ZERO));
        if peer.unconnecting % MAX_UNCONNECTING_HEADERS == 0 {
            out.offence = Some(Misbehavior::UnconnectingHeaders);
        }
        return out;
    }
    peer.unconnecting = 0;
    match tree.accept_headers(headers, now) {
        Err(err) => out.offence = offence(&err),
        Ok(accepted) => {
            if let Some(err) = &accepted.error {
                out.offence = offence(err);
            }
            if let Some(change) = accepted.tip_change {
                out.new_best = Some((change.new_tip.height, change.new_tip.hash));
                out.new_blocks = change.new_tip.height.saturating_sub(change.fork.height);
            }
            if out.offence.is_none() && accepted.error.is_none() && headers.len() == MAX_HEADERS_RESULTS {
                if let Some(last) = accepted.last {
                    let idx = tree.index_of(&last.hash).expect("just accepted");
                    out.reply.push(Message::GetHeaders(BlockLocator {
                        version: PROTOCOL_VERSION as u32,
                        hashes: tree.locator_from(idx),
                        stop: Hash256::ZERO,
                    }));
                }
            }
        }
    }
    out
}

/// Handles block `inv`s: unknown blocks are asked for by `getheaders` up to the last of them.
pub fn on_block_inv(tree: &HeaderTree, items: &[InvItem]) -> Option<Message> {
    let last_unknown = items.iter().rev().find(|i| i.kind == inv_type::BLOCK && !tree.contains(&i.hash))?;
    Some(getheaders(tree, last_unknown.hash))
}

/// Answers a peer's `getheaders`.
pub fn on_getheaders(tree: &HeaderTree, locator: &BlockLocator) -> Message {
    Message::Headers(tree.headers_after(&locator.hashes, &locator.stop, MAX_HEADERS_RESULTS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Network;

    /// Mines a regtest header on `prev` (regtest's target accepts about half of all hashes).
    fn mine(tree: &HeaderTree, prev: &BlockHeader, time: u32) -> BlockHeader {
        let mut h = BlockHeader {
            version: 4,
            prev_block: prev.hash(),
            merkle_root: Hash256([3; 32]),
            time,
            bits: 0x207fffff,
            nonce: 0,
        };
        while !crate::chain::check_proof_of_work(&h.hash(), h.bits, tree.params()) {
            h.nonce += 1;
        }
        h
    }

    fn chain(tree: &HeaderTree, n: usize) -> Vec<BlockHeader> {
        let mut prev = tree.genesis().header;
        (0..n)
            .map(|i| {
                prev = mine(tree, &prev, prev.time + 1 + i as u32 % 2);
                prev
            })
            .collect()
    }

    const NOW: u32 = 2_000_000_000;

    #[test]
    fn a_connecting_batch_moves_the_best_header_and_a_full_one_asks_for_more() {
        let mut tree = HeaderTree::new(Network::Regtest.params().clone());
        let headers = chain(&tree, 2000);
        let mut peer = PeerSync::default();
        let out = on_headers(&mut tree, &mut peer, &headers, NOW);
        assert_eq!(out.new_best, Some((2000, headers[1999].hash())));
        assert!(out.offence.is_none());
        match &out.reply[..] {
            [Message::GetHeaders(l)] => assert_eq!(l.hashes[0], headers[1999].hash()),
            other => panic!("{other:?}"),
        }
        // Answering a peer from the tree.
        let genesis_locator = BlockLocator { version: 70016, hashes: vec![tree.genesis().hash], stop: Hash256::ZERO };
        match on_getheaders(&tree, &genesis_locator) {
            Message::Headers(h) => assert_eq!(h.len(), 2000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unconnecting_announcements_get_getheaders_and_every_tenth_costs_twenty() {
        let mut tree = HeaderTree::new(Network::Regtest.params().clone());
        let headers = chain(&tree, 3);
        let mut peer = PeerSync::default();
        for i in 1..=20 {
            let out = on_headers(&mut tree, &mut peer, &headers[2..], NOW);
            assert!(matches!(out.reply[..], [Message::GetHeaders(_)]));
            assert_eq!(out.offence.is_some(), i % 10 == 0, "announcement {i}");
        }
    }

    #[test]
    fn invalid_headers_are_scored_and_a_future_one_is_not() {
        let mut tree = HeaderTree::new(Network::Regtest.params().clone());
        let mut headers = chain(&tree, 2);
        let mut peer = PeerSync::default();
        let mut bad_bits = headers[0];
        bad_bits.bits = 0x207ffffe;
        assert_eq!(on_headers(&mut tree, &mut peer, &[bad_bits], NOW).offence, Some(Misbehavior::HeaderBadDiffBits));
        let mut broken = headers.clone();
        broken[1].prev_block = Hash256([9; 32]);
        assert_eq!(on_headers(&mut tree, &mut peer, &broken, NOW).offence, Some(Misbehavior::NonContinuousHeaders));
        headers[0].time = NOW + 7201;
        let future = mine(&tree, &tree.genesis().header, NOW + 7201);
        assert_eq!(on_headers(&mut tree, &mut peer, &[future], NOW).offence, None, "time-too-new is not punished");
        assert_eq!(tree.best_height(), 0);
    }

    #[test]
    fn unknown_block_invs_are_asked_for_with_getheaders() {
        let tree = HeaderTree::new(Network::Regtest.params().clone());
        let unknown = Hash256([7; 32]);
        match on_block_inv(&tree, &[InvItem::tx(Hash256([1; 32])), InvItem::block(unknown)]) {
            Some(Message::GetHeaders(l)) => assert_eq!(l.stop, unknown),
            other => panic!("{other:?}"),
        }
        assert_eq!(on_block_inv(&tree, &[InvItem::block(tree.genesis().hash)]), None);
    }
}
