//! A cache of signatures already verified, so a transaction checked when it entered the mempool
//! is not checked again when its block arrives.
//!
//! Keyed by sha256(sighash ‖ public key ‖ signature), so only the exact (digest, key, signature)
//! triple that verified can hit: a hit can never make an invalid signature pass. Concurrent
//! (dashmap), shared by all validation threads, without a lock around it.
//!
//! Bounded by entry count in two generations of half the capacity each: inserts go to the current
//! one; when it is full the older one is emptied and becomes current. So the most recent half of
//! what was verified always survives (the mempool's newest transactions, the likeliest to be
//! mined next), where emptying the whole cache would make the next block re-verify everything.
//! A lost entry costs a re-verification, never correctness.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashSet;

/// Default capacity: one entry per input of about a million transactions, 32 bytes each plus the
/// map's overhead, roughly 100 MB at most.
pub const DEFAULT_SIG_CACHE_ENTRIES: usize = 1_000_000;

#[derive(Debug)]
pub struct SigCache {
    generations: [DashSet<[u8; 32]>; 2],
    /// Index of the generation inserts go to.
    current: AtomicUsize,
    /// Entries in the current generation (a counter, so the hot path never sums the shards).
    filled: AtomicUsize,
    per_generation: usize,
}

impl Default for SigCache {
    fn default() -> Self {
        SigCache::new(DEFAULT_SIG_CACHE_ENTRIES)
    }
}

impl SigCache {
    /// A cache holding at most `max` signatures (at least two).
    pub fn new(max: usize) -> SigCache {
        SigCache {
            generations: [DashSet::new(), DashSet::new()],
            current: AtomicUsize::new(0),
            filled: AtomicUsize::new(0),
            per_generation: (max / 2).max(1),
        }
    }

    pub fn key(digest: &[u8; 32], pubkey: &[u8], signature: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(digest);
        h.update([pubkey.len() as u8]);
        h.update(pubkey);
        h.update(signature);
        h.finalize().into()
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.generations.iter().any(|g| g.contains(key))
    }

    /// Records a signature that verified.
    pub fn insert(&self, key: [u8; 32]) {
        let current = self.current.load(Ordering::Acquire);
        if self.generations[current].insert(key)
            && self.filled.fetch_add(1, Ordering::AcqRel) + 1 == self.per_generation
        {
            // Exactly one inserter sees the count reach the bound: it rotates. Inserts go to the
            // new generation from here on, so the one being filled cannot overfill while it is
            // emptied; those that land during the clear may be lost (a later re-verification).
            // An inserter that read `current` before the switch adds one entry to the old one.
            let older = 1 - current;
            self.current.store(older, Ordering::Release);
            self.filled.store(0, Ordering::Release);
            self.generations[older].clear();
        }
    }

    /// Signatures held, in both generations.
    pub fn len(&self) -> usize {
        self.generations.iter().map(DashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> [u8; 32] {
        SigCache::key(&[0; 32], &i.to_le_bytes(), b"sig")
    }

    #[test]
    fn when_full_the_older_half_goes_and_the_newest_stays() {
        let cache = SigCache::new(100);
        for i in 0..100 {
            cache.insert(key(i));
        }
        // 0..50 filled the first generation, 50..100 the second; the 100th insert rotated,
        // emptying the first.
        assert!((0..50).all(|i| !cache.contains(&key(i))));
        assert!((50..100).all(|i| cache.contains(&key(i))), "the newest half survives");
        assert_eq!(cache.len(), 50);
        for i in 100..150 {
            cache.insert(key(i));
        }
        assert!((100..150).all(|i| cache.contains(&key(i))));
        assert!((50..100).all(|i| !cache.contains(&key(i))));
        assert!(cache.len() <= 100);
    }

    #[test]
    fn stays_bounded_under_concurrent_inserts() {
        let cache = SigCache::new(1_000);
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let cache = &cache;
                s.spawn(move || {
                    for i in 0..10_000 {
                        cache.insert(key(t * 10_000 + i));
                    }
                });
            }
        });
        // A generation can overfill only by inserters that read `current` before a switch.
        assert!(cache.len() <= 1_000 + 4, "{} entries", cache.len());
        cache.insert(key(u32::MAX));
        assert!(cache.contains(&key(u32::MAX)));
    }

    #[test]
    fn only_the_exact_triple_hits() {
        let cache = SigCache::new(10);
        cache.insert(SigCache::key(&[1; 32], b"key", b"sig"));
        assert!(cache.contains(&SigCache::key(&[1; 32], b"key", b"sig")));
        assert!(!cache.contains(&SigCache::key(&[2; 32], b"key", b"sig")));
        assert!(!cache.contains(&SigCache::key(&[1; 32], b"kez", b"sig")));
        assert!(!cache.contains(&SigCache::key(&[1; 32], b"key", b"sif")));
    }
}
