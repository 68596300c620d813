//! The acceptance pipeline over a real in-memory chain state mined with our own miner.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::accept::MempoolSync;
use super::accept::{PipelineConfig, TxOutcome, TxPipeline, TxSource};
use super::pool::{Mempool, MempoolConfig};
use crate::chain::{ChainOptions, ChainState, Network, NoScriptCheck};
use crate::mining::{assemble, Template};
use crate::peer::PeerId;
use crate::validation::RejectKind;
use crate::wallet::{Key, SIGHASH_ALL_FORKID};
use crate::wire::{Block, OutPoint, Transaction, TxFields, TxIn, TxOut};

struct Setup {
    metrics: Arc<crate::metrics::Metrics>,
    chain: Arc<ChainState>,
    pipeline: Arc<TxPipeline>,
    outcomes: mpsc::Receiver<TxOutcome>,
    key: Key,
    coins: Vec<(OutPoint, i64)>,
}

fn mine(chain: &ChainState, payout: &[u8], txs: &[Arc<super::Entry>]) -> Block {
    let params = chain.params();
    let (height, prev_hash) = chain.tip();
    let time = chain.tip_header().time + 1;
    let t = Template { prev_hash, height: height + 1, bits: chain.tip_header().bits, time };
    let block = assemble(params, &t, txs, payout, u64::from(height));
    chain.accept_block(Arc::new(block.clone()), &NoScriptCheck).expect("block connects");
    block
}

fn setup() -> Setup {
    setup_with(PipelineConfig { workers: 2, ..Default::default() })
}

fn setup_with(config: PipelineConfig) -> Setup {
    let params = Network::Regtest.params();
    let chain = Arc::new(ChainState::in_memory(params, ChainOptions::new()));
    let key = Key::from_seed(b"accept tests");
    let mut coins = Vec::new();
    for _ in 0..110 {
        let b = mine(&chain, &key.p2pkh_script(), &[]);
        let cb = &b.transactions[0];
        coins.push((OutPoint { txid: cb.txid(), vout: 0 }, cb.outputs[0].value));
    }
    coins.truncate(8); // mature ones
    let metrics = Arc::new(crate::metrics::Metrics::new("regtest", "test").expect("metrics"));
    let (tx, outcomes) = mpsc::channel(10_000);
    let mempool = Arc::new(Mempool::new(MempoolConfig::default()));
    let sig_cache = Arc::new(crate::script::SigCache::new(1 << 16));
    let pipeline = TxPipeline::start(chain.clone(), mempool, sig_cache, tx, metrics.clone(), config);
    Setup { metrics, chain, pipeline, outcomes, key, coins }
}

fn pay(key: &Key, coin: (OutPoint, i64), value: i64) -> Transaction {
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: coin.0, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value, script_pubkey: Bytes::from(key.p2pkh_script()) }],
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), coin.1, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(crate::wallet::push_all(&[&sig, &key.pubkey()]));
    Transaction::from_fields(fields)
}

fn next(s: &mut Setup) -> TxOutcome {
    s.outcomes.blocking_recv().expect("an outcome")
}

const PEER: PeerId = PeerId(7);

#[test]
fn an_orphan_waits_for_its_parent_and_then_both_are_accepted() {
    let mut s = setup();
    let parent = pay(&s.key, s.coins[0], s.coins[0].1 - 1000);
    let child = pay(&s.key, (OutPoint { txid: parent.txid(), vout: 0 }, s.coins[0].1 - 1000), s.coins[0].1 - 2000);
    s.pipeline.submit_from_peer(Arc::new(child.clone()), PEER).expect("queued");
    match next(&mut s) {
        TxOutcome::Orphan { missing, source, .. } => {
            assert_eq!(missing, vec![parent.txid()]);
            assert_eq!(source, TxSource::Peer(PEER));
        }
        other => panic!("{other:?}"),
    }
    s.pipeline.submit_from_peer(Arc::new(parent.clone()), PEER).expect("queued");
    let mut accepted = Vec::new();
    for _ in 0..2 {
        if let TxOutcome::Accepted { tx, .. } = next(&mut s) {
            accepted.push(tx.txid());
        }
    }
    assert_eq!(accepted, vec![parent.txid(), child.txid()]);
    assert!(s.pipeline.orphans().is_empty());
    s.pipeline.mempool().check_consistency().expect("consistent");
}

