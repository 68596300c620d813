//! Compact block relay (BIP152 v1) with real SV Node v1.0.13 nodes, both directions: SV Node A
//! mines a chain with mempool transactions; bsv-relay R, A's only peer besides SV Node B, gets
//! A's blocks as `cmpctblock`s and rebuilds them from its mempool; B, which reaches A only
//! through R, gets them from R as compact blocks too. Message counters on all three show it, and
//! neither SV Node holds a ban score against R.

mod common;

use common::svnode::SvNode;
use common::{wait_for, TestNode};
use std::time::Duration;

const SYNC: Duration = Duration::from_secs(120);

fn sv_tip(sv: &SvNode) -> String {
    sv.cli(&["getbestblockhash"]).ok().trim().to_string()
}

fn mempool_size(v: &serde_json::Value) -> u64 {
    v["size"].as_u64().unwrap_or(0)
}

/// Bytes SV Node `sv` counted for command `cmd` with its bsv-relay peer, `dir` "sent" or "recv".
fn sv_bytes(sv: &SvNode, dir: &str, cmd: &str) -> u64 {
    let peers = sv.peers_with_ua("/bsv-relay:");
    peers.first().map_or(0, |p| p[format!("bytes{dir}_per_msg")][cmd].as_u64().unwrap_or(0))
}

#[test]
fn blocks_mined_by_sv_node_relay_through_bsv_relay_as_compact_blocks_both_ways() {
    let a = SvNode::start(false, &[]);
    let address = a.cli(&["getnewaddress"]).ok().trim().to_string();
    assert!(a.cli(&["generatetoaddress", "110", &address]).success());

    let metrics = format!("-metricsbind=127.0.0.1:{}", common::free_port());
    let r = TestNode::start(&[&format!("-connect=127.0.0.1:{}", a.port), "-listen=1", &metrics]);
    wait_for("bsv-relay to sync A's chain", SYNC, || {
        (r.cli(&["getbestblockhash"]).ok().trim() == sv_tip(&a)).then_some(())
    });
    let b = SvNode::start(false, &[&format!("-connect=127.0.0.1:{}", r.p2pport)]);
    wait_for("B to sync through bsv-relay", SYNC, || (sv_tip(&b) == sv_tip(&a)).then_some(()));

    let rounds = 4;
    let per_block = 25;
    for round in 0..rounds {
        for _ in 0..per_block {
            let to = a.cli(&["getnewaddress"]).ok().trim().to_string();
            let sent = a.cli(&["sendtoaddress", &to, "0.1"]);
            assert!(sent.success(), "{sent:?}");
        }
        let want = mempool_size(&a.json(&["getmempoolinfo"]));
        wait_for("the transactions to reach bsv-relay and B", SYNC, || {
            let ours = mempool_size(&r.cli(&["getmempoolinfo"]).json());
            (ours >= want && mempool_size(&b.json(&["getmempoolinfo"])) >= want).then_some(())
        });
        assert!(a.cli(&["generatetoaddress", "1", &address]).success());
        let tip = sv_tip(&a);
        wait_for(&format!("round {round}: bsv-relay and B at A's tip"), SYNC, || {
            (r.cli(&["getbestblockhash"]).ok().trim() == tip && sv_tip(&b) == tip).then_some(())
        });
        let block = a.json(&["getblock", &tip, "1"]);
        assert_eq!(block["tx"].as_array().map(Vec::len), Some(per_block + 1), "the block carries the payments");
    }

    // Transactions only A has: R is cut off (banned at A) while A takes them, then let back in.
    // A's next block reaches R as a compact block missing them, and R fetches them from A in one
    // getblocktxn round trip.
    let getblocktxn_before = r.metric("bsv_relay_p2p_messages_sent_total", "command=\"getblocktxn\"");
    assert!(a.cli(&["setban", "127.0.0.1", "add", "600"]).success());
    wait_for("A to drop bsv-relay", SYNC, || a.peers_with_ua("/bsv-relay:").is_empty().then_some(()));
    let mut only_a = Vec::new();
    for _ in 0..5 {
        let to = a.cli(&["getnewaddress"]).ok().trim().to_string();
        only_a.push(a.cli(&["sendtoaddress", &to, "0.1"]).ok().trim().to_string());
    }
    assert!(a.cli(&["clearbanned"]).success());
    assert!(r.cli(&["addnode", &format!("127.0.0.1:{}", a.port), "onetry"]).success());
    wait_for("bsv-relay back at A", SYNC, || (!a.peers_with_ua("/bsv-relay:").is_empty()).then_some(()));
    assert!(a.cli(&["generatetoaddress", "1", &address]).success());
    let tip = sv_tip(&a);
    wait_for("bsv-relay and B at A's tip after the round trip", SYNC, || {
        (r.cli(&["getbestblockhash"]).ok().trim() == tip && sv_tip(&b) == tip).then_some(())
    });
    let mined = a.json(&["getblock", &tip, "1"]);
    assert!(only_a.iter().all(|t| mined["tx"].as_array().is_some_and(|txs| txs.iter().any(|x| x == t))));
    assert_eq!(
        r.metric("bsv_relay_p2p_messages_sent_total", "command=\"getblocktxn\"") - getblocktxn_before,
        1.0,
        "one round trip"
    );
    assert!(r.metric("bsv_relay_compact_blocks_received_total", "result=\"reconstructed_after_getblocktxn\"") >= 1.0);
    assert!(r.metric("bsv_relay_compact_block_txs_total", "source=\"missing\"") >= 5.0);

    // A → R: compact blocks, rebuilt from R's mempool.
    let received = |cmd: &str| r.metric("bsv_relay_p2p_messages_received_total", &format!("command=\"{cmd}\""));
    let rebuilt = r.metric("bsv_relay_compact_blocks_received_total", "result=\"reconstructed\"");
    let from_pool = r.metric("bsv_relay_compact_block_txs_total", "source=\"pool\"");
    eprintln!(
        "bsv-relay received cmpctblock={} block={} getblocktxn={} blocktxn={}; rebuilt={rebuilt} from_pool={from_pool}",
        received("cmpctblock"),
        received("block"),
        received("getblocktxn"),
        received("blocktxn"),
    );
    assert!(received("cmpctblock") >= (rounds - 1) as f64, "A announced the new blocks as cmpctblock");
    assert!(rebuilt >= (rounds - 1) as f64, "and bsv-relay rebuilt them without a round trip");
    assert!(from_pool >= ((rounds - 1) * per_block) as f64);
    assert!(sv_bytes(&a, "sent", "cmpctblock") > 0, "A's own counters agree");

    // R → B: B got compact blocks from R and rebuilt them from its mempool.
    let b_got = sv_bytes(&b, "recv", "cmpctblock");
    eprintln!("B received from bsv-relay: cmpctblock {b_got} bytes, block {} bytes", sv_bytes(&b, "recv", "block"));
    assert!(b_got > 0, "B received compact blocks from bsv-relay");
    assert!(r.metric("bsv_relay_p2p_messages_sent_total", "command=\"cmpctblock\"") >= (rounds - 1) as f64);

    // Latency by stage was measured for the relayed blocks.
    for stage in ["reconstructed", "validated", "announced"] {
        let n = r.metric("bsv_relay_block_relay_latency_seconds_count", &format!("stage=\"{stage}\""));
        assert!(n >= (rounds - 1) as f64, "latency stage {stage}: {n} samples");
    }

    for sv in [&a, &b] {
        let peers = sv.peers_with_ua("/bsv-relay:");
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0]["banscore"], 0);
    }
}
