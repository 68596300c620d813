//! The address book: peers we have heard of, for outbound connections and `getaddr` replies,
//! built against eclipse attacks after Core's addrman.
//!
//! - Two tables ([`buckets`]): "new" (heard of) bucketed by the address's and the source's
//!   network group, and "tried" (we completed a handshake with it) bucketed by the address's group,
//!   with slots placed by a per-node secret key. An attacker who floods `addr` from a few network
//!   groups fills only the few buckets those groups map to; honest addresses elsewhere survive.
//! - A new address whose slot is held keeps out unless the holder is terrible (stale, or failed
//!   every attempt): first come stays, as in Core, so a flood cannot push honest entries out.
//! - Test-before-evict: an address that earns a tried slot already held by another is a
//!   *collision*; the holder is tested (the connection manager dials it as a feeler) and keeps its
//!   slot if it answers. Only a holder that does not answer, or a collision unresolved for
//!   [`COLLISION_TIMEOUT_SECS`], gives way.
//! - Selection ([`select`]) picks the tried or the new table with even odds, then the best of a
//!   few random entries by reputation and by Core's "chance" (fewer failed attempts, not tried in
//!   the last ten minutes).
//! - Reputation ([`crate::peer::reputation`]) is kept per address here and persisted with it;
//!   inbound peers, whose port is not where they listen, are kept per IP in a small bounded map.
//! - At most `capacity` entries, and no single source may contribute more than a tenth of them.
//!   Entries without NODE_NETWORK are not kept (SV Node's `REQUIRED_SERVICES`).
//!
//! Persisted to `peers.json` ([`file`]) by write-to-temp-and-rename; a damaged file is a typed
//! error, and [`AddrBook::open_or_empty`] lets the node start with an empty book instead.
//! Time is passed in (unix seconds) so selection, collisions and ageing are tested with a fake clock.

pub mod buckets;
mod file;

use crate::peer::reputation::{Event, Score};
use crate::wire::{NetAddress, TimedAddress};
use buckets::{BucketKey, BUCKET_SIZE, NEW_BUCKETS, TRIED_BUCKETS};
use rand::Rng;
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
/// Addresses not heard of for this long are terrible: the first to go (Core's `ADDRMAN_HORIZON`).
const STALE_AFTER_SECS: u64 = 30 * 24 * 3600;
/// Never connected after this many attempts: terrible (Core's `ADDRMAN_RETRIES`).
const MAX_RETRIES: u32 = 3;
/// A tried holder that connected this recently keeps its slot without a test (Core: 4 hours).
const RECENT_SUCCESS_SECS: u64 = 4 * 3600;
/// A collision not resolved by a test in this time is decided for the newcomer (Core: 40 min).
pub const COLLISION_TIMEOUT_SECS: u64 = 40 * 60;
/// A holder dialled for a test that has not connected within this time failed it (Core: 60 s).
const TEST_WINDOW_SECS: u64 = 60;
/// Addresses tried in the last ten minutes are rarely picked again (Core's `GetChance`).
const RECENT_TRY_SECS: u64 = 600;
/// Candidates drawn per selection; the best of them by reputation and chance is dialled. Few
/// enough that reputation orders within randomness rather than replacing it: the book's top
/// entry cannot be aimed at by an attacker that earns reputation cheaply.
const SELECT_SAMPLE: usize = 8;
/// Inbound peers' reputations kept (per IP): bounded, the least significant go first.
const MAX_INBOUND_SCORES: usize = 4096;

#[derive(Debug, Error)]
pub enum AddrBookError {
    #[error("cannot write address book {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read address book {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("address book {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("address book {path} has unknown version {version}")]
    Version { path: PathBuf, version: u32 },
}

