//! The protocol brain: what to do with the messages peers deliver once the handshake is done.
//!
//! One task owns the relay state (the set of ready peers and their senders) and consumes
//! `PeerEvent`s from every connection. For now it answers what a node with only the genesis block
//! can answer: `getheaders` (an empty `headers`: we have nothing after genesis), `getdata` for
//! transactions (`notfound`). Block sync, transaction relay and the mempool join it later.

use crate::peer::connection::{PeerEvent, PeerSender};
use crate::peer::PeerId;
use crate::shutdown::Shutdown;
use crate::wire::{inv_type, InvItem, Message};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tracing::debug;

/// Consumes peer events until shutdown or until every connection has gone.
pub async fn run(mut events: mpsc::Receiver<PeerEvent>, mut shutdown: Shutdown) {
    let mut peers: HashMap<PeerId, PeerSender> = HashMap::new();
    loop {
        let event = tokio::select! {
            e = events.recv() => match e { Some(e) => e, None => return },
            _ = shutdown.wait() => return,
        };
        match event {
            PeerEvent::Connected { id, sender, .. } => {
                peers.insert(id, sender);
            }
            PeerEvent::Disconnected { id } => {
                peers.remove(&id);
            }
            PeerEvent::Message { id, msg } => {
                let Some(sender) = peers.get(&id) else { continue };
                if let Some(reply) = answer(&msg) {
                    sender.send(&reply);
                } else {
                    debug!(peer = %id, command = msg.command(), "not handled yet");
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
