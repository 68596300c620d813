//! What a peer is known to have: a rolling filter of recent txids in a few hundred kilobytes.
//!
//! A per-peer set of the last 100,000 txids costs about 10 MB (a hash set plus an eviction queue);
//! with a hundred peers that is a gigabyte. SV Node and Core keep a rolling bloom filter instead,
//! and so do we: two generations of `per_generation` entries each, so the filter always remembers
//! at least the last `per_generation` txids and forgets beyond twice that. A false positive (about
//! one in a million lookups) means one peer is not sent one announcement; it can still get the
//! transaction from anyone else who announces it.

use crate::wire::TxId;

/// False positive rate the filter is sized for.
const FALSE_POSITIVE_RATE: f64 = 1e-6;
/// Most hash functions a filter uses (1e-6 needs 20).
const MAX_HASHES: usize = 32;

#[derive(Debug)]
pub struct RollingFilter {
    generations: [Vec<u64>; 2],
    current: usize,
    count: usize,
    per_generation: usize,
    bits: u64,
    hashes: usize,
    /// Random per filter, so nobody can choose txids that collide in every peer's filter.
    tweak: (u64, u64),
}

impl RollingFilter {
    pub fn new(per_generation: usize) -> RollingFilter {
        let per_generation = per_generation.max(1);
        let ln2 = std::f64::consts::LN_2;
        let bits = (-(per_generation as f64) * FALSE_POSITIVE_RATE.ln() / (ln2 * ln2)).ceil().max(64.0) as u64;
        let hashes = ((bits as f64 / per_generation as f64) * ln2).round().clamp(1.0, MAX_HASHES as f64) as usize;
        let words = bits.div_ceil(64) as usize;
        RollingFilter {
            generations: [vec![0; words], vec![0; words]],
            current: 0,
            count: 0,
            per_generation,
            bits,
            hashes,
            tweak: (rand::random(), rand::random::<u64>() | 1),
        }
    }

    /// Bit positions of `txid` (double hashing over two words of the txid, itself a hash); the
    /// first `self.hashes` entries are used.
    fn positions(&self, txid: &TxId) -> [u64; MAX_HASHES] {
        let word = |i: usize| u64::from_le_bytes(txid.0[i..i + 8].try_into().expect("8 bytes"));
        let a = word(0) ^ self.tweak.0;
        let b = (word(8) ^ word(16)).wrapping_mul(self.tweak.1) | 1;
        let mut out = [0; MAX_HASHES];
        for (i, p) in out.iter_mut().enumerate().take(self.hashes) {
            *p = a.wrapping_add((i as u64).wrapping_mul(b)) % self.bits;
        }
        out
    }

    fn in_generation(&self, g: usize, positions: &[u64]) -> bool {
        let words = &self.generations[g];
        positions.iter().all(|p| words[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    #[cfg(test)]
    pub fn contains(&self, txid: &TxId) -> bool {
        let positions = self.positions(txid);
        let positions = &positions[..self.hashes];
        self.in_generation(0, positions) || self.in_generation(1, positions)
    }

    /// Adds `txid`; false if it was (probably) there already.
    pub fn insert(&mut self, txid: TxId) -> bool {
        let positions = self.positions(&txid);
        let positions = &positions[..self.hashes];
        if self.in_generation(0, positions) || self.in_generation(1, positions) {
            return false;
        }
        if self.count == self.per_generation {
            self.current ^= 1;
            self.generations[self.current].iter_mut().for_each(|w| *w = 0);
            self.count = 0;
        }
        let words = &mut self.generations[self.current];
        for p in positions {
            words[(p / 64) as usize] |= 1 << (p % 64);
        }
        self.count += 1;
        true
    }

    /// Bytes the filter holds.
    #[cfg(test)]
    pub fn memory(&self) -> usize {
        self.generations.iter().map(|g| g.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hash256;

    fn id(i: u64) -> TxId {
        Hash256::sha256d(&i.to_le_bytes())
    }

    #[test]
    fn remembers_the_last_generation_and_forgets_beyond_two() {
        let mut f = RollingFilter::new(10_000);
        for i in 0..10_000 {
            assert!(f.insert(id(i)), "new txid {i}");
        }
        assert!(!f.insert(id(5)), "a known txid is not new");
        for i in 10_000..25_000 {
            f.insert(id(i));
        }
        // The last 10,000 are always remembered.
        assert!((15_000..25_000).all(|i| f.contains(&id(i))));
        // The first 10,000 were two generations ago: forgotten (false positives aside).
        let remembered = (0..10_000).filter(|i| f.contains(&id(*i))).count();
        assert!(remembered <= 2, "{remembered} old txids still reported");
    }

    #[test]
    fn false_positives_are_rare_and_memory_is_small() {
        let mut f = RollingFilter::new(100_000);
        for i in 0..200_000 {
            f.insert(id(i));
        }
        let false_positives = (1_000_000..1_200_000).filter(|i| f.contains(&id(*i))).count();
        // Sized for 1e-6 per generation: two generations, 200,000 lookups, expect < 1.
        assert!(false_positives <= 3, "{false_positives} false positives");
        assert!(f.memory() < 1_000_000, "{} bytes", f.memory());
    }
}
