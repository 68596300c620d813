//! Property tests of the codec: every message round-trips through payload and frame encoding, a
//! stream split anywhere decodes the same, arbitrary bytes never panic, truncation is always an
//! error, and each limit is accepted at the limit and rejected one past it.

use bsv_relay::wire::encode::{write_compact_size, Reader};
use bsv_relay::wire::frame::{frame_bytes, FrameDecoder};
use bsv_relay::wire::message::{Limits, COMMANDS, MAX_ADDR, MAX_HEADERS};
use bsv_relay::wire::msg::*;
use bsv_relay::wire::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::net::Ipv6Addr;

const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

fn hash() -> impl Strategy<Value = Hash256> {
    any::<[u8; 32]>().prop_map(Hash256)
}

fn script() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn tx() -> impl Strategy<Value = Transaction> {
    let input = (hash(), any::<u32>(), script(), any::<u32>()).prop_map(|(txid, vout, script_sig, sequence)| TxIn {
        prev_out: OutPoint { txid, vout },
        script_sig,
        sequence,
    });
    let output = (any::<i64>(), script()).prop_map(|(value, script_pubkey)| TxOut { value, script_pubkey });
    (any::<i32>(), prop::collection::vec(input, 0..4), prop::collection::vec(output, 0..4), any::<u32>()).prop_map(
        |(version, inputs, outputs, lock_time)| {
            Transaction::from_fields(TxFields { version, inputs, outputs, lock_time })
        },
    )
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (any::<i32>(), hash(), hash(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(version, prev_block, merkle_root, time, bits, nonce)| BlockHeader {
            version,
            prev_block,
            merkle_root,
            time,
            bits,
            nonce,
        },
    )
}

fn net_address() -> impl Strategy<Value = NetAddress> {
    (any::<u64>(), any::<[u8; 16]>(), any::<u16>()).prop_map(|(services, ip, port)| NetAddress {
        services,
        ip: Ipv6Addr::from(ip),
        port,
    })
}

fn inv_items() -> impl Strategy<Value = Vec<InvItem>> {
    prop::collection::vec((any::<u32>(), hash()).prop_map(|(kind, hash)| InvItem { kind, hash }), 0..20)
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0x20u8..0x7f, 0..max).prop_map(|b| String::from_utf8(b).unwrap())
}

fn locator() -> impl Strategy<Value = BlockLocator> {
    (any::<u32>(), prop::collection::vec(hash(), 0..12), hash()).prop_map(|(version, hashes, stop)| BlockLocator {
        version,
        hashes,
        stop,
    })
}

fn message() -> impl Strategy<Value = Message> {
    let version = (
        any::<i32>(),
        any::<u64>(),
        any::<i64>(),
        net_address(),
        net_address(),
        any::<u64>(),
        ascii(256),
        any::<i32>(),
        any::<bool>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..129).prop_map(Bytes::from)),
    )
        .prop_map(
            |(version, services, timestamp, receiver, sender, nonce, user_agent, start_height, relay, assoc)| {
                Message::Version(Version {
                    version,
                    services,
                    timestamp,
                    receiver,
                    sender,
                    nonce,
                    user_agent,
                    start_height,
                    relay,
                    association_id: assoc,
                })
            },
        );
    let addr = prop::collection::vec(
        (any::<u32>(), net_address()).prop_map(|(time, addr)| TimedAddress { time, addr }),
        0..10,
    )
    .prop_map(Message::Addr);
    let block = (header(), prop::collection::vec(tx(), 0..4)).prop_map(|(h, txs)| Message::Block(Block::new(h, txs)));
    let reject = (ascii(12), any::<u8>(), ascii(111), prop::option::of(hash()))
        .prop_map(|(message, code, reason, hash)| Message::Reject(Reject { message, code, reason, hash }));
    let protoconf = (2u64..5, any::<u32>(), ascii(100)).prop_map(|(n, max, policies)| {
        Message::Protoconf(Protoconf { number_of_fields: n, max_recv_payload_length: max, stream_policies: policies })
    });
    let cmpct = (
        header(),
        any::<u64>(),
        prop::collection::vec(any::<[u8; 6]>(), 0..8),
        prop::collection::vec((any::<u64>(), tx()), 0..3),
    )
        .prop_map(|(header, nonce, short_ids, pre)| {
            Message::CmpctBlock(CompactBlock {
                header,
                nonce,
                short_ids,
                prefilled: pre.into_iter().map(|(d, tx)| PrefilledTx { index_delta: d & 0xFFFF_FFFF, tx }).collect(),
            })
        });
    let mempool = prop_oneof![
        Just(MempoolRequest { age: None }),
        Just(MempoolRequest { age: Some(None) }),
        any::<i64>().prop_map(|a| MempoolRequest { age: Some(Some(a)) }),
    ]
    .prop_map(Message::Mempool);
    prop_oneof![
        version,
        Just(Message::Verack),
        any::<u64>().prop_map(Message::Ping),
        any::<u64>().prop_map(Message::Pong),
        addr,
        Just(Message::GetAddr),
        inv_items().prop_map(Message::Inv),
        inv_items().prop_map(Message::GetData),
        inv_items().prop_map(Message::NotFound),
        tx().prop_map(Message::Tx),
        block,
        prop::collection::vec(header(), 0..10).prop_map(Message::Headers),
        locator().prop_map(Message::GetHeaders),
        locator().prop_map(Message::GetBlocks),
        Just(Message::SendHeaders),
        (any::<bool>(), any::<u64>())
            .prop_map(|(announce, version)| Message::SendCmpct(SendCmpct { announce, version })),
        cmpct,
        (hash(), prop::collection::vec(0u64..0xFFFF_FFFF, 0..10))
            .prop_map(|(block_hash, index_deltas)| Message::GetBlockTxn(GetBlockTxn { block_hash, index_deltas })),
        (hash(), prop::collection::vec(tx(), 0..3))
            .prop_map(|(block_hash, transactions)| Message::BlockTxn(BlockTxn { block_hash, transactions })),
        any::<i64>().prop_map(Message::FeeFilter),
        reject,
        mempool,
        protoconf,
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(version, c)| Message::AuthCh(AuthCh { version, challenge: Bytes::from(c) })),
    ]
}

