//! The v2 (BIP324) transport between bsv-relay nodes: connections both ways over IPv4 and IPv6 end
//! up encrypted with one session id on both ends; transactions and blocks, one of 64 MB, relay over
//! them; a recording proxy sees no byte of the v1 protocol after the keys, and a byte it flips
//! makes the receiver disconnect and score; a client's garbage and decoys are ignored; and the
//! adversarial rows: garbage without a terminator, a wrong terminator, an oversized length, a
//! truncated packet, a key then silence, v1 bytes after a v2 key.

mod common;

use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Hash256, Message, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::funds::{coinbase_of, hex_of, mempool_has, pay};
use common::peer::{rand_nonce, version_msg, ReadResult, REGTEST_MAGIC};
use common::v2peer::{config, V2Peer};
use common::{free_port, wait_for, TestNode, DEADLINE};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn peers(node: &TestNode) -> Vec<Value> {
    node.cli(&["getpeerinfo"]).json().as_array().cloned().unwrap_or_default()
}

/// The handshaken peers of `node` whose address satisfies `pred`.
fn peers_where(node: &TestNode, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    peers(node).into_iter().filter(|p| p["version"].as_u64().unwrap_or(0) > 0 && pred(p)).collect()
}

/// A mines 101 blocks and accepts a payment; waits until B has both. Returns the key and the payment.
fn relay_blocks_and_a_transaction(a: &TestNode, b: &TestNode, seed: &[u8]) -> (Key, Transaction) {
    let key = Key::from_seed(seed);
    assert!(a.cli(&["generatetoaddress", "101", &key.address(0x6f)]).success());
    let tip = a.cli(&["getbestblockhash"]).ok().trim().to_string();
    wait_for("B at A's tip", DEADLINE, || (b.cli(&["getbestblockhash"]).ok().trim() == tip).then_some(()));
    let tx = pay(&key, coinbase_of(a, 1), &key.p2pkh_script(), 1000);
    assert!(a.cli(&["sendrawtransaction", &hex_of(&tx)]).success());
    wait_for("the transaction in B's mempool", DEADLINE, || {
        mempool_has(&b.cli(&["getrawmempool"]).json(), &tx.txid()).then_some(())
    });
    (key, tx)
}

fn is_v2(p: &Value) -> bool {
    p["transport_protocol_type"] == "v2" && p["session_id"].as_str().is_some_and(|s| s.len() == 64)
}

fn metrics_args() -> (u16, String) {
    let port = free_port();
    (port, format!("-metricsbind=127.0.0.1:{port}"))
}

