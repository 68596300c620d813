//! The concurrent transaction pool.
//!
//! Invariants, kept under concurrent inserts from many threads:
//! - every outpoint spent by a pool transaction is in `spends`, mapped to exactly that transaction;
//!   an insert claims its outpoints one at a time with dashmap's atomic entry API and releases what
//!   it claimed if any is taken, so of two conflicting transactions exactly one gets in (first
//!   seen wins) and no half-claimed state survives;
//! - every in-pool parent of an entry lists it in `children`, so removing a transaction removes
//!   its descendants too (they would spend outputs that no longer exist);
//! - an entry's ancestor count (the height of its in-pool ancestor chain, SV Node's measure for
//!   `-limitancestorcount`) is above each of its parents', so sorting by it puts parents first;
//! - `bytes` is the sum of the sizes of the entries.
//!
//! Memory: at a million transactions the per-entry overhead matters more than the bytes, so an
//! entry keeps an exact-size copy of the transaction's bytes (not its decoded form, not the network
//! buffer it arrived in; readers that need the fields decode them again with [`Entry::tx`], about
//! 100 ns), the txid lives only in the entry (the index is a set of entries looked up by txid),
//! and the outpoint index points at the entry instead of repeating the txid.
//!
//! Eviction when over `max_bytes` and expiry are scans, not indexes: they are rare, and an ordered
//! index would put one lock on every insert. Eviction removes the lowest fee rate first, with
//! descendants, and raises a rolling minimum fee rate that decays with a 12-hour half-life (SV
//! Node's and Core's scheme), so a full pool does not readmit what it just evicted.

use crate::wire::{OutPoint, Transaction, TxId};
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use dashmap::DashSet;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// SV Node's `-maxmempool` default: 1000 MB.
pub const DEFAULT_MAX_BYTES: usize = 1_000_000_000;
/// SV Node's `-mempoolexpiry` default: 336 hours.
pub const DEFAULT_EXPIRY_SECS: u64 = 336 * 3600;
/// SV Node's ancestor limit for the primary mempool (`-limitancestorcount`, src/validation.h:86-97).
pub const DEFAULT_MAX_ANCESTORS: u32 = 10_000;
/// After an eviction the minimum fee rate is the evicted rate plus this (sat/kB):
/// `MEMPOOL_FULL_FEE_INCREMENT`.
const FULL_FEE_INCREMENT: u64 = 1000;
/// Half-life of the rolling minimum fee rate.
const MIN_FEE_HALF_LIFE_SECS: f64 = 12.0 * 3600.0;
/// Eviction trims to this fraction of the limit, so a full pool does not evict on every insert.
const TRIM_TARGET: f64 = 0.9;
/// How long a transaction that left the pool (mined, conflicted, evicted, expired) can still be
/// fetched by peers we announced it to (SV Node's relay map keeps announced transactions 15
/// minutes, whatever happens to them in the mempool).
pub const RECENTLY_LEFT_SECS: u64 = 15 * 60;
/// The departed transactions kept for relay hold at most this fraction of `max_bytes`; the oldest
/// go first when more leave (an eviction storm must not double the pool's memory).
const RECENTLY_LEFT_SHARE: usize = 10;

#[derive(Debug, Clone)]
pub struct MempoolConfig {
    pub max_bytes: usize,
    pub expiry_secs: u64,
    pub max_ancestors: u32,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            expiry_secs: DEFAULT_EXPIRY_SECS,
            max_ancestors: DEFAULT_MAX_ANCESTORS,
        }
    }
}

/// One pool transaction.
#[derive(Debug)]
pub struct Entry {
    pub txid: TxId,
    /// The transaction as received: what `getdata` answers with and what [`Entry::tx`] decodes.
    raw: Box<[u8]>,
    /// Satoshis paid (inputs minus outputs).
    pub fee: i64,
    /// Unix seconds when it entered the pool.
    pub time: u64,
    /// Its place among pool transactions; changes when a parent is mined.
    links: Mutex<Links>,
}

#[derive(Debug)]
struct Links {
    /// In-pool transactions this one spends.
    parents: Box<[TxId]>,
    /// Height of its in-pool ancestor chain: 0 without in-pool parents, else one more than its
    /// highest parent (SV Node's `ancestorsCount`).
    ancestors: u32,
}

