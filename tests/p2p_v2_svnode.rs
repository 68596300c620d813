//! v2 with SV Node v1.0.13, which has no v2 and does not advertise NODE_P2P_V2: when it dials us,
//! our inbound detection serves it v1; when we dial it, we open with v1 and never send it a v2
//! key (SV Node bans any address that sends it bytes that are not its magic); when an operator
//! names it as a v2 peer anyway, our v2 attempt is closed before its key, we fall back to v1 once
//! and remember it. Its ban score for us stays 0 and relay works throughout.

mod common;

use bsv_relay::wallet::Key;
use common::funds::{coinbase_of, hex_of, mempool_has, pay};
use common::svnode::SvNode;
use common::{free_port, wait_for, TestNode, DEADLINE};
use serde_json::Value;

const OUR_UA: &str = "bsv-relay";
const SV_UA: &str = "Bitcoin SV";

fn our_peers_with_ua(node: &TestNode, ua: &str) -> Vec<Value> {
    let all = node.cli(&["getpeerinfo"]).json();
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["subver"].as_str().is_some_and(|s| s.contains(ua)))
        .cloned()
        .collect()
}

#[test]
fn sv_node_and_bsv_relay_speak_v1_both_ways_and_a_false_v2_naming_falls_back_once() {
    // Whitelisted: SV Node bans an address that sends it a v2 key (wrong magic), which the
    // fallback case below does on purpose; a whitelisted address may still connect.
    let sv = SvNode::start(true, &["-whitelist=::1"]);
    let metrics = free_port();
    let ours = TestNode::start(&["-listen=1", &format!("-metricsbind=127.0.0.1:{metrics}")]);
    let fallbacks = || ours.metric("bsv_relay_v2_fallbacks_total", "");

    // SV Node dials us: told apart by its first bytes and served v1.
    assert!(sv.cli(&["addnode", &format!("127.0.0.1:{}", ours.p2pport), "onetry"]).success());
    let inbound = wait_for("SV Node's inbound connection", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).into_iter().find(|p| p["inbound"] == true)
    });
    assert_eq!(inbound["transport_protocol_type"], "v1");
    assert_eq!(inbound["session_id"], "");

    // We dial SV Node: it does not advertise v2, so we open with v1 and nothing falls back.
    assert!(ours.cli(&["addnode", &format!("127.0.0.1:{}", sv.port), "add"]).success());
    let outbound = wait_for("our outbound connection to SV Node", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).into_iter().find(|p| p["inbound"] == false)
    });
    assert_eq!(outbound["transport_protocol_type"], "v1");
    assert_eq!(fallbacks(), 0.0);
    let services = u64::from_str_radix(outbound["services"].as_str().expect("services"), 16).expect("hex");
    assert_eq!(services & (1 << 11), 0, "SV Node does not advertise NODE_P2P_V2");

    // Relay works over both: a transaction we accept reaches SV Node.
    let key = Key::from_seed(b"v2 svnode");
    assert!(ours.cli(&["generatetoaddress", "101", &key.address(0x6f)]).success());
    let tip = ours.cli(&["getbestblockhash"]).ok().trim().to_string();
    wait_for("SV Node at our tip", DEADLINE, || (sv.cli(&["getbestblockhash"]).ok().trim() == tip).then_some(()));
    let tx = pay(&key, coinbase_of(&ours, 1), &key.p2pkh_script(), 1000);
    assert!(ours.cli(&["sendrawtransaction", &hex_of(&tx)]).success());
    wait_for("the transaction in SV Node's mempool", DEADLINE, || {
        mempool_has(&sv.json(&["getrawmempool"]), &tx.txid()).then_some(())
    });

    // An operator names SV Node's IPv6 address as a v2 peer: SV Node closes our key unanswered,
    // we dial again with v1 at once, and remember it.
    let v6 = format!("[::1]:{}", sv.port);
    assert!(ours.cli(&["addnode", &v6, "onetry", "true"]).success());
    wait_for("one v1 fallback", DEADLINE, || (fallbacks() == 1.0).then_some(()));
    let over_v6 = wait_for("the v1 connection after the fallback", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).into_iter().find(|p| p["addr"] == v6.as_str())
    });
    assert_eq!(over_v6["transport_protocol_type"], "v1");
    assert!(ours.cli(&["disconnectnode", &v6]).success());
    wait_for("the IPv6 connection closed", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).iter().all(|p| p["addr"] != v6.as_str()).then_some(())
    });
    // Named as v2 again: the address is remembered as v1-only, so no second attempt.
    assert!(ours.cli(&["addnode", &v6, "onetry", "true"]).success());
    wait_for("the second connection, over v1", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).into_iter().find(|p| p["addr"] == v6.as_str())
    });
    assert_eq!(fallbacks(), 1.0, "remembered: no second v2 attempt");

    // SV Node never scored us.
    let theirs = sv.peers_with_ua(OUR_UA);
    assert!(!theirs.is_empty() && theirs.iter().all(|p| p["banscore"] == 0), "{theirs:?}");
    // What the v2 key cost: SV Node banned the address outright (wrong magic), which only its
    // whitelist let us past. This is why we never send SV Node a v2 key unless told to.
    let banned = sv.json(&["listbanned"]);
    assert!(banned.as_array().is_some_and(|b| b.iter().any(|e| e["address"] == "::1/128")), "{banned}");
}

#[test]
fn an_address_that_falsely_advertises_v2_falls_back_once_and_is_remembered() {
    let sv = SvNode::start(true, &["-whitelist=::1"]);
    // Our address book says SV Node's address speaks v2 (as a lying or mistaken gossip source
    // would): the automatic outbound connection opens with v2.
    let dir = common::TempDir::new();
    std::fs::create_dir_all(dir.0.join("regtest")).expect("netdir");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let book = serde_json::json!({
        "version": 1,
        "entries": [[format!("[::1]:{}", sv.port), {
            "services": 0x821, "last_seen": now, "source": "::1", "attempts": 0, "last_success": 0
        }]]
    });
    std::fs::write(dir.0.join("regtest/peers.json"), book.to_string()).expect("seed the book");
    let metrics = free_port();
    let ours = TestNode::start_in(dir, common::Auth::Password, &[&format!("-metricsbind=127.0.0.1:{metrics}")]);
    wait_for("one v1 fallback", DEADLINE, || (ours.metric("bsv_relay_v2_fallbacks_total", "") == 1.0).then_some(()));
    let peer = wait_for("the v1 connection to SV Node", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).into_iter().find(|p| p["inbound"] == false)
    });
    assert_eq!(peer["transport_protocol_type"], "v1");
    // Remembered across a restart: the book marks the address v1-only, and the next connection
    // opens with v1 at once.
    let netdir = ours.netdir();
    let ours = ours.restart();
    let saved = std::fs::read_to_string(netdir.join("peers.json")).expect("saved book");
    assert!(saved.contains("\"v1_only\":true"), "{saved}");
    let peer = wait_for("the connection after the restart", DEADLINE, || {
        our_peers_with_ua(&ours, SV_UA).into_iter().find(|p| p["inbound"] == false)
    });
    assert_eq!(peer["transport_protocol_type"], "v1");
    assert_eq!(ours.metric("bsv_relay_v2_fallbacks_total", ""), 0.0, "no v2 attempt after the restart");
    let theirs = sv.peers_with_ua(OUR_UA);
    assert!(theirs.iter().all(|p| p["banscore"] == 0), "{theirs:?}");
}
