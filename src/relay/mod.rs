//! The protocol brain: what to do with the messages peers deliver once the handshake is done.
//!
//! One task owns the relay state (the ready peers, their senders and per-peer sync state) and
//! consumes `PeerEvent`s from every connection: address gossip (`addr`), headers-first sync of the
//! header tree (`sync`), and `notfound` for transactions we do not have. Block download,
//! transaction relay and the mempool join it next.

mod addr;
pub mod blocks;
pub mod sync;

use crate::peer::addrbook::AddrBook;
use crate::peer::connection::{unix_now, PeerEvent, PeerSender};
use crate::peer::{PeerId, PeerRegistry};
use crate::shutdown::Shutdown;
use crate::wire::{inv_type, InvItem, Message};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info};

/// Our services, advertised with our own address.
const OUR_SERVICES: u64 = crate::peer::protocol::OUR_SERVICES;

struct Peer {
    sender: PeerSender,
    addr: addr::AddrState,
    sync: sync::PeerSync,
    /// New blocks and transactions it delivered first (for the address book when it leaves).
    useful: u64,
}

pub use crate::chain::SharedHeaders;

/// What the relay task needs from the rest of the node.
pub struct RelayContext {
    pub book: Arc<AddrBook>,
    pub listen_port: Option<u16>,
    pub headers: SharedHeaders,
    pub registry: Arc<PeerRegistry>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// NODE_NETWORK: peers without it cannot serve the chain, so we do not sync from them.
const NODE_NETWORK: u64 = 1;

/// Consumes peer events until shutdown or until every connection has gone.
pub async fn run(mut events: mpsc::Receiver<PeerEvent>, ctx: RelayContext, mut shutdown: Shutdown) {
    let RelayContext { book, listen_port, headers, registry, metrics } = ctx;
    let mut peers: HashMap<PeerId, Peer> = HashMap::new();
    loop {
        let event = tokio::select! {
            e = events.recv() => match e { Some(e) => e, None => return },
            _ = shutdown.wait() => return,
        };
        match event {
            PeerEvent::Connected { id, addr, local, direction, services, sender, .. } => {
                let now = unix_now();
                if direction == crate::peer::Direction::Outbound {
                    book.connected(addr, services, now);
                }
                for msg in addr::on_connected(direction, local, listen_port, OUR_SERVICES, now) {
                    sender.send(&msg);
                }
                if services & NODE_NETWORK != 0 {
                    let tree = headers.read().unwrap_or_else(|e| e.into_inner());
                    sender.send(&sync::getheaders(&tree, crate::wire::Hash256::ZERO));
                }
                let state = addr::AddrState { addr, direction, answered_getaddr: false };
                peers.insert(id, Peer { sender, addr: state, sync: sync::PeerSync::default(), useful: 0 });
            }
            PeerEvent::Disconnected { id } => {
                if let Some(peer) = peers.remove(&id) {
                    // An outbound peer's address is where it listens: remember how useful it was.
                    if peer.addr.direction == crate::peer::Direction::Outbound && peer.useful > 0 {
                        book.record_useful(peer.addr.addr, peer.useful);
                    }
                }
            }
            PeerEvent::Message { id, msg } => {
                let Some(peer) = peers.get_mut(&id) else { continue };
                match &msg {
                    Message::Addr(list) => {
                        addr::on_addr(&book, &peer.addr, list, unix_now());
                        metrics.addrbook_entries.set(i64::try_from(book.len()).unwrap_or(i64::MAX));
                    }
                    Message::GetAddr => {
                        if let Some(reply) = addr::on_getaddr(&book, &mut peer.addr) {
                            peer.sender.send(&reply);
                        }
                    }
                    Message::Headers(list) => {
                        let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
                        let actions = {
                            let mut tree = headers.write().unwrap_or_else(|e| e.into_inner());
                            sync::on_headers(&mut tree, &mut peer.sync, list, now)
                        };
                        for reply in &actions.reply {
                            peer.sender.send(reply);
                        }
                        if let Some(offence) = actions.offence {
                            let _ = registry.punish(id, offence);
                        }
                        let result = match (&actions.offence, actions.reply.is_empty()) {
                            (Some(_), _) => "invalid",
                            (None, false) if list.len() < 2000 => "unconnecting",
                            _ => "accepted",
                        };
                        metrics.chain_headers_received.with_label_values(&[result]).inc_by(list.len() as u64);
                        if let Some((height, hash)) = actions.new_best {
                            metrics.chain_header_height.set(i64::from(height));
                            info!(height, %hash, "new best header");
                            // This peer told us of a new best chain first: that is reputation.
                            let (now, blocks) = (unix_now(), u64::from(actions.new_blocks));
                            registry.update(id, |i| {
                                i.blocks_first += blocks;
                                i.last_useful = now;
                            });
                            peer.useful += blocks;
                        }
                    }
                    Message::GetHeaders(locator) => {
                        let reply = sync::on_getheaders(&headers.read().unwrap_or_else(|e| e.into_inner()), locator);
                        peer.sender.send(&reply);
                    }
                    Message::Inv(items) => {
                        for item in items {
                            let kind = match item.kind {
                                inv_type::TX => "tx",
                                inv_type::BLOCK => "block",
                                _ => "other",
                            };
                            metrics.inv_items_received.with_label_values(&[kind]).inc();
                        }
                        let ask = sync::on_block_inv(&headers.read().unwrap_or_else(|e| e.into_inner()), items);
                        if let Some(ask) = ask {
                            peer.sender.send(&ask);
                        }
                    }
                    _ => {
                        let replies = answer(&msg);
                        if replies.is_empty() {
                            debug!(peer = %id, command = msg.command(), "not handled yet");
                        }
                        for reply in &replies {
                            peer.sender.send(reply);
                        }
                    }
                }
            }
        }
    }
}

/// The replies a node holding no block data gives, if any.
fn answer(msg: &Message) -> Vec<Message> {
    match msg {
        Message::GetData(items) => {
            let missing: Vec<InvItem> = items.iter().filter(|i| i.kind == inv_type::TX).copied().collect();
            inventory_chunks(&missing).map(|c| Message::NotFound(c.to_vec())).collect()
        }
        _ => Vec::new(),
    }
}

/// Splits inventory so that each message fits any peer's payload limit. A peer's protoconf may
/// not advertise less than 1 MiB (`LEGACY_MAX_PAYLOAD`), and until it arrives that is all SV Node
/// assumes, so chunks of `max_inv_items(1 MiB)` = 29,126 items fit every peer.
fn inventory_chunks(items: &[InvItem]) -> std::slice::Chunks<'_, InvItem> {
    let per_message = crate::wire::inv::max_inv_items(crate::wire::message::LEGACY_MAX_PAYLOAD) as usize;
    items.chunks(per_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hash256;

    #[test]
    fn unknown_transactions_are_notfound_and_blocks_are_ignored() {
        let tx = InvItem::tx(Hash256([1; 32]));
        let block = InvItem::block(Hash256([2; 32]));
        assert_eq!(answer(&Message::GetData(vec![tx, block])), vec![Message::NotFound(vec![tx])]);
        assert!(answer(&Message::GetData(vec![block])).is_empty());
    }

    #[test]
    fn replies_are_split_to_fit_a_one_mebibyte_peer() {
        let many: Vec<InvItem> = (0..58_254u32).map(|i| InvItem::tx(Hash256::sha256d(&i.to_le_bytes()))).collect();
        let replies = answer(&Message::GetData(many));
        assert_eq!(replies.len(), 58_254usize.div_ceil(29_126));
        for r in &replies {
            let mut payload = Vec::new();
            r.encode_payload(&mut payload);
            assert!(payload.len() as u64 <= crate::wire::message::LEGACY_MAX_PAYLOAD);
        }
    }
}
