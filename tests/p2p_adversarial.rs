//! The adversarial suite, connection-level rows of operators-and-robustness.md §5.4: a raw-socket
//! attacker peer connects from 127.0.0.2 while an honest peer on 127.0.0.1 (whitelisted) keeps
//! getting `pong` within 2 s, and the matching metric moves.

mod common;

use bsv_relay::wire::message::Message;
use bsv_relay::wire::msg::Version;
use bsv_relay::wire::{Hash256, InvItem, NetAddress, TimedAddress};
use common::adversary::{Fixture, ATTACKER, LIVENESS, SHORT};
use common::peer::{rand_nonce, version_msg, RawPeer, REGTEST_MAGIC};
use common::{wait_for, DEADLINE};
use std::net::SocketAddr;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::Duration;

fn header(command: &str, len: u32, checksum: [u8; 4]) -> Vec<u8> {
    let mut h = REGTEST_MAGIC.to_vec();
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command.as_bytes());
    h.extend_from_slice(&cmd);
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&checksum);
    h
}

#[test]
fn row01_02_bad_magic_disconnects_before_and_after_the_handshake() {
    let mut f = Fixture::start(&[]);
    let before = f.metric("bsv_relay_p2p_decode_errors_total", "reason=\"bad_magic\"");
    let mut a = f.attacker();
    let mut frame = bsv_relay::wire::encode_frame(REGTEST_MAGIC, &version_msg(rand_nonce()));
    frame[..4].copy_from_slice(&[0xff; 4]);
    a.send_raw(&frame);
    assert!(a.closed_within(Duration::from_secs(1)));
    let mut b = f.attacker_after_handshake();
    let ping = bsv_relay::wire::encode_frame([0xf4, 0xe5, 0xf3, 0xf4], &Message::Ping(1));
    b.send_raw(&ping);
    assert!(b.closed_within(Duration::from_secs(1)));
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"bad_magic\"", before + 2.0);
    f.assert_alive();
}

#[test]
fn row03_bad_checksum_is_dropped_and_the_peer_stays() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    let mut frame = bsv_relay::wire::encode_frame(REGTEST_MAGIC, &Message::Ping(7));
    frame[20..24].copy_from_slice(&[0xff; 4]);
    a.send_raw(&frame);
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"bad_checksum\"", 1.0);
    // Still connected: a valid ping after it is answered.
    assert!(a.ping_rtt(LIVENESS) < LIVENESS);
    f.assert_alive();
}

#[test]
fn row04_05_oversized_length_disconnects_without_reading_the_payload() {
    let mut f = Fixture::start(&[]);
    for len in [2 * 1024 * 1024 + 1, u32::MAX] {
        let mut a = f.attacker_after_handshake();
        a.send_raw(&header("ping", len, [0; 4]));
        assert!(a.closed_within(Duration::from_secs(1)), "length {len}");
    }
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"oversized\"", 2.0);
    f.assert_alive();
}

#[test]
fn row06_max_size_junk_flood_keeps_the_node_responsive() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    let junk = vec![0x5a; 2 * 1024 * 1024];
    for _ in 0..40 {
        a.send_command("junkjunk", &junk);
    }
    assert!(a.ping_rtt(Duration::from_secs(10)) < Duration::from_secs(10), "the flooder itself is still served");
    f.wait_metric("bsv_relay_p2p_messages_received_total", "command=\"other\"", 40.0);
    f.assert_alive();
}

#[test]
fn row07_a_header_split_across_segments_is_processed() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    let frame = bsv_relay::wire::encode_frame(REGTEST_MAGIC, &Message::Ping(99));
    a.send_raw(&frame[..12]);
    a.gap(Duration::from_millis(200));
    a.send_raw(&frame[12..]);
    a.expect(LIVENESS, |m| *m == Message::Pong(99));
    f.assert_alive();
}

