//! The address book: peers we have heard of, for outbound connections and `getaddr` replies.
//!
//! Bounded and spam-resistant: at most `capacity` entries, and no single source may contribute more
//! than a tenth of them, so a peer sending a thousand fake addresses a second fills only its own
//! share. Persisted to `peers.json` in the network's data folder by write-to-temp-and-rename, so a
//! crash never leaves half a file. Entries without NODE_NETWORK are not kept (SV Node's
//! `REQUIRED_SERVICES`): we could not sync from them.
//!
//! Time is passed in (unix seconds) so selection and ageing are tested with a fake clock.

use crate::wire::{NetAddress, TimedAddress};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// Default size of the book: ample for a relay's 8 outbound slots, small enough to keep in memory.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Most addresses in a `getaddr` reply: SV Node's and Core's limit for one `addr` message.
pub const MAX_GETADDR_REPLY: usize = 1000;
/// NODE_NETWORK: the service bit an address must advertise to be worth keeping.
const NODE_NETWORK: u64 = 1;
/// Addresses not heard of for this long are the first to go when the book is full (Core's horizon).
const STALE_AFTER_SECS: u64 = 30 * 24 * 3600;

#[derive(Debug, Error)]
pub enum AddrBookError {
    #[error("cannot write address book {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read address book {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("address book {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

/// What we know about one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrEntry {
    pub services: u64,
    /// When the address was last advertised or connected to (unix seconds).
    pub last_seen: u64,
    /// The IP of the peer that told us, or our own for addresses we connected to.
    pub source: IpAddr,
    pub attempts: u32,
    pub last_success: u64,
    /// New blocks and transactions peers at this address delivered to us first, over all
    /// connections: outbound slots prefer the addresses that have been most useful.
    #[serde(default)]
    pub useful: u64,
    /// A v2 attempt to it was closed before the peer's key: it is dialled with v1 from then on,
    /// whatever it advertises.
    #[serde(default)]
    pub v1_only: bool,
}

#[derive(Serialize, Deserialize)]
struct BookFile {
    version: u32,
    entries: Vec<(SocketAddr, AddrEntry)>,
}

/// The book; shared between tasks behind a mutex (operations are short and rare).
#[derive(Debug)]
pub struct AddrBook {
    entries: Mutex<HashMap<SocketAddr, AddrEntry>>,
    capacity: usize,
    path: Option<PathBuf>,
}

impl AddrBook {
    pub fn in_memory(capacity: usize) -> AddrBook {
        AddrBook { entries: Mutex::new(HashMap::new()), capacity, path: None }
    }

