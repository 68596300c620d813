//! Headers-first sync with a real SV Node v1.0.13: bsv-relay's header tree reaches SV Node's tip,
//! follows a reorganisation onto a longer fork, and SV Node's ban score for us stays 0.

mod common;

use common::svnode::SvNode;
use common::{wait_for, TestNode, DEADLINE};

fn best_header(node: &TestNode) -> (u64, String) {
    let info = node.cli(&["getblockchaininfo"]).json();
    (info["headers"].as_u64().unwrap_or(0), info["bestheaderhash"].as_str().unwrap_or_default().to_string())
}

#[test]
fn header_tree_follows_sv_node_through_a_reorganisation() {
    let sv = SvNode::start(false, &[]);
    let address = sv.cli(&["getnewaddress"]).ok().trim().to_string();
    assert!(sv.cli(&["generatetoaddress", "300", &address]).success());
    let sv_tip = sv.cli(&["getbestblockhash"]).ok().trim().to_string();

    let metrics = format!("-metricsbind=127.0.0.1:{}", common::free_port());
    let ours = TestNode::start(&[&format!("-connect=127.0.0.1:{}", sv.port), &metrics]);
    wait_for("our header tree to reach SV Node's tip", DEADLINE, || {
        (best_header(&ours) == (300, sv_tip.clone())).then_some(())
    });
    // Confirmations count on the active chain: wait for the blocks too.
    wait_for("our blocks to reach SV Node's tip", DEADLINE, || {
        (ours.cli(&["getbestblockhash"]).ok().trim() == sv_tip).then_some(())
    });
    // Every header on the way is known with the right height.
    let h150 = sv.cli(&["getblockhash", "150"]).ok().trim().to_string();
    let header = ours.cli(&["getblockheader", &h150]).json();
    assert_eq!(header["height"], 150);
    assert_eq!(header["confirmations"], 151);
    assert_eq!(
        ours.cli(&["getblockheader", &h150, "false"]).ok().trim(),
        sv.cli(&["getblockheader", &h150, "false"]).ok().trim()
    );

    // SV Node abandons the last 11 blocks and mines a longer fork.
    let h290 = sv.cli(&["getblockhash", "290"]).ok().trim().to_string();
    assert!(sv.cli(&["invalidateblock", &h290]).success());
    // A different address changes the coinbases, so the fork's blocks differ from the abandoned ones.
    let other = sv.cli(&["getnewaddress"]).ok().trim().to_string();
    let mined = sv.cli(&["generatetoaddress", "21", &other]);
    assert!(mined.success(), "{mined:?}");
    let fork_tip = sv.cli(&["getbestblockhash"]).ok().trim().to_string();
    assert_ne!(fork_tip, sv_tip);
    wait_for("our header tree to follow the reorganisation", DEADLINE, || {
        (best_header(&ours) == (310, fork_tip.clone())).then_some(())
    });
    wait_for("our blocks to follow the reorganisation", DEADLINE, || {
        (ours.cli(&["getbestblockhash"]).ok().trim() == fork_tip).then_some(())
    });
    let old = ours.cli(&["getblockheader", &sv_tip]).json();
    assert_eq!(old["confirmations"], -1, "the abandoned tip is off the best chain");

    assert_eq!(ours.metric("bsv_relay_chain_header_height", ""), 310.0);
    // Reputation: SV Node delivered every new block header first.
    let mine = ours.cli(&["getpeerinfo"]).json();
    let rep = &mine[0]["reputation"];
    assert!(rep["blocks_first"].as_u64().unwrap() >= 310, "{rep}");
    assert!(rep["last_useful"].as_u64().unwrap() > 0);
    assert!(rep["minping"].as_f64().is_some());
    assert!(ours.metric("bsv_relay_chain_headers_received_total", "result=\"accepted\"") >= 310.0);
    let peers = sv.peers_with_ua("/bsv-relay:");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["banscore"], 0);
    assert!(!sv.log().contains("Misbehaving"));
}