#[test]
fn row08_09_truncated_payload_and_drip_feed_hit_the_message_deadline() {
    let mut f = Fixture::start(&SHORT);
    let mut a = f.attacker_after_handshake();
    let mut partial = header("inv", 1000, [0; 4]);
    partial.extend_from_slice(&[0; 10]);
    a.send_raw(&partial);
    assert!(a.closed_within(Duration::from_secs(10)), "slowloris closed at the deadline");
    // One byte every 500 ms keeps the socket busy but never completes a frame.
    let mut b = f.attacker_after_handshake();
    let frame = bsv_relay::wire::encode_frame(REGTEST_MAGIC, &Message::Ping(5));
    let mut closed = false;
    for byte in frame.iter().cycle().take(40) {
        b.send_raw(&[*byte]);
        if b.closed_within(Duration::from_millis(500)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "drip feed closed at the deadline");
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"message_deadline\"", 1.0);
    f.assert_alive();
}

#[test]
fn row10_11_invalid_and_unknown_commands_are_dropped_and_the_peer_stays() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    let mut bad = header("ping", 0, [0x5d, 0xf6, 0xe0, 0xe2]);
    bad[8] = 0;
    bad[9] = b'x';
    a.send_raw(&bad);
    a.send_command("foobar", b"payload");
    assert!(a.ping_rtt(LIVENESS) < LIVENESS);
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"invalid_command\"", 1.0);
    f.wait_metric("bsv_relay_p2p_messages_received_total", "command=\"other\"", 1.0);
    f.assert_alive();
}

#[test]
fn row12_13_14_malformed_payloads_are_dropped_without_allocation_or_penalty() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    a.send_command("ping", &[1, 2, 3, 4]);
    let mut one_of_two = vec![2u8];
    one_of_two.extend_from_slice(&1u32.to_le_bytes());
    one_of_two.extend_from_slice(&[7; 32]);
    a.send_command("inv", &one_of_two);
    a.send_command("inv", &[0xfd, 0x01, 0x00, 1, 0, 0, 0]);
    assert!(a.ping_rtt(LIVENESS) < LIVENESS);
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"truncated\"", 2.0);
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"non_minimal_compact_size\"", 1.0);
    assert_eq!(f.attacker_banscore(), Some(0), "malformed is not punished");
    // A count of 2^32 - 1 with nothing behind it: refused before any allocation; claiming more
    // items than our protoconf allows is the oversized-inv offence (row 23), +20.
    a.send_command("inv", &[0xfe, 0xff, 0xff, 0xff, 0xff]);
    assert!(a.ping_rtt(LIVENESS) < LIVENESS);
    assert_eq!(f.attacker_banscore(), Some(20));
    f.assert_alive();
}

#[test]
fn row15_17_18_messages_out_of_order_are_ignored_then_the_handshake_times_out() {
    let mut f = Fixture::start(&SHORT);
    let mut a = f.attacker();
    a.send(&Message::Ping(1));
    assert!(matches!(a.read(Duration::from_millis(500)), common::peer::ReadResult::Timeout), "no pong before version");
    assert!(a.closed_within(Duration::from_secs(10)), "handshake timeout");
    let mut b = f.attacker();
    b.send(&version_msg(rand_nonce()));
    b.expect(LIVENESS, |m| matches!(m, Message::Verack));
    b.send(&Message::Inv(vec![InvItem::tx(Hash256([1; 32]))]));
    assert!(b.closed_within(Duration::from_secs(10)), "no verack: handshake timeout");
    let mut idle = f.attacker();
    assert!(idle.closed_within(Duration::from_secs(10)), "silent connection closed");
    f.wait_metric("bsv_relay_misbehavior_events_total", "reason=\"missing_version\"", 1.0);
    f.wait_metric("bsv_relay_misbehavior_events_total", "reason=\"missing_verack\"", 1.0);
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"handshake_timeout\"", 3.0);
    f.assert_alive();
}

#[test]
fn row16_duplicate_version_is_rejected_and_scored() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    a.send(&version_msg(rand_nonce()));
    match a.expect(LIVENESS, |m| matches!(m, Message::Reject(_))) {
        Message::Reject(r) => assert_eq!(r.reason, "Duplicate version message"),
        _ => unreachable!(),
    }
    wait_for("banscore 1", DEADLINE, || (f.attacker_banscore() == Some(1)).then_some(()));
    f.assert_alive();
}

