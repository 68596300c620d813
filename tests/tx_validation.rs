//! Transaction validation against the UTXO set of a regtest chain mined by SV Node v1.0.13: the
//! 10 unconfirmed transactions SV Node's wallet made are valid, and mutations of them are refused
//! with SV Node's reasons, codes and scores.

use bsv_relay::chain::Network;
use bsv_relay::validation::{validate_transaction, Coin, MapCoinView, RejectKind, TxContext};
use bsv_relay::wire::{Block, Decodable, OutPoint, Transaction};
use bytes::Bytes;

const BLOCKS_HEX: &str = include_str!("data/fixtures/blocks.hex");
const MEMPOOL_HEX: &str = include_str!("data/fixtures/mempool.hex");

/// The UTXO set after blocks 0..=115, computed naively here (the genesis coinbase is unspendable).
fn chain_view() -> MapCoinView {
    let mut view = MapCoinView::default();
    for (height, line) in BLOCKS_HEX.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let block = Block::from_slice(&hex::decode(line.trim()).unwrap()).unwrap();
        for tx in &block.transactions {
            if !tx.is_coinbase() {
                for i in &tx.inputs {
                    assert!(view.coins.remove(&i.prev_out).is_some(), "the fixture spends what exists");
                }
            }
            if height == 0 {
                continue;
            }
            add_outputs(&mut view, tx, height as u32);
        }
        view.height = height as u32;
        view.mtp = i64::from(block.header.time);
    }
    view
}

fn add_outputs(view: &mut MapCoinView, tx: &Transaction, height: u32) {
    for (vout, o) in tx.outputs.iter().enumerate() {
        view.coins.insert(
            OutPoint { txid: tx.txid(), vout: vout as u32 },
            Coin { value: o.value, script_pubkey: o.script_pubkey.clone(), height, is_coinbase: tx.is_coinbase() },
        );
    }
}

fn mempool() -> Vec<Transaction> {
    MEMPOOL_HEX
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Transaction::from_slice(&hex::decode(l.trim()).unwrap()).unwrap())
        .collect()
}

#[test]
fn sv_nodes_unconfirmed_transactions_are_valid_against_its_chain() {
    let mut view = chain_view();
    assert_eq!(view.height, 115);
    let ctx = TxContext::new(Network::Regtest.params());
    let mut fees = 0;
    for tx in mempool() {
        let ok = validate_transaction(&tx, &view, &ctx).unwrap_or_else(|e| panic!("{}: {e:?}", tx.txid()));
        assert!(ok.fee > 0, "SV Node's wallet pays fees");
        fees += ok.fee;
        // Later ones spend earlier ones: their outputs are the next block's.
        add_outputs(&mut view, &tx, 116);
    }
    assert!(fees > 0);
}

fn mutate(tx: &Transaction, f: impl FnOnce(&mut bsv_relay::wire::TxFields)) -> Transaction {
    let mut fields = tx.clone().into_fields();
    f(&mut fields);
    Transaction::from_fields(fields)
}