#[test]
fn conflicts_are_policy_and_bad_signatures_are_consensus_failures() {
    let mut s = setup();
    let first = pay(&s.key, s.coins[1], s.coins[1].1 - 1000);
    let second = pay(&s.key, s.coins[1], s.coins[1].1 - 5000);
    s.pipeline.submit_from_peer(Arc::new(first), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Accepted { .. }));
    s.pipeline.submit_from_peer(Arc::new(second), PEER).expect("queued");
    match next(&mut s) {
        TxOutcome::Rejected { reject, .. } => {
            assert_eq!(reject.reason, "txn-mempool-conflict");
            assert_eq!((reject.kind, reject.score), (RejectKind::Policy, 0));
        }
        other => panic!("{other:?}"),
    }
    let mut forged: TxFields = (*pay(&s.key, s.coins[2], s.coins[2].1 - 1000)).clone();
    let mut script = forged.inputs[0].script_sig.to_vec();
    script[8] ^= 1;
    forged.inputs[0].script_sig = Bytes::from(script);
    s.pipeline.submit_from_peer(Arc::new(Transaction::from_fields(forged)), PEER).expect("queued");
    match next(&mut s) {
        TxOutcome::Rejected { reject, .. } => assert_eq!((reject.kind, reject.score), (RejectKind::Consensus, 100)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_child_of_an_invalid_parent_is_not_kept_as_an_orphan() {
    let mut s = setup();
    let mut forged: TxFields = (*pay(&s.key, s.coins[3], s.coins[3].1 - 1000)).clone();
    let mut script = forged.inputs[0].script_sig.to_vec();
    script[8] ^= 1;
    forged.inputs[0].script_sig = Bytes::from(script);
    let parent = Transaction::from_fields(forged);
    let child = pay(&s.key, (OutPoint { txid: parent.txid(), vout: 0 }, s.coins[3].1 - 1000), s.coins[3].1 - 2000);
    s.pipeline.submit_from_peer(Arc::new(parent), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Rejected { reject, .. } if reject.kind == RejectKind::Consensus));
    s.pipeline.submit_from_peer(Arc::new(child.clone()), PEER).expect("queued");
    match next(&mut s) {
        TxOutcome::Rejected { reject, txid, .. } => {
            assert_eq!(txid, child.txid());
            assert_eq!((reject.kind, reject.score), (RejectKind::MissingInputs, 0), "no penalty");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.pipeline.orphans().is_empty());
    // Remembered: offered again, it is not validated again.
    s.pipeline.submit_from_peer(Arc::new(child), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Known { .. }));
}

#[test]
fn a_connected_block_removes_its_transactions_and_a_disconnected_one_returns_them() {
    let mut s = setup();
    let tx = pay(&s.key, s.coins[3], s.coins[3].1 - 1000);
    s.pipeline.submit_from_peer(Arc::new(tx.clone()), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Accepted { .. }));
    let entries = s.pipeline.mempool().entries();
    let mut block = None;
    s.pipeline.exclusive(&mut || {
        let b = mine(&s.chain, &[0x51], &entries);
        s.pipeline.block_connected(&b, s.chain.tip().0);
        block = Some(b);
    });
    assert!(!s.pipeline.mempool().contains(&tx.txid()));
    let block = block.expect("mined");
    let hash = block.hash();
    s.pipeline.exclusive(&mut || {
        let update = s.chain.invalidate_block(&hash, &NoScriptCheck).expect("invalidate");
        for (b, h) in &update.disconnected {
            s.pipeline.block_disconnected(b, *h);
        }
    });
    match next(&mut s) {
        TxOutcome::Accepted { tx: back, .. } => assert_eq!(back.txid(), tx.txid()),
        other => panic!("{other:?}"),
    }
    assert!(s.pipeline.mempool().contains(&tx.txid()));
}