/// What we know about one address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddrEntry {
    pub services: u64,
    /// When the address was last advertised or connected to (unix seconds).
    pub last_seen: u64,
    /// The IP of the peer that told us, or our own for addresses we connected to.
    pub source: IpAddr,
    pub attempts: u32,
    pub last_success: u64,
    /// When we last dialled it (unix seconds, 0 never).
    #[serde(default)]
    pub last_try: u64,
    /// New blocks and transactions peers at this address delivered to us first, over all
    /// connections (shown by operators' tools; reputation is what selection uses).
    #[serde(default)]
    pub useful: u64,
    /// A v2 attempt to it was closed before the peer's key: it is dialled with v1 from then on,
    /// whatever it advertises.
    #[serde(default)]
    pub v1_only: bool,
    /// In the tried table (we completed a handshake with it); else in the new table.
    #[serde(default)]
    pub tried: bool,
    #[serde(default)]
    pub reputation: Score,
}

impl AddrEntry {
    fn fresh(services: u64, last_seen: u64, source: IpAddr) -> AddrEntry {
        AddrEntry {
            services,
            last_seen,
            source,
            attempts: 0,
            last_success: 0,
            last_try: 0,
            useful: 0,
            v1_only: false,
            tried: false,
            reputation: Score::default(),
        }
    }

    /// Core's `IsTerrible`: not worth a slot another address could use.
    fn is_terrible(&self, now: u64) -> bool {
        if self.last_try != 0 && now.saturating_sub(self.last_try) < 60 {
            return false; // just tried: give it its chance
        }
        now.saturating_sub(self.last_seen) > STALE_AFTER_SECS
            || (self.last_success == 0 && self.attempts >= MAX_RETRIES)
    }

    /// Core's `GetChance`: fewer failed attempts and no very recent try make an address likelier.
    fn chance(&self, now: u64) -> f64 {
        let mut c = 0.66f64.powi(self.attempts.min(8) as i32);
        if self.last_try != 0 && now.saturating_sub(self.last_try) < RECENT_TRY_SECS {
            c *= 0.01;
        }
        c
    }
}

/// The tables; see the module documentation.
#[derive(Debug)]
struct Book {
    key: BucketKey,
    entries: HashMap<SocketAddr, AddrEntry>,
    /// Occupied slots: (bucket × BUCKET_SIZE + position) → address.
    new_slots: HashMap<usize, SocketAddr>,
    tried_slots: HashMap<usize, SocketAddr>,
    /// Addresses that earned a tried slot held by another, and since when (unix seconds).
    collisions: HashMap<SocketAddr, u64>,
    inbound: HashMap<IpAddr, Score>,
}

fn source_addr(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 0)
}

impl Book {
    fn empty(key: BucketKey) -> Book {
        Book {
            key,
            entries: HashMap::new(),
            new_slots: HashMap::new(),
            tried_slots: HashMap::new(),
            collisions: HashMap::new(),
            inbound: HashMap::new(),
        }
    }

    fn new_slot(&self, addr: &SocketAddr, source: IpAddr) -> usize {
        let b = self.key.new_bucket(addr, &source_addr(source));
        b * BUCKET_SIZE + self.key.position(false, b, addr)
    }

    fn tried_slot(&self, addr: &SocketAddr) -> usize {
        let b = self.key.tried_bucket(addr);
        b * BUCKET_SIZE + self.key.position(true, b, addr)
    }

    fn slot_of(&self, addr: &SocketAddr, e: &AddrEntry) -> usize {
        if e.tried {
            self.tried_slot(addr)
        } else {
            self.new_slot(addr, e.source)
        }
    }

    fn remove(&mut self, addr: &SocketAddr) -> Option<AddrEntry> {
        let e = self.entries.remove(addr)?;
        let slot = self.slot_of(addr, &e);
        let slots = if e.tried { &mut self.tried_slots } else { &mut self.new_slots };
        if slots.get(&slot) == Some(addr) {
            slots.remove(&slot);
        }
        self.collisions.remove(addr);
        Some(e)
    }