#[test]
fn mutations_are_refused_with_sv_nodes_reasons_and_scores() {
    let view = chain_view();
    let ctx = TxContext::new(Network::Regtest.params());
    let tx = mempool().into_iter().find(|t| t.inputs.iter().all(|i| view.coins.contains_key(&i.prev_out))).unwrap();
    let check = |t: &Transaction| validate_transaction(t, &view, &ctx).unwrap_err();

    // A signature byte flipped: the script fails under the mandatory flags (NULLFAIL or a bad sig).
    let bad_sig = mutate(&tx, |f| {
        let mut s = f.inputs[0].script_sig.to_vec();
        s[10] ^= 0x01;
        f.inputs[0].script_sig = Bytes::from(s);
    });
    let r = check(&bad_sig);
    assert!(r.reason.starts_with("mandatory-script-verify-flag-failed ("), "{}", r.reason);
    assert_eq!((r.code, r.score, r.kind), (0x10, 100, RejectKind::Consensus));

    // Spending more than the inputs hold.
    let overspend = mutate(&tx, |f| f.outputs[0].value += 50 * 100_000_000);
    let r = check(&overspend);
    assert_eq!((r.reason.as_str(), r.score), ("bad-txns-in-belowout", 100));

    // An input that does not exist: an orphan, not an offence.
    let missing = mutate(&tx, |f| f.inputs[0].prev_out.vout = 77);
    let r = check(&missing);
    assert_eq!((r.kind, r.score), (RejectKind::MissingInputs, 0));

    // The same outpoint twice (CVE-2018-17144).
    let dup = mutate(&tx, |f| {
        let first = f.inputs[0].clone();
        f.inputs.push(first);
    });
    let r = check(&dup);
    assert_eq!((r.reason.as_str(), r.score), ("bad-txns-inputs-duplicate", 100));

    // Negative and overflowing outputs, empty inputs.
    assert_eq!(check(&mutate(&tx, |f| f.outputs[0].value = -1)).reason, "bad-txns-vout-negative");
    assert_eq!(
        check(&mutate(&tx, |f| f.outputs[0].value = 21_000_000 * 100_000_000 + 1)).reason,
        "bad-txns-vout-toolarge"
    );
    let empty = check(&mutate(&tx, |f| f.inputs.clear()));
    assert_eq!((empty.reason.as_str(), empty.score), ("bad-txns-vin-empty", 10));

    // A non-final lock time (height 1000 with non-final sequences) before Genesis: SV Node's
    // mempool copies the reason but not the 10 points (it may become final; only blocks score it).
    let nonfinal = mutate(&tx, |f| {
        f.lock_time = 1000;
        f.inputs[0].sequence = 0;
    });
    let r = check(&nonfinal);
    assert_eq!((r.reason.as_str(), r.score, r.kind), ("bad-txns-nonfinal", 0, RejectKind::Policy));

    // Spending the coinbase of block 115 at height 116: immature, refused without penalty.
    let coinbase_115 = view.coins.iter().find(|(_, c)| c.is_coinbase && c.height == 115).map(|(o, _)| *o).unwrap();
    let premature = mutate(&tx, |f| {
        f.inputs.truncate(1);
        f.inputs[0].prev_out = coinbase_115;
    });
    let r = check(&premature);
    assert_eq!((r.reason.as_str(), r.score), ("bad-txns-premature-spend-of-coinbase", 0));
}

#[test]
fn a_batch_on_every_core_gives_the_sequential_results_and_the_signature_cache_never_lies() {
    use bsv_relay::script::SigCache;
    use bsv_relay::validation::validate_batch;
    let view = chain_view();
    let cache = SigCache::default();
    let ctx = TxContext::new(Network::Regtest.params()).with_sig_cache(&cache);
    let txs = mempool();
    let batch = validate_batch(&txs, &view, &ctx);
    let sequential: Vec<_> = txs.iter().map(|t| validate_transaction(t, &view, &ctx)).collect();
    assert_eq!(batch, sequential);
    assert!(batch.iter().any(|r| r.is_ok()));
    assert!(!cache.is_empty(), "verified signatures were remembered");
    // With every good signature cached, a tampered one still fails.
    let tx = txs.iter().zip(&batch).find(|(_, r)| r.is_ok()).map(|(t, _)| t.clone()).unwrap();
    let bad = mutate(&tx, |f| {
        let mut s = f.inputs[0].script_sig.to_vec();
        s[10] ^= 0x01;
        f.inputs[0].script_sig = Bytes::from(s);
    });
    assert!(validate_transaction(&bad, &view, &ctx).is_err());
    assert!(validate_transaction(&tx, &view, &ctx).is_ok(), "and the good one passes from the cache");
}

#[test]
fn policy_failures_where_standardness_is_required_are_never_punished() {
    let view = chain_view();
    let mut ctx = TxContext::new(Network::Regtest.params());
    ctx.require_standard = true;
    let tx = mempool().into_iter().find(|t| t.inputs.iter().all(|i| view.coins.contains_key(&i.prev_out))).unwrap();
    assert!(validate_transaction(&tx, &view, &ctx).is_ok(), "SV Node's wallet transactions are standard");
    for (bad, reason) in [
        (mutate(&tx, |f| f.version = 3), "version"),
        (mutate(&tx, |f| f.outputs[0].script_pubkey = Bytes::from_static(&[0x51])), "scriptpubkey"),
        (mutate(&tx, |f| f.outputs[0].value = 0), "dust"),
    ] {
        let r = validate_transaction(&bad, &view, &ctx).unwrap_err();
        assert_eq!((r.reason.as_str(), r.score, r.kind), (reason, 0, RejectKind::Policy));
    }
    // Regtest by default does not apply standardness, as SV Node: the same transaction gets as far
    // as its (now invalid, since the outputs changed) signature.
    let relaxed = TxContext::new(Network::Regtest.params());
    let nonstd = mutate(&tx, |f| f.outputs[0].script_pubkey = Bytes::from_static(&[0x51]));
    let r = validate_transaction(&nonstd, &view, &relaxed).unwrap_err();
    assert!(r.reason.starts_with("mandatory-script-verify-flag-failed"), "{}", r.reason);
}

