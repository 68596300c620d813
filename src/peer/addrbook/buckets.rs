//! Where an address may live in the book: network groups and keyed bucket positions.
//!
//! As Core's addrman: the "new" table (heard of, never connected) is bucketed by the network group
//! of the address *and* of the peer that told us, so one source group reaches at most
//! [`NEW_BUCKETS_PER_SOURCE_GROUP`] of the [`NEW_BUCKETS`] buckets, and one address group at most one
//! bucket per source group. The "tried" table (connected to at least once) is bucketed by the
//! address and its group, so one group reaches at most [`TRIED_BUCKETS_PER_GROUP`] buckets. All
//! positions come from SipHash under a per-node secret key, so an attacker cannot compute which
//! addresses would land in the slots honest addresses occupy.
//!
//! Pure functions of `(key, addresses)`; nothing here knows about time or the table contents.

use std::net::{IpAddr, SocketAddr};

/// Buckets of the new table. Core uses 1024 × 64 (65,536 addresses) for a node with 125
/// connections; a relay with 8–16 outbound needs far fewer and the book is kept in memory and in
/// a JSON file, so a quarter of Core's count (16,384 slots).
pub const NEW_BUCKETS: usize = 256;
/// Buckets of the tried table: a quarter of Core's 256 (4,096 slots), same ratio to the new table.
pub const TRIED_BUCKETS: usize = 64;
/// Slots per bucket (Core's 64).
pub const BUCKET_SIZE: usize = 64;
/// New-table buckets one source group can reach. Core: 64 of 1024, a sixteenth; ours is 16 of
/// 256, the same sixteenth, so an attacker in one /16 can fill at most 1/16 of the new table.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 16;
/// Tried-table buckets one address group can reach (Core: 8 of 256; ours 4 of 64, the same 1/16).
pub const TRIED_BUCKETS_PER_GROUP: u64 = 4;

/// The per-node secret that places addresses; persisted with the book so positions are stable
/// across restarts (a new key would scatter the tried table and lose collisions already decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketKey(pub u64, pub u64);

impl BucketKey {
    pub fn random() -> BucketKey {
        BucketKey(rand::random(), rand::random())
    }

    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut data = Vec::with_capacity(64);
        for p in parts {
            // Length-prefixed so that ("ab","c") and ("a","bc") differ.
            data.push(p.len() as u8);
            data.extend_from_slice(p);
        }
        bitcoin_hashes::siphash24::Hash::hash_to_u64_with_keys(self.0, self.1, &data)
    }

    /// The new-table bucket for `addr` heard from `source` (Core's `GetNewBucket`).
    pub fn new_bucket(&self, addr: &SocketAddr, source: &SocketAddr) -> usize {
        let (g, s) = (group(addr), group(source));
        let inner = self.hash(&[b"new1", &g, &s]) % NEW_BUCKETS_PER_SOURCE_GROUP;
        (self.hash(&[b"new2", &s, &inner.to_le_bytes()]) % NEW_BUCKETS as u64) as usize
    }

    /// The tried-table bucket for `addr` (Core's `GetTriedBucket`).
    pub fn tried_bucket(&self, addr: &SocketAddr) -> usize {
        let inner = self.hash(&[b"tried1", &addr_bytes(addr)]) % TRIED_BUCKETS_PER_GROUP;
        (self.hash(&[b"tried2", &group(addr), &inner.to_le_bytes()]) % TRIED_BUCKETS as u64) as usize
    }

    /// The slot of `addr` inside `bucket` of a table (Core's `GetBucketPosition`).
    pub fn position(&self, tried: bool, bucket: usize, addr: &SocketAddr) -> usize {
        let table: &[u8] = if tried { b"T" } else { b"N" };
        (self.hash(&[table, &(bucket as u64).to_le_bytes(), &addr_bytes(addr)]) % BUCKET_SIZE as u64) as usize
    }
}

fn addr_bytes(addr: &SocketAddr) -> Vec<u8> {
    let mut v = match addr.ip() {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    v.extend_from_slice(&addr.port().to_be_bytes());
    v
}

/// The network group of an address: /16 for IPv4, /32 for IPv6 (Core's `GetGroup` for routable
/// addresses). Loopback addresses are grouped by address *and port*: several nodes of one test host
/// are distinct nodes, and nobody outside the host can claim a loopback address.
pub fn group(addr: &SocketAddr) -> Vec<u8> {
    let mut g = vec![u8::from(addr.ip().to_canonical().is_ipv6())];
    if addr.ip().is_loopback() {
        g.push(0xff);
        g.extend_from_slice(&addr_bytes(addr));
        return g;
    }
    g.extend_from_slice(&super::super::eviction::net_group(addr.ip()));
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_are_slash16_and_slash32_and_loopback_is_per_port() {
        assert_eq!(group(&a("198.51.100.1:1")), group(&a("198.51.7.9:2")));
        assert_ne!(group(&a("198.51.100.1:1")), group(&a("198.52.100.1:1")));
        assert_eq!(group(&a("[2001:db8::1]:1")), group(&a("[2001:db8:ffff::2]:9")));
        assert_ne!(group(&a("[2001:db8::1]:1")), group(&a("[2001:db9::1]:1")));
        assert_eq!(group(&a("[::ffff:198.51.100.1]:1")), group(&a("198.51.3.3:1")), "mapped is v4");
        assert_ne!(group(&a("127.0.0.1:1")), group(&a("127.0.0.1:2")));
    }

    #[test]
    fn one_source_group_reaches_a_sixteenth_of_the_new_buckets() {
        let key = BucketKey(1, 2);
        let source = a("203.0.113.7:8333");
        let mut buckets = HashSet::new();
        for i in 0..20_000u32 {
            let addr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761))), 8333);
            buckets.insert(key.new_bucket(&addr, &source));
        }
        assert!(buckets.len() as u64 <= NEW_BUCKETS_PER_SOURCE_GROUP, "{}", buckets.len());
        // Another source in the same /16 reaches the same buckets: changing the last octets buys nothing.
        let same = key.new_bucket(&a("1.2.3.4:1"), &a("203.0.9.9:1"));
        assert_eq!(same, key.new_bucket(&a("1.2.3.4:1"), &source));
    }

    #[test]
    fn one_address_group_reaches_few_tried_buckets_and_the_key_decides_them() {
        let key = BucketKey(1, 2);
        let buckets: HashSet<usize> =
            (0..5000u32).map(|i| key.tried_bucket(&a(&format!("198.51.{}.{}:8333", i / 256 % 256, i % 256)))).collect();
        assert!(buckets.len() as u64 <= TRIED_BUCKETS_PER_GROUP);
        // A different key places the same addresses elsewhere: an attacker cannot aim.
        let other = BucketKey(3, 4);
        let moved = (0..64u32)
            .filter(|i| {
                let x = a(&format!("9.{i}.0.1:8333"));
                key.tried_bucket(&x) != other.tried_bucket(&x)
            })
            .count();
        assert!(moved > 32, "{moved}");
        assert!(key.position(false, 3, &a("1.1.1.1:1")) < BUCKET_SIZE);
    }
}