    /// Puts `e` in the new table if its slot is free or held by a terrible entry.
    fn place_new(&mut self, addr: SocketAddr, mut e: AddrEntry, now: u64) -> bool {
        e.tried = false;
        let slot = self.new_slot(&addr, e.source);
        if let Some(holder) = self.new_slots.get(&slot).copied() {
            if holder != addr {
                if !self.entries.get(&holder).is_some_and(|h| h.is_terrible(now)) {
                    return false;
                }
                self.remove(&holder);
            }
        }
        self.new_slots.insert(slot, addr);
        self.entries.insert(addr, e);
        true
    }

    /// Moves a known new entry into the tried table, or records a collision.
    fn promote(&mut self, addr: SocketAddr, now: u64) {
        let Some(e) = self.entries.get(&addr) else { return };
        if e.tried {
            return;
        }
        let slot = self.tried_slot(&addr);
        match self.tried_slots.get(&slot).copied() {
            Some(holder) if holder != addr => {
                self.collisions.entry(addr).or_insert(now);
            }
            _ => self.move_to_tried(addr, slot),
        }
    }

    fn move_to_tried(&mut self, addr: SocketAddr, slot: usize) {
        let Some(mut e) = self.remove(&addr) else { return };
        e.tried = true;
        self.tried_slots.insert(slot, addr);
        self.entries.insert(addr, e);
    }

    /// Decides the collisions that can be decided at `now` (Core's `ResolveCollisions`).
    fn resolve_collisions(&mut self, now: u64) {
        let pending: Vec<(SocketAddr, u64)> = self.collisions.iter().map(|(a, t)| (*a, *t)).collect();
        for (addr, since) in pending {
            let Some(e) = self.entries.get(&addr) else {
                self.collisions.remove(&addr);
                continue;
            };
            if e.tried {
                self.collisions.remove(&addr);
                continue;
            }
            let slot = self.tried_slot(&addr);
            let Some(holder) = self.tried_slots.get(&slot).copied() else {
                self.collisions.remove(&addr);
                self.move_to_tried(addr, slot);
                continue;
            };
            let h = &self.entries[&holder];
            let answered = now.saturating_sub(h.last_success) < RECENT_SUCCESS_SECS;
            let tested_and_failed =
                h.last_try >= since && h.last_success < h.last_try && now >= h.last_try + TEST_WINDOW_SECS;
            if answered {
                self.collisions.remove(&addr); // the holder is alive: it keeps its slot
            } else if tested_and_failed || now >= since + COLLISION_TIMEOUT_SECS {
                self.collisions.remove(&addr);
                if let Some(old) = self.remove(&holder) {
                    self.place_new(holder, old, now);
                }
                self.move_to_tried(addr, slot);
            }
        }
    }
}

/// The book; shared between tasks behind a mutex (operations are short and rare).
#[derive(Debug)]
pub struct AddrBook {
    book: Mutex<Book>,
    capacity: usize,
    path: Option<PathBuf>,
}

impl AddrBook {
    pub fn in_memory(capacity: usize) -> AddrBook {
        AddrBook { book: Mutex::new(Book::empty(BucketKey::random())), capacity, path: None }
    }

    /// An empty book with a given key, for tests that need to know where addresses land.
    pub fn with_key(capacity: usize, key: BucketKey) -> AddrBook {
        AddrBook { book: Mutex::new(Book::empty(key)), capacity, path: None }
    }

    /// Opens `path`, or starts empty if it does not exist.
    pub fn open(path: &Path, capacity: usize) -> Result<AddrBook, AddrBookError> {
        let book = match std::fs::read(path) {
            Ok(bytes) => file::decode(path, &bytes, capacity)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::empty(BucketKey::random()),
            Err(source) => return Err(AddrBookError::Read { path: path.to_owned(), source }),
        };
        Ok(AddrBook { book: Mutex::new(book), capacity, path: Some(path.to_owned()) })
    }

