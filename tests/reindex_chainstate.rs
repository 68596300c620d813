//! `-reindex-chainstate` through the binary: the UTXO set is thrown away and rebuilt from the
//! stored blocks, and `gettxoutsetinfo` afterwards equals what the node reported before, with
//! spent coinbases and new outputs in the set; a small `-dbcache` makes the rebuild flush.

mod common;

use bsv_relay::wallet::Key;
use common::funds::{coinbase_of, hex_of, pay};
use common::{wait_for, TestNode, DEADLINE};

/// `gettxoutsetinfo`'s fields that describe the set (not the time it took).
fn set_info(node: &TestNode) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(node.cli(&["gettxoutsetinfo"]).ok()).expect("json");
    serde_json::json!({
        "height": v["height"], "bestblock": v["bestblock"], "transactions": v["transactions"],
        "txouts": v["txouts"], "bogosize": v["bogosize"], "total_amount": v["total_amount"],
    })
}

#[test]
fn reindex_chainstate_rebuilds_the_same_set_from_the_stored_blocks() {
    let node = TestNode::start(&["-dbcache=4"]);
    let key = Key::from_seed(b"reindex chainstate");
    let address = key.address(0x6f);
    assert!(node.cli(&["generatetoaddress", "110", &address]).success());
    // Ten payments spending ten coinbases, mined: the set loses those coinbases and gains the payments.
    for height in 1..=10 {
        let tx = pay(&key, coinbase_of(&node, height), &key.p2pkh_script(), 1_000);
        assert!(node.cli(&["sendrawtransaction", &hex_of(&tx)]).success());
    }
    assert!(node.cli(&["generatetoaddress", "1", &address]).success());
    let before = set_info(&node);
    assert_eq!(before["height"], 111);
    assert_eq!(before["transactions"], 111 + 10 - 10, "111 coinbases and 10 payments, 10 coinbases spent");

    // With the option the coins start from nothing (the set is loaded at height 0) and the 111
    // stored blocks are connected again.
    let node = node.restart_with(&["-dbcache=4", "-reindex-chainstate"]);
    assert_eq!(loaded_at(&node), Some(0), "{}", node.output());
    wait_for("the rebuilt tip", DEADLINE, || (node.cli(&["getblockcount"]).ok().trim() == "111").then_some(()));
    assert_eq!(set_info(&node), before, "the rebuilt set");

    // The rebuilt set is the stored one: a plain restart loads it at its tip, unchanged.
    let node = node.restart_with(&["-dbcache=4"]);
    assert_eq!(loaded_at(&node), Some(111), "{}", node.output());
    assert_eq!(set_info(&node), before);
}

/// The height at which this start loaded the stored coins (its "chain state loaded" log line).
fn loaded_at(node: &TestNode) -> Option<u32> {
    let log = node.output();
    let line = log.lines().find(|l| l.contains("chain state loaded"))?;
    let at = line.find("height=")? + "height=".len();
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}