#[test]
fn two_nodes_speak_v2_both_ways_over_ipv4_and_ipv6_and_relay_over_it() {
    let (_, ma) = metrics_args();
    let a = TestNode::start(&["-listen=1", &ma]);
    // B dials A over IPv6 from its options; A dials B over IPv4 from RPC. Neither knows yet that
    // the other speaks v2: each learns it from the other's version and dials again with v2.
    let b = TestNode::start(&["-listen=1", &format!("-addnode=[::1]:{}", a.p2pport)]);
    assert!(a.cli(&["addnode", &format!("127.0.0.1:{}", b.p2pport), "add"]).success());
    let ab = wait_for("A's v2 peers: B inbound over IPv6, B outbound over IPv4", DEADLINE, || {
        let v2 = peers_where(&a, is_v2);
        let inbound6 = v2.iter().find(|p| p["inbound"] == true && p["addr"].as_str().unwrap().starts_with("[::1]:"));
        let outbound4 = v2.iter().find(|p| p["addr"] == format!("127.0.0.1:{}", b.p2pport).as_str());
        Some((inbound6?.clone(), outbound4?.clone()))
    });
    let ba = wait_for("B's two v2 peers", DEADLINE, || {
        let v2 = peers_where(&b, is_v2);
        let outbound6 = v2.iter().find(|p| p["addr"] == format!("[::1]:{}", a.p2pport).as_str());
        let inbound4 =
            v2.iter().find(|p| p["inbound"] == true && p["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        Some((outbound6?.clone(), inbound4?.clone()))
    });
    assert_eq!(ab.0["session_id"], ba.0["session_id"], "the IPv6 connection has one session id at both ends");
    assert_eq!(ab.1["session_id"], ba.1["session_id"], "the IPv4 connection has one session id at both ends");
    assert_ne!(ab.0["session_id"], ab.1["session_id"]);
    assert_eq!(a.metric("bsv_relay_peers_by_transport", "transport=\"v2\""), 2.0);

    // Blocks and a transaction cross the encrypted connections.
    relay_blocks_and_a_transaction(&a, &b, b"v2 relay");
    // Nothing was refused or scored on the way.
    assert!(peers(&a).iter().chain(peers(&b).iter()).all(|p| p["banscore"] == 0));
}

/// A transaction paying `outputs` data outputs of `each` bytes from a coinbase.
fn data_tx(key: &Key, node: &TestNode, height: u32, outputs: usize, each: usize) -> Transaction {
    let coin = coinbase_of(node, height);
    let mut data = vec![0x00, 0x6a, 0x4e];
    data.extend_from_slice(&(each as u32).to_le_bytes());
    data.extend(std::iter::repeat_n(0xab, each));
    let fee = (outputs * each) as i64;
    let mut outs: Vec<TxOut> =
        (0..outputs).map(|_| TxOut { value: 0, script_pubkey: Bytes::from(data.clone()) }).collect();
    outs.push(TxOut { value: coin.value - fee, script_pubkey: Bytes::from(key.p2pkh_script()) });
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: coin.outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: outs,
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), coin.value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
    Transaction::from_fields(fields)
}

#[test]
fn a_64_mb_block_travels_between_two_nodes_over_v2() {
    let genesis = "-genesisactivationheight=1";
    let a = TestNode::start(&["-listen=1", genesis]);
    let b = TestNode::start(&["-listen=1", genesis, &format!("-addnode=127.0.0.1:{}", a.p2pport)]);
    wait_for("B's v2 connection to A", DEADLINE, || (!peers_where(&b, is_v2).is_empty()).then_some(()));
    let key = Key::from_seed(b"v2 big block");
    assert!(a.cli(&["generatetoaddress", "108", &key.address(0x6f)]).success());
    // 8 transactions of 20 data outputs of 400 kB: a 64 MB block.
    let mut txids: Vec<Hash256> = Vec::new();
    for height in 1..=8 {
        let tx = data_tx(&key, &a, height, 20, 400_000);
        let (status, _, body) = a.post(
            &format!(r#"{{"method":"sendrawtransaction","params":["{}"]}}"#, hex_of(&tx)),
            Some((common::USER, common::PASS)),
        );
        assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
        txids.push(tx.txid());
    }
    let mined = a.cli(&["generatetoaddress", "1", &key.address(0x6f)]).json();
    let hash = mined[0].as_str().expect("a block hash").to_string();
    let size = a.cli(&["getblock", &hash, "1"]).json()["size"].as_u64().expect("size");
    assert!(size > 64_000_000, "block of {size} bytes");
    wait_for("B at the 64 MB block", Duration::from_secs(180), || {
        (b.cli(&["getbestblockhash"]).ok().trim() == hash).then_some(())
    });
    let at_b = b.cli(&["getblock", &hash, "1"]).json();
    assert_eq!(at_b["size"].as_u64(), Some(size));
    let txs: Vec<&str> = at_b["tx"].as_array().expect("txs").iter().filter_map(Value::as_str).collect();
    assert!(txids.iter().all(|t| txs.contains(&t.to_string().as_str())));
    // It came over the encrypted connection.
    let to_a = peers_where(&b, |p| p["addr"] == format!("127.0.0.1:{}", a.p2pport).as_str());
    assert!(to_a.iter().all(is_v2) && !to_a.is_empty(), "{to_a:?}");
}

/// The bytes one direction of a connection carried.
type Recording = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy that records both directions and can flip one byte of what the target sends.
struct Proxy {
    port: u16,
    /// (client → target, target → client) of every connection, in order.
    recorded: Arc<Mutex<Vec<(Recording, Recording)>>>,
    flip: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy bind");
        let recorded: Arc<Mutex<Vec<_>>> = Arc::default();
        let flip = Arc::new(AtomicBool::new(false));
        let (rec, fl) = (recorded.clone(), flip.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(target) else { return };
                let up: Recording = Arc::default();
                let down: Recording = Arc::default();
                rec.lock().unwrap().push((up.clone(), down.clone()));
                pump(client.try_clone().expect("clone"), server.try_clone().expect("clone"), up, None);
                pump(server, client, down, Some(fl.clone()));
            }
        });
        Proxy { port, recorded, flip }
    }
}