fn decode_all(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(buf).expect("valid stream") {
        out.push(frame.message(decoder.limits()).expect("valid message"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips_through_its_payload(msg in message()) {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        let command = Command::new(msg.command()).unwrap();
        let back = Message::decode(command, &Bytes::from(payload), None, &Limits::default()).unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn a_stream_split_anywhere_decodes_like_the_whole(msgs in prop::collection::vec(message(), 1..5), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(MAGIC, m)).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut start = 0;
        for p in points {
            buf.extend_from_slice(&stream[start..p]);
            start = p;
            got.extend(decode_all(&mut decoder, &mut buf));
        }
        prop_assert_eq!(got, msgs);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_payloads_never_panic(cmd in prop::sample::select(COMMANDS.to_vec()), payload in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Message::decode(Command::new(cmd).unwrap(), &Bytes::from(payload), None, &Limits::default());
    }

    #[test]
    fn arbitrary_streams_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), valid_header in any::<bool>()) {
        let mut stream = Vec::new();
        if valid_header {
            stream.extend_from_slice(&MAGIC);
        }
        stream.extend_from_slice(&bytes);
        let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
        let mut buf = BytesMut::from(&stream[..]);
        for _ in 0..100 {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => { let _ = frame.message(decoder.limits()); }
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn truncating_a_strict_payload_is_always_an_error(msg in prop_oneof![
        tx().prop_map(Message::Tx),
        (header(), prop::collection::vec(tx(), 1..3)).prop_map(|(h, t)| Message::Block(Block::new(h, t))),
        prop::collection::vec(header(), 1..4).prop_map(Message::Headers),
        inv_items().prop_filter("non-empty", |v| !v.is_empty()).prop_map(Message::Inv),
        locator().prop_map(Message::GetHeaders),
        any::<u64>().prop_map(Message::Ping),
        any::<i64>().prop_map(Message::FeeFilter),
    ]) {
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        let command = Command::new(msg.command()).unwrap();
        for cut in 0..payload.len() {
            let short = Bytes::copy_from_slice(&payload[..cut]);
            prop_assert!(Message::decode(command, &short, None, &Limits::default()).is_err(), "cut at {}", cut);
        }
    }
}

#[test]
fn every_truncation_point_of_a_frame_waits_for_more_then_errors_at_end_of_stream() {
    let tx_hex = include_str!("data/fixtures/mempool.hex").lines().next().unwrap();
    let tx = Transaction::from_slice(&hex::decode(tx_hex).unwrap()).unwrap();
    let frame = encode_frame(MAGIC, &Message::Tx(tx));
    for cut in 0..frame.len() {
        let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
        let mut buf = BytesMut::from(&frame[..cut]);
        assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
        assert!(decoder.bytes_wanted(&buf) >= 1);
        assert!(matches!(decoder.finish(&buf), Err(DecodeError::Truncated { .. })) || cut == 0, "cut at {cut}");
    }
}

#[test]
fn a_tx_frame_reuses_the_payload_hash_as_txid_and_checksum() {
    let tx_hex = include_str!("data/fixtures/mempool.hex").lines().next().unwrap();
    let raw = hex::decode(tx_hex).unwrap();
    let tx = Transaction::from_slice(&raw).unwrap();
    let frame = encode_frame(MAGIC, &Message::Tx(tx.clone()));
    assert_eq!(&frame[20..24], &tx.txid().0[..4]);
    let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
    let f = decoder.decode(&mut BytesMut::from(&frame[..])).unwrap().unwrap();
    assert_eq!(f.payload_hash, Some(tx.txid()));
    assert_eq!(f.message(decoder.limits()).unwrap(), Message::Tx(tx));
}

fn header_only(command: &str, len: u64) -> BytesMut {
    let mut h = BytesMut::new();
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&Command::new(command).unwrap().to_wire());
    h.extend_from_slice(&(len as u32).to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

#[test]
fn payload_limits_are_checked_at_header_time_inclusive() {
    let limits = Limits { max_recv_payload: 2 * 1024 * 1024, max_block_size: 10_000_000 };
    for (cmd, max) in [
        ("protoconf", 1_048_576u64),
        ("tx", 1_000_000_000),
        ("block", 10_000_000),
        ("cmpctblock", 10_000_000),
        ("inv", 2_097_152),
        ("ping", 2_097_152),
        ("someunknown", 2_097_152),
    ] {
        assert_eq!(limits.max_payload(cmd), max);
        let mut decoder = FrameDecoder::new(MAGIC, limits);
        let mut at = header_only(cmd, max);
        assert_eq!(decoder.decode(&mut at), Ok(None), "{cmd} at the limit waits for its payload");
        assert_eq!(decoder.pending().unwrap().payload_len, max);
        // Nothing was reserved for the announced payload.
        assert!(at.capacity() < 1024, "{cmd}: {}", at.capacity());
        let mut decoder = FrameDecoder::new(MAGIC, limits);
        let err = decoder.decode(&mut header_only(cmd, max + 1)).unwrap_err();
        assert!(matches!(err, DecodeError::Oversized { .. }), "{cmd}: {err}");
    }
}

#[test]
fn extended_frames_carry_their_real_command_and_64_bit_length() {
    let limits = Limits { max_recv_payload: 2 * 1024 * 1024, max_block_size: 8_000_000_000 };
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&Command::new("extmsg").unwrap().to_wire());
    buf.extend_from_slice(&u32::MAX.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&Command::new("block").unwrap().to_wire());
    buf.extend_from_slice(&5_000_000_000u64.to_le_bytes());
    let mut decoder = FrameDecoder::new(MAGIC, limits);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let pending = decoder.pending().unwrap();
    assert!(pending.extended);
    assert_eq!(pending.command.unwrap().as_str(), "block");
    assert_eq!(pending.payload_len, 5_000_000_000);
    // The same header over the default 4 GB block limit is refused.
    let mut small = FrameDecoder::new(MAGIC, Limits::default());
    let mut again = BytesMut::new();
    again.extend_from_slice(&frame_header_ext("block", 5_000_000_000));
    assert!(matches!(small.decode(&mut again), Err(DecodeError::Oversized { .. })));
    // A small payload sent as extmsg decodes (no checksum is checked, as in SV Node).
    let mut ping = BytesMut::new();
    ping.extend_from_slice(&frame_header_ext("ping", 8));
    ping.extend_from_slice(&7u64.to_le_bytes());
    let f = FrameDecoder::new(MAGIC, Limits::default()).decode(&mut ping).unwrap().unwrap();
    assert_eq!(f.message(&Limits::default()).unwrap(), Message::Ping(7));
}

fn frame_header_ext(cmd: &str, len: u64) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&Command::new("extmsg").unwrap().to_wire());
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&Command::new(cmd).unwrap().to_wire());
    v.extend_from_slice(&len.to_le_bytes());
    v
}

#[test]
fn bad_magic_is_refused_after_four_bytes() {
    let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
    let mut buf = BytesMut::from(&[0xe3, 0xe1, 0xf3, 0xe8][..]);
    assert!(matches!(decoder.decode(&mut buf), Err(DecodeError::BadMagic { .. })));
}

#[test]
fn bad_checksum_is_an_error_that_leaves_the_stream_aligned() {
    let mut bytes = encode_frame(MAGIC, &Message::Ping(1));
    bytes[20] ^= 0xff;
    bytes.extend_from_slice(&encode_frame(MAGIC, &Message::Ping(2)));
    let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(matches!(decoder.decode(&mut buf), Err(DecodeError::BadChecksum { .. })));
    let next = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(next.message(decoder.limits()).unwrap(), Message::Ping(2));
}

#[test]
fn invalid_command_bytes_are_refused_and_the_stream_stays_aligned() {
    for bad in [&b"ver\x01ck\0\0\0\0\0\0"[..], &b"ping\0x\0\0\0\0\0\0"[..]] {
        let mut cmd = [0u8; 12];
        cmd.copy_from_slice(bad);
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&cmd);
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&[1, 2, 3]);
        v.extend_from_slice(&encode_frame(MAGIC, &Message::Ping(5)));
        let mut decoder = FrameDecoder::new(MAGIC, Limits::default());
        let mut buf = BytesMut::from(&v[..]);
        let err = decoder.decode(&mut buf).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidCommand { .. }));
        let next = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(next.message(decoder.limits()).unwrap(), Message::Ping(5));
    }
}

