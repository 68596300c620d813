//! Withholding (issue #16): a raw peer announces transactions first and never delivers them; an
//! honest raw peer announces the same transactions a moment later and delivers. The first few
//! cost the node a full request timeout each; after that the withholder is a suspect, and the
//! honest announcer is asked as soon as it announces, before the withholder's request has expired.
//! The same run with `-peerreputation=0` shows the difference: there the honest peer is asked only
//! after the withholder's request expired. Neither side is punished: withholding is not an offence.

mod common;

use bsv_relay::relay::txrelay::WITHHELD_SUSPECT;
use bsv_relay::wallet::Key;
use bsv_relay::wire::{InvItem, Message, Transaction};
use common::adversary::Fixture;
use common::funds::{coinbase_of, mempool_has, pay};
use common::peer::RawPeer;
use common::{wait_for, DEADLINE};

const WITHHELD: &str = "event=\"withheld\"";
const EVENTS: &str = "bsv_relay_reputation_events_total";

fn asked_for(item: InvItem) -> impl FnMut(&Message) -> bool {
    move |m| matches!(m, Message::GetData(items) if items.contains(&item))
}

/// Runs the scenario; returns the withheld-announcement count at the moment the honest peer was
/// asked for the last transaction, and the withholder's reputation score then.
fn scenario(extra: &[&str]) -> (f64, f64) {
    let mut f = Fixture::start(extra);
    let key = Key::from_seed(b"withholding");
    let rounds = WITHHELD_SUSPECT + 1;
    assert!(f.node.cli(&["generatetoaddress", &(100 + rounds).to_string(), &key.address(0x6f)]).success());
    let txs: Vec<Transaction> =
        (1..=rounds).map(|h| pay(&key, coinbase_of(&f.node, h), &key.p2pkh_script(), 1000)).collect();
    let mut withholder = f.attacker_after_handshake();
    let mut at_last_ask = 0.0;
    for (i, tx) in txs.iter().enumerate() {
        // A new honest peer each round: one that has already delivered would be asked at once
        // anyway (a peer that never delivered yields to one that has); the withholder's record
        // alone must make the difference.
        let mut honest = RawPeer::connect(f.node.p2p_addr());
        honest.handshake();
        let item = InvItem::tx(tx.txid());
        withholder.send(&Message::Inv(vec![item]));
        withholder.expect(DEADLINE, asked_for(item));
        honest.send(&Message::Inv(vec![item]));
        honest.expect(DEADLINE, asked_for(item));
        if i + 1 == txs.len() {
            at_last_ask = f.metric(EVENTS, WITHHELD);
        } else {
            // The node moved on because the withholder's request expired: that is counted.
            f.wait_metric(EVENTS, WITHHELD, (i + 1) as f64);
        }
        honest.send(&Message::Tx(tx.clone()));
        wait_for("the transaction in the mempool", DEADLINE, || {
            mempool_has(&f.node.cli(&["getrawmempool"]).json(), &tx.txid()).then_some(())
        });
    }
    let peers = f.node.cli(&["getpeerinfo"]).json();
    let score = peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["addr"].as_str().is_some_and(|s| s.starts_with("127.0.0.2:"))))
        .and_then(|p| p["reputation"]["score"].as_f64())
        .expect("the withholder's reputation");
    assert_eq!(f.attacker_banscore(), Some(0), "withholding is not an offence");
    f.assert_alive();
    (at_last_ask, score)
}

#[test]
fn a_withholder_is_passed_over_without_waiting_for_the_timeout() {
    let (withheld, score) = scenario(&[]);
    assert_eq!(withheld, f64::from(WITHHELD_SUSPECT), "asked before the withholder's request expired");
    // Its record is negative (the live part, uptime and ping, may lift it by a few points).
    assert!(score < 0.0, "score {score}");
}

#[test]
fn with_reputation_off_the_node_waits_for_each_timeout() {
    let (withheld, score) = scenario(&["-peerreputation=0"]);
    assert!(withheld > f64::from(WITHHELD_SUSPECT), "asked only after the withholder's request expired");
    assert_eq!(score, 0.0);
}
