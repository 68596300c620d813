//! Orphan transactions: valid-looking transactions whose parents we have not seen yet.
//!
//! Bounded by count and by bytes (SV Node bounds by bytes only, 1 GB; a count bound as well keeps
//! the per-entry overhead of many tiny orphans in check); when full the oldest go first. Entries
//! expire after 20 minutes, are dropped when the peer that sent them disconnects, and are handed
//! back for re-validation when a parent arrives. Orphans are never a reason to punish a peer.

use crate::wire::{Transaction, TxId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Who sent an orphan: the relay's peer id. (A plain number, so the pool does not depend on the
/// peer layer above it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(pub u64);

/// SV Node's orphan expiry: 20 minutes (src/orphan_txns.h).
pub const ORPHAN_EXPIRY_SECS: u64 = 20 * 60;
/// SV Node ignores orphans larger than the post-Genesis policy transaction size (10 MB).
pub const MAX_ORPHAN_TX_SIZE: usize = 10_000_000;

#[derive(Debug, Clone)]
pub struct OrphanPoolConfig {
    pub max_count: usize,
    pub max_bytes: usize,
}

/// Our `-maxorphantxsize` default, in MB (SV Node: 1000): generous for honest out-of-order
/// arrival, bounded under a flood.
pub const DEFAULT_MAX_ORPHAN_MB: u64 = 100;

impl Default for OrphanPoolConfig {
    fn default() -> Self {
        OrphanPoolConfig { max_count: 100_000, max_bytes: (DEFAULT_MAX_ORPHAN_MB * 1_000_000) as usize }
    }
}

#[derive(Debug)]
struct Orphan {
    tx: Arc<Transaction>,
    peer: PeerId,
    time: u64,
    seq: u64,
    missing: Vec<TxId>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<TxId, Orphan>,
    /// Missing parent → orphans waiting for it.
    waiting: HashMap<TxId, HashSet<TxId>>,
    /// Arrival order, for evicting the oldest.
    order: BTreeMap<u64, TxId>,
    bytes: usize,
    next_seq: u64,
}

/// The orphan pool; short critical sections behind one mutex (orphans are the uncommon path).
#[derive(Debug, Default)]
pub struct OrphanPool {
    config: OrphanPoolConfig,
    inner: Mutex<Inner>,
}

impl OrphanPool {
    pub fn new(config: OrphanPoolConfig) -> OrphanPool {
        OrphanPool { config, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn contains(&self, txid: &TxId) -> bool {
        self.lock().by_id.contains_key(txid)
    }

    /// Calls `f` with every orphan until it breaks (compact block reconstruction searches them).
    pub fn visit(&self, f: &mut dyn FnMut(&TxId, &Arc<Transaction>) -> std::ops::ControlFlow<()>) {
        let inner = self.lock();
        for (txid, o) in &inner.by_id {
            if f(txid, &o.tx).is_break() {
                return;
            }
        }
    }

    /// Adds an orphan missing `missing` parents, evicting the oldest orphans to stay within the
    /// limits; returns how many were evicted, or `None` if it was not kept (too large, already
    /// there).
    pub fn add(&self, tx: Arc<Transaction>, missing: Vec<TxId>, peer: PeerId, now: u64) -> Option<usize> {
        let size = tx.size();
        if size > MAX_ORPHAN_TX_SIZE || size > self.config.max_bytes {
            return None;
        }
        let mut inner = self.lock();
        let txid = tx.txid();
        if inner.by_id.contains_key(&txid) {
            return None;
        }
        let mut evicted = 0;
        while inner.by_id.len() + 1 > self.config.max_count || inner.bytes + size > self.config.max_bytes {
            let Some((_, oldest)) = inner.order.iter().next().map(|(s, t)| (*s, *t)) else { break };
            remove_locked(&mut inner, &oldest);
            evicted += 1;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        for parent in &missing {
            inner.waiting.entry(*parent).or_default().insert(txid);
        }
        inner.order.insert(seq, txid);
        inner.bytes += size;
        inner.by_id.insert(txid, Orphan { tx, peer, time: now, seq, missing });
        Some(evicted)
    }

    /// A transaction arrived: the orphans that were waiting for it, removed from the pool for the
    /// caller to re-validate (any still missing another parent will come back).
    pub fn take_children_of(&self, parent: &TxId) -> Vec<(Arc<Transaction>, PeerId)> {
        let mut inner = self.lock();
        let Some(kids) = inner.waiting.remove(parent) else { return Vec::new() };
        kids.into_iter().filter_map(|k| remove_locked(&mut inner, &k)).collect()
    }

    /// Removes one orphan (it became valid, or was found invalid).
    pub fn remove(&self, txid: &TxId) -> bool {
        remove_locked(&mut self.lock(), txid).is_some()
    }

    /// Drops every orphan `peer` sent (it disconnected, or sent an invalid one).
    pub fn remove_peer(&self, peer: PeerId) -> usize {
        let mut inner = self.lock();
        let ids: Vec<TxId> = inner.by_id.iter().filter(|(_, o)| o.peer == peer).map(|(t, _)| *t).collect();
        ids.iter().filter(|t| remove_locked(&mut inner, t).is_some()).count()
    }

    /// Drops orphans older than the expiry.
    pub fn expire(&self, now: u64) -> usize {
        let mut inner = self.lock();
        let cutoff = now.saturating_sub(ORPHAN_EXPIRY_SECS);
        let ids: Vec<TxId> = inner.by_id.iter().filter(|(_, o)| o.time < cutoff).map(|(t, _)| *t).collect();
        ids.iter().filter(|t| remove_locked(&mut inner, t).is_some()).count()
    }
}

fn remove_locked(inner: &mut Inner, txid: &TxId) -> Option<(Arc<Transaction>, PeerId)> {
    let orphan = inner.by_id.remove(txid)?;
    inner.order.remove(&orphan.seq);
    inner.bytes -= orphan.tx.size();
    for parent in &orphan.missing {
        if let Some(set) = inner.waiting.get_mut(parent) {
            set.remove(txid);
            if set.is_empty() {
                inner.waiting.remove(parent);
            }
        }
    }
    Some((orphan.tx, orphan.peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Hash256, OutPoint, TxFields, TxIn, TxOut};
    use bytes::Bytes;

    fn tx(parent: Hash256, tag: u8, pad: usize) -> Arc<Transaction> {
        Arc::new(Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: parent, vout: 0 },
                script_sig: Bytes::from(vec![tag; pad]),
                sequence: 0,
            }],
            outputs: vec![TxOut { value: 1, script_pubkey: Bytes::new() }],
            lock_time: 0,
        }))
    }

    #[test]
    fn children_come_back_when_the_parent_arrives() {
        let pool = OrphanPool::default();
        let parent = Hash256([1; 32]);
        let (a, b) = (tx(parent, 1, 1), tx(parent, 2, 1));
        assert_eq!(pool.add(a.clone(), vec![parent], PeerId(1), 0), Some(0));
        assert_eq!(pool.add(b.clone(), vec![parent], PeerId(2), 0), Some(0));
        assert_eq!(pool.add(a.clone(), vec![parent], PeerId(1), 0), None, "no duplicates");
        let mut back: Vec<TxId> = pool.take_children_of(&parent).iter().map(|(t, _)| t.txid()).collect();
        back.sort();
        let mut want = vec![a.txid(), b.txid()];
        want.sort();
        assert_eq!(back, want);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn count_and_byte_limits_evict_the_oldest() {
        let pool = OrphanPool::new(OrphanPoolConfig { max_count: 3, max_bytes: 10_000 });
        let txs: Vec<_> = (0..5).map(|i| tx(Hash256([i; 32]), i, 1)).collect();
        let evicted: Vec<_> = txs
            .iter()
            .enumerate()
            .map(|(i, t)| pool.add(t.clone(), vec![Hash256([i as u8; 32])], PeerId(1), 0))
            .collect();
        assert_eq!(evicted, vec![Some(0), Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!(pool.len(), 3);
        assert!(!pool.contains(&txs[0].txid()) && !pool.contains(&txs[1].txid()));
        let by_bytes = OrphanPool::new(OrphanPoolConfig { max_count: 100, max_bytes: 500 });
        for i in 0..5u8 {
            by_bytes.add(tx(Hash256([i; 32]), i, 200), vec![Hash256([i; 32])], PeerId(1), 0);
        }
        assert!(by_bytes.bytes() <= 500);
        assert_eq!(by_bytes.len(), 1, "each is about 250 bytes");
        assert_eq!(by_bytes.add(tx(Hash256([9; 32]), 9, 600), vec![], PeerId(1), 0), None, "larger than the pool");
    }

    #[test]
    fn orphans_expire_and_leave_with_their_peer() {
        let pool = OrphanPool::default();
        pool.add(tx(Hash256([1; 32]), 1, 1), vec![Hash256([1; 32])], PeerId(1), 1000);
        pool.add(tx(Hash256([2; 32]), 2, 1), vec![Hash256([2; 32])], PeerId(2), 1000 + 600);
        assert_eq!(pool.expire(1000 + ORPHAN_EXPIRY_SECS), 0, "not yet");
        assert_eq!(pool.expire(1001 + ORPHAN_EXPIRY_SECS), 1);
        assert_eq!(pool.remove_peer(PeerId(2)), 1);
        assert!(pool.is_empty());
        assert!(pool.take_children_of(&Hash256([2; 32])).is_empty(), "index cleaned");
    }
}
