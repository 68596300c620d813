//! Tests of the protocol state machine with a fake clock: `now` is a base instant plus offsets.

use super::misbehavior::Misbehavior;
use super::protocol::*;
use crate::wire::message::Message;
use crate::wire::msg::{reject_code, Protoconf, Version};
use crate::wire::{DecodeError, NetAddress};
use crate::wire::{Hash256, InvItem};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn ctx() -> Context<'static> {
    Context { unix_time: 1_700_000_000, best_height: 0, is_own_nonce: &|n| n == 777 }
}

fn remote() -> SocketAddr {
    "127.0.0.2:18444".parse().unwrap()
}

fn their_version(nonce: u64) -> Message {
    Message::Version(Version {
        version: 70016,
        services: 0x21,
        timestamp: 1_700_000_000,
        receiver: NetAddress::unspecified(0),
        sender: NetAddress::unspecified(0x21),
        nonce,
        user_agent: "/Bitcoin SV:1.0.13/".into(),
        start_height: 0,
        relay: true,
        association_id: Some(bytes::Bytes::new()),
    })
}

fn sent(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(m) => Some(m.command()),
            _ => None,
        })
        .collect()
}

fn ready(direction: Direction, t0: Instant) -> PeerProtocol {
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), direction, remote(), 1, false, t0, &ctx());
    p.on_message(t0, their_version(5), &ctx());
    p.on_message(t0, Message::Verack, &ctx());
    assert!(p.is_ready());
    p
}

#[test]
fn outbound_handshake_follows_sv_node_order() {
    let t0 = Instant::now();
    let (mut p, out) =
        PeerProtocol::new(ProtocolConfig::default(), Direction::Outbound, remote(), 1, false, t0, &ctx());
    assert_eq!(sent(&out), ["version"]);
    match &out[0] {
        Output::Send(Message::Version(v)) => {
            assert_eq!(v.version, 70016);
            assert_eq!(v.services, 0x21);
            assert!(v.relay);
            assert!(v.association_id.is_none(), "we never send an association ID");
            assert!(v.user_agent.starts_with("/bsv-relay:"));
            for banned in BANNED_USER_AGENT_PARTS {
                assert!(!v.user_agent.to_lowercase().contains(banned));
            }
        }
        other => panic!("{other:?}"),
    }
    let out = p.on_message(t0, their_version(5), &ctx());
    assert_eq!(sent(&out), ["verack"], "nothing but verack before their verack");
    let out = p.on_message(t0, Message::Verack, &ctx());
    assert_eq!(sent(&out), ["protoconf", "sendheaders", "feefilter", "ping"]);
    assert!(out.contains(&Output::HandshakeComplete));
    assert!(p.is_ready());
}

#[test]
fn inbound_peer_gets_our_version_only_after_its_own() {
    let t0 = Instant::now();
    let (mut p, out) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    assert!(out.is_empty(), "shy until the peer speaks, like SV Node");
    let out = p.on_message(t0, their_version(5), &ctx());
    assert_eq!(sent(&out), ["version", "verack"]);
}

#[test]
fn messages_before_version_are_dropped_and_scored_until_the_ban() {
    let t0 = Instant::now();
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    for i in 1..100 {
        let out = p.on_message(t0, Message::Ping(i), &ctx());
        assert_eq!(out, vec![Output::Misbehaved(Misbehavior::MissingVersion)]);
    }
    let out = p.on_message(t0, Message::Ping(100), &ctx());
    assert!(out.contains(&Output::Ban));
    assert!(out.contains(&Output::Disconnect(DisconnectReason::Banned)));
    assert_eq!(p.ban_score(), 100);
}

#[test]
fn exempt_peers_are_scored_but_never_banned() {
    let t0 = Instant::now();
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, true, t0, &ctx());
    for i in 0..150 {
        let out = p.on_message(t0, Message::Ping(i), &ctx());
        assert!(!out.contains(&Output::Ban));
    }
    assert_eq!(p.ban_score(), 150);
}

#[test]
fn messages_before_verack_are_missing_verack() {
    let t0 = Instant::now();
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    p.on_message(t0, their_version(5), &ctx());
    let out = p.on_message(t0, Message::Inv(vec![]), &ctx());
    assert_eq!(out, vec![Output::Misbehaved(Misbehavior::MissingVerack)]);
    assert!(p
        .on_message(t0, Message::AuthCh(crate::wire::msg::AuthCh { version: 1, challenge: Default::default() }), &ctx())
        .is_empty());
}

#[test]
fn duplicate_version_is_rejected_and_scored() {
    let t0 = Instant::now();
    let mut p = ready(Direction::Outbound, t0);
    let out = p.on_message(t0, their_version(5), &ctx());
    assert!(matches!(&out[0], Output::Send(Message::Reject(r)) if r.code == reject_code::DUPLICATE));
    assert!(out.contains(&Output::Misbehaved(Misbehavior::DuplicateVersion)));
}