impl Entry {
    /// In-pool transactions this one spends.
    pub fn parents(&self) -> Vec<TxId> {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).parents.to_vec()
    }

    /// Height of its in-pool ancestor chain (0: no unconfirmed parent); parents are always lower.
    pub fn ancestors(&self) -> u32 {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).ancestors
    }

    /// Fee rate in satoshis per 1000 bytes.
    pub fn fee_rate(&self) -> u64 {
        fee_rate(self.fee, self.size())
    }

    /// Serialized size in bytes.
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The decoded transaction. The bytes decoded once before they were validated, so this cannot
    /// fail; the expect documents that invariant.
    pub fn tx(&self) -> Transaction {
        Transaction::from_raw_with_id(&bytes::Bytes::copy_from_slice(&self.raw), self.txid)
            .expect("pool entries hold bytes that decoded before")
    }
}

/// An entry in the pool's index: hashed, compared and looked up by its txid.
#[derive(Debug, Clone)]
struct Indexed(Arc<Entry>);

impl PartialEq for Indexed {
    fn eq(&self, other: &Self) -> bool {
        self.0.txid == other.0.txid
    }
}
impl Eq for Indexed {}
impl Hash for Indexed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.txid.hash(state);
    }
}
impl Borrow<TxId> for Indexed {
    fn borrow(&self) -> &TxId {
        &self.0.txid
    }
}

fn fee_rate(fee: i64, size: usize) -> u64 {
    (fee.max(0) as u64).saturating_mul(1000) / size.max(1) as u64
}

/// Why a transaction was not inserted. None of these is an offence by the peer that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InsertError {
    #[error("txn-already-in-mempool")]
    AlreadyKnown,
    /// Spends an outpoint a pool transaction already spends (SV Node: `txn-mempool-conflict`).
    #[error("txn-mempool-conflict")]
    Conflict { with: TxId },
    #[error("too-long-mempool-chain")]
    TooLongChain { ancestors: u32, max: u32 },
    #[error("mempool min fee not met")]
    FeeTooLow { fee_rate: u64, min: u64 },
}

impl InsertError {
    /// SV Node's reject reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::AlreadyKnown => "txn-already-in-mempool",
            Self::Conflict { .. } => "txn-mempool-conflict",
            Self::TooLongChain { .. } => "too-long-mempool-chain",
            Self::FeeTooLow { .. } => "mempool min fee not met",
        }
    }
}

/// Why entries left the pool (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    Block,
    Conflict,
    Evicted,
    Expired,
    Reorg,
}

impl RemovalReason {
    pub const ALL: [RemovalReason; 5] = [Self::Block, Self::Conflict, Self::Evicted, Self::Expired, Self::Reorg];

    pub const fn label(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Conflict => "conflict",
            Self::Evicted => "evicted",
            Self::Expired => "expired",
            Self::Reorg => "reorg",
        }
    }
}

/// Transactions that left the pool, kept for [`RECENTLY_LEFT_SECS`] and `max_bytes` bytes, oldest
/// first out.
#[derive(Debug, Default)]
struct RecentlyLeft {
    /// Each with the time it stops being served (a transaction that leaves twice keeps the later).
    entries: HashMap<TxId, (Arc<Entry>, u64)>,
    expiry: VecDeque<(u64, TxId)>,
    bytes: usize,
    max_bytes: usize,
}

impl RecentlyLeft {
    fn add(&mut self, entries: &[Arc<Entry>], now: u64) {
        for e in entries {
            let until = now + RECENTLY_LEFT_SECS;
            self.bytes += e.size();
            if let Some((old, _)) = self.entries.insert(e.txid, (e.clone(), until)) {
                self.bytes -= old.size();
            }
            self.expiry.push_back((until, e.txid));
        }
        while let Some(&(until, txid)) = self.expiry.front() {
            if until > now && self.bytes <= self.max_bytes {
                break;
            }
            self.expiry.pop_front();
            if self.entries.get(&txid).is_some_and(|(_, u)| *u == until) {
                if let Some((gone, _)) = self.entries.remove(&txid) {
                    self.bytes -= gone.size();
                }
            }
        }
    }

    fn get(&self, txid: &TxId, now: u64) -> Option<Arc<Entry>> {
        self.entries.get(txid).filter(|(_, until)| *until > now).map(|(e, _)| e.clone())
    }
}

/// The pool; share it as `Arc<Mempool>`.
#[derive(Debug)]
pub struct Mempool {
    config: MempoolConfig,
    entries: DashSet<Indexed>,
    spends: DashMap<OutPoint, Arc<Entry>>,
    children: DashMap<TxId, Vec<TxId>>,
    bytes: AtomicUsize,
    /// Rolling minimum fee rate (sat/kB) and when it was set, for the decay.
    min_fee: Mutex<(f64, u64)>,
    /// Whether `min_fee` holds a floor: read on every insert without the lock (usually false).
    min_fee_active: std::sync::atomic::AtomicBool,
    /// Serialises eviction passes (inserts never take it).
    trimming: Mutex<()>,
    recently_left: Mutex<RecentlyLeft>,
    accepted: AtomicU64,
}

