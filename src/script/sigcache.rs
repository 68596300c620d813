//! A cache of signatures already verified, so a transaction checked when it entered the mempool
//! is not checked again when its block arrives.
//!
//! Keyed by sha256(sighash ‖ public key ‖ signature), so only the exact (digest, key, signature)
//! triple that verified can hit: a hit can never make an invalid signature pass. Concurrent
//! (dashmap), shared by all validation threads; bounded by entry count — when full it is emptied
//! and refills, which costs re-verification, never correctness.

use dashmap::DashSet;

/// Default capacity: one entry per input of about a million transactions, 32 bytes each plus the
/// map's overhead, roughly 100 MB at most.
pub const DEFAULT_SIG_CACHE_ENTRIES: usize = 1_000_000;

#[derive(Debug)]
pub struct SigCache {
    set: DashSet<[u8; 32]>,
    max: usize,
}

impl Default for SigCache {
    fn default() -> Self {
        SigCache::new(DEFAULT_SIG_CACHE_ENTRIES)
    }
}

impl SigCache {
    pub fn new(max: usize) -> SigCache {
        SigCache { set: DashSet::new(), max }
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
        self.set.contains(key)
    }

    /// Records a signature that verified.
    pub fn insert(&self, key: [u8; 32]) {
        if self.set.len() >= self.max {
            self.set.clear();
        }
        self.set.insert(key);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
