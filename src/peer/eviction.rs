//! Which inbound peer to drop when a new one arrives and every slot is taken.
//!
//! Core's approach, simplified: protect the peers an attacker finds hardest to imitate, then evict
//! from whatever network group has the most connections left. Protected, in order:
//! whitelisted peers (never candidates), the 4 with the lowest ping, the 4 that most recently
//! delivered something new and valid (a transaction or block first), and the longest-connected
//! half of the rest; of what remains, the group with the most peers loses the one with the lowest
//! reputation (the youngest among equals). An attacker who opens many connections from one address range fills that
//! range's group, so it is that group that loses a peer.

use super::registry::PeerId;
use std::net::IpAddr;
use std::time::Duration;

/// Peers protected for the lowest ping.
const PROTECT_BY_PING: usize = 4;
/// Peers protected for having recently been useful.
const PROTECT_BY_USEFULNESS: usize = 4;

/// What eviction needs to know about an inbound peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: PeerId,
    pub ip: IpAddr,
    /// Unix seconds when the connection started.
    pub connected_at: u64,
    pub min_ping: Option<Duration>,
    /// Unix seconds of the last new valid transaction or block it delivered first (0 if never).
    pub last_useful: u64,
    /// Whitelisted or otherwise exempt: never evicted.
    pub protected: bool,
    /// Its reputation value (`peer::reputation`); 0 when reputation is off.
    pub reputation: f64,
}

/// The network group of an address: /16 for IPv4, /32 for IPv6 (as Core groups them), so peers
/// from one provider's range compete with each other.
pub fn net_group(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..2].to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets()[..2].to_vec(),
            None => v6.octets()[..4].to_vec(),
        },
    }
}

/// The peer to evict, or `None` if every candidate is protected.
pub fn select(candidates: &[Candidate]) -> Option<PeerId> {
    let mut pool: Vec<&Candidate> = candidates.iter().filter(|c| !c.protected).collect();
    // Lowest ping first; peers with no measured ping are the least protected.
    pool.sort_by_key(|c| (c.min_ping.unwrap_or(Duration::MAX), c.connected_at));
    pool.drain(..PROTECT_BY_PING.min(pool.len()));
    pool.sort_by_key(|c| std::cmp::Reverse((c.last_useful, c.connected_at)));
    let useful = pool.iter().take(PROTECT_BY_USEFULNESS).filter(|c| c.last_useful > 0).count();
    pool.drain(..useful);
    // Oldest connections first; protect half of them.
    pool.sort_by_key(|c| c.connected_at);
    let keep = pool.len() / 2;
    pool.drain(..keep);
    if pool.is_empty() {
        return None;
    }
    // The group with the most peers loses its youngest.
    let mut groups: std::collections::HashMap<Vec<u8>, Vec<&Candidate>> = std::collections::HashMap::new();
    for c in pool {
        groups.entry(net_group(c.ip)).or_default().push(c);
    }
    let largest = groups.into_values().max_by_key(|g| (g.len(), g.iter().map(|c| c.connected_at).max()))?;
    largest
        .into_iter()
        .max_by(|a, b| b.reputation.total_cmp(&a.reputation).then((a.connected_at, a.id).cmp(&(b.connected_at, b.id))))
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: u64, ip: &str, connected_at: u64, ping_ms: Option<u64>) -> Candidate {
        Candidate {
            id: PeerId(id),
            ip: ip.parse().unwrap(),
            connected_at,
            min_ping: ping_ms.map(Duration::from_millis),
            last_useful: 0,
            protected: false,
            reputation: 0.0,
        }
    }

    #[test]
    fn nothing_to_evict_when_all_are_protected() {
        let mut c = vec![cand(1, "10.0.0.1", 1, None)];
        c[0].protected = true;
        assert_eq!(select(&c), None);
        // Four or fewer unprotected peers are all protected by ping.
        let c: Vec<_> = (0..4).map(|i| cand(i, "10.0.0.1", i, Some(10))).collect();
        assert_eq!(select(&c), None);
    }

    #[test]
    fn the_flooding_group_loses_its_youngest_peer() {
        let mut c = Vec::new();
        // Eight honest peers in distinct groups, connected early, with good pings.
        for i in 0..8 {
            c.push(cand(i, &format!("{}.1.0.1", 20 + i), 100 + i, Some(20 + i)));
        }
        // An attacker floods from 66.6.x.x, later, with no ping measured.
        for i in 0..20 {
            c.push(cand(100 + i, &format!("66.6.0.{}", i + 1), 1000 + i, None));
        }
        let evicted = select(&c).unwrap();
        assert_eq!(evicted, PeerId(119), "the youngest of the largest group");
    }

    #[test]
    fn useful_and_whitelisted_peers_are_kept() {
        let mut c: Vec<_> = (0..12).map(|i| cand(i, "66.6.0.1", 1000 + i, None)).collect();
        c[11].last_useful = 5000; // the youngest delivered a new block first
        c[10].protected = true;
        let evicted = select(&c).unwrap();
        assert_ne!(evicted, PeerId(11));
        assert_ne!(evicted, PeerId(10));
        assert_eq!(evicted, PeerId(9));
    }

    #[test]
    fn the_largest_group_loses_its_lowest_reputation_peer() {
        let mut c: Vec<_> = (0..12).map(|i| cand(i, "66.6.0.1", 1000 + i, None)).collect();
        c[9].reputation = -30.0; // a withholder, older than the youngest
        assert_eq!(select(&c), Some(PeerId(9)));
        c[9].reputation = 0.0;
        assert_eq!(select(&c), Some(PeerId(11)), "equal reputations: the youngest");
    }
}
