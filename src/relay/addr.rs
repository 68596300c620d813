//! Address gossip: `addr`, `getaddr`, and advertising our own address.
//!
//! SV Node's rules (svnode-protocol.md §1.7): an unsolicited `addr` from an inbound peer is only
//! believed for the peer's own address; `getaddr` is answered only for inbound peers and only once
//! per connection, with at most 1000 addresses; we ask our outbound peers with `getaddr` and tell
//! them our own listening address.

use crate::peer::addrbook::{AddrBook, MAX_GETADDR_REPLY};
use crate::peer::Direction;
use crate::wire::{Message, NetAddress, TimedAddress};
use std::net::SocketAddr;

/// What the relay remembers about a peer for address gossip.
#[derive(Debug, Clone)]
pub struct AddrState {
    pub addr: SocketAddr,
    pub direction: Direction,
    pub answered_getaddr: bool,
}

/// Messages to send right after the handshake: to an outbound peer, `getaddr` and our own
/// address (at the IP it reached us on, with our listening port).
pub fn on_connected(
    direction: Direction,
    local: Option<SocketAddr>,
    listen_port: Option<u16>,
    services: u64,
    now: u64,
) -> Vec<Message> {
    if direction != Direction::Outbound {
        return Vec::new();
    }
    let mut out = vec![Message::GetAddr];
    if let (Some(local), Some(port)) = (local, listen_port) {
        let ours = SocketAddr::new(local.ip(), port);
        out.push(Message::Addr(vec![TimedAddress {
            time: u32::try_from(now).unwrap_or(u32::MAX),
            addr: NetAddress::new(ours, services),
        }]));
    }
    out
}

/// Handles an `addr`: stores what we believe of it, returns how many addresses were new.
pub fn on_addr(book: &AddrBook, peer: &AddrState, addrs: &[TimedAddress], now: u64) -> usize {
    let believed: Vec<TimedAddress> = match peer.direction {
        Direction::Outbound => addrs.to_vec(),
        Direction::Inbound => addrs.iter().filter(|a| a.addr.socket_addr().ip() == peer.addr.ip()).copied().collect(),
    };
    book.add(&believed, peer.addr.ip(), now)
}

/// Handles a `getaddr`: the reply, if this peer may have one.
pub fn on_getaddr(book: &AddrBook, peer: &mut AddrState) -> Option<Message> {
    if peer.direction != Direction::Inbound || peer.answered_getaddr {
        return None;
    }
    peer.answered_getaddr = true;
    Some(Message::Addr(book.sample(MAX_GETADDR_REPLY)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ta(addr: &str) -> TimedAddress {
        TimedAddress { time: 100, addr: NetAddress::new(addr.parse().unwrap(), 1) }
    }

    #[test]
    fn inbound_peers_are_believed_only_about_themselves() {
        let book = AddrBook::in_memory(100);
        let peer = AddrState {
            addr: "10.0.0.5:5555".parse().unwrap(),
            direction: Direction::Inbound,
            answered_getaddr: false,
        };
        assert_eq!(on_addr(&book, &peer, &[ta("10.0.0.5:8333"), ta("1.2.3.4:8333")], 1000), 1);
        let outbound = AddrState { direction: Direction::Outbound, ..peer };
        assert_eq!(on_addr(&book, &outbound, &[ta("1.2.3.4:8333"), ta("1.2.3.5:8333")], 1000), 2);
    }

    #[test]
    fn getaddr_is_answered_once_and_only_for_inbound_peers() {
        let book = AddrBook::in_memory(100);
        book.add(&[ta("1.2.3.4:8333")], "9.9.9.9".parse().unwrap(), 1000);
        let mut inbound = AddrState {
            addr: "10.0.0.5:5555".parse().unwrap(),
            direction: Direction::Inbound,
            answered_getaddr: false,
        };
        assert_eq!(on_getaddr(&book, &mut inbound), Some(Message::Addr(book.sample(10))));
        assert_eq!(on_getaddr(&book, &mut inbound), None);
        let mut outbound = AddrState { direction: Direction::Outbound, answered_getaddr: false, ..inbound };
        assert_eq!(on_getaddr(&book, &mut outbound), None);
    }

    #[test]
    fn outbound_peers_are_asked_and_told_our_address() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let out = on_connected(Direction::Outbound, Some(local), Some(18444), 0x21, 1000);
        assert_eq!(out[0], Message::GetAddr);
        match &out[1] {
            Message::Addr(a) => assert_eq!(a[0].addr.socket_addr(), "127.0.0.1:18444".parse().unwrap()),
            other => panic!("{other:?}"),
        }
        assert!(on_connected(Direction::Inbound, Some(local), Some(18444), 0x21, 1000).is_empty());
        assert_eq!(on_connected(Direction::Outbound, Some(local), None, 0x21, 1000), vec![Message::GetAddr]);
    }
}
