//! Block sync with a real SV Node v1.0.13: bsv-relay downloads and validates SV Node's chain with
//! wallet transactions (same tip, same UTXO set), follows a reorganisation, survives `kill -9` in
//! the middle of a sync without downloading again what it has, and serves its chain back.

mod common;

use common::svnode::SvNode;
use common::{wait_for, TestNode};
use std::time::Duration;

/// Longer than DEADLINE: a 300-block chain with transactions, validated with every script.
const SYNC_DEADLINE: Duration = Duration::from_secs(180);

fn tip(node: &TestNode) -> (u64, String) {
    let info = node.cli(&["getblockchaininfo"]).json();
    (info["blocks"].as_u64().unwrap_or(0), info["bestblockhash"].as_str().unwrap_or_default().to_string())
}

fn sv_tip(sv: &SvNode) -> (u64, String) {
    let info = sv.cli(&["getblockchaininfo"]).json();
    (info["blocks"].as_u64().unwrap_or(0), info["bestblockhash"].as_str().unwrap_or_default().to_string())
}

/// `gettxoutsetinfo`'s comparable fields.
fn utxo_summary(v: &serde_json::Value) -> (u64, u64, String, String) {
    (
        v["height"].as_u64().unwrap_or(0),
        v["txouts"].as_u64().unwrap_or(0),
        v["total_amount"].to_string(),
        v["bestblock"].to_string(),
    )
}

/// SV Node mines `n` blocks, with a few wallet payments in most of them once coins are mature.
fn mine_with_payments(sv: &SvNode, n: u32) {
    let address = sv.cli(&["getnewaddress"]).ok().trim().to_string();
    let mut mined = 0;
    while mined < n {
        let height = sv_tip(sv).0;
        if height > 101 {
            for _ in 0..3 {
                let to = sv.cli(&["getnewaddress"]).ok().trim().to_string();
                let sent = sv.cli(&["sendtoaddress", &to, "0.5"]);
                assert!(sent.success(), "{sent:?}");
            }
        }
        let step = if height < 101 { 101 - height as u32 } else { 10 }.min(n - mined);
        assert!(sv.cli(&["generatetoaddress", &step.to_string(), &address]).success());
        mined += step;
    }
}

#[test]
fn blocks_sync_from_sv_node_with_the_same_utxo_set_through_a_reorg_and_a_kill() {
    let sv = SvNode::start(false, &[]);
    mine_with_payments(&sv, 300);
    let want = sv_tip(&sv);
    assert_eq!(want.0, 300);

    let metrics = format!("-metricsbind=127.0.0.1:{}", common::free_port());
    let ours = TestNode::start(&[&format!("-connect=127.0.0.1:{}", sv.port), "-listen=1", &metrics]);
    // Kill it as soon as it has some blocks but not all, if we catch it in time.
    let partial = wait_for("the first blocks", SYNC_DEADLINE, || (tip(&ours).0 > 0).then(|| tip(&ours).0));
    let ours = ours.kill9_restart();
    // What the restarted node found on disk: its log's "chain state loaded height=H … blocks=B".
    let loaded = ours.output();
    let line = loaded.lines().rev().find(|l| l.contains("chain state loaded")).expect("load line").to_string();
    let field = |name: &str| -> u64 {
        let v = line.split(&format!("{name}=")).nth(1).expect("field").split_whitespace().next().expect("value");
        v.parse().expect("number")
    };
    let (after, stored) = (field("height"), field("blocks"));
    assert!(after + 100 >= partial, "restart lost at most the last non-durable blocks: {partial} -> {after}");
    wait_for("our active chain to reach SV Node's tip", SYNC_DEADLINE, || (tip(&ours) == want).then_some(()));
    let received = |r: &str| ours.metric("bsv_relay_blocks_received_total", &format!("result=\"{r}\""));
    let (connected, stored_now, duplicate) = (received("connected"), received("stored"), received("duplicate"));
    assert!(
        connected + stored_now + duplicate <= (300 - stored) as f64,
        "restarted with {stored} blocks stored (tip {after}), it fetched {connected} connected + {stored_now} stored + {duplicate} duplicate"
    );

    let sv_utxo = sv.cli(&["gettxoutsetinfo"]).json();
    let our_utxo = ours.cli(&["gettxoutsetinfo"]).json();
    assert_eq!(utxo_summary(&our_utxo), utxo_summary(&sv_utxo));
    let h150 = sv.cli(&["getblockhash", "150"]).ok().trim().to_string();
    assert_eq!(ours.cli(&["getblock", &h150, "0"]).ok().trim(), sv.cli(&["getblock", &h150, "0"]).ok().trim());
    let ours_json = ours.cli(&["getblock", &h150, "1"]).json();
    let sv_json = sv.cli(&["getblock", &h150, "1"]).json();
    for field in ["hash", "confirmations", "height", "merkleroot", "tx", "previousblockhash", "nextblockhash", "size"] {
        assert_eq!(ours_json[field], sv_json[field], "getblock field {field}");
    }
    assert_eq!(ours.cli(&["getblockhash", "150"]).ok().trim(), h150);

    // SV Node abandons the last 11 blocks and mines a longer fork: we follow.
    let h290 = sv.cli(&["getblockhash", "290"]).ok().trim().to_string();
    assert!(sv.cli(&["invalidateblock", &h290]).success());
    let other = sv.cli(&["getnewaddress"]).ok().trim().to_string();
    assert!(sv.cli(&["generatetoaddress", "21", &other]).success());
    let fork = sv_tip(&sv);
    assert_eq!(fork.0, 310);
    wait_for("our chain to follow the reorganisation", SYNC_DEADLINE, || (tip(&ours) == fork).then_some(()));
    assert_eq!(
        utxo_summary(&ours.cli(&["gettxoutsetinfo"]).json()),
        utxo_summary(&sv.cli(&["gettxoutsetinfo"]).json())
    );
    let tips = ours.cli(&["getchaintips"]).json();
    assert!(
        tips.as_array().expect("tips").iter().any(|t| t["status"] == "valid-fork" && t["branchlen"] == 11),
        "{tips}"
    );

    // A second SV Node syncs the whole chain from bsv-relay alone.
    let sv2 = SvNode::start(false, &[&format!("-connect=127.0.0.1:{}", ours.p2pport)]);
    wait_for("SV Node to sync from bsv-relay", SYNC_DEADLINE, || (sv_tip(&sv2) == fork).then_some(()));

    for node in [&sv, &sv2] {
        let peers = node.peers_with_ua("/bsv-relay:");
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0]["banscore"], 0);
    }
    assert_eq!(ours.metric("bsv_relay_blocks_height", ""), 310.0);
}
