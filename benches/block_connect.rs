//! Connecting a block of 10,000 signed one-input P2PKH transactions with every script verified,
//! cold (empty signature cache, as for a block of transactions never seen) against warm (every
//! signature already verified when the transactions entered the mempool, as on a relay that saw
//! them): the difference is what the shared signature cache saves at block time.

use std::sync::Arc;

use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::{connect_block, UtxoSet};
use bsv_relay::script::SigCache;
use bsv_relay::validation::{Coin, ScriptVerifier, TxContext};
use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Block, Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
#[path = "support/tx.rs"]
mod support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const TXS: usize = 10_000;
const VALUE: i64 = 100_000;
/// Height of the coins' block and of the set's tip; the benchmarked block comes next.
const TIP: u32 = 200;

struct Fixture {
    key: Key,
    coins: Vec<(OutPoint, Coin)>,
    block: Block,
}

fn fixture() -> Fixture {
    let key = Key::from_seed(b"block connect bench");
    let script = Bytes::from(key.p2pkh_script());
    let coins: Vec<(OutPoint, Coin)> = (0..TXS as u32)
        .map(|i| {
            let outpoint = OutPoint { txid: Hash256::sha256d(&i.to_le_bytes()), vout: 0 };
            (outpoint, Coin { value: VALUE, script_pubkey: script.clone(), height: 1, is_coinbase: false })
        })
        .collect();
    let mut txs = Vec::with_capacity(coins.len());
    for (outpoint, coin) in &coins {
        let mut fields = TxFields {
            version: 1,
            inputs: vec![TxIn { prev_out: *outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
            outputs: vec![TxOut { value: VALUE - 500, script_pubkey: script.clone() }],
            lock_time: 0,
        };
        let sig = key.sign(&fields, 0, &coin.script_pubkey, coin.value, SIGHASH_ALL_FORKID);
        fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
        txs.push(Transaction::from_fields(fields));
    }
    Fixture { key, coins, block: support::block_at(TIP + 1, txs) }
}

fn set(f: &Fixture) -> UtxoSet {
    let times: Vec<u32> = (0..=TIP).map(|h| REGTEST.genesis_time + h).collect();
    UtxoSet::restore(&REGTEST, f.coins.iter().cloned(), (TIP, Hash256([7; 32])), times)
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let _ = &f.key;
    let mut g = c.benchmark_group("block_connect_10k_p2pkh");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TXS as u64));
    g.bench_function("cold", |b| {
        b.iter_batched(
            || (set(&f), SigCache::new(1 << 16)),
            |(utxo, cache)| {
                let verifier = ScriptVerifier { ctx: TxContext::new(&REGTEST).with_sig_cache(&cache) };
                connect_block(&utxo, &f.block, TIP + 1, &REGTEST, u64::MAX, &verifier).expect("connects")
            },
            BatchSize::PerIteration,
        )
    });
    // One connection fills the cache, as mempool acceptance would have.
    let warm = Arc::new(SigCache::new(1 << 16));
    {
        let verifier = ScriptVerifier { ctx: TxContext::new(&REGTEST).with_sig_cache(&warm) };
        connect_block(&set(&f), &f.block, TIP + 1, &REGTEST, u64::MAX, &verifier).expect("connects");
    }
    g.bench_function("warm", |b| {
        b.iter_batched(
            || set(&f),
            |utxo| {
                let verifier = ScriptVerifier { ctx: TxContext::new(&REGTEST).with_sig_cache(&warm) };
                connect_block(&utxo, &f.block, TIP + 1, &REGTEST, u64::MAX, &verifier).expect("connects")
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