#[test]
fn row19_an_unanswered_ping_times_out() {
    let mut f = Fixture::start(&SHORT);
    let mut a = f.attacker();
    a.send(&version_msg(rand_nonce()));
    a.expect(LIVENESS, |m| matches!(m, Message::Verack));
    a.send(&Message::Verack);
    // Read but never answer the node's ping.
    let closed = (0..100).any(|_| matches!(a.read(Duration::from_millis(200)), common::peer::ReadResult::Closed));
    assert!(closed);
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"ping_timeout\"", 1.0);
    f.assert_alive();
}

#[test]
fn row20_a_connection_to_ourselves_is_dropped() {
    // The node dials a listener of ours; we replay its own version nonce on an inbound connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let mut f = Fixture::start(&[&format!("-addnode={target}")]);
    let (stream, _) = listener.accept().unwrap();
    let mut outbound = RawPeer::from_stream(stream);
    let nonce = match outbound.expect(DEADLINE, |m| matches!(m, Message::Version(_))) {
        Message::Version(v) => v.nonce,
        _ => unreachable!(),
    };
    let mut echo = f.attacker();
    echo.send(&version_msg(nonce));
    assert!(echo.closed_within(Duration::from_secs(2)));
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"self_connection\"", 1.0);
    f.assert_alive();
}

#[test]
fn row21_22_obsolete_version_and_oversized_user_agent_disconnect() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker();
    let Message::Version(mut v) = version_msg(rand_nonce()) else { unreachable!() };
    v.version = 209;
    a.send(&Message::Version(v.clone()));
    match a.expect(LIVENESS, |m| matches!(m, Message::Reject(_))) {
        Message::Reject(r) => assert_eq!(r.code, 0x11),
        _ => unreachable!(),
    }
    assert!(a.closed_within(Duration::from_secs(2)));
    let mut b = f.attacker();
    let long = Version { version: 70016, user_agent: "x".repeat(300), ..v };
    b.send(&Message::Version(long));
    assert!(b.closed_within(Duration::from_secs(2)));
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"obsolete_version\"", 1.0);
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"malformed\"", 1.0);
    f.assert_alive();
}

#[test]
fn row23_24_oversized_inv_is_scored_and_an_invalid_inv_type_disconnects() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    // A count one past the protoconf-derived maximum (58,254), inside the 2 MiB payload limit.
    let mut payload = vec![0xfd];
    payload.extend_from_slice(&58_255u16.to_le_bytes());
    payload.extend_from_slice(&[0; 36 * 10]);
    a.send_command("inv", &payload);
    wait_for("banscore 20", DEADLINE, || (f.attacker_banscore() == Some(20)).then_some(()));
    a.send(&Message::Inv(vec![InvItem { kind: 0xdeadbeef, hash: Hash256([1; 32]) }]));
    assert!(a.closed_within(Duration::from_secs(2)));
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"invalid_inv_type\"", 1.0);
    f.assert_alive();
}

#[test]
fn row48_49_oversized_locator_disconnects_and_oversized_addr_is_scored() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    let mut addr = vec![0xfd];
    addr.extend_from_slice(&1001u16.to_le_bytes());
    addr.extend_from_slice(&vec![0; 30 * 1001]);
    a.send_command("addr", &addr);
    wait_for("banscore 20", DEADLINE, || (f.attacker_banscore() == Some(20)).then_some(()));
    let mut locator = 70016u32.to_le_bytes().to_vec();
    locator.push(102);
    locator.extend_from_slice(&[0; 32 * 103]);
    a.send_command("getheaders", &locator);
    assert!(a.closed_within(Duration::from_secs(2)));
    f.assert_alive();
}

