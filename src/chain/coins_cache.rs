//! The in-memory part of the UTXO set: a write-back cache over the coin table on disk
//! ([`super::coins_db`]), after SV Node's and Core's `CCoinsViewCache`.
//!
//! Each entry is a coin (or the mark that it was spent) with two flags:
//! - DIRTY: differs from the disk; the next flush writes it (a spent DIRTY entry deletes the coin);
//! - FRESH: the disk has no unspent coin there, so spending it again before a flush simply drops
//!   the entry, and the disk never sees a coin created and spent between two flushes.
//!
//! Invariants (kept by [`super::utxo::UtxoSet`], which owns the locking):
//! - an outpoint absent from the cache has exactly its disk value (entries differing from the
//!   disk are DIRTY, and DIRTY entries are only dropped by a flush that wrote them);
//! - when `complete`, the disk holds nothing the cache does not (nothing was ever evicted), so a
//!   miss is known to be absent without a disk read;
//! - `usage()` counts the map's allocated slots and every script's heap allocation, so the bound
//!   the operator sets (`-dbcache`) covers what the cache really holds, not just the coin bytes.

use std::collections::HashMap;

use super::outpoint_hash::SaltedOutPointHasher;
use crate::validation::Coin;
use crate::wire::OutPoint;

/// The entry differs from the disk.
pub const DIRTY: u8 = 1;
/// The disk holds no unspent coin at this outpoint.
pub const FRESH: u8 = 2;

/// Heap cost of one script beyond its bytes: the allocator's header and rounding (glibc malloc
/// hands out 16-byte-aligned chunks of at least 32 bytes) plus `Bytes`' shared vtable state.
const SCRIPT_ALLOC_OVERHEAD: usize = 32;

/// One slot of the map: key, entry, and hashbrown's control byte.
const SLOT_BYTES: usize = std::mem::size_of::<(OutPoint, CacheEntry)>() + 1;

/// After a flush the cache keeps clean coins up to this share of its bound, so the coins the
/// mempool loaded for the next block stay warm while the next blocks' changes have room.
const KEEP_AFTER_FLUSH_PERCENT: usize = 50;

#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// `None`: spent (kept only while DIRTY, to delete the coin on disk at the next flush).
    pub coin: Option<Coin>,
    pub flags: u8,
}

fn script_heap(coin: &Option<Coin>) -> usize {
    coin.as_ref().map_or(0, |c| c.script_pubkey.len() + SCRIPT_ALLOC_OVERHEAD)
}

/// The cached coins and their accounting.
#[derive(Debug)]
pub struct CoinsCache {
    map: HashMap<OutPoint, CacheEntry, SaltedOutPointHasher>,
    /// Heap bytes held by the scripts of the cached coins.
    heap: usize,
    /// The bound in bytes (`-dbcache`'s share for coins); `usize::MAX` for a set with no disk.
    limit: usize,
    /// The disk holds nothing the cache lacks.
    pub complete: bool,
    /// Changes with every flush: a reader that read the disk before a flush must not cache what
    /// it read after it (the flush may have changed and evicted that very coin).
    pub epoch: u64,
    dirty: usize,
}

impl CoinsCache {
    pub fn new(hasher: SaltedOutPointHasher, limit: usize) -> CoinsCache {
        CoinsCache { map: HashMap::with_hasher(hasher), heap: 0, limit, complete: true, epoch: 0, dirty: 0 }
    }

    /// What `coins` coins with `script_bytes` of scripts in all take in the cache.
    pub fn bytes_for(coins: u64, script_bytes: u64) -> u64 {
        coins * (SLOT_BYTES as u64 * 8 / 7 + SCRIPT_ALLOC_OVERHEAD as u64) + script_bytes
    }

    pub fn get(&self, outpoint: &OutPoint) -> Option<&CacheEntry> {
        self.map.get(outpoint)
    }

