//! Our own addresses: which IPs peers can reach us at, how sure we are of each, and which one to
//! tell a given peer.
//!
//! As SV Node and Bitcoin Core (`mapLocalHost`, `AddLocal`, `SeenLocal`, `GetLocal`):
//! - sources, each with Core's base score: an interface's address found by `-discover` (1), an
//!   explicit `-bind` address (2), an address a gateway mapped for us (`-natpmp`, 3), an operator's
//!   `-externalip` (4);
//! - every peer that reports one of them back in its `version` (`addr_recv`) adds 1 to its score;
//!   an address peers report that we did not know (we are behind a NAT nobody mapped) is counted
//!   by distinct reporters and, once two peers agree, used as ours with that count as its score —
//!   the most-confirmed wins, as one lying peer must not choose our advertised address;
//! - the address told to a peer is the best-scored one of the peer's family, on a network we
//!   reach (`-onlynet`).
//!
//! Routability follows Core's `IsRoutable` on the public networks (no private, loopback,
//! link-local, documentation or shared ranges). On regtest the documentation and private ranges
//! count as routable, so that test networks built from 198.51.100.0/24, 203.0.113.0/24 and
//! 2001:db8::/32 behave as the internet would; loopback, link-local and unspecified never do.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

/// Where an address of ours came from; the discriminant is Core's base score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Peers reported it in their `version` (no base score: it is the count of reporters).
    Peers = 0,
    /// An interface's address (`-discover`).
    Interface = 1,
    /// An explicit `-bind` address.
    Bind = 2,
    /// Mapped for us by a gateway (`-natpmp`).
    Mapped = 3,
    /// `-externalip`.
    Manual = 4,
}

/// The two networks we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match canonical(ip) {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// The name used by `-onlynet` and `getnetworkinfo.networks`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        match s.to_ascii_lowercase().as_str() {
            "ipv4" => Some(Family::Ipv4),
            "ipv6" => Some(Family::Ipv6),
            _ => None,
        }
    }
}

/// Which addresses count as reachable from other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePolicy {
    /// Core's `IsRoutable`.
    Public,
    /// Regtest: documentation and private ranges count too (test networks are built from them).
    TestNetwork,
}

/// IPv4-mapped IPv6 addresses are IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl RoutePolicy {
    /// Whether a peer elsewhere could reach `ip`.
    pub fn is_routable(self, ip: IpAddr) -> bool {
        let test = self == RoutePolicy::TestNetwork;
        match canonical(ip) {
            IpAddr::V4(v4) => v4_routable(v4, test),
            IpAddr::V6(v6) => v6_routable(v6, test),
        }
    }
}

fn v4_routable(ip: Ipv4Addr, test: bool) -> bool {
    let o = ip.octets();
    let never = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_link_local() // RFC 3927
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0;
    let documentation = ip.is_documentation(); // RFC 5737
    let private = ip.is_private() // RFC 1918
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // RFC 2544
        || (o[0] == 100 && (o[1] & 0xc0) == 64); // RFC 6598
    !never && (test || !(documentation || private))
}

fn v6_routable(ip: Ipv6Addr, test: bool) -> bool {
    let s = ip.segments();
    let never = ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || (s[0] & 0xffc0) == 0xfe80; // RFC 4862 link-local
    let documentation = s[0] == 0x2001 && s[1] == 0x0db8; // RFC 3849
    let private = (s[0] & 0xfe00) == 0xfc00 // RFC 4193 unique local
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // RFC 4843 ORCHID
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020); // RFC 7343 ORCHIDv2
    !never && (test || !(documentation || private))
}

/// One of our addresses as `getnetworkinfo.localaddresses` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddress {
    pub ip: IpAddr,
    pub port: u16,
    pub score: u32,
    pub source: Source,
}

/// Reported addresses we track before any is confirmed: a bound, so peers cannot grow the map.
const MAX_REPORTED: usize = 32;
/// Distinct peers that must report an unknown address before we take it as ours.
const CONFIRMATIONS: usize = 2;

#[derive(Debug, Default)]
struct Inner {
    /// Our addresses by IP: the best source and the score.
    known: HashMap<IpAddr, (Source, u32)>,
    /// Reported addresses of ours, each with the peers (by IP) that reported it.
    reported: HashMap<IpAddr, HashSet<IpAddr>>,
}

/// Our own addresses, shared by the connections (which report `addr_recv`), the relay (which
/// advertises) and RPC (which lists them).
#[derive(Debug)]
pub struct LocalAddresses {
    port: u16,
    policy: RoutePolicy,
    /// Networks we connect out to and advertise on (`-onlynet`; both by default).
    reachable: Vec<Family>,
    inner: Mutex<Inner>,
}