    /// Opens `path`; a damaged or unreadable file gives an empty book (saved over it at shutdown)
    /// and the error, for the caller to report.
    pub fn open_or_empty(path: &Path, capacity: usize) -> (AddrBook, Option<AddrBookError>) {
        match AddrBook::open(path, capacity) {
            Ok(book) => (book, None),
            Err(e) => {
                let book = AddrBook {
                    book: Mutex::new(Book::empty(BucketKey::random())),
                    capacity,
                    path: Some(path.to_owned()),
                };
                (book, Some(e))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (new, tried) entry counts.
    pub fn table_sizes(&self) -> (usize, usize) {
        let b = self.lock();
        (b.new_slots.len(), b.tried_slots.len())
    }

    /// Whether `addr` is in the tried table.
    pub fn is_tried(&self, addr: SocketAddr) -> bool {
        self.lock().entries.get(&addr).is_some_and(|e| e.tried)
    }

    /// Adds or refreshes addresses a peer at `source` advertised; returns how many were new.
    pub fn add(&self, addrs: &[TimedAddress], source: IpAddr, now: u64) -> usize {
        let mut book = self.lock();
        let share = (self.capacity / 10).max(1);
        let mut from_source = book.entries.values().filter(|e| e.source == source).count();
        let mut added = 0;
        for a in addrs {
            if a.addr.services & NODE_NETWORK == 0 || a.addr.port == 0 || a.addr.ip.is_unspecified() {
                continue;
            }
            let addr = a.addr.socket_addr();
            // A timestamp in the future is clamped: it must not make an entry outlive honest ones.
            let seen = u64::from(a.time).min(now);
            if let Some(e) = book.entries.get_mut(&addr) {
                e.last_seen = e.last_seen.max(seen);
                e.services |= a.addr.services;
                continue;
            }
            if from_source >= share {
                continue;
            }
            if book.entries.len() >= self.capacity && !evict_one(&mut book, now) {
                continue;
            }
            if book.place_new(addr, AddrEntry::fresh(a.addr.services, seen, source), now) {
                from_source += 1;
                added += 1;
            }
        }
        added
    }

    /// Records a connection attempt to `addr` at `now`.
    pub fn attempted(&self, addr: SocketAddr, now: u64) {
        if let Some(e) = self.lock().entries.get_mut(&addr) {
            e.attempts = e.attempts.saturating_add(1);
            e.last_try = now;
        }
    }

    /// Records a completed handshake with `addr` (an address we can vouch for): it moves to the
    /// tried table, or waits in a collision for the holder of its slot to be tested.
    pub fn connected(&self, addr: SocketAddr, services: u64, now: u64) {
        let mut book = self.lock();
        if !book.entries.contains_key(&addr) {
            let mut e = AddrEntry::fresh(services, now, addr.ip());
            e.last_success = now;
            if !book.place_new(addr, e, now) {
                // Its new slot is held: it goes straight for a tried slot instead.
                let slot = book.tried_slot(&addr);
                if book.tried_slots.contains_key(&slot) {
                    return;
                }
                let mut e = AddrEntry::fresh(services, now, addr.ip());
                e.tried = true;
                book.tried_slots.insert(slot, addr);
                book.entries.insert(addr, e);
            }
        }
        if let Some(e) = book.entries.get_mut(&addr) {
            e.attempts = 0;
            e.last_success = now;
            e.last_seen = now;
            e.services |= services;
        }
        book.promote(addr, now);
    }

    /// Decides collisions that can be decided now.
    pub fn resolve_collisions(&self, now: u64) {
        self.lock().resolve_collisions(now);
    }

    /// The holder of a contested tried slot that has not been tested since the collision: the
    /// next feeler dials it (Core's `SelectTriedCollision`).
    pub fn collision_to_test(&self, now: u64) -> Option<SocketAddr> {
        let mut book = self.lock();
        book.resolve_collisions(now);
        let mut pending: Vec<(SocketAddr, u64)> = book.collisions.iter().map(|(a, t)| (*a, *t)).collect();
        pending.sort();
        pending.into_iter().find_map(|(addr, since)| {
            let holder = *book.tried_slots.get(&book.tried_slot(&addr))?;
            (book.entries.get(&holder)?.last_try < since).then_some(holder)
        })
    }

    /// Pending collisions (for tests and metrics).
    pub fn collisions(&self) -> usize {
        self.lock().collisions.len()
    }

    /// Whether to open a connection to `addr` with the v2 handshake: it advertises NODE_P2P_V2
    /// (in gossip or its own `version`) and has not failed a v2 attempt.
    pub fn offers_v2(&self, addr: SocketAddr) -> bool {
        self.lock().entries.get(&addr).is_some_and(|e| e.services & super::v2::NODE_P2P_V2 != 0 && !e.v1_only)
    }

    /// Whether a v2 attempt to `addr` fell back to v1.
    pub fn v1_only(&self, addr: SocketAddr) -> bool {
        self.lock().entries.get(&addr).is_some_and(|e| e.v1_only)
    }

    /// A v2 attempt to `addr` was closed before the peer's key: v1 from now on.
    pub fn fell_back_to_v1(&self, addr: SocketAddr, now: u64) {
        let mut book = self.lock();
        if !book.entries.contains_key(&addr) {
            book.place_new(addr, AddrEntry::fresh(0, now, addr.ip()), now);
        }
        if let Some(e) = book.entries.get_mut(&addr) {
            e.v1_only = true;
        }
    }

    /// Credits `addr` with `count` new blocks or transactions its peer delivered first.
    pub fn record_useful(&self, addr: SocketAddr, count: u64) {
        if let Some(e) = self.lock().entries.get_mut(&addr) {
            e.useful = e.useful.saturating_add(count);
        }
    }

    /// The stored reputation of a peer: per address for outbound peers, per IP for inbound.
    pub fn reputation(&self, addr: SocketAddr, inbound: bool) -> Score {
        let book = self.lock();
        if inbound {
            book.inbound.get(&addr.ip()).copied().unwrap_or_default()
        } else {
            book.entries.get(&addr).map(|e| e.reputation).unwrap_or_default()
        }
    }

    /// Stores a peer's reputation when it leaves (or periodically while it stays).
    pub fn store_reputation(&self, addr: SocketAddr, inbound: bool, score: Score, now: u64) {
        let mut book = self.lock();
        if !inbound {
            if let Some(e) = book.entries.get_mut(&addr) {
                e.reputation = score;
            }
            return;
        }
        if score.is_negligible(now) {
            book.inbound.remove(&addr.ip());
            return;
        }
        if book.inbound.len() >= MAX_INBOUND_SCORES && !book.inbound.contains_key(&addr.ip()) {
            let least = book
                .inbound
                .iter()
                .min_by(|a, b| a.1.value(now, None).abs().total_cmp(&b.1.value(now, None).abs()))
                .map(|(ip, _)| *ip);
            if let Some(ip) = least {
                book.inbound.remove(&ip);
            }
        }
        book.inbound.insert(addr.ip(), score);
    }

    /// Records one event against the stored reputation of an outbound address (a feeler or a dial
    /// that never got as far as a relay peer).
    pub fn record_event(&self, addr: SocketAddr, event: Event, now: u64) {
        if let Some(e) = self.lock().entries.get_mut(&addr) {
            e.reputation.record(event, now);
        }
    }

    /// Up to `max` addresses for a `getaddr` reply, most recently seen first; addresses that never
    /// answered any of our attempts are left out.
    pub fn sample(&self, max: usize) -> Vec<TimedAddress> {
        let book = self.lock();
        let mut all: Vec<(&SocketAddr, &AddrEntry)> =
            book.entries.iter().filter(|(_, e)| e.last_success != 0 || e.attempts < MAX_RETRIES).collect();
        all.sort_by_key(|(a, e)| (std::cmp::Reverse(e.last_seen), **a));
        all.into_iter()
            .take(max.min(MAX_GETADDR_REPLY))
            .map(|(a, e)| TimedAddress {
                time: u32::try_from(e.last_seen).unwrap_or(u32::MAX),
                addr: NetAddress::new(*a, e.services),
            })
            .collect()
    }

    /// The next address to dial that `skip` does not exclude; see [`select`].
    pub fn select(&self, now: u64, skip: impl Fn(&SocketAddr) -> bool) -> Option<SocketAddr> {
        select(&self.lock(), &mut rand::thread_rng(), now, None, &skip)
    }

    /// As [`AddrBook::select`] with a given random source and, when `new_only`, from the new
    /// table only (feelers).
    pub fn select_with(
        &self,
        rng: &mut impl Rng,
        now: u64,
        new_only: bool,
        skip: impl Fn(&SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        select(&self.lock(), rng, now, Some(new_only), &skip)
    }

    /// Writes the book to its file, atomically.
    pub fn save(&self) -> Result<(), AddrBookError> {
        let Some(path) = &self.path else { return Ok(()) };
        let bytes = file::encode(&self.lock());
        let tmp = path.with_extension("json.tmp");
        let write = |p: &Path| -> std::io::Result<()> {
            std::fs::write(p, &bytes)?;
            std::fs::rename(p, path)
        };
        write(&tmp).map_err(|source| AddrBookError::Write { path: path.clone(), source })
    }
}

/// Picks the tried or new table with even odds (`new_only`: feelers; `None`: either), then the
/// best of [`SELECT_SAMPLE`] random entries by `chance × 2^(reputation / 20)`: reputation moves a
/// candidate's weight between 1/32 and 32 times, Core's chance discounts failures and recent tries.
fn select(
    book: &Book,
    rng: &mut impl Rng,
    now: u64,
    new_only: Option<bool>,
    skip: &dyn Fn(&SocketAddr) -> bool,
) -> Option<SocketAddr> {
    let pick = |slots: &HashMap<usize, SocketAddr>, rng: &mut dyn rand::RngCore| -> Option<SocketAddr> {
        let candidates: Vec<&SocketAddr> = slots.values().filter(|a| !skip(a)).collect();
        if candidates.is_empty() {
            return None;
        }
        let mut best: Option<(f64, SocketAddr)> = None;
        for a in rand::seq::SliceRandom::choose_multiple(&candidates[..], rng, SELECT_SAMPLE) {
            let a = **a;
            let e = &book.entries[&a];
            let weight = e.chance(now) * 2f64.powf(e.reputation.value(now, None) / 20.0);
            if best.is_none_or(|(w, b)| weight > w || (weight == w && a < b)) {
                best = Some((weight, a));
            }
        }
        best.map(|(_, a)| a)
    };
    let tried_first = match new_only {
        Some(true) => return pick(&book.new_slots, rng),
        _ => !book.tried_slots.is_empty() && rng.gen_bool(0.5),
    };
    if tried_first {
        pick(&book.tried_slots, rng).or_else(|| pick(&book.new_slots, rng))
    } else {
        pick(&book.new_slots, rng).or_else(|| pick(&book.tried_slots, rng))
    }
}

/// Makes room when the book is at `capacity`: drops the stalest new entry.
fn evict_one(book: &mut Book, now: u64) -> bool {
    let victim = book
        .new_slots
        .values()
        .map(|a| (a, &book.entries[a]))
        .min_by_key(|(a, e)| (!e.is_terrible(now), e.last_seen, **a))
        .map(|(a, _)| *a);
    victim.is_some_and(|v| book.remove(&v).is_some())
}

const _: () = assert!(NEW_BUCKETS * BUCKET_SIZE + TRIED_BUCKETS * BUCKET_SIZE > DEFAULT_CAPACITY);

#[cfg(test)]
mod tests;