    /// Bytes held: allocated slots (hashbrown keeps 1/8 of them free) and script allocations.
    pub fn usage(&self) -> usize {
        (self.map.capacity() * 8 / 7) * SLOT_BYTES + self.heap
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Entries, spent ones included.
    pub fn entries(&self) -> usize {
        self.map.len()
    }

    /// Entries a flush would write.
    pub fn dirty_len(&self) -> usize {
        self.dirty
    }

    /// Whether a reader may add a coin read from disk: only while the cache stays below its bound
    /// with the entry added, counting the doubled map when adding it makes the map grow.
    pub fn has_room(&self) -> bool {
        let growth =
            if self.map.len() < self.map.capacity() { 0 } else { (self.map.capacity().max(3) * 8 / 7) * SLOT_BYTES };
        self.usage() + growth < self.limit
    }

    /// Adds a coin read from disk, unchanged (neither DIRTY nor FRESH), unless an entry is there.
    pub fn insert_clean(&mut self, outpoint: OutPoint, coin: Coin) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.map.entry(outpoint) {
            let coin = Some(coin);
            self.heap += script_heap(&coin);
            e.insert(CacheEntry { coin, flags: 0 });
        }
    }

    /// Records the new value of `outpoint` and returns the unspent coin it replaces, if the cache
    /// knew one. The caller guarantees that an outpoint absent from the cache is absent on disk
    /// (it loaded every coin the change touches first). `restoring`: a coin put back by undo data,
    /// which may still be on disk (the spend was never flushed), so it is not FRESH.
    pub fn set(&mut self, outpoint: OutPoint, value: Option<Coin>, restoring: bool) -> Option<Coin> {
        use std::collections::hash_map::Entry;
        let added = script_heap(&value);
        match self.map.entry(outpoint) {
            Entry::Occupied(mut e) => {
                let entry = e.get_mut();
                self.heap -= script_heap(&entry.coin);
                if entry.flags & DIRTY == 0 {
                    self.dirty += 1;
                }
                if value.is_none() && entry.flags & FRESH != 0 {
                    self.dirty -= 1;
                    return e.remove().coin;
                }
                self.heap += added;
                entry.flags |= DIRTY;
                std::mem::replace(&mut entry.coin, value)
            }
            Entry::Vacant(e) => {
                if value.is_some() {
                    self.heap += added;
                    self.dirty += 1;
                    let fresh = if restoring { 0 } else { FRESH };
                    e.insert(CacheEntry { coin: value, flags: DIRTY | fresh });
                }
                None
            }
        }
    }

    /// The entries a flush writes.
    pub fn dirty_entries(&self) -> impl Iterator<Item = (&OutPoint, Option<&Coin>)> {
        self.map.iter().filter(|(_, e)| e.flags & DIRTY != 0).map(|(op, e)| (op, e.coin.as_ref()))
    }

    /// After the dirty entries were written: all entries are clean, spent ones go, and clean coins
    /// are evicted (in the map's salted order, which favours no one) until the entries take at most
    /// `KEEP_AFTER_FLUSH_PERCENT` of the bound; the map is then shrunk, and as hashbrown rounds
    /// its slots up to a power of two, the cache ends below its bound.
    pub fn flushed(&mut self) {
        self.map.retain(|_, e| {
            e.flags = 0;
            e.coin.is_some()
        });
        self.dirty = 0;
        self.epoch += 1;
        let keep = self.limit / 100 * KEEP_AFTER_FLUSH_PERCENT;
        if self.usage() > keep {
            let mut held = self.map.len() * SLOT_BYTES * 8 / 7 + self.heap;
            let mut heap = self.heap;
            self.map.retain(|_, e| {
                if held <= keep {
                    return true;
                }
                let freed = script_heap(&e.coin);
                held -= freed + SLOT_BYTES * 8 / 7;
                heap -= freed;
                false
            });
            self.heap = heap;
            self.complete = false;
            self.map.shrink_to_fit();
        }
    }

    /// Makes room for `extra` more entries up front (a set loaded whole at start).
    pub fn reserve(&mut self, extra: usize) {
        self.map.reserve(extra);
    }