impl LocalAddresses {
    /// `port` is the P2P port we listen on; `reachable` empty means every network.
    pub fn new(port: u16, policy: RoutePolicy, reachable: &[Family]) -> LocalAddresses {
        let reachable = if reachable.is_empty() { vec![Family::Ipv4, Family::Ipv6] } else { reachable.to_vec() };
        LocalAddresses { port, policy, reachable, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> RoutePolicy {
        self.policy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether we make automatic outbound connections to, and advertise on, `family`.
    pub fn is_reachable(&self, family: Family) -> bool {
        self.reachable.contains(&family)
    }

    /// Adds `ip` as ours; returns false when it is not routable or its network is not reachable.
    /// A better source raises the score to its base; a repeated or weaker one changes nothing.
    pub fn add(&self, ip: IpAddr, source: Source) -> bool {
        let ip = canonical(ip);
        if !self.policy.is_routable(ip) || !self.is_reachable(Family::of(ip)) {
            return false;
        }
        let mut inner = self.lock();
        let entry = inner.known.entry(ip).or_insert((source, source as u32));
        if source > entry.0 {
            let seen = entry.1.saturating_sub(entry.0 as u32);
            *entry = (source, source as u32 + seen);
        }
        true
    }

    /// Replaces the addresses of `source` with `ips` (a gateway's mappings change as a set).
    pub fn replace(&self, source: Source, ips: &[IpAddr]) {
        self.lock().known.retain(|_, (s, _)| *s != source);
        for ip in ips {
            self.add(*ip, source);
        }
    }

    /// A peer at `reporter` says it reached us at `ip` (its `version`'s `addr_recv`).
    pub fn seen(&self, ip: IpAddr, reporter: IpAddr) {
        let (ip, reporter) = (canonical(ip), canonical(reporter));
        if !self.policy.is_routable(ip) || !self.is_reachable(Family::of(ip)) {
            return;
        }
        let mut inner = self.lock();
        let Inner { known, reported } = &mut *inner;
        if !reported.contains_key(&ip) && reported.len() >= MAX_REPORTED {
            // Keep the best-confirmed; forget one reported only once.
            let Some(drop) = reported.iter().find(|(_, r)| r.len() < CONFIRMATIONS).map(|(k, _)| *k) else { return };
            reported.remove(&drop);
        }
        let reporters = reported.entry(ip).or_default();
        if !reporters.insert(reporter) {
            return;
        }
        match known.get_mut(&ip) {
            Some((_, score)) => *score = score.saturating_add(1),
            None if reporters.len() >= CONFIRMATIONS => {
                known.insert(ip, (Source::Peers, reporters.len() as u32));
            }
            None => {}
        }
    }

    /// Every address of ours, best first.
    pub fn list(&self) -> Vec<LocalAddress> {
        let mut v: Vec<LocalAddress> = self
            .lock()
            .known
            .iter()
            .map(|(ip, (source, score))| LocalAddress { ip: *ip, port: self.port, score: *score, source: *source })
            .collect();
        v.sort_by(|a, b| b.score.cmp(&a.score).then(a.ip.cmp(&b.ip)));
        v
    }

    /// The address to tell a peer at `peer`: our best-scored one of its family. `None` when we
    /// know none (the caller may fall back to what the peer reported).
    pub fn best_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        let family = Family::of(peer);
        self.list().into_iter().find(|a| Family::of(a.ip) == family).map(|a| SocketAddr::new(a.ip, self.port))
    }
}

/// The routable addresses of this host's interfaces that are up and not loopback (`getifaddrs`).
pub fn interface_addresses(policy: RoutePolicy) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs; on failure it
    // returns non-zero and we read nothing.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags;
        if flags & libc::IFF_UP as u32 == 0 || flags & libc::IFF_LOOPBACK as u32 != 0 || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family says its real type.
        let ip = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        if policy.is_routable(ip) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn routability_is_cores_on_public_networks_and_wider_on_regtest() {
        for (addr, public, test) in [
            ("8.8.8.8", true, true),
            ("2a00:1450::1", true, true),
            ("10.1.2.3", false, true),
            ("192.168.1.1", false, true),
            ("172.16.0.1", false, true),
            ("100.64.0.1", false, true),
            ("198.18.0.1", false, true),
            ("198.51.100.7", false, true),
            ("203.0.113.7", false, true),
            ("192.0.2.1", false, true),
            ("2001:db8::1", false, true),
            ("fd00::1", false, true),
            ("127.0.0.1", false, false),
            ("::1", false, false),
            ("0.0.0.0", false, false),
            ("::", false, false),
            ("169.254.1.1", false, false),
            ("fe80::1", false, false),
            ("224.0.0.1", false, false),
            ("::ffff:10.0.0.1", false, true),
            ("::ffff:8.8.4.4", true, true),
        ] {
            assert_eq!(RoutePolicy::Public.is_routable(ip(addr)), public, "{addr} public");
            assert_eq!(RoutePolicy::TestNetwork.is_routable(ip(addr)), test, "{addr} regtest");
        }
    }

    #[test]
    fn sources_score_as_core_and_reports_add_one_per_distinct_peer() {
        let local = LocalAddresses::new(8333, RoutePolicy::Public, &[]);
        assert!(local.add(ip("8.8.8.8"), Source::Interface));
        assert!(!local.add(ip("10.0.0.1"), Source::Interface), "private: not ours to advertise");
        assert!(local.add(ip("2a00::1"), Source::Manual));
        local.seen(ip("8.8.8.8"), ip("1.1.1.1"));
        local.seen(ip("8.8.8.8"), ip("1.1.1.1"));
        local.seen(ip("8.8.8.8"), ip("1.1.1.2"));
        let scores: Vec<(IpAddr, u32)> = local.list().iter().map(|a| (a.ip, a.score)).collect();
        assert_eq!(scores, [(ip("2a00::1"), 4), (ip("8.8.8.8"), 3)]);
        // A better source lifts the base and keeps the confirmations.
        local.add(ip("8.8.8.8"), Source::Manual);
        assert_eq!(local.list()[0], LocalAddress { ip: ip("8.8.8.8"), port: 8333, score: 6, source: Source::Manual });
        // A weaker one changes nothing.
        local.add(ip("8.8.8.8"), Source::Interface);
        assert_eq!(local.list()[0].score, 6);
    }

    #[test]
    fn an_unknown_reported_address_needs_two_peers_and_the_most_confirmed_wins() {
        let local = LocalAddresses::new(8333, RoutePolicy::Public, &[]);
        local.seen(ip("5.5.5.5"), ip("1.1.1.1"));
        assert!(local.list().is_empty(), "one peer's word is not enough");
        local.seen(ip("5.5.5.5"), ip("1.1.1.1"));
        assert!(local.list().is_empty(), "the same peer twice is one report");
        local.seen(ip("6.6.6.6"), ip("1.1.1.3"));
        local.seen(ip("5.5.5.5"), ip("1.1.1.2"));
        local.seen(ip("6.6.6.6"), ip("1.1.1.4"));
        local.seen(ip("6.6.6.6"), ip("1.1.1.5"));
        assert_eq!(local.best_for(ip("9.9.9.9")), Some("6.6.6.6:8333".parse().unwrap()));
        assert_eq!(local.list().iter().map(|a| a.score).collect::<Vec<_>>(), [3, 2]);
        assert!(local.list().iter().all(|a| a.source == Source::Peers));
        // Unroutable reports are ignored.
        local.seen(ip("127.0.0.1"), ip("1.1.1.6"));
        local.seen(ip("127.0.0.1"), ip("1.1.1.7"));
        assert_eq!(local.list().len(), 2);
    }

    #[test]
    fn reported_addresses_are_bounded() {
        let local = LocalAddresses::new(8333, RoutePolicy::Public, &[]);
        for i in 0..1000u32 {
            local.seen(IpAddr::V4(Ipv4Addr::from(0x0800_0000 + i)), ip("1.1.1.1"));
        }
        assert!(local.lock().reported.len() <= MAX_REPORTED);
        assert!(local.list().is_empty());
    }

    #[test]
    fn the_advertised_address_matches_the_peers_family_and_onlynet() {
        let local = LocalAddresses::new(18444, RoutePolicy::TestNetwork, &[]);
        local.add(ip("198.51.100.2"), Source::Interface);
        local.add(ip("2001:db8:a::2"), Source::Interface);
        assert_eq!(local.best_for(ip("203.0.113.9")), Some("198.51.100.2:18444".parse().unwrap()));
        assert_eq!(local.best_for(ip("2001:db8:b::9")), Some("[2001:db8:a::2]:18444".parse().unwrap()));

        let v6_only = LocalAddresses::new(18444, RoutePolicy::TestNetwork, &[Family::Ipv6]);
        assert!(!v6_only.add(ip("198.51.100.2"), Source::Manual));
        assert!(v6_only.add(ip("2001:db8:a::2"), Source::Manual));
        assert_eq!(v6_only.best_for(ip("203.0.113.9")), None);
        assert!(!v6_only.is_reachable(Family::Ipv4) && v6_only.is_reachable(Family::Ipv6));
    }

    #[test]
    fn mapped_addresses_are_replaced_as_a_set() {
        let local = LocalAddresses::new(8333, RoutePolicy::Public, &[]);
        local.add(ip("8.8.8.8"), Source::Manual);
        local.replace(Source::Mapped, &[ip("5.5.5.5"), ip("2a00::5")]);
        local.replace(Source::Mapped, &[ip("5.5.5.6")]);
        let ips: Vec<IpAddr> = local.list().iter().map(|a| a.ip).collect();
        assert_eq!(ips, [ip("8.8.8.8"), ip("5.5.5.6")]);
    }

    #[test]
    fn interface_addresses_never_include_loopback() {
        let found = interface_addresses(RoutePolicy::TestNetwork);
        assert!(found.iter().all(|ip| !ip.is_loopback() && !ip.is_unspecified()), "{found:?}");
    }
}