#[test]
fn unknown_commands_decode_to_unknown_with_their_size() {
    let payload = [1u8; 10];
    let frame =
        frame_bytes(MAGIC, Command::new("xthinblock").unwrap(), &payload, Hash256::sha256d(&payload).checksum());
    let f = FrameDecoder::new(MAGIC, Limits::default()).decode(&mut BytesMut::from(&frame[..])).unwrap().unwrap();
    match f.message(&Limits::default()).unwrap() {
        Message::Unknown { command, payload_len } => {
            assert_eq!(command.as_str(), "xthinblock");
            assert_eq!(payload_len, 10);
        }
        other => panic!("{other:?}"),
    }
}

fn counted(count: u64, item: &[u8]) -> Bytes {
    let mut v = Vec::new();
    write_compact_size(&mut v, count);
    for _ in 0..count {
        v.extend_from_slice(item);
    }
    Bytes::from(v)
}

fn decode(cmd: &str, payload: &Bytes) -> Result<Message, DecodeError> {
    Message::decode(Command::new(cmd).unwrap(), payload, None, &Limits::default())
}

#[test]
fn item_count_limits_are_inclusive() {
    let header_item = [0u8; 81];
    assert!(decode("headers", &counted(MAX_HEADERS, &header_item)).is_ok());
    assert!(matches!(decode("headers", &counted(MAX_HEADERS + 1, &header_item)), Err(DecodeError::TooMany { .. })));
    let addr_item = [0u8; 30];
    assert!(decode("addr", &counted(MAX_ADDR, &addr_item)).is_ok());
    assert!(matches!(decode("addr", &counted(MAX_ADDR + 1, &addr_item)), Err(DecodeError::TooMany { .. })));
    let inv_item = [1u8; 36];
    let max_inv = Limits::default().max_inv_items();
    assert_eq!(max_inv, 58_254);
    for cmd in ["inv", "getdata", "notfound"] {
        assert!(decode(cmd, &counted(max_inv, &inv_item)).is_ok());
        assert!(matches!(decode(cmd, &counted(max_inv + 1, &inv_item)), Err(DecodeError::TooMany { .. })));
    }
    let mut loc = 1u32.to_le_bytes().to_vec();
    loc.extend_from_slice(&counted(MAX_LOCATOR_HASHES, &[0u8; 32]));
    loc.extend_from_slice(&[0u8; 32]);
    assert!(decode("getheaders", &Bytes::from(loc)).is_ok());
    let mut loc = 1u32.to_le_bytes().to_vec();
    loc.extend_from_slice(&counted(MAX_LOCATOR_HASHES + 1, &[0u8; 32]));
    loc.extend_from_slice(&[0u8; 32]);
    assert!(matches!(decode("getheaders", &Bytes::from(loc)), Err(DecodeError::TooMany { .. })));
}

