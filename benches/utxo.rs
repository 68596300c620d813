//! Connecting a block to the UTXO set without scripts: a synthetic block of 10,000 one-input,
//! one-output transactions spending mature coins, checked and applied with [`NoScriptCheck`], then
//! disconnected again outside the timed part. Measures everything `connect_block` does besides
//! script verification: merkle root, context-free checks, coin lookups, undo data, the commit.

use std::time::{Duration, Instant};

use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::{connect_block, disconnect_block, NoScriptCheck, UtxoSet};
use bsv_relay::wire::{merkle_root, Block, BlockHeader, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// Transactions in the benchmarked block.
const TXS: usize = 10_000;
/// Satoshis per funding output; each spend pays a 100-satoshi fee.
const FUNDING_VALUE: i64 = 1_000;
/// A typical P2PKH output script length, so coins are realistically sized.
const P2PKH: [u8; 25] = [0x76; 25];

fn coinbase(height: u32, outputs: Vec<TxOut>) -> Transaction {
    Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint::NULL,
            script_sig: Bytes::copy_from_slice(&height.to_le_bytes()),
            sequence: u32::MAX,
        }],
        outputs,
        lock_time: 0,
    })
}

fn block(prev: &Block, txs: Vec<Transaction>) -> Block {
    let header = BlockHeader {
        version: 4,
        prev_block: prev.hash(),
        merkle_root: merkle_root(txs.iter().map(Transaction::txid).collect()).0,
        time: prev.header.time + 600,
        bits: prev.header.bits,
        nonce: 0,
    };
    Block::new(header, txs)
}

/// A set with `TXS` mature coins at height 101, and the block at 102 that spends them all.
fn setup() -> (UtxoSet, Block) {
    let utxo = UtxoSet::new(&REGTEST);
    let script = Bytes::from_static(&P2PKH);
    let funding = coinbase(1, vec![TxOut { value: FUNDING_VALUE, script_pubkey: script.clone() }; TXS]);
    let mut prev = block(&REGTEST.genesis_block(), vec![funding.clone()]);
    connect_block(&utxo, &prev, 1, &REGTEST, u64::MAX, &NoScriptCheck).expect("funding block");
    for height in 2..=1 + REGTEST.coinbase_maturity {
        let next = block(&prev, vec![coinbase(height, vec![TxOut { value: 1, script_pubkey: script.clone() }])]);
        connect_block(&utxo, &next, height, &REGTEST, u64::MAX, &NoScriptCheck).expect("empty block");
        prev = next;
    }
    let mut txs = vec![coinbase(102, vec![TxOut { value: 1, script_pubkey: script.clone() }])];
    txs.extend((0..TXS).map(|vout| {
        Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: funding.txid(), vout: vout as u32 },
                script_sig: Bytes::from(vec![0u8; 107]),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value: FUNDING_VALUE - 100, script_pubkey: script.clone() }],
            lock_time: 0,
        })
    }));
    (utxo, block(&prev, txs))
}

fn benches(c: &mut Criterion) {
    let (utxo, spend_block) = setup();
    let height = 2 + REGTEST.coinbase_maturity;
    let mut group = c.benchmark_group("utxo");
    group.throughput(Throughput::Elements(TXS as u64));
    group.sample_size(20);
    group.bench_function("connect_block_10k_txs", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let undo = connect_block(&utxo, &spend_block, height, &REGTEST, u64::MAX, &NoScriptCheck)
                    .expect("valid block");
                timed += start.elapsed();
                disconnect_block(&utxo, &spend_block, black_box(&undo)).expect("tip block");
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(utxo_benches, benches);
criterion_main!(utxo_benches);