impl Mempool {
    pub fn new(config: MempoolConfig) -> Mempool {
        let max_bytes = config.max_bytes / RECENTLY_LEFT_SHARE;
        Mempool {
            config,
            entries: DashSet::new(),
            spends: DashMap::new(),
            children: DashMap::new(),
            bytes: AtomicUsize::new(0),
            min_fee: Mutex::new((0.0, 0)),
            min_fee_active: std::sync::atomic::AtomicBool::new(false),
            trimming: Mutex::new(()),
            recently_left: Mutex::new(RecentlyLeft { max_bytes, ..Default::default() }),
            accepted: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the serialized sizes of the pool's transactions.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Estimated memory the pool uses: the transactions' bytes (exact-size allocations), the
    /// entries and the index slots (at the hash tables' average load). An estimate for
    /// `getmempoolinfo`'s `usage`, checked against the resident size in `testnet/bench/memory.py`.
    pub fn usage(&self) -> usize {
        const PER_ENTRY: usize = 160;
        const PER_INPUT: usize = 100;
        self.bytes() + self.entries.len() * PER_ENTRY + self.spends.len() * PER_INPUT
    }

    /// Transactions ever inserted.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn contains(&self, txid: &TxId) -> bool {
        self.entries.contains(txid)
    }

    pub fn get(&self, txid: &TxId) -> Option<Arc<Entry>> {
        self.entries.get(txid).map(|e| e.0.clone())
    }

    /// The pool transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<TxId> {
        self.spends.get(outpoint).map(|e| e.txid)
    }

    /// A pool transaction, or one that left the pool in the last [`RECENTLY_LEFT_SECS`] before
    /// `now`: what a peer's `getdata` for an announced transaction is answered with.
    pub fn for_relay(&self, txid: &TxId, now: u64) -> Option<Arc<Entry>> {
        self.get(txid).or_else(|| self.recently_left.lock().unwrap_or_else(|e| e.into_inner()).get(txid, now))
    }

    /// Calls `f` with every pool transaction, then with every one that left the pool within the
    /// relay window before `now`, until `f` breaks: the transactions a compact block can be rebuilt
    /// from. Inserts and removals may run meanwhile; `f` sees each entry at most once per source.
    pub fn visit_candidates(&self, now: u64, f: &mut dyn FnMut(&Arc<Entry>) -> std::ops::ControlFlow<()>) {
        for e in self.entries.iter() {
            if f(&e.0).is_break() {
                return;
            }
        }
        let recent = self.recently_left.lock().unwrap_or_else(|e| e.into_inner());
        for (e, until) in recent.entries.values() {
            if *until > now && f(e).is_break() {
                return;
            }
        }
    }

    /// Keeps what just left the pool fetchable for peers it was announced to.
    fn remember(&self, left: &[Arc<Entry>], now: u64) {
        if !left.is_empty() {
            self.recently_left.lock().unwrap_or_else(|e| e.into_inner()).add(left, now);
        }
    }

    /// The first pool transaction that spends one of `tx`'s inputs.
    pub fn conflict(&self, tx: &Transaction) -> Option<TxId> {
        tx.inputs.iter().find_map(|i| self.spender(&i.prev_out))
    }