#[test]
fn bip68_relative_lock_times_are_enforced_after_csv() {
    use bsv_relay::validation::tx::sequence_locks_satisfied;
    let view = chain_view(); // tip at 115, so the next block is 116 (CSV is active from 576: use the function)
    let tx = mempool().into_iter().find(|t| t.inputs.iter().all(|i| view.coins.contains_key(&i.prev_out))).unwrap();
    let coins: Vec<Coin> = tx.inputs.iter().map(|i| view.coins[&i.prev_out].clone()).collect();
    let coin_height = coins.iter().map(|c| c.height).max().unwrap();
    let with = |version: i32, sequence: u32| {
        mutate(&tx, |f| {
            f.version = version;
            for i in f.inputs.iter_mut() {
                i.sequence = sequence;
            }
        })
    };
    let next = coin_height + 3;
    // Version 1 ignores sequence locks; the disable bit too.
    assert!(sequence_locks_satisfied(&with(1, 10), &coins, next, &view));
    assert!(sequence_locks_satisfied(&with(2, (1 << 31) | 10), &coins, next, &view));
    // Height locks: a 3-block lock can be mined 3 blocks after the coin, not 2.
    assert!(sequence_locks_satisfied(&with(2, 3), &coins, coin_height + 3, &view));
    assert!(!sequence_locks_satisfied(&with(2, 3), &coins, coin_height + 2, &view));
    // Time locks: one 512-second unit past the coin's median time is not yet reached at the same time.
    assert!(!sequence_locks_satisfied(&with(2, (1 << 22) | 1), &coins, next, &view));
    assert!(sequence_locks_satisfied(&with(2, 1 << 22), &coins, next, &view));
}

/// SV Node's `TxnValidation` runs the policy checks (BIP68, sigop policy, the fee guards) before
/// the scored input and script checks, so a transaction failing both is refused without penalty.
#[test]
fn policy_checks_come_before_scored_ones_as_in_sv_node() {
    let view = chain_view();
    let tx = mempool().into_iter().find(|t| t.inputs.iter().all(|i| view.coins.contains_key(&i.prev_out))).unwrap();
    let fee = validate_transaction(&tx, &view, &TxContext::new(Network::Regtest.params())).unwrap().fee;
    let value_in: i64 = tx.inputs.iter().map(|i| view.coins[&i.prev_out].value).sum();
    let mut csv_params = Network::Regtest.params().clone();
    csv_params.activations.csv = 0;
    let reject = |t: &Transaction, ctx: &TxContext<'_>| {
        let r = validate_transaction(t, &view, ctx).unwrap_err();
        (r.reason, r.code, r.score, r.kind)
    };

    // BIP68-locked and overspending: the lock is reported, not the overspend.
    let locked_overspend = mutate(&tx, |f| {
        f.version = 2;
        f.inputs.iter_mut().for_each(|i| i.sequence = 1000);
        f.outputs[0].value += value_in;
    });
    let csv = TxContext::new(&csv_params);
    assert_eq!(reject(&locked_overspend, &csv), ("non-BIP68-final".into(), 0x40, 0, RejectKind::Policy));
    let plain = TxContext::new(Network::Regtest.params());
    assert_eq!(reject(&locked_overspend, &plain).0, "bad-txns-in-belowout", "without CSV the overspend shows");

    // sendrawtransaction's -maxtxfee: "256: absurdly-high-fee" above it, accepted at it.
    let guarded = TxContext { max_fee: Some(fee - 1), ..TxContext::new(Network::Regtest.params()) };
    assert_eq!(reject(&tx, &guarded), ("absurdly-high-fee".into(), 0x100, 0, RejectKind::Policy));
    let at_limit = TxContext { max_fee: Some(fee), ..TxContext::new(Network::Regtest.params()) };
    assert!(validate_transaction(&tx, &view, &at_limit).is_ok());

    // A full pool's minimum fee is checked before the signatures: a low-fee transaction with a
    // broken signature costs no signature check and no score.
    let bad_sig = mutate(&tx, |f| {
        let mut sig = f.inputs[0].script_sig.to_vec();
        sig[10] ^= 1;
        f.inputs[0].script_sig = Bytes::from(sig);
    });
    let full = TxContext { min_fee_rate: u64::MAX / 4_000_000, ..TxContext::new(Network::Regtest.params()) };
    assert_eq!(reject(&bad_sig, &full), ("mempool min fee not met".into(), 0x42, 0, RejectKind::Policy));
    let (reason, _, score, kind) = reject(&bad_sig, &plain);
    assert!(reason.starts_with("mandatory-script-verify-flag-failed"), "{reason}");
    assert_eq!((score, kind), (100, RejectKind::Consensus));

    // Before Genesis: over 4,000 sigops is policy; over 20,000 legacy ones is consensus.
    let with_checksigs = |n: usize| mutate(&tx, |f| f.outputs[0].script_pubkey = Bytes::from(vec![0xac; n]));
    assert_eq!(reject(&with_checksigs(4_001), &plain).0, "bad-txns-too-many-sigops");
    assert_eq!(reject(&with_checksigs(4_001), &plain).2, 0);
    assert_eq!(reject(&with_checksigs(20_001), &plain), ("bad-txn-sigops".into(), 0x10, 100, RejectKind::Consensus));
}

