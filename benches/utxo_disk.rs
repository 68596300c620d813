//! The UTXO set on disk, side by side in one run: the same 5,000,000-coin set on disk
//! (`BENCH_UTXO_COINS` overrides the count), opened once with the whole set cached and once with
//! `-dbcache=64`, and measured on
//! - mempool acceptance: a validation batch of 10,000 signed P2PKH transactions (prefetch of the
//!   batch's inputs, then `validate_batch` on every core), signatures already in the cache so the
//!   coin reads are what differs;
//! - block connect: a block of 10,000 such transactions (inputs read in parallel before staging,
//!   scripts checked against the warm signature cache), disconnected again outside the timing.
//!
//! - a cold read: one coin never read before, looked up through the `-dbcache=64` set
//!   (`CoinView::coin`, a redb point read), what a transaction's input costs when nobody
//!   prefetched it.
//!
//! Every iteration spends coins no earlier iteration touched, spread over the whole set, so with
//! `-dbcache=64` they are cold: read from disk (the OS page cache may hold the file; the first
//! iterations after the set is written are the coldest).

use std::time::{Duration, Instant};

use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::store::BlockStore;
use bsv_relay::chain::{connect_block, disconnect_block, UtxoSet, UtxoStats};
use bsv_relay::script::SigCache;
use bsv_relay::validation::{validate_batch, Coin, MapCoinView, ScriptVerifier, TxContext};
use bsv_relay::wallet::{push_all, Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Block, Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
#[path = "support/tx.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

const TXS: usize = 10_000;
const VALUE: i64 = 100_000;
const TIP: u32 = 200;
/// Batches prepared per measurement: one warm-up iteration, ten samples of one, two spare.
const BATCHES: usize = 13;
/// `-dbcache=64`'s share for coins (seven eighths; the rest is redb's page cache).
const DBCACHE_64_COINS: usize = (64 << 20) / 8 * 7;
const WHOLE_SET_CACHE: usize = 8 << 30;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs each benchmark once without it,
/// and then a small set keeps the test suite fast.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn coins() -> usize {
    let default = if benchmarking() { 5_000_000 } else { 100_000 };
    std::env::var("BENCH_UTXO_COINS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn outpoint(i: usize) -> OutPoint {
    OutPoint { txid: Hash256::sha256d(&(i as u64).to_le_bytes()), vout: 0 }
}

/// Writes `n` P2PKH coins to a new chain database in `dir`, in key order.
fn write_set(dir: &std::path::Path, n: usize, script: &Bytes) -> BlockStore {
    let store = BlockStore::open(&dir.join("chainstate.redb"), 8 << 20).expect("store");
    let db = store.coins_db();
    let mut keys: Vec<OutPoint> = (0..n).map(outpoint).collect();
    keys.sort_unstable_by_key(|op| op.txid.0);
    let coin = Coin { value: VALUE, script_pubkey: script.clone(), height: 1, is_coinbase: false };
    let tip = Hash256([7; 32]);
    let mut stats = UtxoStats { height: TIP, best_block: tip, txouts: 0, total_amount: 0, bogosize: 0 };
    for chunk in keys.chunks(500_000) {
        stats.txouts += chunk.len() as u64;
        stats.total_amount += VALUE * chunk.len() as i64;
        stats.bogosize += (50 + script.len() as u64) * chunk.len() as u64;
        db.write_flush(chunk.iter().map(|op| (op, Some(&coin))), &tip, &stats).expect("write");
    }
    store
}

/// Signed transactions spending coins `start..start + TXS` in a stride over the whole set.
fn batch(key: &Key, script: &Bytes, n: usize, b: usize) -> Vec<Transaction> {
    let stride = n / (BATCHES * 4 * TXS).max(1);
    (0..TXS)
        .map(|i| {
            let index = ((b * TXS + i) * stride.max(1)) % n;
            let mut fields = TxFields {
                version: 1,
                inputs: vec![TxIn { prev_out: outpoint(index), script_sig: Bytes::new(), sequence: u32::MAX }],
                outputs: vec![TxOut { value: VALUE - 500, script_pubkey: script.clone() }],
                lock_time: 0,
            };
            let sig = key.sign(&fields, 0, script, VALUE, SIGHASH_ALL_FORKID);
            fields.inputs[0].script_sig = Bytes::from(push_all(&[&sig, &key.pubkey()]));
            Transaction::from_fields(fields)
        })
        .collect()
}

fn block(txs: &[Transaction]) -> Block {
    support::block_at(TIP + 1, txs.iter().cloned())
}

fn bench(c: &mut Criterion) {
    let n = coins();
    let key = Key::from_seed(b"utxo disk bench");
    let script = Bytes::from(key.p2pkh_script());
    let dir = std::env::temp_dir().join(format!("bsv-relay-utxo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let started = Instant::now();
    let store = write_set(&dir, n, &script);
    eprintln!("wrote {n} coins in {:.1} s", started.elapsed().as_secs_f64());
    let times: Vec<u32> = (0..=TIP).map(|h| REGTEST.genesis_time + h).collect();
    let tip = (TIP, Hash256([7; 32]));
    let started = Instant::now();
    let whole = UtxoSet::on_disk(&REGTEST, store.coins_db(), WHOLE_SET_CACHE, tip, times.clone()).expect("whole");
    eprintln!("loaded the whole set in {:.1} s", started.elapsed().as_secs_f64());
    let small = UtxoSet::on_disk(&REGTEST, store.coins_db(), DBCACHE_64_COINS, tip, times).expect("dbcache=64");
    let sig_cache = SigCache::new(1 << 21);
    let ctx = TxContext::new(&REGTEST).with_sig_cache(&sig_cache);
    // Batches per (set, measurement), signatures put in the cache through a map view so the sets'
    // caches stay cold.
    let mut next_batch = 0;
    let mut batches = |count: usize| -> Vec<Vec<Transaction>> {
        (0..count)
            .map(|_| {
                let txs = batch(&key, &script, n, next_batch);
                next_batch += 1;
                let mut view = MapCoinView { height: TIP, mtp: i64::from(REGTEST.genesis_time), ..Default::default() };
                for tx in &txs {
                    let coin = Coin { value: VALUE, script_pubkey: script.clone(), height: 1, is_coinbase: false };
                    view.coins.insert(tx.inputs[0].prev_out, coin);
                }
                assert!(validate_batch(&txs, &view, &ctx).iter().all(Result::is_ok));
                txs
            })
            .collect()
    };
    let sets = [("whole_set_cached", &whole), ("dbcache_64", &small)];
    let mut g = c.benchmark_group(format!("utxo_disk_{}m_coins", n / 1_000_000));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_millis(1));
    g.throughput(Throughput::Elements(TXS as u64));
    for (name, set) in sets {
        let prepared = batches(if benchmarking() { BATCHES } else { 1 });
        let mut cursor = 0;
        g.bench_function(format!("mempool_accept_10k_p2pkh/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let txs = &prepared[cursor % prepared.len()];
                    cursor += 1;
                    let start = Instant::now();
                    set.prefetch(txs.iter().flat_map(|tx| tx.inputs.iter().map(|i| &i.prev_out)));
                    let r = validate_batch(txs, set, &ctx);
                    timed += start.elapsed();
                    assert!(r.iter().all(Result::is_ok));
                }
                timed
            })
        });
    }
    for (name, set) in sets {
        let prepared: Vec<Block> =
            batches(if benchmarking() { BATCHES } else { 1 }).iter().map(|txs| block(txs)).collect();
        let mut cursor = 0;
        g.bench_function(format!("block_connect_10k_p2pkh/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let blk = &prepared[cursor % prepared.len()];
                    cursor += 1;
                    let verifier = ScriptVerifier { ctx: TxContext::new(&REGTEST).with_sig_cache(&sig_cache) };
                    let start = Instant::now();
                    let undo = connect_block(set, blk, TIP + 1, &REGTEST, u64::MAX, &verifier).expect("connects");
                    timed += start.elapsed();
                    disconnect_block(set, blk, &undo).expect("disconnects");
                }
                timed
            })
        });
    }
    // Coins in the second half of the index space, never touched above (the batches stride from 0).
    let mut next_cold = n / 2;
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(100)).measurement_time(Duration::from_secs(1));
    g.bench_function("cold_coin_read/dbcache_64", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let op = outpoint(next_cold % n);
                next_cold += 97;
                assert!(bsv_relay::validation::CoinView::coin(&small, &op).is_some());
            }
            start.elapsed()
        })
    });
    g.finish();
    drop((whole, small, store));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