/// Copies `from` to `to`, recording every byte; when `flip` is set, the last byte of the next
/// chunk is inverted (a packet's tag or contents: the receiver must notice).
fn pump(mut from: TcpStream, mut to: TcpStream, record: Recording, flip: Option<Arc<AtomicBool>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            record.lock().unwrap().extend_from_slice(&buf[..n]);
            if flip.as_ref().is_some_and(|f| f.swap(false, Ordering::AcqRel)) {
                buf[n - 1] ^= 0xff;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_recording_proxy_sees_no_v1_bytes_and_a_flipped_byte_ends_the_connection() {
    let a = TestNode::start(&["-listen=1"]);
    let proxy = Proxy::start(a.p2p_addr());
    let (_, mb) = metrics_args();
    let b = TestNode::start(&["-listen=1", &mb]);
    // The operator names the proxy as a v2 peer, so the first byte through it is already v2.
    assert!(b.cli(&["addnode", &format!("127.0.0.1:{}", proxy.port), "onetry", "true"]).success());
    wait_for("B's v2 peer behind the proxy", DEADLINE, || (!peers_where(&b, is_v2).is_empty()).then_some(()));
    let (key, tx) = relay_blocks_and_a_transaction(&a, &b, b"v2 proxy");

    let recorded = proxy.recorded.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1, "one connection through the proxy");
    let (up, down) = (recorded[0].0.lock().unwrap().clone(), recorded[0].1.lock().unwrap().clone());
    // B's side is small since A pushes its blocks as high-bandwidth compact blocks (no getdata).
    assert!(up.len() > 500 && down.len() > 30_000, "{} and {} bytes recorded", up.len(), down.len());
    let txid = tx.txid();
    let mut reversed = txid.0;
    reversed.reverse();
    let mut forbidden: Vec<(String, Vec<u8>)> = vec![
        ("magic".into(), REGTEST_MAGIC.to_vec()),
        ("txid".into(), txid.0.to_vec()),
        ("txid reversed".into(), reversed.to_vec()),
        ("the transaction".into(), tx.raw().to_vec()),
    ];
    for command in ["version", "verack", "sendheaders", "getheaders", "protoconf", "feefilter", "headers", "getdata"] {
        let mut wire = command.as_bytes().to_vec();
        wire.resize(12, 0);
        forbidden.push((command.into(), wire));
    }
    for (name, stream) in [("B to A", &up[64..]), ("A to B", &down[64..])] {
        for (what, bytes) in &forbidden {
            assert!(!contains(stream, bytes), "{what} appears in the {name} stream after the key");
        }
    }

    // One flipped byte in what A sends: B disconnects and scores it.
    let before = b.metric("bsv_relay_misbehavior_events_total", "reason=\"v2_bad_packet\"");
    proxy.flip.store(true, Ordering::Release);
    assert!(a.cli(&["generatetoaddress", "1", &key.address(0x6f)]).success());
    wait_for("B to drop the tampered connection", DEADLINE, || peers_where(&b, is_v2).is_empty().then_some(()));
    assert_eq!(b.metric("bsv_relay_misbehavior_events_total", "reason=\"v2_bad_packet\""), before + 1.0);
    assert!(b.cli(&["getnetworkinfo"]).success() && a.cli(&["getnetworkinfo"]).success(), "both nodes still serve");
}

/// A v2 handshake with A from a raw client, then its `version`; A must answer with its own.
fn honest_v2_exchange(peer: &mut V2Peer) {
    peer.send_decoy(50);
    peer.send(&version_msg(rand_nonce()));
    peer.send_decoy(3000);
    peer.send(&Message::Verack);
    peer.expect(DEADLINE, |m| matches!(m, Message::Version(_)));
    peer.expect(DEADLINE, |m| matches!(m, Message::Verack));
    peer.send(&Message::Ping(42));
    peer.expect(DEADLINE, |m| matches!(m, Message::Pong(42)));
}

#[test]
fn a_clients_garbage_and_decoys_are_ignored() {
    let a = TestNode::start(&["-listen=1"]);
    for (garbage, decoys) in [(0, 0), (4095, 3), (1, 1)] {
        let mut peer = V2Peer::connect(a.p2p_addr(), &config(garbage, decoys)).expect("handshake");
        honest_v2_exchange(&mut peer);
        let theirs = wait_for("A's view of the client", DEADLINE, || {
            peers_where(&a, is_v2).into_iter().find(|p| p["session_id"] == hex::encode(peer.session_id).as_str())
        });
        assert_eq!(theirs["inbound"], true);
    }
}

/// Sends `bytes` to A as a fresh connection and reports whether A closed it within `within`.
fn raw_then_closed(a: &TestNode, bytes: &[u8], within: Duration) -> bool {
    let mut s = TcpStream::connect(a.p2p_addr()).expect("connect");
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn adversarial_v2_rows_disconnect_and_score_and_honest_peers_stay_served() {
    let (_, ma) = metrics_args();
    let a = TestNode::start(&["-listen=1", "-p2phandshaketimeout=3", &ma]);
    let failures = |reason: &str| a.metric("bsv_relay_v2_handshake_failures_total", &format!("reason=\"{reason}\""));
    let offences = |reason: &str| a.metric("bsv_relay_misbehavior_events_total", &format!("reason=\"{reason}\""));
    let key: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(1)).collect();

    // Garbage flood without a terminator: a key, then 5000 bytes.
    let mut flood = key.clone();
    flood.extend(std::iter::repeat_n(0x5a, 5000));
    assert!(raw_then_closed(&a, &flood, DEADLINE));
    wait_for("no_terminator counted", DEADLINE, || (failures("no_terminator") == 1.0).then_some(()));
    assert_eq!(offences("v2_no_terminator"), 1.0);

    // A wrong terminator: a key, a little garbage, 16 bytes that are not the terminator, then a
    // stream that never contains it.
    let mut wrong = key.clone();
    wrong.extend_from_slice(b"some garbage");
    wrong.extend_from_slice(&[0xee; 16]);
    wrong.extend(std::iter::repeat_n(0x11, 4200));
    assert!(raw_then_closed(&a, &wrong, DEADLINE));
    wait_for("second no_terminator", DEADLINE, || (failures("no_terminator") == 2.0).then_some(()));

    // A key, then silence: the handshake timeout (3 s here) ends it.
    assert!(raw_then_closed(&a, &key, DEADLINE));
    wait_for("timeout counted", DEADLINE, || (failures("timeout") == 1.0).then_some(()));
    assert_eq!(offences("v2_handshake_timeout"), 1.0);

    // v1 bytes after a v2 key: no terminator ever comes; the handshake times out.
    let mut v1_after = key.clone();
    v1_after.extend(bsv_relay::wire::encode_frame(REGTEST_MAGIC, &version_msg(rand_nonce())));
    assert!(raw_then_closed(&a, &v1_after, DEADLINE));
    wait_for("second timeout", DEADLINE, || (failures("timeout") == 2.0).then_some(()));

    // An oversized length after a good handshake, before the version handshake (over 1 MB):
    // refused from the length alone.
    let mut peer = V2Peer::connect(a.p2p_addr(), &config(10, 0)).expect("handshake");
    let mut contents = vec![0u8; 2_000_000];
    contents[0] = 21; // "tx"
    let mut packets = peer.encoder.encode(&bsv_relay::wire::frame::frame_bytes(
        REGTEST_MAGIC,
        bsv_relay::wire::Command::new("tx").expect("valid"),
        &contents[1..],
        0,
    ));
    packets.truncate(3 + 1000);
    peer.send_raw(&packets);
    assert!(peer.closed_within(DEADLINE), "closed on an oversized length");
    wait_for("oversized scored", DEADLINE, || (offences("v2_oversized") == 1.0).then_some(()));

    // A truncated packet, then the client leaves: nothing breaks.
    let mut peer = V2Peer::connect(a.p2p_addr(), &config(10, 0)).expect("handshake");
    let packets = peer.encoder.encode(&bsv_relay::wire::encode_frame(REGTEST_MAGIC, &version_msg(rand_nonce())));
    peer.send_raw(&packets[..packets.len() / 2]);
    drop(peer);

    // A packet with a flipped byte after a good handshake: scored, disconnected.
    let mut peer = V2Peer::connect(a.p2p_addr(), &config(10, 0)).expect("handshake");
    let mut packets = peer.encoder.encode(&bsv_relay::wire::encode_frame(REGTEST_MAGIC, &version_msg(rand_nonce())));
    let last = packets.len() - 1;
    packets[last] ^= 1;
    peer.send_raw(&packets);
    assert!(peer.closed_within(DEADLINE));
    wait_for("bad packet scored", DEADLINE, || (offences("v2_bad_packet") == 1.0).then_some(()));

    // None of it cost an honest peer anything: v2 and v1 clients are served.
    let mut honest = V2Peer::connect(a.p2p_addr(), &config(100, 1)).expect("handshake");
    honest_v2_exchange(&mut honest);
    let mut v1 = common::peer::RawPeer::connect(a.p2p_addr());
    v1.handshake();
    assert!(!matches!(v1.read(Duration::from_millis(1)), ReadResult::Closed));
    assert!(peers(&a).iter().all(|p| p["banscore"].as_u64() == Some(0)));
    assert_eq!(a.cli(&["listbanned"]).json(), serde_json::json!([]));
}
