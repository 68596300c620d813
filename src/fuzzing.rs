//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the test that replays their
//! seed corpora (`tests/fuzz_seeds.rs`), so the committed seeds run on every `cargo test`.
//!
//! Each harness must never panic on any input; where a decode succeeds it checks a round-trip
//! oracle (decode → encode → decode gives the same value), and panics only if that oracle fails.

use crate::chain::headers::{HeaderTree, MAX_HEADERS};
use crate::chain::params::REGTEST;
use crate::wire::encode::Decodable;
use crate::wire::frame::{frame_bytes, FrameDecoder};
use crate::wire::message::{Command, Limits, Message, COMMANDS};
use crate::wire::{Block, BlockHeader, Hash256, Transaction};
use bytes::{Bytes, BytesMut};
use std::hint::black_box;

/// Regtest magic, used for every fuzzed frame.
const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

/// v2 packets. The input is a series of packet plaintexts (a header byte, a 2-byte length, the
/// contents), encrypted here under a fixed session so that mutations reach the message assembler
/// (types, `extmsg` continuations, limits) instead of dying at authentication; the raw input is
/// also fed to a decoder as ciphertext. Neither may panic.
pub fn v2_packets(data: &[u8]) {
    use crate::peer::v2::cipher::SessionKeys;
    use crate::peer::v2::stream::PacketDecoder;
    let keys = SessionKeys::derive(&[7; 32], MAGIC);
    let (mut sealer, _) = keys.ciphers(true);
    let limits = Limits { max_block_size: 1 << 20, max_recv_payload: 1 << 16 };
    let mut wire = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        sealer.seal(rest[0], &rest[3..3 + len], &[], &mut wire);
        rest = &rest[3 + len..];
    }
    let mut decoder = PacketDecoder::new(keys.ciphers(false).1, limits, 1 << 20);
    let mut buf = BytesMut::from(&wire[..]);
    while let Ok(Some(f)) = black_box(decoder.decode(&mut buf)) {
        let _ = black_box(f.message(&limits));
    }
    let mut decoder = PacketDecoder::new(keys.ciphers(false).1, limits, 1 << 20);
    let mut raw = BytesMut::from(data);
    while let Ok(Some(_)) = black_box(decoder.decode(&mut raw)) {}
}

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

/// Header-chain import into a regtest [`HeaderTree`]. The first byte picks a mode, the rest is a
/// sequence of 80-byte headers. Mode bits: 1 links each header to a stored one (or, in a message, to
/// the one before it) and keeps its time near its parent's, so mutations reach the contextual rules
/// instead of dying at `prev-blk-not-found`; 2 sends them as `headers` messages of up to 2000;
/// 4 forces regtest's nBits; 8 marks a block invalid at the end. Oracle: the tree's invariants
/// (every stored header's parent is stored, the best tip has the most work, the best chain is the
/// tip's ancestry) hold after every input, and the sync helpers answer without panicking.
pub fn header_chain(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (link, batch, fix_bits, invalidate) = (mode & 1 != 0, mode & 2 != 0, mode & 4 != 0, mode & 8 != 0);
    let mut tree = HeaderTree::new(REGTEST.clone());
    // A fixed fake clock an hour after the genesis time shifted by the mode's top bits.
    let now = REGTEST.genesis_time + 3600 + u32::from(mode >> 4) * 86_400;
    let mut message: Vec<BlockHeader> = Vec::new();
    for chunk in rest.chunks_exact(80) {
        let mut h = BlockHeader::from_array(chunk.try_into().expect("chunks_exact gives 80 bytes"));
        if fix_bits {
            h.bits = REGTEST.pow_limit_bits;
        }
        if link {
            let parent = match message.last() {
                Some(prev) if batch => *prev,
                _ => {
                    let pick = u32::from_le_bytes([h.prev_block.0[0], h.prev_block.0[1], 0, 0]) as usize;
                    tree.entry(pick % tree.len()).header
                }
            };
            h.prev_block = parent.hash();
            h.time = parent.time.wrapping_add(h.time % 8192).wrapping_sub(2048);
        }
        if batch {
            message.push(h);
        } else {
            let _ = black_box(tree.accept_header(&h, now));
        }
    }
    for msg in message.chunks(MAX_HEADERS) {
        let _ = black_box(tree.accept_headers(msg, now));
    }
    if let Err(broken) = tree.check_invariants() {
        panic!("header tree invariant broken: {broken}");
    }
    if invalidate && tree.len() > 1 {
        let hash = tree.entry(tree.len() / 2).hash;
        let _ = black_box(tree.mark_invalid(&hash));
        if let Err(broken) = tree.check_invariants() {
            panic!("header tree invariant broken after mark_invalid: {broken}");
        }
    }
    let locator = tree.locator();
    assert_eq!(locator.last(), Some(&tree.genesis().hash), "a locator ends with genesis");
    let stop = tree.entry(tree.len() - 1).hash;
    let _ = black_box(tree.headers_after(&locator[locator.len() / 2..], &stop, MAX_HEADERS));
    let _ = black_box(tree.block_hashes_after(&locator[1..], &Hash256::ZERO));
}

/// Script evaluation: the first four bytes pick the verification flags, the next one splits the
/// rest into a scriptSig and a scriptPubKey. Small limits keep each run short; the interpreter must
/// never panic and must stay within them.
pub fn script_eval(data: &[u8]) {
    use crate::script::{verify_script_with_limits, NullChecker, ScriptFlags, ScriptLimits};
    if data.len() < 5 {
        return;
    }
    let flags = ScriptFlags::from_bits(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
    let rest = &data[5..];
    let split = (data[4] as usize * rest.len()) / 256;
    let (sig, pubkey) = rest.split_at(split);
    let limits = ScriptLimits {
        max_script_num_length: 1024,
        max_script_num_length_after_chronicle: 1024,
        max_stack_memory: 1 << 20,
        ..ScriptLimits::CONSENSUS
    };
    let _ = black_box(verify_script_with_limits(sig, pubkey, flags, &NullChecker, &limits));
}

/// Transaction validation: bytes decoded as a transaction, validated against a small coin view
/// in which every outpoint the transaction names exists with a value and script taken from the
/// input, so the checks past "missing inputs" are reached.
pub fn tx_validate(data: &[u8]) {
    use crate::chain::Network;
    use crate::validation::{validate_transaction, Coin, MapCoinView, TxContext};
    let Ok(tx) = Transaction::from_slice(data) else { return };
    let mut view = MapCoinView { height: 200, mtp: 1_600_000_000, ..Default::default() };
    for (i, input) in tx.inputs.iter().enumerate() {
        let value = i64::from(input.prev_out.vout % 1_000_000) * 1000;
        let script = tx.outputs.get(i).map(|o| o.script_pubkey.clone()).unwrap_or_default();
        view.coins.insert(input.prev_out, Coin { value, script_pubkey: script, height: 100, is_coinbase: i == 0 });
    }
    let _ = black_box(validate_transaction(&tx, &view, &TxContext::new(Network::Regtest.params())));
}
