//! Address gossip: `addr`, `getaddr`, and advertising our own address.
//!
//! SV Node's rules (svnode-protocol.md §1.7): an unsolicited `addr` from an inbound peer is only
//! believed for the peer's own address; `getaddr` is answered only for inbound peers and only once
//! per connection, with at most 1000 addresses; we ask our outbound peers with `getaddr` and tell
//! them our own listening address.

use crate::peer::addrbook::{AddrBook, MAX_GETADDR_REPLY};
use crate::peer::local::{canonical, Family, LocalAddresses, RoutePolicy};
use crate::peer::Direction;
use crate::wire::{Message, NetAddress, TimedAddress};
use std::net::{IpAddr, SocketAddr};

/// What the relay remembers about a peer for address gossip.
#[derive(Debug, Clone)]
pub struct AddrState {
    pub addr: SocketAddr,
    pub direction: Direction,
    pub answered_getaddr: bool,
}

/// Messages to send right after the handshake: to an outbound peer, `getaddr` and `ours` (our
/// own address for it, from [`self_address`]), as Core does when it connects out.
pub fn on_connected(direction: Direction, ours: Option<SocketAddr>, services: u64, now: u64) -> Vec<Message> {
    if direction != Direction::Outbound {
        return Vec::new();
    }
    let mut out = vec![Message::GetAddr];
    out.extend(ours.map(|a| advertisement(a, services, now)));
    out
}

/// `addr` with our own address alone.
pub fn advertisement(ours: SocketAddr, services: u64, now: u64) -> Message {
    Message::Addr(vec![TimedAddress {
        time: u32::try_from(now).unwrap_or(u32::MAX),
        addr: NetAddress::new(ours, services),
    }])
}

/// The address to tell a peer at `peer` we listen at (`None` when not listening, or when we know
/// none it could use). SV Node keeps, of an unsolicited `addr` from an inbound peer, only the
/// entry with that peer's own IP, so the address that counts is the one the peer sees us at: what
/// it reported in its `version` (`addr_recv`, Core's `IsPeerAddrLocalGood` case) when routable;
/// else our best-scored address of its family (`GetLocalAddress`); else the address our
/// connection to it leaves from. On regtest loopback counts, so nodes on one machine find each
/// other by gossip.
pub fn self_address(
    local: &LocalAddresses,
    listening: bool,
    peer: IpAddr,
    reported: Option<IpAddr>,
    connection: Option<IpAddr>,
) -> Option<SocketAddr> {
    if !listening {
        return None;
    }
    let policy = local.policy();
    let usable = |ip: &IpAddr| {
        Family::of(*ip) == Family::of(peer)
            && local.is_reachable(Family::of(*ip))
            && (policy.is_routable(*ip) || (policy == RoutePolicy::TestNetwork && ip.is_loopback()))
    };
    if let Some(ip) = reported.map(canonical).filter(usable) {
        return Some(SocketAddr::new(ip, local.port()));
    }
    if let Some(best) = local.best_for(peer) {
        return Some(best);
    }
    connection.map(canonical).filter(usable).map(|ip| SocketAddr::new(ip, local.port()))
}

/// How often, on average, we tell each peer our address again (Core's
/// `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`: a day), so it stays fresh in the network's books.
pub const SELF_ADVERTISE_INTERVAL_SECS: u64 = 24 * 60 * 60;

/// When to advertise next: uniformly within ±50 % of the interval, so peers connected at the same
/// moment do not all advertise together.
pub fn next_self_advertisement(now: u64, random: u64) -> u64 {
    let half = SELF_ADVERTISE_INTERVAL_SECS / 2;
    now + half + random % (SELF_ADVERTISE_INTERVAL_SECS + 1)
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
    use crate::peer::local::Source;

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
        let ours: SocketAddr = "127.0.0.1:18444".parse().unwrap();
        let out = on_connected(Direction::Outbound, Some(ours), 0x21, 1000);
        assert_eq!(out, vec![Message::GetAddr, advertisement(ours, 0x21, 1000)]);
        assert!(on_connected(Direction::Inbound, Some(ours), 0x21, 1000).is_empty());
        assert_eq!(on_connected(Direction::Outbound, None, 0x21, 1000), vec![Message::GetAddr]);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_address_we_tell_a_peer_is_the_one_it_sees_then_our_best_then_the_connection() {
        let public = LocalAddresses::new(8333, RoutePolicy::Public, &[]);
        let peer = ip("9.9.9.9");
        let at = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(self_address(&public, true, peer, Some(ip("5.5.5.5")), Some(ip("10.0.0.2"))), at("5.5.5.5:8333"));
        assert_eq!(self_address(&public, true, peer, Some(ip("10.0.0.9")), Some(ip("10.0.0.2"))), None, "private");
        assert_eq!(self_address(&public, true, peer, None, Some(ip("7.7.7.7"))), at("7.7.7.7:8333"));
        // Our best address when the peer's view is of no use; only in the peer's family.
        public.add(ip("8.8.8.8"), Source::Manual);
        assert_eq!(self_address(&public, true, peer, Some(ip("10.0.0.9")), Some(ip("7.7.7.7"))), at("8.8.8.8:8333"));
        assert_eq!(self_address(&public, true, peer, Some(ip("5.5.5.5")), None), at("5.5.5.5:8333"));
        assert_eq!(
            self_address(&public, true, ip("2a00::9"), Some(ip("8.8.8.8")), Some(ip("2a00::1"))),
            at("[2a00::1]:8333")
        );
        assert_eq!(self_address(&public, false, peer, Some(ip("5.5.5.5")), None), None, "not listening");
        // Loopback is no address on the public networks: our best one instead.
        assert_eq!(
            self_address(&public, true, ip("127.0.0.1"), Some(ip("127.0.0.1")), Some(ip("127.0.0.1"))),
            at("8.8.8.8:8333")
        );
        // Regtest on one machine: loopback counts.
        let test = LocalAddresses::new(18444, RoutePolicy::TestNetwork, &[]);
        test.add(ip("192.0.2.2"), Source::Interface);
        assert_eq!(self_address(&test, true, ip("127.0.0.1"), Some(ip("127.0.0.1")), None), at("127.0.0.1:18444"));
        // -onlynet=ipv6: nothing told to an IPv4 peer.
        let v6 = LocalAddresses::new(18444, RoutePolicy::TestNetwork, &[Family::Ipv6]);
        assert_eq!(
            self_address(&v6, true, ip("198.51.100.1"), Some(ip("198.51.100.2")), Some(ip("198.51.100.2"))),
            None
        );
    }

    #[test]
    fn self_advertisement_comes_back_about_daily() {
        let day = SELF_ADVERTISE_INTERVAL_SECS;
        for r in [0, 1, day / 2, day, u64::MAX] {
            let next = next_self_advertisement(1000, r);
            assert!((1000 + day / 2..=1000 + day + day / 2).contains(&next), "{r}: {next}");
        }
    }
}