    /// Opens `path`, or starts empty if it does not exist.
    pub fn open(path: &Path, capacity: usize) -> Result<AddrBook, AddrBookError> {
        let entries = match std::fs::read(path) {
            Ok(bytes) => {
                let file: BookFile = serde_json::from_slice(&bytes)
                    .map_err(|source| AddrBookError::Corrupt { path: path.to_owned(), source })?;
                file.entries.into_iter().take(capacity).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(AddrBookError::Read { path: path.to_owned(), source }),
        };
        Ok(AddrBook { entries: Mutex::new(entries), capacity, path: Some(path.to_owned()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, AddrEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or refreshes addresses a peer at `source` advertised; returns how many were new.
    pub fn add(&self, addrs: &[TimedAddress], source: IpAddr, now: u64) -> usize {
        let mut map = self.lock();
        let share = (self.capacity / 10).max(1);
        let mut from_source = map.values().filter(|e| e.source == source).count();
        let mut added = 0;
        for a in addrs {
            if a.addr.services & NODE_NETWORK == 0 || a.addr.port == 0 || a.addr.ip.is_unspecified() {
                continue;
            }
            let addr = a.addr.socket_addr();
            // A timestamp in the future is clamped: it must not make an entry outlive honest ones.
            let seen = u64::from(a.time).min(now);
            if let Some(e) = map.get_mut(&addr) {
                e.last_seen = e.last_seen.max(seen);
                e.services |= a.addr.services;
                continue;
            }
            if from_source >= share {
                continue;
            }
            if map.len() >= self.capacity && !evict_one(&mut map, now) {
                continue;
            }
            map.insert(
                addr,
                AddrEntry {
                    services: a.addr.services,
                    last_seen: seen,
                    source,
                    attempts: 0,
                    last_success: 0,
                    useful: 0,
                    v1_only: false,
                },
            );
            from_source += 1;
            added += 1;
        }
        added
    }

    /// Records a connection attempt to `addr`.
    pub fn attempted(&self, addr: SocketAddr) {
        if let Some(e) = self.lock().get_mut(&addr) {
            e.attempts = e.attempts.saturating_add(1);
        }
    }

    /// Records a completed handshake with `addr` (an address we can vouch for).
    pub fn connected(&self, addr: SocketAddr, services: u64, now: u64) {
        let mut map = self.lock();
        let e = map.entry(addr).or_insert(AddrEntry {
            services,
            last_seen: now,
            source: addr.ip(),
            attempts: 0,
            last_success: now,
            useful: 0,
            v1_only: false,
        });
        e.attempts = 0;
        e.last_success = now;
        e.last_seen = now;
        e.services |= services;
    }

    /// Whether to open a connection to `addr` with the v2 handshake: it advertises NODE_P2P_V2
    /// (in gossip or its own `version`) and has not failed a v2 attempt.
    pub fn offers_v2(&self, addr: SocketAddr) -> bool {
        self.lock().get(&addr).is_some_and(|e| e.services & super::v2::NODE_P2P_V2 != 0 && !e.v1_only)
    }

    /// Whether a v2 attempt to `addr` fell back to v1.
    pub fn v1_only(&self, addr: SocketAddr) -> bool {
        self.lock().get(&addr).is_some_and(|e| e.v1_only)
    }

    /// A v2 attempt to `addr` was closed before the peer's key: v1 from now on.
    pub fn fell_back_to_v1(&self, addr: SocketAddr, now: u64) {
        let mut map = self.lock();
        let e = map.entry(addr).or_insert(AddrEntry {
            services: 0,
            last_seen: now,
            source: addr.ip(),
            attempts: 0,
            last_success: 0,
            useful: 0,
            v1_only: false,
        });
        e.v1_only = true;
    }

    /// Credits `addr` with `count` new blocks or transactions its peer delivered first.
    pub fn record_useful(&self, addr: SocketAddr, count: u64) {
        if let Some(e) = self.lock().get_mut(&addr) {
            e.useful = e.useful.saturating_add(count);
        }
    }

    /// Up to `max` addresses for a `getaddr` reply, most recently seen first.
    pub fn sample(&self, max: usize) -> Vec<TimedAddress> {
        let map = self.lock();
        let mut all: Vec<(&SocketAddr, &AddrEntry)> = map.iter().collect();
        all.sort_by_key(|(a, e)| (std::cmp::Reverse(e.last_seen), **a));
        all.into_iter()
            .take(max.min(MAX_GETADDR_REPLY))
            .map(|(a, e)| TimedAddress {
                time: u32::try_from(e.last_seen).unwrap_or(u32::MAX),
                addr: NetAddress::new(*a, e.services),
            })
            .collect()
    }

    /// The best address to dial next that `skip` does not exclude: proven ones first, the most
    /// useful of those first (reputation), then the least-tried, most recently seen.
    pub fn select(&self, skip: impl Fn(&SocketAddr) -> bool) -> Option<SocketAddr> {
        let map = self.lock();
        map.iter()
            .filter(|(a, _)| !skip(a))
            .min_by_key(|(a, e)| {
                (e.last_success == 0, std::cmp::Reverse(e.useful), e.attempts, std::cmp::Reverse(e.last_seen), **a)
            })
            .map(|(a, _)| *a)
    }

    /// Writes the book to its file, atomically.
    pub fn save(&self) -> Result<(), AddrBookError> {
        let Some(path) = &self.path else { return Ok(()) };
        let entries: Vec<(SocketAddr, AddrEntry)> = self.lock().iter().map(|(a, e)| (*a, e.clone())).collect();
        let bytes = serde_json::to_vec(&BookFile { version: 1, entries }).expect("the book serializes");
        let tmp = path.with_extension("json.tmp");
        let write = |p: &Path| -> std::io::Result<()> {
            std::fs::write(p, &bytes)?;
            std::fs::rename(p, path)
        };
        write(&tmp).map_err(|source| AddrBookError::Write { path: path.clone(), source })
    }
}

/// Makes room: drops the stalest entry never connected to, else the stalest of all.
fn evict_one(map: &mut HashMap<SocketAddr, AddrEntry>, now: u64) -> bool {
    let victim = map
        .iter()
        .min_by_key(|(a, e)| {
            let stale = now.saturating_sub(e.last_seen) > STALE_AFTER_SECS;
            (!stale, e.last_success != 0, e.last_seen, **a)
        })
        .map(|(a, _)| *a);
    victim.is_some_and(|v| map.remove(&v).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ta(ip: &str, port: u16, time: u32, services: u64) -> TimedAddress {
        TimedAddress { time, addr: NetAddress::new(SocketAddr::new(ip.parse().unwrap(), port), services) }
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn keeps_only_network_nodes_and_refreshes_duplicates() {
        let book = AddrBook::in_memory(100);
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let added = book.add(
            &[
                ta("1.2.3.4", 8333, 100, 1),
                ta("1.2.3.5", 8333, 100, 0x20),
                ta("::1", 0, 5, 1),
                ta("1.2.3.4", 8333, 200, 0x21),
            ],
            src,
            NOW,
        );
        assert_eq!(added, 1);
        assert_eq!(book.len(), 1);
        let s = book.sample(10);
        assert_eq!(s[0].time, 200);
        assert_eq!(s[0].addr.services, 0x21);
    }

    #[test]
    fn one_source_fills_at_most_a_tenth_of_the_book() {
        let book = AddrBook::in_memory(100);
        let spam: Vec<_> = (0..1000).map(|i| ta(&format!("66.{}.{}.1", i / 256, i % 256), 8333, 1, 1)).collect();
        assert_eq!(book.add(&spam, "66.6.6.6".parse().unwrap(), NOW), 10);
        assert_eq!(book.add(&[ta("8.8.8.8", 8333, 1, 1)], "9.9.9.9".parse().unwrap(), NOW), 1);
    }

    #[test]
    fn a_full_book_evicts_the_stalest_unproven_entry() {
        let book = AddrBook::in_memory(10);
        for i in 0..10u32 {
            let src: IpAddr = format!("10.0.{i}.1").parse().unwrap();
            book.add(&[ta(&format!("1.1.1.{i}"), 8333, 1000 + i, 1)], src, NOW);
        }
        book.connected("1.1.1.0:8333".parse().unwrap(), 1, NOW);
        book.add(&[ta("2.2.2.2", 8333, 5000, 1)], "10.9.9.9".parse().unwrap(), NOW);
        assert_eq!(book.len(), 10);
        let kept: Vec<SocketAddr> = book.sample(100).iter().map(|t| t.addr.socket_addr()).collect();
        assert!(kept.contains(&"1.1.1.0:8333".parse().unwrap()), "the proven one stays");
        assert!(!kept.contains(&"1.1.1.1:8333".parse().unwrap()), "the stalest unproven one went");
    }

    #[test]
    fn selection_prefers_proven_then_untried_and_respects_the_skip_list() {
        let book = AddrBook::in_memory(100);
        book.add(&[ta("1.1.1.1", 8333, 10, 1), ta("2.2.2.2", 8333, 20, 1)], "10.0.0.1".parse().unwrap(), NOW);
        assert_eq!(book.select(|_| false), Some("2.2.2.2:8333".parse().unwrap()), "most recently seen");
        book.attempted("2.2.2.2:8333".parse().unwrap());
        assert_eq!(book.select(|_| false), Some("1.1.1.1:8333".parse().unwrap()), "untried first");
        book.connected("2.2.2.2:8333".parse().unwrap(), 1, NOW);
        assert_eq!(book.select(|_| false), Some("2.2.2.2:8333".parse().unwrap()), "proven first");
        assert_eq!(book.select(|a| a.port() == 8333), None);
        // Of two proven addresses, the one whose peer delivered more first is preferred.
        book.connected("1.1.1.1:8333".parse().unwrap(), 1, NOW);
        book.record_useful("1.1.1.1:8333".parse().unwrap(), 5);
        assert_eq!(book.select(|_| false), Some("1.1.1.1:8333".parse().unwrap()), "reputation first");
    }

    #[test]
    fn future_timestamps_are_clamped() {
        let book = AddrBook::in_memory(10);
        book.add(&[ta("1.1.1.1", 8333, u32::MAX, 1)], "10.0.0.1".parse().unwrap(), NOW);
        assert_eq!(u64::from(book.sample(1)[0].time), NOW);
    }

    #[test]
    fn the_book_survives_a_save_and_reload() {
        let dir = std::env::temp_dir().join(format!("bsv-relay-addrbook-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peers.json");
        let book = AddrBook::open(&path, 100).unwrap();
        book.add(&[ta("1.1.1.1", 8333, 10, 1), ta("::2", 18444, 20, 1)], "10.0.0.1".parse().unwrap(), NOW);
        book.save().unwrap();
        let again = AddrBook::open(&path, 100).unwrap();
        assert_eq!(again.sample(10), book.sample(10));
        std::fs::write(&path, b"not json").unwrap();
        assert!(matches!(AddrBook::open(&path, 100), Err(AddrBookError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