#[test]
fn concurrent_submissions_keep_the_pool_consistent() {
    let mut s = setup();
    // Each coin spent by four different transactions from four threads: exactly one wins per coin.
    let coins = s.coins.clone();
    std::thread::scope(|scope| {
        for t in 0..4i64 {
            let (p, key, coins) = (&s.pipeline, &s.key, &coins);
            scope.spawn(move || {
                for c in coins {
                    let tx = pay(key, *c, c.1 - 1000 - t);
                    while p.submit_from_peer(Arc::new(tx.clone()), PeerId(t as u64)).is_err() {}
                }
            });
        }
    });
    let mut accepted = 0;
    for _ in 0..coins.len() * 4 {
        if matches!(next(&mut s), TxOutcome::Accepted { .. }) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, coins.len());
    assert_eq!(s.pipeline.mempool().len(), coins.len());
    s.pipeline.mempool().check_consistency().expect("consistent");
}

#[test]
fn orphans_of_a_mined_parent_are_validated_when_its_block_connects() {
    let mut s = setup();
    let parent = pay(&s.key, s.coins[4], s.coins[4].1 - 1000);
    let child = pay(&s.key, (OutPoint { txid: parent.txid(), vout: 0 }, s.coins[4].1 - 1000), s.coins[4].1 - 2000);
    s.pipeline.submit_from_peer(Arc::new(child.clone()), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Orphan { .. }));
    // The parent is never seen loose: it arrives mined in a block.
    let entry = {
        let pool = Mempool::new(MempoolConfig::default());
        pool.insert(Arc::new(parent.clone()), 1000, 0).expect("entry")
    };
    s.pipeline.exclusive(&mut || {
        let b = mine(&s.chain, &[0x51], std::slice::from_ref(&entry));
        s.pipeline.block_connected(&b, s.chain.tip().0);
    });
    match next(&mut s) {
        TxOutcome::Accepted { tx, .. } => assert_eq!(tx.txid(), child.txid()),
        other => panic!("{other:?}"),
    }
    assert!(s.pipeline.orphans().is_empty());
}

#[test]
fn the_queue_is_bounded_by_bytes_and_loses_nothing_it_took() {
    // Room for at least 20 queued copies of a ~191-byte transaction (each counted with its decoded
    // form, a few hundred bytes more).
    let probe = pay(&Key::from_seed(b"probe"), (OutPoint { txid: Default::default(), vout: 0 }, 1000), 500);
    let one = probe.size() + 400;
    let mut s = setup_with(PipelineConfig { workers: 1, max_queue_bytes: 20 * one, ..Default::default() });
    let tx = Arc::new(pay(&s.key, s.coins[0], s.coins[0].1 - 1000));
    let pipeline = s.pipeline.clone();
    let mut queued = 0;
    let mut refused = 0;
    // While the block side holds the gate the worker cannot finish a job, so the queue fills.
    pipeline.exclusive(&mut || {
        for _ in 0..200 {
            match pipeline.submit_from_peer(tx.clone(), PEER) {
                Ok(()) => queued += 1,
                Err(super::accept::SubmitError::Busy) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    });
    assert!(refused > 0, "a full queue refuses");
    // The bytes of 20 to 30 waiting jobs, plus at most one batch the worker took before blocking.
    assert!((20..=30 + 16).contains(&queued), "queued {queued}");
    let mut outcomes = Vec::new();
    for _ in 0..queued {
        outcomes.push(next(&mut s));
    }
    let accepted = outcomes.iter().filter(|o| matches!(o, TxOutcome::Accepted { .. })).count();
    let known = outcomes.iter().filter(|o| matches!(o, TxOutcome::Known { .. })).count();
    assert_eq!((accepted, known), (1, queued - 1), "every queued job has its outcome");
    assert_eq!(s.pipeline.queued_bytes(), 0);
}

#[test]
fn orphan_evictions_are_counted_by_reason() {
    let orphans = super::OrphanPoolConfig { max_count: 2, ..Default::default() };
    let mut s = setup_with(PipelineConfig { workers: 1, orphans, ..Default::default() });
    let evicted = |m: &crate::metrics::Metrics, reason: &str| m.orphans_evicted.with_label_values(&[reason]).get();
    // Three orphans (unknown parents) from one peer into room for two: the oldest is evicted.
    for i in 0..3u8 {
        let unknown = (OutPoint { txid: crate::wire::Hash256([i + 1; 32]), vout: 0 }, 10_000);
        s.pipeline.submit_from_peer(Arc::new(pay(&s.key, unknown, 9_000)), PEER).expect("queued");
        assert!(matches!(next(&mut s), TxOutcome::Orphan { .. }));
    }
    assert_eq!((s.pipeline.orphans().len(), evicted(&s.metrics, "limit")), (2, 1));
    s.pipeline.peer_gone(PEER);
    assert_eq!((s.pipeline.orphans().len(), evicted(&s.metrics, "peer_disconnected")), (0, 2));
}

#[test]
fn a_peers_refused_transaction_is_not_validated_again_before_the_next_block() {
    let mut s = setup();
    let first = pay(&s.key, s.coins[5], s.coins[5].1 - 1000);
    let second = Arc::new(pay(&s.key, s.coins[5], s.coins[5].1 - 5000));
    s.pipeline.submit_from_peer(Arc::new(first), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Accepted { .. }));
    let conflict =
        |o: &TxOutcome| matches!(o, TxOutcome::Rejected { reject, .. } if reject.reason == "txn-mempool-conflict");
    s.pipeline.submit_from_peer(second.clone(), PEER).expect("queued");
    assert!(conflict(&next(&mut s)), "a policy refusal");
    assert!(s.pipeline.already_have(&second.txid()), "announcements of it are not requested");
    s.pipeline.submit_from_peer(second.clone(), PeerId(8)).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Known { .. }), "not validated again");
    // A block may make what was refused valid: it is validated again.
    s.pipeline.exclusive(&mut || {
        let b = mine(&s.chain, &[0x51], &[]);
        s.pipeline.block_connected(&b, s.chain.tip().0);
    });
    assert!(!s.pipeline.already_have(&second.txid()));
    s.pipeline.submit_from_peer(second.clone(), PEER).expect("queued");
    assert!(conflict(&next(&mut s)));
}