#[test]
fn string_limits_are_inclusive() {
    let reject = |reason_len: usize| {
        let r = Reject { message: "tx".into(), code: 0x10, reason: "r".repeat(reason_len), hash: None };
        decode("reject", &Bytes::from(r.to_bytes()))
    };
    assert!(reject(MAX_REJECT_REASON_LEN as usize).is_ok());
    assert!(matches!(reject(MAX_REJECT_REASON_LEN as usize + 1), Err(DecodeError::TooLong { .. })));
    let version = |ua_len: usize| {
        let v = Version {
            version: 70016,
            services: 0x21,
            timestamp: 0,
            receiver: NetAddress::unspecified(0),
            sender: NetAddress::unspecified(0),
            nonce: 1,
            user_agent: "u".repeat(ua_len),
            start_height: 0,
            relay: true,
            association_id: None,
        };
        decode("version", &Bytes::from(v.to_bytes()))
    };
    assert!(version(MAX_USER_AGENT_LEN as usize).is_ok());
    assert!(matches!(version(MAX_USER_AGENT_LEN as usize + 1), Err(DecodeError::TooLong { .. })));
}

#[test]
fn a_huge_count_with_no_bytes_behind_it_is_refused_without_allocating() {
    for cmd in ["inv", "headers", "addr", "block", "tx", "getblocktxn", "cmpctblock", "blocktxn"] {
        let mut payload = Vec::new();
        if cmd == "block" || cmd == "cmpctblock" {
            payload.extend_from_slice(&[0u8; 80]);
            if cmd == "cmpctblock" {
                payload.extend_from_slice(&[0u8; 8]);
            }
        }
        if cmd == "tx" {
            payload.extend_from_slice(&[1, 0, 0, 0]);
        }
        if cmd == "getblocktxn" || cmd == "blocktxn" {
            payload.extend_from_slice(&[0u8; 32]);
        }
        payload.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF]);
        let err = decode(cmd, &Bytes::from(payload)).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. } | DecodeError::TooMany { .. }), "{cmd}: {err}");
    }
}

