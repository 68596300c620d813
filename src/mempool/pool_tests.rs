//! Unit and property tests of the pool: conflicts, chains, eviction order, blocks, concurrency.

use super::pool::*;
use crate::wire::{Hash256, OutPoint, Transaction, TxFields, TxId, TxIn, TxOut};
use bytes::Bytes;
use proptest::prelude::*;
use std::sync::Arc;

fn spend(outpoints: &[OutPoint], outputs: usize, pad: usize) -> Arc<Transaction> {
    Arc::new(Transaction::from_fields(TxFields {
        version: 1,
        inputs: outpoints
            .iter()
            .map(|o| TxIn { prev_out: *o, script_sig: Bytes::from(vec![0x51; pad]), sequence: u32::MAX })
            .collect(),
        outputs: (0..outputs).map(|_| TxOut { value: 1000, script_pubkey: Bytes::from_static(&[0x51]) }).collect(),
        lock_time: 0,
    }))
}

fn coin(n: u8) -> OutPoint {
    OutPoint { txid: Hash256([n; 32]), vout: 0 }
}

fn out(tx: &Transaction, vout: u32) -> OutPoint {
    OutPoint { txid: tx.txid(), vout }
}

#[test]
fn first_seen_wins_and_the_loser_is_not_half_inserted() {
    let pool = Mempool::new(MempoolConfig::default());
    let a = spend(&[coin(1), coin(2)], 1, 1);
    let b = spend(&[coin(3), coin(2)], 1, 2);
    pool.insert(a.clone(), 100, 0).unwrap();
    assert_eq!(pool.insert(b.clone(), 100, 0).unwrap_err(), InsertError::Conflict { with: a.txid() });
    assert_eq!(pool.spender(&coin(3)), None, "the loser's first claim was released");
    assert_eq!(pool.insert(a.clone(), 100, 0).unwrap_err(), InsertError::AlreadyKnown);
    assert_eq!(pool.conflict(&b), Some(a.txid()));
    pool.check_consistency().unwrap();
}

#[test]
fn chains_are_accepted_up_to_the_ancestor_limit() {
    // SV Node's limit: a transaction whose ancestor chain is `max_ancestors` high is refused.
    let pool = Mempool::new(MempoolConfig { max_ancestors: 3, ..Default::default() });
    let mut prev = spend(&[coin(1)], 1, 1);
    pool.insert(prev.clone(), 10, 0).unwrap();
    for depth in 1..=2 {
        let next = spend(&[out(&prev, 0)], 1, 1);
        let e = pool.insert(next.clone(), 10, 0).unwrap();
        assert_eq!(e.ancestors(), depth);
        assert_eq!(e.parents(), [prev.txid()]);
        prev = next;
    }
    let too_long = spend(&[out(&prev, 0)], 1, 1);
    assert!(matches!(pool.insert(too_long, 10, 0), Err(InsertError::TooLongChain { ancestors: 3, max: 3 })));
    pool.check_consistency().unwrap();
}

#[test]
fn the_ancestor_count_is_the_height_of_the_chain_not_the_number_of_paths() {
    let pool = Mempool::new(MempoolConfig { max_ancestors: 3, ..Default::default() });
    // Two chains of two, then one transaction spending both tips: height 2, not 4.
    let (a0, b0) = (spend(&[coin(1)], 1, 1), spend(&[coin(2)], 1, 1));
    let (a1, b1) = (spend(&[out(&a0, 0)], 1, 1), spend(&[out(&b0, 0)], 1, 1));
    for t in [&a0, &b0, &a1, &b1] {
        pool.insert(t.clone(), 10, 0).unwrap();
    }
    let join = spend(&[out(&a1, 0), out(&b1, 0)], 1, 1);
    assert_eq!(pool.insert(join.clone(), 10, 0).unwrap().ancestors(), 2);
    // When a0 is mined, a1 has no unconfirmed parent left.
    pool.remove_for_block(&[(*a0).clone()], 0);
    assert_eq!(pool.get(&a1.txid()).unwrap().ancestors(), 0);
    pool.check_consistency().unwrap();
}