#[test]
fn misbehaviour_up_to_the_ban_score_bans_the_ip_and_refuses_it_at_accept() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    let mut addr = vec![0xfd];
    addr.extend_from_slice(&1001u16.to_le_bytes());
    addr.extend_from_slice(&vec![0; 30 * 1001]);
    for _ in 0..5 {
        a.send_command("addr", &addr);
    }
    assert!(a.closed_within(Duration::from_secs(2)));
    let banned = f.node.cli(&["listbanned"]).json();
    assert!(banned.to_string().contains("127.0.0.2"), "{banned}");
    let mut again = f.attacker();
    assert!(again.closed_within(Duration::from_secs(2)), "a banned IP is refused at accept");
    f.wait_metric("bsv_relay_bans_total", "source=\"misbehaving\"", 1.0);
    f.assert_alive();
}

#[test]
fn row51_a_connection_flood_is_capped_and_the_whitelisted_peer_kept() {
    let mut f = Fixture::start(&["-maxconnections=10"]);
    let mut flood = Vec::new();
    for _ in 0..40 {
        let mut p = f.attacker();
        p.send(&version_msg(rand_nonce()));
        flood.push(p);
    }
    wait_for("at most 10 connections", DEADLINE, || {
        let n = f.node.cli(&["getconnectioncount"]).json().as_u64()?;
        (n <= 10).then_some(())
    });
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"evicted\"", 1.0);
    f.wait_metric("bsv_relay_peer_connections_total", "direction=\"inbound\",result=\"accepted\"", 10.0);
    f.assert_alive();
    assert!(f.node.cli(&["getnetworkinfo"]).success(), "RPC responsive");
}

#[test]
fn row53_bans_persist_across_restart_and_expire() {
    let mut f = Fixture::start(&[]);
    f.assert_alive();
    assert!(f.node.cli(&["setban", "127.0.0.2", "add", "3600"]).success());
    assert!(f.node.cli(&["setban", "127.0.0.3", "add", "1"]).success());
    let node = f.node.restart();
    let banned = node.cli(&["listbanned"]).json().to_string();
    assert!(banned.contains("127.0.0.2"), "{banned}");
    wait_for("the 1-second ban to expire", DEADLINE, || {
        (!node.cli(&["listbanned"]).json().to_string().contains("127.0.0.3")).then_some(())
    });
    let mut refused = RawPeer::connect_from(node.p2p_addr(), Some(ATTACKER));
    assert!(refused.closed_within(Duration::from_secs(2)));
    assert!(node.cli(&["clearbanned"]).success());
    let mut welcome = RawPeer::connect_from(node.p2p_addr(), Some(ATTACKER));
    welcome.handshake();
}

#[test]
fn row54_a_bad_checksum_flood_does_not_flood_the_log() {
    let mut f = Fixture::start(&[]);
    let before = f.node.output().len();
    let mut a = f.attacker_after_handshake();
    let mut frame = bsv_relay::wire::encode_frame(REGTEST_MAGIC, &Message::Ping(7));
    frame[20..24].copy_from_slice(&[0xff; 4]);
    let burst: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 10_000).collect();
    a.send_raw(&burst);
    f.wait_metric("bsv_relay_p2p_decode_errors_total", "reason=\"bad_checksum\"", 10_000.0);
    // And 600 complete handshakes in a row (unlimited, over 100 KB of log lines): connection
    // lines are rate-limited too.
    // From another address: the checksum flood above has earned 127.0.0.2 a ban score.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    for i in 0..600 {
        let mut p = RawPeer::connect_from(f.node.p2p_addr(), Some(other));
        if !p.try_handshake() {
            let log = f.node.output();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!("handshake {i} failed; node log tail:\n{}", tail.join("\n"));
        }
    }
    let grown = f.node.output().len() - before;
    assert!(grown < 64 * 1024, "log grew by {grown} bytes");
    f.assert_alive();
}

#[test]
fn row51_connections_per_address_are_capped_when_configured() {
    let mut f = Fixture::start(&["-maxconnectionsfromaddr=3"]);
    let mut kept: Vec<RawPeer> = (0..3).map(|_| f.attacker_after_handshake()).collect();
    let mut fourth = f.attacker();
    assert!(fourth.closed_within(Duration::from_secs(2)), "the fourth from one address is refused");
    f.wait_metric("bsv_relay_peer_connections_total", "direction=\"inbound\",result=\"rejected_full\"", 1.0);
    for p in &mut kept {
        assert!(p.ping_rtt(LIVENESS) < LIVENESS, "the first three stay");
    }
    f.assert_alive();
}

