//! Header validation + insertion, the headers-first sync hot path: regtest headers mined before the
//! timed loop, then accepted into a fresh tree one by one and as 2000-header `headers` messages.
//! Target (issue 6): at least 1,000,000 headers/s on one core.

use bsv_relay::chain::headers::{HeaderTree, MAX_HEADERS};
use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::pow::check_proof_of_work;
use bsv_relay::wire::{BlockHeader, Hash256};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const COUNT: usize = 100_000;
const NOW: u32 = 1_700_000_000;

fn mined_chain(count: usize) -> Vec<BlockHeader> {
    let mut prev = REGTEST.genesis_block().header;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut h = BlockHeader {
            version: 4,
            prev_block: prev.hash(),
            merkle_root: Hash256([i as u8; 32]),
            time: prev.time + 600,
            bits: prev.bits,
            nonce: 0,
        };
        while !check_proof_of_work(&h.hash(), h.bits, &REGTEST) {
            h.nonce += 1;
        }
        out.push(h);
        prev = h;
    }
    out
}

fn benches(c: &mut Criterion) {
    let chain = mined_chain(COUNT);
    let mut group = c.benchmark_group("headers");
    group.throughput(Throughput::Elements(COUNT as u64));
    group.sample_size(20);
    group.bench_function("accept_header_100k", |b| {
        b.iter_batched(
            || HeaderTree::new(REGTEST.clone()),
            |mut tree| {
                for h in &chain {
                    black_box(tree.accept_header(h, NOW).expect("valid"));
                }
                tree
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("accept_headers_msgs_100k", |b| {
        b.iter_batched(
            || HeaderTree::new(REGTEST.clone()),
            |mut tree| {
                for msg in chain.chunks(MAX_HEADERS) {
                    black_box(tree.accept_headers(msg, NOW).expect("valid"));
                }
                tree
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(headers, benches);
criterion_main!(headers);