#[test]
fn version_tolerates_sv_node_association_id_and_missing_optional_fields() {
    // SV Node always writes the association ID, 0x00 when empty.
    let v = Version {
        version: 70016,
        services: 0x21,
        timestamp: 1_700_000_000,
        receiver: NetAddress::new("127.0.0.1:18444".parse().unwrap(), 0),
        sender: NetAddress::unspecified(0x21),
        nonce: 42,
        user_agent: "/Bitcoin SV:1.0.13/".into(),
        start_height: 115,
        relay: true,
        association_id: Some(Bytes::new()),
    };
    let bytes = v.to_bytes();
    assert_eq!(*bytes.last().unwrap(), 0x00);
    assert_eq!(decode("version", &Bytes::from(bytes.clone())).unwrap(), Message::Version(v.clone()));
    // Cut right after addr_recv: the rest takes defaults, relay = true.
    let short = Bytes::copy_from_slice(&bytes[..4 + 8 + 8 + 26]);
    match decode("version", &short).unwrap() {
        Message::Version(s) => {
            assert_eq!(s.version, 70016);
            assert!(s.relay);
            assert!(s.user_agent.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn protoconf_matches_sv_node_bytes_and_ignores_later_fields() {
    let ours = Protoconf::ours(2_097_152);
    assert_eq!(hex::encode(ours.to_bytes()), format!("0200002000{:02x}{}", 7, hex::encode("Default")));
    // SV Node's default: 02 | 00 00 20 00 | 15 "BlockPriority,Default" (27 bytes).
    let mut sv = vec![0x02, 0x00, 0x00, 0x20, 0x00, 0x15];
    sv.extend_from_slice(b"BlockPriority,Default");
    assert_eq!(sv.len(), 27);
    match decode("protoconf", &Bytes::from(sv.clone())).unwrap() {
        Message::Protoconf(p) => {
            assert_eq!(p.max_recv_payload_length, 2_097_152);
            assert_eq!(p.stream_policies, "BlockPriority,Default");
        }
        other => panic!("{other:?}"),
    }
    sv[0] = 0x03;
    sv.extend_from_slice(&[9, 9, 9]);
    assert!(decode("protoconf", &Bytes::from(sv)).is_ok(), "a third field is ignored");
    assert!(matches!(
        decode("protoconf", &Bytes::from_static(&[0, 0, 0, 0x20, 0])),
        Err(DecodeError::InvalidValue { .. })
    ));
}

#[test]
fn trailing_bytes_after_a_transaction_are_refused() {
    let tx_hex = include_str!("data/fixtures/mempool.hex").lines().next().unwrap();
    let mut raw = hex::decode(tx_hex).unwrap();
    raw.push(0);
    assert!(matches!(decode("tx", &Bytes::from(raw.clone())), Err(DecodeError::TrailingBytes { .. })));
    let b = Bytes::from(raw);
    let mut r = Reader::new(&b);
    assert!(Transaction::consensus_decode(&mut r).is_ok());
    assert_eq!(r.remaining(), 1);
}