#[test]
fn self_connection_obsolete_version_and_banned_user_agent() {
    let t0 = Instant::now();
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    assert_eq!(
        p.on_message(t0, their_version(777), &ctx()),
        vec![Output::Disconnect(DisconnectReason::SelfConnection)]
    );

    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    let mut old = their_version(5);
    if let Message::Version(v) = &mut old {
        v.version = 209;
    }
    let out = p.on_message(t0, old, &ctx());
    assert!(matches!(&out[0], Output::Send(Message::Reject(r)) if r.code == reject_code::OBSOLETE));
    assert_eq!(out[1], Output::Disconnect(DisconnectReason::ObsoleteVersion));

    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    let mut bad = their_version(5);
    if let Message::Version(v) = &mut bad {
        v.user_agent = "/Bitcoin ABC:0.20/".into();
    }
    let out = p.on_message(t0, bad, &ctx());
    assert!(out.contains(&Output::Ban));
}

#[test]
fn ping_round_trip_is_measured_on_the_fake_clock() {
    let t0 = Instant::now();
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Outbound, remote(), 1, false, t0, &ctx());
    p.on_message(t0, their_version(5), &ctx());
    let out = p.on_message(t0, Message::Verack, &ctx());
    let nonce = out
        .iter()
        .find_map(|o| match o {
            Output::Send(Message::Ping(n)) => Some(*n),
            _ => None,
        })
        .unwrap();
    assert!(p.on_message(t0 + Duration::from_millis(5), Message::Pong(nonce ^ 1), &ctx()).is_empty());
    let out = p.on_message(t0 + Duration::from_millis(42), Message::Pong(nonce), &ctx());
    assert_eq!(out, vec![Output::PingMeasured(Duration::from_millis(42))]);
    assert_eq!(p.last_ping_time(), Some(Duration::from_millis(42)));
    // Their ping gets our pong.
    assert_eq!(sent(&p.on_message(t0, Message::Ping(9), &ctx())), ["pong"]);
    // Next ping two minutes later, not before.
    assert!(p.on_tick(t0 + Duration::from_secs(119), None).is_empty());
    assert_eq!(sent(&p.on_tick(t0 + Duration::from_secs(120), None)), ["ping"]);
}

#[test]
fn handshake_timeout_fires_at_the_deadline_not_before() {
    let t0 = Instant::now();
    let config = ProtocolConfig { handshake_timeout: Duration::from_secs(60), ..Default::default() };
    let (mut p, _) = PeerProtocol::new(config, Direction::Inbound, remote(), 1, false, t0, &ctx());
    assert!(p.on_tick(t0 + Duration::from_millis(59_999), None).is_empty());
    assert_eq!(
        p.on_tick(t0 + Duration::from_secs(60), None),
        vec![Output::Disconnect(DisconnectReason::HandshakeTimeout)]
    );
    assert!(p.on_tick(t0 + Duration::from_secs(61), None).is_empty(), "only once");
}

