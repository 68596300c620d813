//! Codec hot path: frame decode of a small message, decode + txid of a 1-input 1-output P2PKH
//! transaction, decode of mainnet block 413567, decode of a 2000-header `headers` message.
//! Targets (issue 2): the transaction at most 400 ns; the block at least 1 GB/s.

use bsv_relay::wire::frame::FrameDecoder;
use bsv_relay::wire::message::Limits;
use bsv_relay::wire::*;
use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

#[path = "support/tx.rs"]
mod support;
use support::p2pkh_tx;

fn benches(c: &mut Criterion) {
    let ping = encode_frame(MAGIC, &Message::Ping(0x1234_5678));
    c.bench_function("frame_decode_ping", |b| {
        b.iter(|| {
            let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
            let mut buf = BytesMut::from(&ping[..]);
            let frame = decoder.decode(&mut buf).unwrap().unwrap();
            black_box(frame.message(decoder.limits()).unwrap())
        })
    });

    let tx = p2pkh_tx();
    let raw = tx.raw().clone();
    let mut group = c.benchmark_group("tx");
    group.throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("decode_and_txid_p2pkh_1in_1out", |b| {
        b.iter(|| {
            let tx = Transaction::from_bytes(black_box(&raw)).unwrap();
            black_box(tx.txid())
        })
    });
    group.finish();

    let block = Bytes::from_static(include_bytes!("../tests/data/fixtures/block413567.raw"));
    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Bytes(block.len() as u64));
    group.sample_size(30);
    group.bench_function("decode_block413567", |b| b.iter(|| black_box(Block::from_bytes(black_box(&block)).unwrap())));
    group.finish();

    let headers: Vec<BlockHeader> = (0..2000u32)
        .map(|i| BlockHeader {
            version: 4,
            prev_block: Hash256([i as u8; 32]),
            merkle_root: Hash256([7; 32]),
            time: 1_600_000_000 + i,
            bits: 0x1d00ffff,
            nonce: i,
        })
        .collect();
    let mut payload = Vec::new();
    Message::Headers(headers).encode_payload(&mut payload);
    let payload = Bytes::from(payload);
    let command = Command::new("headers").unwrap();
    let mut group = c.benchmark_group("headers");
    group.throughput(Throughput::Elements(2000));
    group.bench_function("decode_2000_headers", |b| {
        b.iter(|| black_box(Message::decode(command, black_box(&payload), None, &Limits::default()).unwrap()))
    });
    group.finish();
}

criterion_group!(wire, benches);
criterion_main!(wire);
