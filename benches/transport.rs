//! The v2 (BIP324) transport's cost on the hot path: encrypt + decrypt of a 200-byte transaction
//! message and of 1 MB of block payload (four 16 MB packets' worth is the same per byte), beside
//! v1 framing of the same transaction (encode + checksum-verified decode) for scale. Issue 15:
//! v2 must cost under 5 % of acceptance throughput, where one P2PKH input's signature check is
//! about 25 µs.

use bsv_relay::peer::v2::cipher::SessionKeys;
use bsv_relay::peer::v2::stream::{PacketDecoder, PacketEncoder};
use bsv_relay::wire::frame::{frame_bytes, FrameDecoder};
use bsv_relay::wire::message::Limits;
use bsv_relay::wire::{encode_frame, Command, Message};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

#[path = "support/tx.rs"]
mod support;
use support::p2pkh_tx;

fn pair() -> (PacketEncoder, PacketDecoder) {
    let keys = SessionKeys::derive(&[1; 32], MAGIC);
    let (sealer, _) = keys.ciphers(true);
    let (_, opener) = keys.ciphers(false);
    let limits = Limits { max_block_size: 1 << 30, ..Limits::default() };
    (PacketEncoder::new(sealer), PacketDecoder::new(opener, limits, usize::MAX))
}

fn benches(c: &mut Criterion) {
    let tx_frame = encode_frame(MAGIC, &Message::Tx(p2pkh_tx()));
    let mut group = c.benchmark_group("transport");
    group.throughput(Throughput::Elements(1));
    group.bench_function("v2_tx_message_encrypt_decrypt", |b| {
        let (mut enc, mut dec) = pair();
        let mut buf = BytesMut::new();
        b.iter(|| {
            buf.extend_from_slice(&enc.encode(black_box(&tx_frame)));
            black_box(dec.decode(&mut buf).expect("authentic").expect("whole"))
        })
    });
    group.bench_function("v1_tx_message_encode_decode", |b| {
        let tx = Message::Tx(p2pkh_tx());
        let mut dec = FrameDecoder::new(MAGIC, Limits::default());
        let mut buf = BytesMut::new();
        b.iter(|| {
            buf.extend_from_slice(&encode_frame(MAGIC, black_box(&tx)));
            black_box(dec.decode(&mut buf).expect("valid").expect("whole"))
        })
    });
    let payload = vec![0x5au8; 1 << 20];
    let block_frame = frame_bytes(MAGIC, Command::new("block").expect("valid"), &payload, 0);
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.sample_size(20);
    group.bench_function("v2_1mb_encrypt_decrypt", |b| {
        let (mut enc, mut dec) = pair();
        let mut buf = BytesMut::new();
        b.iter(|| {
            buf.extend_from_slice(&enc.encode(black_box(&block_frame)));
            black_box(dec.decode(&mut buf).expect("authentic").expect("whole"))
        })
    });
    group.finish();
}

criterion_group!(transport, benches);
criterion_main!(transport);