#[test]
fn a_child_of_a_parent_refused_until_a_later_block_waits_as_an_orphan() {
    let mut s = setup();
    let connect = |s: &Setup, txs: &[Arc<super::Entry>]| {
        s.pipeline.exclusive(&mut || {
            let b = mine(&s.chain, &[0x51], txs);
            s.pipeline.block_connected(&b, s.chain.tip().0);
        });
    };
    // A coinbase that matures at height 111 + 100 = 211, seen by a node whose next block is 210.
    let b = mine(&s.chain, &s.key.p2pkh_script(), &[]);
    let coin = (OutPoint { txid: b.transactions[0].txid(), vout: 0 }, b.transactions[0].outputs[0].value);
    for _ in 0..98 {
        mine(&s.chain, &[0x51], &[]);
    }
    let parent = pay(&s.key, coin, coin.1 - 1000);
    let child = pay(&s.key, (OutPoint { txid: parent.txid(), vout: 0 }, coin.1 - 1000), coin.1 - 2000);
    s.pipeline.submit_from_peer(Arc::new(parent.clone()), PEER).expect("queued");
    match next(&mut s) {
        TxOutcome::Rejected { reject, .. } => assert_eq!(reject.reason, "bad-txns-premature-spend-of-coinbase"),
        other => panic!("{other:?}"),
    }
    // Its peers, a block ahead, accepted it and announce its child: the child waits for the parent.
    s.pipeline.submit_from_peer(Arc::new(child.clone()), PeerId(8)).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Orphan { .. }), "not refused with its parent");
    connect(&s, &[]);
    let entry = Mempool::new(MempoolConfig::default()).insert(Arc::new(parent), 1000, 0).expect("entry");
    connect(&s, std::slice::from_ref(&entry));
    match next(&mut s) {
        TxOutcome::Accepted { tx, .. } => assert_eq!(tx.txid(), child.txid()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_child_of_a_parent_refused_for_good_is_refused_too() {
    let mut s = setup();
    // A parent that overspends is invalid at any height.
    let parent = pay(&s.key, s.coins[6], s.coins[6].1 + 1);
    let child = pay(&s.key, (OutPoint { txid: parent.txid(), vout: 0 }, s.coins[6].1 + 1), 1000);
    s.pipeline.submit_from_peer(Arc::new(parent), PEER).expect("queued");
    assert!(matches!(next(&mut s), TxOutcome::Rejected { .. }));
    s.pipeline.submit_from_peer(Arc::new(child), PeerId(8)).expect("queued");
    match next(&mut s) {
        TxOutcome::Rejected { reject, .. } => assert_eq!(reject.kind, RejectKind::MissingInputs),
        other => panic!("{other:?}"),
    }
    assert!(s.pipeline.orphans().is_empty());
}
