//! The protocol brain: what to do with the messages peers deliver once the handshake is done.
//!
//! One task owns the relay state (the set of ready peers and their senders) and consumes
//! `PeerEvent`s from every connection. For now it answers what a node with only the genesis block
//! can answer: `getheaders` (an empty `headers`: we have nothing after genesis), `getdata` for
//! transactions (`notfound`). Block sync, transaction relay and the mempool join it later.

mod addr;

use crate::peer::addrbook::AddrBook;
use crate::peer::connection::{unix_now, PeerEvent, PeerSender};
use crate::peer::PeerId;
use crate::shutdown::Shutdown;
use crate::wire::{inv_type, InvItem, Message};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::debug;

/// Our services, advertised with our own address.
const OUR_SERVICES: u64 = crate::peer::protocol::OUR_SERVICES;

struct Peer {
    sender: PeerSender,
    addr: addr::AddrState,
}

/// Consumes peer events until shutdown or until every connection has gone.
pub async fn run(
    mut events: mpsc::Receiver<PeerEvent>,
    book: Arc<AddrBook>,
    listen_port: Option<u16>,
    mut shutdown: Shutdown,
) {
    let mut peers: HashMap<PeerId, Peer> = HashMap::new();
    loop {
        let event = tokio::select! {
            e = events.recv() => match e { Some(e) => e, None => return },
            _ = shutdown.wait() => return,
        };
        match event {
            PeerEvent::Connected { id, addr, local, direction, services, sender } => {
                let now = unix_now();
                if direction == crate::peer::Direction::Outbound {
                    book.connected(addr, services, now);
                }
                for msg in addr::on_connected(direction, local, listen_port, OUR_SERVICES, now) {
                    sender.send(&msg);
                }
                let state = addr::AddrState { addr, direction, answered_getaddr: false };
                peers.insert(id, Peer { sender, addr: state });
            }
            PeerEvent::Disconnected { id } => {
                peers.remove(&id);
            }
            PeerEvent::Message { id, msg } => {
                let Some(peer) = peers.get_mut(&id) else { continue };
                match &msg {
                    Message::Addr(list) => {
                        addr::on_addr(&book, &peer.addr, list, unix_now());
                    }
                    Message::GetAddr => {
                        if let Some(reply) = addr::on_getaddr(&book, &mut peer.addr) {
                            peer.sender.send(&reply);
                        }
                    }
                    _ => match answer(&msg) {
                        Some(reply) => {
                            peer.sender.send(&reply);
                        }
                        None => debug!(peer = %id, command = msg.command(), "not handled yet"),
                    },
                }
            }
        }
    }
}

/// The reply a node holding only the genesis block gives, if any.
fn answer(msg: &Message) -> Option<Message> {
    match msg {
        Message::GetHeaders(_) => Some(Message::Headers(Vec::new())),
        Message::GetData(items) => {
            let missing: Vec<InvItem> = items.iter().filter(|i| i.kind == inv_type::TX).copied().collect();
            (!missing.is_empty()).then_some(Message::NotFound(missing))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::msg::BlockLocator;
    use crate::wire::Hash256;

    #[test]
    fn unknown_transactions_are_notfound_and_blocks_are_ignored() {
        let tx = InvItem::tx(Hash256([1; 32]));
        let block = InvItem::block(Hash256([2; 32]));
        assert_eq!(answer(&Message::GetData(vec![tx, block])), Some(Message::NotFound(vec![tx])));
        assert_eq!(answer(&Message::GetData(vec![block])), None);
        let locator = BlockLocator { version: 70016, hashes: vec![], stop: Hash256::ZERO };
        assert_eq!(answer(&Message::GetHeaders(locator)), Some(Message::Headers(vec![])));
    }
}
