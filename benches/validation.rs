//! Transaction validation on every core: 10,000 independent signed 1-input 1-output P2PKH
//! transactions, cold (every signature verified) and warm (signatures already in the cache, as
//! when a block arrives whose transactions were accepted to the mempool).
//! Target (issue 5): at least 40,000 transactions/s on 2 cores, cold.

use bsv_relay::chain::Network;
use bsv_relay::script::SigCache;
use bsv_relay::validation::{validate_batch, Coin, MapCoinView, TxContext};
use bsv_relay::wallet::{push_all, Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const N: usize = 10_000;

fn setup() -> (MapCoinView, Vec<Transaction>) {
    let key = Key::from_seed(b"bench");
    let script = key.p2pkh_script();
    let mut view = MapCoinView { height: 200, mtp: 1_700_000_000, ..Default::default() };
    let mut txs = Vec::with_capacity(N);
    for i in 0..N {
        let prev = OutPoint { txid: Hash256::sha256d(&(i as u64).to_le_bytes()), vout: 0 };
        let value = 100_000;
        view.coins
            .insert(prev, Coin { value, script_pubkey: Bytes::from(script.clone()), height: 100, is_coinbase: false });
        let mut fields = TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
            outputs: vec![TxOut { value: value - 500, script_pubkey: Bytes::from(script.clone()) }],
            lock_time: 0,
        };
        let sig = key.sign(&fields, 0, &script, value, SIGHASH_ALL_FORKID);
        fields.inputs[0].script_sig = Bytes::from(push_all(&[&sig, &key.pubkey()]));
        txs.push(Transaction::from_fields(fields));
    }
    (view, txs)
}

fn benches(c: &mut Criterion) {
    let (view, txs) = setup();
    let params = Network::Regtest.params();
    let mut group = c.benchmark_group("validate_10000_p2pkh_all_cores");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("cold", |b| {
        b.iter(|| {
            let ctx = TxContext::new(params);
            let r = validate_batch(&txs, &view, &ctx);
            assert!(r.iter().all(|r| r.is_ok()));
        })
    });
    let cache = SigCache::default();
    let ctx = TxContext::new(params).with_sig_cache(&cache);
    assert!(validate_batch(&txs, &view, &ctx).iter().all(|r| r.is_ok()));
    group.bench_function("warm_signature_cache", |b| {
        b.iter(|| {
            let r = validate_batch(&txs, &view, &ctx);
            assert!(r.iter().all(|r| r.is_ok()));
        })
    });
    group.finish();
}

criterion_group!(validation, benches);
criterion_main!(validation);