    pub fn txids(&self) -> Vec<TxId> {
        self.entries.iter().map(|e| e.0.txid).collect()
    }

    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.entries.iter().map(|e| e.0.clone()).collect()
    }

    /// The minimum fee rate (sat/kB) a new transaction must pay at `now`: 0 unless the pool has
    /// been full recently.
    pub fn min_fee_rate(&self, now: u64) -> u64 {
        if !self.min_fee_active.load(Ordering::Acquire) {
            return 0;
        }
        let mut guard = self.min_fee.lock().unwrap_or_else(|e| e.into_inner());
        let (rate, since) = *guard;
        if rate <= 0.0 {
            return 0;
        }
        let elapsed = now.saturating_sub(since) as f64;
        let decayed = rate * 0.5f64.powf(elapsed / MIN_FEE_HALF_LIFE_SECS);
        // Below half the increment the floor is gone, as in SV Node.
        if decayed < FULL_FEE_INCREMENT as f64 / 2.0 {
            *guard = (0.0, now);
            self.min_fee_active.store(false, Ordering::Release);
            return 0;
        }
        decayed as u64
    }

    /// Inserts a validated transaction paying `fee`. Atomic against concurrent inserts: of two
    /// transactions spending one outpoint, exactly one succeeds.
    pub fn insert(&self, tx: Arc<Transaction>, fee: i64, now: u64) -> Result<Arc<Entry>, InsertError> {
        let txid = tx.txid();
        if self.entries.contains(&txid) {
            return Err(InsertError::AlreadyKnown);
        }
        let size = tx.size();
        let min = self.min_fee_rate(now);
        if min > 0 && fee_rate(fee, size) < min {
            return Err(InsertError::FeeTooLow { fee_rate: fee_rate(fee, size), min });
        }
        let mut parents: Vec<TxId> = Vec::new();
        let mut ancestors: u32 = 0;
        for input in &tx.inputs {
            let parent = input.prev_out.txid;
            if parents.contains(&parent) {
                continue;
            }
            if let Some(p) = self.get(&parent) {
                ancestors = ancestors.max(p.ancestors().saturating_add(1));
                parents.push(parent);
            }
        }
        // SV Node's CheckAncestorLimits: refused once the chain reaches the limit.
        if ancestors >= self.config.max_ancestors {
            return Err(InsertError::TooLongChain { ancestors, max: self.config.max_ancestors });
        }
        let entry = Arc::new(Entry {
            txid,
            raw: tx.raw().to_vec().into_boxed_slice(),
            fee,
            time: now,
            links: Mutex::new(Links { parents: parents.into_boxed_slice(), ancestors }),
        });
        // Claim every outpoint, one at a time, releasing what we took if one is already spent.
        for (i, input) in tx.inputs.iter().enumerate() {
            let taken = match self.spends.entry(input.prev_out) {
                MapEntry::Vacant(v) => {
                    v.insert(entry.clone());
                    None
                }
                MapEntry::Occupied(o) if o.get().txid == txid => None,
                MapEntry::Occupied(o) => Some(o.get().txid),
            };
            if let Some(with) = taken {
                for earlier in &tx.inputs[..i] {
                    self.spends.remove_if(&earlier.prev_out, |_, spender| spender.txid == txid);
                }
                return Err(InsertError::Conflict { with });
            }
        }
        if !self.entries.insert(Indexed(entry.clone())) {
            // Only the same transaction can get here: its outpoints were ours to claim.
            return Err(InsertError::AlreadyKnown);
        }
        for parent in entry.parents() {
            self.children.entry(parent).or_default().push(txid);
        }
        self.bytes.fetch_add(size, Ordering::AcqRel);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(entry)
    }

    /// Removes `txid` and all its in-pool descendants; returns what was removed.
    pub fn remove_with_descendants(&self, txid: &TxId) -> Vec<Arc<Entry>> {
        let mut removed = Vec::new();
        let mut stack = vec![*txid];
        while let Some(id) = stack.pop() {
            if let Some(kids) = self.children.remove(&id).map(|(_, k)| k) {
                stack.extend(kids);
            }
            if let Some(entry) = self.remove_one(&id) {
                removed.push(entry);
            }
        }
        removed
    }

    fn remove_one(&self, txid: &TxId) -> Option<Arc<Entry>> {
        let Indexed(entry) = self.entries.remove(txid)?;
        for input in &entry.tx().inputs {
            self.spends.remove_if(&input.prev_out, |_, spender| spender.txid == *txid);
        }
        for parent in &entry.parents() {
            if let Some(mut kids) = self.children.get_mut(parent) {
                kids.retain(|k| k != txid);
            }
        }
        self.bytes.fetch_sub(entry.size(), Ordering::AcqRel);
        Some(entry)
    }

    /// A block was connected at `now`: its transactions leave the pool (their descendants stay:
    /// their parents are now confirmed), and pool transactions spending the same outpoints leave
    /// with their descendants. Returns (confirmed, conflicting) removals; both stay fetchable for
    /// relay a while.
    pub fn remove_for_block(&self, block_txs: &[Transaction], now: u64) -> (Vec<Arc<Entry>>, Vec<Arc<Entry>>) {
        let mut confirmed = Vec::new();
        let mut conflicts = Vec::new();
        for tx in block_txs {
            let txid = tx.txid();
            if let Some(entry) = self.remove_one(&txid) {
                // Its children's parent is now in the chain.
                if let Some((_, kids)) = self.children.remove(&txid) {
                    for kid in kids {
                        self.forget_parent(&kid, &txid);
                    }
                }
                confirmed.push(entry);
                continue;
            }
            for input in &tx.inputs {
                if let Some(spender) = self.spender(&input.prev_out) {
                    if spender != txid {
                        conflicts.extend(self.remove_with_descendants(&spender));
                    }
                }
            }
        }
        self.remember(&confirmed, now);
        self.remember(&conflicts, now);
        (confirmed, conflicts)
    }

    /// `parent` left the pool in a block: `child` no longer counts it, and its chain height is
    /// taken again from the parents it still has here. (Deeper descendants keep their heights, an
    /// over-estimate until they leave.)
    fn forget_parent(&self, child: &TxId, parent: &TxId) {
        let Some(entry) = self.get(child) else { return };
        let remaining: Vec<TxId> = entry.parents().into_iter().filter(|p| p != parent).collect();
        let height = remaining.iter().filter_map(|p| self.get(p)).map(|p| p.ancestors() + 1).max().unwrap_or(0);
        let mut links = entry.links.lock().unwrap_or_else(|e| e.into_inner());
        if links.parents.contains(parent) {
            links.parents = remaining.into_boxed_slice();
            links.ancestors = height;
        }
    }

    /// Empties the pool, keeping what was in it fetchable for relay a while (SV Node's
    /// `mempool.Clear()`, called when the next block's era changes). Returns what was removed.
    pub fn clear(&self, now: u64) -> Vec<Arc<Entry>> {
        let all: Vec<TxId> = self.entries.iter().map(|e| e.0.txid).collect();
        let gone: Vec<_> = all.iter().flat_map(|t| self.remove_with_descendants(t)).collect();
        self.remember(&gone, now);
        gone
    }

    /// Removes transactions older than the expiry, with their descendants.
    pub fn expire(&self, now: u64) -> Vec<Arc<Entry>> {
        let cutoff = now.saturating_sub(self.config.expiry_secs);
        let old: Vec<TxId> = self.entries.iter().filter(|e| e.0.time < cutoff).map(|e| e.0.txid).collect();
        let gone: Vec<_> = old.iter().flat_map(|t| self.remove_with_descendants(t)).collect();
        self.remember(&gone, now);
        gone
    }

    /// If the pool is over `max_bytes`, evicts the lowest fee rates (with descendants) until it is
    /// under 90 % of it, and raises the rolling minimum fee rate. Returns what was evicted.
    pub fn trim_to_size(&self, now: u64) -> Vec<Arc<Entry>> {
        if self.bytes() <= self.config.max_bytes {
            return Vec::new();
        }
        let _one_at_a_time = self.trimming.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_rate: Vec<(u64, u64, TxId)> =
            self.entries.iter().map(|e| (e.0.fee_rate(), u64::MAX - e.0.time, e.0.txid)).collect();
        by_rate.sort_unstable();
        let target = (self.config.max_bytes as f64 * TRIM_TARGET) as usize;
        let mut evicted = Vec::new();
        let mut highest_evicted = 0;
        for (rate, _, txid) in by_rate {
            if self.bytes() <= target {
                break;
            }
            let gone = self.remove_with_descendants(&txid);
            if !gone.is_empty() {
                highest_evicted = highest_evicted.max(rate);
            }
            evicted.extend(gone);
        }
        self.remember(&evicted, now);
        if !evicted.is_empty() {
            let mut guard = self.min_fee.lock().unwrap_or_else(|e| e.into_inner());
            let floor = (highest_evicted + FULL_FEE_INCREMENT) as f64;
            if floor > guard.0 {
                *guard = (floor, now);
                self.min_fee_active.store(true, Ordering::Release);
            }
        }
        evicted
    }

    /// Checks the invariants in the module docs; for tests.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut bytes = 0;
        for e in self.entries() {
            bytes += e.size();
            for input in &e.tx().inputs {
                match self.spender(&input.prev_out) {
                    Some(s) if s == e.txid => {}
                    other => return Err(format!("{} input {:?} spent by {:?}", e.txid, input.prev_out, other)),
                }
            }
            for p in &e.parents() {
                if !self.contains(p) {
                    return Err(format!("{} has a parent {} not in the pool", e.txid, p));
                }
                if !self.children.get(p).is_some_and(|k| k.contains(&e.txid)) {
                    return Err(format!("{} missing from {}'s children", e.txid, p));
                }
                if self.get(p).is_some_and(|parent| parent.ancestors() >= e.ancestors()) {
                    return Err(format!("{} is not above its parent {} in the ancestor chain", e.txid, p));
                }
            }
        }
        for s in self.spends.iter() {
            if !self.contains(&s.value().txid) {
                return Err(format!("outpoint {:?} claimed by {} which is not in the pool", s.key(), s.value().txid));
            }
        }
        if bytes != self.bytes() {
            return Err(format!("bytes {} != sum of sizes {}", self.bytes(), bytes));
        }
        Ok(())
    }
}
