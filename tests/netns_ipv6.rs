//! IPv6 end to end, in network namespaces on one bridge (addresses from 2001:db8::/32 and
//! 198.51.100.0/24 only, on hosts the test creates): an IPv6-only node A and a dual-stack node B
//! connect over their global IPv6 addresses; `getnetworkinfo` on each lists the addresses its
//! interfaces have (and no other) and its networks; a third node C, told only of B, learns A's
//! IPv6 address by `addr` gossip alone (A advertises itself to B, B passes it on) and dials it.

mod common;

use common::netns::Lan;
use common::{wait_for, TestNode, DEADLINE};
use serde_json::Value;

const PORT: u16 = 18444;

fn peer_addrs(node: &TestNode, inbound: bool) -> Vec<String> {
    node.cli(&["getpeerinfo"])
        .json()
        .as_array()
        .expect("peers")
        .iter()
        .filter(|p| p["inbound"] == Value::Bool(inbound))
        .map(|p| p["addr"].as_str().expect("addr").to_string())
        .collect()
}

fn score(node: &TestNode, address: &str) -> u64 {
    let info = node.cli(&["getnetworkinfo"]).json();
    info["localaddresses"].as_array().expect("localaddresses").iter().find(|a| a["address"] == address).expect(address)
        ["score"]
        .as_u64()
        .expect("score")
}

fn local_addresses(node: &TestNode) -> Vec<(String, u64)> {
    let info = node.cli(&["getnetworkinfo"]).json();
    let mut v: Vec<(String, u64)> = info["localaddresses"]
        .as_array()
        .expect("localaddresses")
        .iter()
        .map(|a| (a["address"].as_str().expect("address").to_string(), a["port"].as_u64().expect("port")))
        .collect();
    v.sort();
    v
}

fn network<'a>(info: &'a Value, name: &str) -> &'a Value {
    info["networks"].as_array().expect("networks").iter().find(|n| n["name"] == name).expect("listed")
}

#[test]
fn ipv6_only_and_dual_stack_nodes_connect_advertise_and_are_found_by_gossip() {
    let lan = Lan::new();
    let host_a = lan.host(&["2001:db8:a::1/64"]);
    let host_b = lan.host(&["2001:db8:a::2/64", "198.51.100.2/24"]);
    let host_c = lan.host(&["2001:db8:a::3/64"]);
    let common = ["-listen=1", "-discover=1", "-port=18444"];
    let b = TestNode::start_in_netns(
        host_b.name(),
        &[&common[..], &["-bind=[2001:db8:a::2]:18444", "-bind=198.51.100.2:18444"]].concat(),
    );
    // A dials B (so A's self-advertisement goes to an outbound peer, as Core sends it).
    let a = TestNode::start_in_netns(
        host_a.name(),
        &[&common[..], &["-bind=[2001:db8:a::1]:18444", "-addnode=[2001:db8:a::2]:18444"]].concat(),
    );
    wait_for("A and B to connect over IPv6", DEADLINE, || {
        let (a_out, b_in) = (peer_addrs(&a, false), peer_addrs(&b, true));
        (a_out.iter().any(|p| p == "[2001:db8:a::2]:18444") && b_in.iter().any(|p| p.starts_with("[2001:db8:a::1]:")))
            .then_some(())
    });
    // One connection from A to B (an -addnode was once dialled twice).
    assert_eq!(peer_addrs(&a, false), ["[2001:db8:a::2]:18444"]);

    // Each lists exactly its interfaces' global addresses, with the P2P port.
    assert_eq!(local_addresses(&a), [("2001:db8:a::1".to_string(), u64::from(PORT))]);
    assert_eq!(
        local_addresses(&b),
        [("198.51.100.2".to_string(), u64::from(PORT)), ("2001:db8:a::2".to_string(), u64::from(PORT))]
    );
    // B's IPv6 address came from -bind (score 2); A, inbound, confirmed it in its version.
    wait_for("A's version to confirm B's address", DEADLINE, || (score(&b, "2001:db8:a::2") >= 3).then_some(()));
    assert_eq!(score(&b, "198.51.100.2"), 2, "no peer reached B over IPv4");
    let info = a.cli(&["getnetworkinfo"]).json();
    for name in ["ipv4", "ipv6"] {
        assert_eq!(network(&info, name)["reachable"], Value::Bool(true), "{name}: {info}");
        assert_eq!(network(&info, name)["limited"], Value::Bool(false), "{name}: {info}");
    }

    // C is told only of B (one try, so its automatic outbound connections stay on: -addnode
    // turns them off here, see the README's limits); A's address reaches it by gossip, and C dials A.
    let c = TestNode::start_in_netns(host_c.name(), &[&common[..], &["-bind=[2001:db8:a::3]:18444"]].concat());
    assert!(c.cli(&["addnode", "[2001:db8:a::2]:18444", "onetry"]).success());
    wait_for("C to dial A, learnt by gossip", DEADLINE, || {
        peer_addrs(&c, false).iter().any(|p| p == "[2001:db8:a::1]:18444").then_some(())
    });
    wait_for("A to see C inbound", DEADLINE, || {
        peer_addrs(&a, true).iter().any(|p| p.starts_with("[2001:db8:a::3]:")).then_some(())
    });
    drop((a, b, c));
    drop((host_a, host_b, host_c));
}