/// SV Node's mempool counts the P2SH redeem script sigops only of confirmed coins (an unconfirmed
/// parent's output has `MEMPOOL_HEIGHT`, which its count treats as post-Genesis): the same spend
/// is over the 4,000 policy limit from a confirmed coin and within it from a pool transaction.
#[test]
fn redeem_script_sigops_count_only_for_confirmed_coins() {
    use bitcoin_hashes::{hash160, Hash};
    let mut view = chain_view();
    // OP_0 OP_IF <201 × CHECKMULTISIG> OP_ENDIF OP_1: valid (the branch is skipped, 203 ops), and
    // 201 × 20 = 4,020 sigops by the accurate count.
    let redeem: Vec<u8> = [&[0x00u8, 0x63][..], &[0xae; 201], &[0x68, 0x51]].concat();
    let script_pubkey = [&[0xa9u8, 20][..], &hash160::Hash::hash(&redeem).to_byte_array(), &[0x87]].concat();
    let spend_of = |prev_out: OutPoint| {
        Transaction::from_fields(bsv_relay::wire::TxFields {
            version: 1,
            inputs: vec![bsv_relay::wire::TxIn {
                prev_out,
                script_sig: Bytes::from([&[0x4c, redeem.len() as u8][..], &redeem].concat()),
                sequence: u32::MAX,
            }],
            outputs: vec![bsv_relay::wire::TxOut { value: 90_000, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        })
    };
    let confirmed = OutPoint { txid: bsv_relay::wire::Hash256([1; 32]), vout: 0 };
    let unconfirmed = OutPoint { txid: bsv_relay::wire::Hash256([2; 32]), vout: 0 };
    let coin =
        |height| Coin { value: 100_000, script_pubkey: Bytes::from(script_pubkey.clone()), height, is_coinbase: false };
    view.coins.insert(confirmed, coin(view.height));
    view.coins.insert(unconfirmed, coin(view.height + 1));
    let ctx = TxContext::new(Network::Regtest.params());
    let r = validate_transaction(&spend_of(confirmed), &view, &ctx).unwrap_err();
    assert_eq!((r.reason.as_str(), r.score), ("bad-txns-too-many-sigops", 0));
    let ok = validate_transaction(&spend_of(unconfirmed), &view, &ctx).expect("accepted from the pool's coin");
    assert_eq!(ok.fee, 10_000);
}

/// After Genesis a loose transaction is held to SV Node's script policy: numbers of at most 10 kB
/// (a longer one costs 10, under SV Node's own reason) and scripts of at most 500 kB (refused
/// without score); blocks keep the consensus limits (750 kB numbers).
#[test]
fn script_policy_limits_after_genesis_are_sv_nodes() {
    let mut view = chain_view();
    let mut params = Network::Regtest.params().clone();
    params.activations.genesis = 100;
    // An output that adds one to an n-byte number (0x01 repeated: minimally encoded), then succeeds.
    let number_script =
        |n: usize| [&[0x4d][..], &(n as u16).to_le_bytes(), &vec![0x01; n], &[0x8b, 0x75, 0x51]].concat();
    let big_script = [&[0x4e][..], &500_000u32.to_le_bytes(), &vec![0x07; 500_000], &[0x75, 0x51]].concat();
    let scripts = [number_script(10_000), number_script(10_001), big_script];
    let spends: Vec<Transaction> = scripts
        .iter()
        .enumerate()
        .map(|(i, script)| {
            let prev = OutPoint { txid: bsv_relay::wire::Hash256([i as u8 + 1; 32]), vout: 0 };
            let coin =
                Coin { value: 100_000, script_pubkey: Bytes::from(script.clone()), height: 115, is_coinbase: false };
            view.coins.insert(prev, coin);
            Transaction::from_fields(bsv_relay::wire::TxFields {
                version: 1,
                inputs: vec![bsv_relay::wire::TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
                outputs: vec![bsv_relay::wire::TxOut { value: 90_000, script_pubkey: Bytes::from_static(&[0x51]) }],
                lock_time: 0,
            })
        })
        .collect();
    let ctx = TxContext::new(&params);
    assert!(validate_transaction(&spends[0], &view, &ctx).is_ok(), "10,000 bytes is within the policy");
    let r = validate_transaction(&spends[1], &view, &ctx).unwrap_err();
    assert_eq!(
        (r.reason.as_str(), r.score, r.kind),
        ("max-script-num-length-policy-limit-violated (Script number overflow)", 10, RejectKind::Consensus)
    );
    let r = validate_transaction(&spends[2], &view, &ctx).unwrap_err();
    assert_eq!(
        (r.reason.as_str(), r.score, r.kind),
        ("non-mandatory-script-verify-flag (Script is too big)", 0, RejectKind::Policy)
    );
}

/// A script built to burn CPU (a 16 MB element hashed 100,000 times: minutes of work) is given up
/// after SV Node's validation time budget and refused without score, also when it first fails a
/// policy flag and only the consensus re-check would run it.
#[test]
fn a_script_that_runs_too_long_is_refused_without_score() {
    let mut view = chain_view();
    let mut params = Network::Regtest.params().clone();
    params.activations.genesis = 100;
    let mut burner = vec![0x51];
    for _ in 0..24 {
        burner.extend_from_slice(&[0x76, 0x7e]); // OP_DUP OP_CAT: 2^24 bytes
    }
    for _ in 0..100_000 {
        burner.extend_from_slice(&[0x76, 0xa8, 0x75]); // OP_DUP OP_SHA256 OP_DROP
    }
    burner.extend_from_slice(&[0x75, 0x51]);
    // The same behind a non-minimal push, which fails the standard flags at once.
    let non_minimal_first = [&[0x4c, 0x01, 0x05, 0x75][..], &burner].concat();
    // A tenth of the default budget (`-maxnonstdtxvalidationduration=100`), to keep the test short.
    let ctx = TxContext { max_validation_time: std::time::Duration::from_millis(100), ..TxContext::new(&params) };
    for (i, script) in [burner, non_minimal_first].into_iter().enumerate() {
        let prev = OutPoint { txid: bsv_relay::wire::Hash256([i as u8 + 9; 32]), vout: 0 };
        view.coins
            .insert(prev, Coin { value: 100_000, script_pubkey: Bytes::from(script), height: 115, is_coinbase: false });
        let tx = Transaction::from_fields(bsv_relay::wire::TxFields {
            version: 1,
            inputs: vec![bsv_relay::wire::TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
            outputs: vec![bsv_relay::wire::TxOut { value: 90_000, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        });
        let r = validate_transaction(&tx, &view, &ctx).unwrap_err();
        assert_eq!(
            (r.reason.as_str(), r.score, r.kind),
            ("too-long-validation-time", 0, RejectKind::Policy),
            "script {i}"
        );
    }
}
