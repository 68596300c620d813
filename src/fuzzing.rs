//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the test that replays their
//! seed corpora (`tests/fuzz_seeds.rs`), so the committed seeds run on every `cargo test`.
//!
//! Each harness must never panic on any input; where a decode succeeds it checks a round-trip
//! oracle (decode → encode → decode gives the same value), and panics only if that oracle fails.

use crate::wire::encode::Decodable;
use crate::wire::frame::{frame_bytes, FrameDecoder};
use crate::wire::message::{Command, Limits, Message, COMMANDS};
use crate::wire::{Block, Hash256, Transaction};
use bytes::{Bytes, BytesMut};
use std::hint::black_box;

/// Regtest magic, used for every fuzzed frame.
const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

/// Frame decoding. The first byte picks a command; the rest is the payload, framed with a correct
/// checksum so that mutations reach the payload parsers instead of dying at the checksum. The raw
/// input is also fed to the frame decoder as a stream, unframed.
pub fn frame_decode(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else { return };
    let command = Command::new(COMMANDS[selector as usize % COMMANDS.len()]).expect("COMMANDS are valid");
    let limits = Limits::default();
    let frame = frame_bytes(MAGIC, command, payload, Hash256::sha256d(payload).checksum());
    let mut decoder = FrameDecoder::new(MAGIC, limits);
    let mut buf = BytesMut::from(&frame[..]);
    if let Ok(Some(f)) = black_box(decoder.decode(&mut buf)) {
        if let Ok(msg) = black_box(f.message(&limits)) {
            round_trip_message(&msg, &limits);
        }
    }
    let mut raw = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(MAGIC, limits);
    while let Ok(Some(f)) = black_box(decoder.decode(&mut raw)) {
        let _ = black_box(f.message(&limits));
    }
}

fn round_trip_message(msg: &Message, limits: &Limits) {
    if matches!(msg, Message::Unknown { .. }) {
        return;
    }
    let mut payload = Vec::new();
    msg.encode_payload(&mut payload);
    let command = Command::new(msg.command()).expect("decoded commands are valid");
    let again = Message::decode(command, &Bytes::from(payload), None, limits).expect("re-encoded message decodes");
    assert_eq!(&again, msg, "decode(encode(m)) == m");
}

/// Transaction decoding, with the round-trip oracle: the re-encoding is the input's bytes.
pub fn tx_decode(data: &[u8]) {
    if let Ok(tx) = black_box(Transaction::from_slice(data)) {
        assert_eq!(tx.raw().as_ref(), data);
        assert_eq!(tx.txid(), Hash256::sha256d(data));
        let rebuilt = Transaction::from_fields(tx.clone().into_fields());
        assert_eq!(rebuilt.raw(), tx.raw(), "from_fields re-serializes identically");
    }
}

/// Block decoding, with the round-trip oracle and a merkle-root computation.
pub fn block_decode(data: &[u8]) {
    if let Ok(block) = black_box(Block::from_slice(data)) {
        use crate::wire::Encodable;
        assert_eq!(block.to_bytes(), data);
        let _ = black_box(block.merkle_root());
    }
}
