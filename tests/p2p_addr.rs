//! Address gossip end to end: a node with nothing but one known address in its address book
//! finds a second peer through `getaddr`/`addr`, dials it, and keeps both in `peers.json`.

mod common;

use common::{wait_for, TempDir, TestNode, DEADLINE};
use std::collections::BTreeSet;

fn outbound_ports(node: &TestNode) -> BTreeSet<u16> {
    let peers = node.cli(&["getpeerinfo"]).json();
    peers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["inbound"] == false)
        .filter_map(|p| p["addr"].as_str()?.rsplit(':').next()?.parse().ok())
        .collect()
}

fn inbound_count(node: &TestNode) -> usize {
    node.cli(&["getpeerinfo"]).json().as_array().into_iter().flatten().filter(|p| p["inbound"] == true).count()
}

#[test]
fn a_node_learns_peers_by_gossip_and_dials_them_from_its_address_book() {
    let a = TestNode::start(&[]);
    // B connects to A and advertises its own listening address to it.
    let b = TestNode::start(&[&format!("-addnode=127.0.0.1:{}", a.p2pport)]);
    wait_for("B connected to A", DEADLINE, || outbound_ports(&b).contains(&a.p2pport).then_some(()));
    // B first reaches A over v1, sees NODE_P2P_V2 in its version and dials it again over v2: count
    // once that has settled.
    wait_for("B's connection to A on v2, and A's side of the v1 one gone", DEADLINE, || {
        let peers = b.cli(&["getpeerinfo"]).json();
        let on_v2 = peers.as_array().into_iter().flatten().any(|p| p["transport_protocol_type"] == "v2");
        (on_v2 && inbound_count(&a) == 1).then_some(())
    });
    // Once: an -addnode was dialled twice (by the manager and by a connect request for it).
    wait_for("A to see B inbound", DEADLINE, || (inbound_count(&a) > 0).then_some(()));
    let outbound_to_a = |b: &TestNode| {
        b.cli(&["getpeerinfo"]).json().as_array().into_iter().flatten().filter(|p| p["inbound"] == false).count()
    };
    assert_eq!(outbound_to_a(&b), 1, "{}", b.cli(&["getpeerinfo"]).stdout);
    assert_eq!(inbound_count(&a), 1, "{}", a.cli(&["getpeerinfo"]).stdout);

    // C knows only A, from a seeded address book, and has no -connect or -addnode.
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("regtest")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let book = serde_json::json!({
        "version": 1,
        "entries": [[format!("127.0.0.1:{}", a.p2pport), {
            "services": 33, "last_seen": now, "source": "127.0.0.1", "attempts": 0, "last_success": 0
        }]]
    });
    std::fs::write(dir.0.join("regtest/peers.json"), book.to_string()).unwrap();
    let c = TestNode::start_in(dir, common::Auth::Password, &[]);
    wait_for("C connected to both A and B", DEADLINE, || {
        let ports = outbound_ports(&c);
        (ports.contains(&a.p2pport) && ports.contains(&b.p2pport)).then_some(())
    });

    // A clean stop saves the book with both addresses.
    let netdir = c.netdir();
    c.signal("TERM");
    let mut c = c;
    assert!(c.wait_exit().success());
    let saved = std::fs::read_to_string(netdir.join("peers.json")).unwrap();
    assert!(saved.contains(&format!("127.0.0.1:{}", a.p2pport)), "{saved}");
    assert!(saved.contains(&format!("127.0.0.1:{}", b.p2pport)), "{saved}");
}