    /// Every cached unspent coin.
    pub fn coins(&self) -> impl Iterator<Item = (&OutPoint, &Coin)> {
        self.map.iter().filter_map(|(op, e)| e.coin.as_ref().map(|c| (op, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hash256;
    use bytes::Bytes;

    fn op(n: u8) -> OutPoint {
        OutPoint { txid: Hash256([n; 32]), vout: 0 }
    }

    fn coin(v: i64) -> Coin {
        Coin { value: v, script_pubkey: Bytes::from(vec![0x51; 25]), height: 1, is_coinbase: false }
    }

    fn dirty(c: &CoinsCache) -> Vec<(OutPoint, Option<i64>)> {
        let mut v: Vec<_> = c.dirty_entries().map(|(o, c)| (*o, c.map(|c| c.value))).collect();
        v.sort_by_key(|(o, _)| o.txid.0);
        v
    }

    #[test]
    fn a_fresh_coin_spent_before_a_flush_never_reaches_the_disk() {
        let mut c = CoinsCache::new(SaltedOutPointHasher::random(), usize::MAX);
        assert_eq!(c.set(op(1), Some(coin(5)), false), None);
        assert_eq!(c.get(&op(1)).map(|e| e.flags), Some(DIRTY | FRESH));
        assert_eq!(c.set(op(1), None, false).map(|c| c.value), Some(5));
        assert!(c.get(&op(1)).is_none());
        assert!(dirty(&c).is_empty());
        assert_eq!(c.dirty_len(), 0);
        assert_eq!(c.usage(), c.map.capacity() * 8 / 7 * SLOT_BYTES, "no script bytes left");
    }

    #[test]
    fn a_coin_from_disk_spent_is_deleted_at_the_flush_then_forgotten() {
        let mut c = CoinsCache::new(SaltedOutPointHasher::random(), usize::MAX);
        c.insert_clean(op(2), coin(7));
        assert!(dirty(&c).is_empty(), "a coin read from disk is clean");
        assert_eq!(c.set(op(2), None, false).map(|c| c.value), Some(7));
        assert_eq!(dirty(&c), vec![(op(2), None)]);
        // Restored by undo data before any flush: the disk still has it, so it is not FRESH.
        c.set(op(2), Some(coin(7)), true);
        assert_eq!(c.get(&op(2)).map(|e| e.flags), Some(DIRTY));
        c.set(op(2), None, false);
        c.flushed();
        assert!(c.get(&op(2)).is_none(), "spent entries go after the flush");
        assert_eq!(c.epoch, 1);
        // A coin restored into an empty slot may still be on disk: spent again, it is written.
        c.set(op(3), Some(coin(1)), true);
        c.set(op(3), None, false);
        assert_eq!(dirty(&c), vec![(op(3), None)]);
    }

    #[test]
    fn a_flush_evicts_clean_coins_down_to_half_the_bound() {
        let limit = 200 * (SLOT_BYTES + 64);
        let mut c = CoinsCache::new(SaltedOutPointHasher::random(), limit);
        for n in 0..400u32 {
            let outpoint = OutPoint { txid: Hash256([9; 32]), vout: n };
            c.set(outpoint, Some(coin(i64::from(n))), false);
        }
        assert!(c.usage() > limit);
        assert!(c.complete);
        c.flushed();
        // Half the bound in entries; the shrunk map rounds its slots up to a power of two.
        assert!(c.usage() <= limit, "usage {} of {limit}", c.usage());
        assert!(c.entries() > 50 && c.entries() < 200, "{} kept", c.entries());
        assert!(!c.complete, "evicted coins are only on disk now");
        // Readers may fill the cache again, but not past its bound, growth of the map included.
        let mut n = 1000;
        while c.has_room() {
            c.insert_clean(OutPoint { txid: Hash256([8; 32]), vout: n }, coin(1));
            n += 1;
        }
        // At most the last coin's script past the bound.
        assert!(c.usage() <= limit + 25 + SCRIPT_ALLOC_OVERHEAD, "usage {} of {limit}", c.usage());
        assert_eq!(c.dirty_len(), 0);
    }
}