#[test]
fn removing_a_parent_removes_its_descendants() {
    let pool = Mempool::new(MempoolConfig::default());
    let a = spend(&[coin(1)], 2, 1);
    let b = spend(&[out(&a, 0)], 1, 1);
    let c = spend(&[out(&a, 1), out(&b, 0)], 1, 1);
    for t in [&a, &b, &c] {
        pool.insert(t.clone(), 10, 0).unwrap();
    }
    let gone = pool.remove_with_descendants(&a.txid());
    assert_eq!(gone.len(), 3);
    assert!(pool.is_empty());
    assert_eq!(pool.bytes(), 0);
    pool.check_consistency().unwrap();
}

#[test]
fn a_block_confirms_its_transactions_and_evicts_their_conflicts() {
    let pool = Mempool::new(MempoolConfig::default());
    let a = spend(&[coin(1)], 1, 1);
    let child = spend(&[out(&a, 0)], 1, 1);
    let loser = spend(&[coin(2)], 1, 1);
    let loser_child = spend(&[out(&loser, 0)], 1, 1);
    for t in [&a, &child, &loser, &loser_child] {
        pool.insert(t.clone(), 10, 0).unwrap();
    }
    // The block confirms `a` and a different spend of coin 2.
    let winner = spend(&[coin(2)], 1, 7);
    let (confirmed, conflicts) = pool.remove_for_block(&[(*a).clone(), (*winner).clone()], 0);
    assert_eq!(confirmed.len(), 1);
    assert_eq!(conflicts.len(), 2);
    assert_eq!(pool.txids(), vec![child.txid()]);
    assert!(pool.get(&child.txid()).unwrap().parents().is_empty(), "its parent is confirmed now");
    pool.check_consistency().unwrap();
    // Peers we announced them to can still fetch what left, mined or conflicting, for a while
    // (SV Node's relay map); the descendant still in the pool is served from the pool.
    let relayed = |t: &Transaction, now| pool.for_relay(&t.txid(), now).map(|e| e.raw().to_vec());
    for t in [&a, &child, &loser, &loser_child] {
        assert_eq!(relayed(t, 0), Some(t.raw().to_vec()));
    }
    let later = super::pool::RECENTLY_LEFT_SECS;
    assert_eq!(relayed(&a, later), None, "expired");
    assert_eq!(relayed(&loser, later), None, "expired");
    assert_eq!(relayed(&child, later), Some(child.raw().to_vec()), "still in the pool");
}

#[test]
fn evicted_transactions_stay_fetchable_within_a_tenth_of_the_pool_size() {
    let txs: Vec<_> = (0..40u8).map(|i| spend(&[coin(i)], 1, 100)).collect();
    let size = txs[0].size();
    // Room for 20; the departed-transaction cache holds a tenth of that: 2.
    let pool = Mempool::new(MempoolConfig { max_bytes: size * 20, ..Default::default() });
    for (i, t) in txs.iter().enumerate() {
        pool.insert(t.clone(), 100 + i as i64, 0).unwrap();
    }
    let evicted = pool.trim_to_size(0);
    assert!(evicted.len() >= 3, "{}", evicted.len());
    let served: Vec<_> = evicted.iter().filter(|e| pool.for_relay(&e.txid, 1).is_some()).collect();
    assert_eq!(served.len(), 2, "bounded by bytes");
    // The newest departures are the ones kept (eviction removes the lowest fee first, so the last
    // evicted paid the most).
    let last_two: Vec<_> = evicted[evicted.len() - 2..].iter().map(|e| e.txid).collect();
    assert_eq!(served.iter().map(|e| e.txid).collect::<Vec<_>>(), last_two);
    pool.check_consistency().unwrap();
}

