//! Interop with a real SV Node v1.0.13 and between bsv-relay nodes, over IPv4 and IPv6 loopback.
//!
//! SV Node runs without `-whitelist`, so a protocol mistake of ours would show as a ban score.
//! "Pings flow both ways": for at least 30 s, each side's `ping` RPC makes it ping its peers,
//! and each round must produce a fresh round-trip time on both sides while the connections stay up.

mod common;

use common::svnode::SvNode;
use common::{wait_for, TestNode, DEADLINE};
use serde_json::Value;
use std::time::{Duration, Instant};

const SV_UA: &str = "/Bitcoin SV:1.0.13/";
const OUR_UA: &str = "/bsv-relay:";

fn our_peers_with_ua(node: &TestNode, ua: &str) -> Vec<Value> {
    let peers = node.cli(&["getpeerinfo"]).json();
    peers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["subver"].as_str().is_some_and(|s| s.contains(ua)))
        .cloned()
        .collect()
}

fn addrs(peers: &[Value]) -> Vec<String> {
    let mut a: Vec<String> = peers.iter().map(|p| p["addr"].as_str().unwrap_or_default().to_string()).collect();
    a.sort();
    a
}

/// For 30 s, ping from both sides every few seconds; every round must measure a round trip on
/// both sides, and no connection may drop or gain a ban score.
fn pings_flow_both_ways(sv: &SvNode, ours: &TestNode, connections: usize) {
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(30) || rounds < 3 {
        assert!(sv.cli(&["ping"]).success());
        assert!(ours.cli(&["ping"]).success());
        // Both sides have a measured ping time for every connection; SV Node's banscore stays 0.
        wait_for("ping times on both sides", DEADLINE, || {
            let theirs = sv.peers_with_ua(OUR_UA);
            let mine = our_peers_with_ua(ours, SV_UA);
            let ok = theirs.len() == connections
                && mine.len() == connections
                && theirs.iter().all(|p| p["pingtime"].as_f64().is_some() && p["banscore"] == 0)
                && mine.iter().all(|p| p["pingtime"].as_f64().is_some() && p["banscore"] == 0);
            ok.then_some(())
        });
        rounds += 1;
        let next = Instant::now() + Duration::from_secs(5);
        // Pace the rounds; the assertion above is what synchronises, this only spreads them out.
        while Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(rounds >= 3);
    let sv_log = sv.log();
    assert!(!sv_log.contains("Misbehaving"), "SV Node scored us:\n{}", tail(&sv_log));
}

fn tail(s: &str) -> String {
    s.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[test]
fn bsv_relay_dials_sv_node_over_ipv4_and_ipv6() {
    let sv = SvNode::start(false, &[]);
    let ours = TestNode::start(&[&format!("-connect=127.0.0.1:{}", sv.port), &format!("-connect=[::1]:{}", sv.port)]);
    wait_for("SV Node to see both our connections", DEADLINE, || (sv.peers_with_ua(OUR_UA).len() == 2).then_some(()));
    let theirs = sv.peers_with_ua(OUR_UA);
    assert!(theirs
        .iter()
        .all(|p| p["inbound"] == true && p["version"] == 70016 && p["services"] == "0000000000000821"));
    let mine = wait_for("our view of SV Node", DEADLINE, || {
        let m = our_peers_with_ua(&ours, SV_UA);
        (m.len() == 2).then_some(m)
    });
    assert_eq!(addrs(&mine), vec![format!("127.0.0.1:{}", sv.port), format!("[::1]:{}", sv.port)]);
    assert!(mine.iter().all(|p| p["inbound"] == false && p["version"] == 70016));
    pings_flow_both_ways(&sv, &ours, 2);
}

#[test]
fn sv_node_dials_bsv_relay_over_ipv4_and_ipv6() {
    let sv = SvNode::start(false, &[]);
    let ours = TestNode::start(&[]);
    for target in [format!("127.0.0.1:{}", ours.p2pport), format!("[::1]:{}", ours.p2pport)] {
        assert!(sv.cli(&["addnode", &target, "onetry"]).success());
    }
    let mine = wait_for("SV Node's two inbound connections", DEADLINE, || {
        let m = our_peers_with_ua(&ours, SV_UA);
        (m.len() == 2).then_some(m)
    });
    assert!(mine.iter().all(|p| p["inbound"] == true));
    assert!(mine.iter().any(|p| p["addr"].as_str().unwrap().starts_with("[::1]:")));
    assert!(mine.iter().any(|p| p["addr"].as_str().unwrap().starts_with("127.0.0.1:")));
    let theirs = wait_for("SV Node's view", DEADLINE, || {
        let t = sv.peers_with_ua(OUR_UA);
        (t.len() == 2).then_some(t)
    });
    assert!(theirs.iter().all(|p| p["inbound"] == false && p["banscore"] == 0));
    pings_flow_both_ways(&sv, &ours, 2);
}

#[test]
fn two_bsv_relay_nodes_connect_over_ipv4_and_ipv6() {
    let a = TestNode::start(&[]);
    let b = TestNode::start(&[&format!("-connect=127.0.0.1:{}", a.p2pport), &format!("-connect=[::1]:{}", a.p2pport)]);
    let seen_by_a = wait_for("A to see B twice", DEADLINE, || {
        let p = our_peers_with_ua(&a, OUR_UA);
        (p.len() == 2).then_some(p)
    });
    assert!(seen_by_a.iter().all(|p| p["inbound"] == true));
    let seen_by_b = wait_for("B to see A twice", DEADLINE, || {
        let p = our_peers_with_ua(&b, OUR_UA);
        (p.len() == 2 && p.iter().all(|p| p["pingtime"].as_f64().is_some())).then_some(p)
    });
    assert_eq!(addrs(&seen_by_b), vec![format!("127.0.0.1:{}", a.p2pport), format!("[::1]:{}", a.p2pport)]);
}