#[test]
fn row50_addr_spam_fills_at_most_one_sources_share_of_the_address_book() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    // 60,000 addresses at the attacker's own IP (the only ones believed from an inbound peer).
    for round in 0..60u32 {
        let list: Vec<TimedAddress> = (0..1000u32)
            .map(|i| TimedAddress {
                time: 1_700_000_000,
                addr: NetAddress::new(SocketAddr::new(ATTACKER, 1 + ((round * 1000 + i) % 65_000) as u16), 1),
            })
            .collect();
        a.send(&Message::Addr(list));
    }
    assert!(a.ping_rtt(Duration::from_secs(10)) < Duration::from_secs(10));
    // The pong comes from the connection task; the relay task handles the `addr` messages after
    // it reads them. A `getaddr` queued behind them is answered from the book once they are all
    // in: its reply (the attacker's own addresses) marks the moment to read the gauge.
    a.send(&Message::GetAddr);
    a.expect(DEADLINE, |m| matches!(m, Message::Addr(l) if l.iter().any(|t| t.addr.socket_addr().ip() == ATTACKER)));
    let entries = f.metric("bsv_relay_addrbook_entries", "");
    assert!(entries > 0.0 && entries <= 1000.0, "address book holds {entries}");
    assert_eq!(f.attacker_banscore(), Some(0), "within the 1000-per-message limit: no offence");
    f.assert_alive();
}

#[test]
fn row52_a_peer_that_never_reads_is_disconnected_when_its_queue_is_full() {
    let mut f = Fixture::start(&["-maxsendbuffer=200"]);
    let mut a = f.attacker_after_handshake();
    // Ask for pongs and never read them: kernel buffers fill, then our 200 kB queue, then we hang up.
    let ping = bsv_relay::wire::encode_frame(REGTEST_MAGIC, &Message::Ping(1));
    let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 20_000).collect();
    let mut sent = 0;
    a.stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    while sent < 2000 {
        use std::io::Write;
        if a.stream.write_all(&burst).is_err() {
            break;
        }
        sent += 1;
    }
    f.wait_metric("bsv_relay_peer_disconnections_total", "reason=\"send_queue_full\"", 1.0);
    // Its queue is released with it.
    wait_for("the send queue gauge to drain", DEADLINE, || {
        (f.metric("bsv_relay_p2p_send_queue_bytes", "") < 200_000.0).then_some(())
    });
    f.assert_alive();
}

#[test]
fn row55_rpc_abuse_is_refused_and_p2p_is_unaffected() {
    let mut f = Fixture::start(&["-rpcworkqueue=4"]);
    // A 10 MB body of junk: a JSON parse error (500 with a JSON body), the node unharmed.
    let big = "x".repeat(10 * 1024 * 1024);
    let (status, _, body) = f.node.post(&big, Some((common::USER, common::PASS)));
    assert_eq!(status, 500);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"], -32700);
    // A body over the 32 MB limit: 413 from its Content-Length, before any of it is read.
    let req = format!(
        "POST / HTTP/1.1\r\nAuthorization: Basic dTpw\r\nContent-Length: {}\r\n\r\n",
        bsv_relay::rpc::MAX_BODY_BYTES + 1
    );
    assert_eq!(f.node.http(req.as_bytes()).0, 413);
    // Wrong credentials, many times: 401 each time (after a short delay).
    for _ in 0..10 {
        let (status, head, _) = f.node.post(r#"{"method":"uptime","params":[]}"#, Some(("u", "wrong")));
        assert_eq!(status, 401);
        assert!(head.contains("WWW-Authenticate"));
    }
    // 200 concurrent requests against a work queue of 4: each is answered, with a result or 503.
    let port = f.node.rpcport;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                s.spawn(move || {
                    let body = r#"{"method":"getnetworkinfo","params":[],"id":1}"#;
                    let req = format!(
                        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Basic dTpw\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    common::http_exchange(port, req.as_bytes()).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&200));
    f.assert_alive();
}