#[test]
fn eviction_takes_the_lowest_fee_rate_first_and_raises_the_minimum_fee() {
    let txs: Vec<_> = (0..10u8).map(|i| spend(&[coin(i)], 1, 100)).collect();
    let size = txs[0].size();
    let pool = Mempool::new(MempoolConfig { max_bytes: size * 10 - 1, ..Default::default() });
    for (i, t) in txs.iter().enumerate() {
        pool.insert(t.clone(), (i as i64 + 1) * 1000, 0).unwrap();
    }
    let evicted = pool.trim_to_size(0);
    assert!(!evicted.is_empty());
    let evicted_ids: Vec<TxId> = evicted.iter().map(|e| e.txid).collect();
    assert!(evicted_ids.contains(&txs[0].txid()), "the cheapest went first");
    assert!(!evicted_ids.contains(&txs[9].txid()));
    assert!(pool.bytes() <= (size * 10 - 1) * 9 / 10);
    let min = pool.min_fee_rate(0);
    assert!(min > evicted[0].fee_rate());
    let cheap = spend(&[coin(100)], 1, 100);
    assert!(matches!(pool.insert(cheap.clone(), 1, 0), Err(InsertError::FeeTooLow { .. })));
    // The floor decays: after a few days it is gone.
    assert_eq!(pool.min_fee_rate(5 * 24 * 3600), 0);
    pool.insert(cheap, 1, 5 * 24 * 3600).unwrap();
    pool.check_consistency().unwrap();
}

#[test]
fn old_transactions_expire_with_their_descendants() {
    let pool = Mempool::new(MempoolConfig { expiry_secs: 100, ..Default::default() });
    let a = spend(&[coin(1)], 1, 1);
    let b = spend(&[out(&a, 0)], 1, 1);
    let fresh = spend(&[coin(2)], 1, 1);
    pool.insert(a.clone(), 1, 0).unwrap();
    pool.insert(b.clone(), 1, 150).unwrap();
    pool.insert(fresh.clone(), 1, 150).unwrap();
    assert!(pool.expire(100).is_empty());
    assert_eq!(pool.expire(101).len(), 2);
    assert_eq!(pool.txids(), vec![fresh.txid()]);
    pool.check_consistency().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Many threads insert overlapping, conflicting and chained transactions at once: every index
    /// stays consistent and no outpoint is ever spent twice.
    #[test]
    fn concurrent_inserts_keep_every_index_consistent(seed in any::<u64>()) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // 400 candidate transactions over 120 coins: many conflicts, some chains.
        let mut candidates: Vec<Arc<Transaction>> = Vec::new();
        for i in 0..400usize {
            let n_in = rng.gen_range(1..=3);
            let mut ins: Vec<OutPoint> = Vec::new();
            for _ in 0..n_in {
                let o = if !candidates.is_empty() && rng.gen_bool(0.3) {
                    let parent = &candidates[rng.gen_range(0..candidates.len())];
                    OutPoint { txid: parent.txid(), vout: rng.gen_range(0..2) }
                } else {
                    coin(rng.gen_range(0..120))
                };
                if !ins.contains(&o) {
                    ins.push(o);
                }
            }
            candidates.push(spend(&ins, 2, i % 7 + 1));
        }
        let pool = Arc::new(Mempool::new(MempoolConfig::default()));
        let chunks: Vec<Vec<Arc<Transaction>>> = (0..4).map(|t| candidates.iter().skip(t).step_by(4).cloned().collect()).collect();
        std::thread::scope(|s| {
            for chunk in &chunks {
                let pool = pool.clone();
                s.spawn(move || {
                    for tx in chunk {
                        let _ = pool.insert(tx.clone(), 500, 0);
                    }
                });
            }
        });
        prop_assert!(pool.check_consistency().is_ok(), "{:?}", pool.check_consistency());
        let mut spent = std::collections::HashSet::new();
        for e in pool.entries() {
            for i in &e.tx().inputs {
                prop_assert!(spent.insert(i.prev_out), "outpoint spent twice");
            }
        }
        prop_assert!(!pool.is_empty());
    }
}