#[test]
fn unanswered_ping_and_silence_time_out() {
    let t0 = Instant::now();
    let config = ProtocolConfig { inactivity_timeout: Duration::from_secs(30), ..Default::default() };
    let (mut p, _) = PeerProtocol::new(config.clone(), Direction::Outbound, remote(), 1, false, t0, &ctx());
    p.on_message(t0, their_version(5), &ctx());
    p.on_message(t0, Message::Verack, &ctx());
    // The peer keeps talking but never answers our ping.
    for s in 1..30 {
        let now = t0 + Duration::from_secs(s);
        p.on_message(now, Message::Ping(s), &ctx());
        p.on_sent(now);
        assert!(p.on_tick(now, None).iter().all(|o| !matches!(o, Output::Disconnect(_))));
    }
    assert_eq!(p.on_tick(t0 + Duration::from_secs(30), None), vec![Output::Disconnect(DisconnectReason::PingTimeout)]);

    let (mut q, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    q.on_message(t0, their_version(5), &ctx());
    let out = q.on_message(t0, Message::Verack, &ctx());
    let nonce = out.iter().find_map(|o| if let Output::Send(Message::Ping(n)) = o { Some(*n) } else { None });
    q.on_message(t0, Message::Pong(nonce.unwrap()), &ctx());
    let later = t0 + Duration::from_secs(20 * 60);
    assert!(q.on_tick(later, None).contains(&Output::Disconnect(DisconnectReason::InactivityTimeout)));
}

#[test]
fn an_incomplete_frame_hits_the_message_deadline() {
    let t0 = Instant::now();
    let mut p = ready(Direction::Outbound, t0);
    let started = t0 + Duration::from_secs(1);
    assert_eq!(p.next_deadline(Some(started)), started + Duration::from_secs(120));
    assert!(!p
        .on_tick(started + Duration::from_secs(119), Some(started))
        .iter()
        .any(|o| matches!(o, Output::Disconnect(_))));
    assert_eq!(
        p.on_tick(started + Duration::from_secs(120), Some(started)),
        vec![Output::Disconnect(DisconnectReason::MessageDeadline)]
    );
}

#[test]
fn protoconf_rules() {
    let t0 = Instant::now();
    let mut p = ready(Direction::Outbound, t0);
    assert_eq!(p.peer_max_payload(), 1_048_576, "1 MiB until the peer's protoconf");
    assert!(p.on_message(t0, Message::Protoconf(Protoconf::ours(2_097_152)), &ctx()).is_empty());
    assert_eq!(p.peer_max_payload(), 2_097_152);
    assert_eq!(
        p.on_message(t0, Message::Protoconf(Protoconf::ours(2_097_152)), &ctx()),
        vec![Output::Disconnect(DisconnectReason::BadProtoconf)]
    );
    let mut q = ready(Direction::Outbound, t0);
    assert_eq!(
        q.on_message(t0, Message::Protoconf(Protoconf::ours(1_048_575)), &ctx()),
        vec![Output::Disconnect(DisconnectReason::BadProtoconf)]
    );
}

#[test]
fn inv_of_an_unknown_type_disconnects_and_valid_messages_are_delivered() {
    let t0 = Instant::now();
    let mut p = ready(Direction::Outbound, t0);
    let good = Message::Inv(vec![InvItem::tx(Hash256([1; 32]))]);
    assert_eq!(p.on_message(t0, good.clone(), &ctx()), vec![Output::Deliver(good)]);
    let bad = Message::Inv(vec![InvItem { kind: 0xdeadbeef, hash: Hash256([1; 32]) }]);
    assert_eq!(p.on_message(t0, bad, &ctx()), vec![Output::Disconnect(DisconnectReason::InvalidInvType)]);
}

#[test]
fn decode_errors_map_to_sv_node_consequences() {
    let t0 = Instant::now();
    let mut p = ready(Direction::Outbound, t0);
    let too_many_addr = DecodeError::TooMany { what: "addr entries", count: 1001, max: 1000 };
    assert_eq!(
        p.on_decode_error(t0, Some("addr"), &too_many_addr),
        vec![Output::Misbehaved(Misbehavior::OversizedAddr)]
    );
    let too_many_headers = DecodeError::TooMany { what: "headers", count: 2001, max: 2000 };
    assert_eq!(
        p.on_decode_error(t0, Some("headers"), &too_many_headers),
        vec![Output::Misbehaved(Misbehavior::TooManyHeaders)]
    );
    let truncated = DecodeError::Truncated { what: "ping nonce", needed: 4 };
    assert!(p.on_decode_error(t0, Some("ping"), &truncated).is_empty(), "short payloads are not punished");
    assert_eq!(p.ban_score(), 40);
    let magic = DecodeError::BadMagic { got: [0; 4], expected: [1; 4] };
    assert_eq!(p.on_decode_error(t0, None, &magic), vec![Output::Disconnect(DisconnectReason::BadMagic)]);
}

#[test]
fn a_bad_checksum_flood_is_an_offence_but_a_few_are_not() {
    let t0 = Instant::now();
    let mut p = ready(Direction::Outbound, t0);
    let err = DecodeError::BadChecksum { command: "ping".into(), expected: 0, actual: 1 };
    for i in 0..100 {
        assert!(p.on_decode_error(t0 + Duration::from_millis(i * 10), Some("ping"), &err).is_empty());
    }
    assert_eq!(
        p.on_decode_error(t0 + Duration::from_millis(1000), Some("ping"), &err),
        vec![Output::Misbehaved(Misbehavior::BadChecksumFlood)]
    );
    // Spaced out by more than 500 ms, they never add up.
    let mut q = ready(Direction::Outbound, t0);
    for i in 0..300 {
        assert!(q.on_decode_error(t0 + Duration::from_millis(i * 600), Some("ping"), &err).is_empty());
    }
}

#[test]
fn an_unreadable_version_or_an_oversized_locator_disconnects() {
    let t0 = Instant::now();
    let (mut p, _) = PeerProtocol::new(ProtocolConfig::default(), Direction::Inbound, remote(), 1, false, t0, &ctx());
    let long_ua = DecodeError::TooLong { what: "user agent", len: 300, max: 256 };
    assert_eq!(p.on_decode_error(t0, Some("version"), &long_ua), vec![Output::Disconnect(DisconnectReason::Malformed)]);
    let mut q = ready(Direction::Outbound, t0);
    let locator = DecodeError::TooMany { what: "locator hashes", count: 102, max: 101 };
    assert_eq!(
        q.on_decode_error(t0, Some("getheaders"), &locator),
        vec![Output::Disconnect(DisconnectReason::Malformed)]
    );
}
