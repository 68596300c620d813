//! Transaction relay with a real SV Node v1.0.13, in a line SV Node — A — B of bsv-relay nodes:
//! bsv-relay mines blocks SV Node accepts; SV Node's wallet transactions reach B; a transaction
//! submitted at B is mined by SV Node; two conflicting transactions sent at once to A and to SV Node
//! each stay where they were first seen; invalid transactions from a raw peer are punished, banned
//! and never reach SV Node, while a policy failure is not punished; a refused transaction gets the
//! same `reject` from both nodes, and `sendrawtransaction`'s fee guard the same error; SV Node's ban
//! score for A stays 0.

mod common;

use bsv_relay::wallet::Key;
use bsv_relay::wire::{Decodable, Hash256, Message, OutPoint, Transaction, TxFields};
use bytes::Bytes;
use common::funds::{coinbase_of, hex_of, mempool_has, pay, Coin};
use common::peer::RawPeer;
use common::svnode::SvNode;
use common::{wait_for, TestNode, DEADLINE};

#[test]
fn transactions_relay_between_sv_node_and_two_bsv_relay_nodes() {
    let sv = SvNode::start(false, &[]);
    let metrics_a = format!("-metricsbind=127.0.0.1:{}", common::free_port());
    let a = TestNode::start(&[&format!("-connect=127.0.0.1:{}", sv.port), "-listen=1", &metrics_a]);
    let b = TestNode::start(&[&format!("-connect=127.0.0.1:{}", a.p2pport)]);
    wait_for("A to connect to SV Node", DEADLINE, || (sv.peers_with_ua("/bsv-relay:").len() == 1).then_some(()));

    // A mines: one block to SV Node's wallet, then 101 to our key; SV Node accepts them all.
    let key = Key::from_seed(b"tx relay interop");
    let sv_address = sv.cli(&["getnewaddress"]).ok().trim().to_string();
    assert!(a.cli(&["generatetoaddress", "1", &sv_address]).success());
    let mined = a.cli(&["generatetoaddress", "101", &key.address(0x6f)]);
    assert!(mined.success(), "{mined:?}");
    let a_tip = a.cli(&["getbestblockhash"]).ok().trim().to_string();
    wait_for("SV Node to accept A's blocks", DEADLINE, || {
        (sv.cli(&["getbestblockhash"]).ok().trim() == a_tip).then_some(())
    });
    wait_for("B to sync", DEADLINE, || (b.cli(&["getbestblockhash"]).ok().trim() == a_tip).then_some(()));

    // (b, c) A payment submitted at B reaches SV Node through A and is mined by SV Node.
    let coins: Vec<Coin> = (2..=4).map(|h| coinbase_of(&a, h)).collect();
    let tx1 = pay(&key, coins[0], &key.p2pkh_script(), 1000);
    assert_eq!(b.cli(&["sendrawtransaction", &hex_of(&tx1)]).ok().trim(), tx1.txid().to_string());
    wait_for("tx1 to reach SV Node", DEADLINE, || {
        mempool_has(&sv.cli(&["getrawmempool"]).json(), &tx1.txid()).then_some(())
    });
    assert!(mempool_has(&a.cli(&["getrawmempool"]).json(), &tx1.txid()));
    let sv_mined = sv.cli(&["generatetoaddress", "1", &sv_address]);
    assert!(sv_mined.success());
    let sv_block = sv.cli(&["getbestblockhash"]).ok().trim().to_string();
    assert!(sv.cli(&["getblock", &sv_block, "1"]).json()["tx"]
        .as_array()
        .expect("txs")
        .iter()
        .any(|t| t.as_str() == Some(&tx1.txid().to_string())));
    wait_for("B to follow SV Node's block and drop tx1", DEADLINE, || {
        (b.cli(&["getbestblockhash"]).ok().trim() == sv_block
            && !mempool_has(&b.cli(&["getrawmempool"]).json(), &tx1.txid()))
        .then_some(())
    });

    // (a, c) SV Node's wallet pays: the transaction reaches A and B.
    let to = sv.cli(&["getnewaddress"]).ok().trim().to_string();
    let sent = sv.cli(&["sendtoaddress", &to, "1.5"]);
    assert!(sent.success(), "{sent:?}");
    let wallet_txid: Hash256 = sent.ok().trim().parse().expect("txid");
    wait_for("SV Node's wallet transaction to reach B", DEADLINE, || {
        mempool_has(&b.cli(&["getrawmempool"]).json(), &wallet_txid).then_some(())
    });
    let entry = a.cli(&["getmempoolentry", &wallet_txid.to_string()]).json();
    assert!(entry["size"].as_u64().is_some_and(|s| s > 0), "{entry}");

    // (d) Two spends of one coin, sent at once to A and to SV Node.
    let x = pay(&key, coins[1], &key.p2pkh_script(), 1000);
    let y = pay(&key, coins[1], &Key::from_seed(b"other").p2pkh_script(), 2000);
    let (x_hex, y_hex) = (hex_of(&x), hex_of(&y));
    let (to_a, to_sv) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.cli(&["sendrawtransaction", &x_hex]));
        let hs = s.spawn(|| sv.cli(&["sendrawtransaction", &y_hex]));
        (ha.join().expect("A call"), hs.join().expect("SV call"))
    });
    // A marker sent after both through A: once SV Node has it, anything A relayed before it arrived too.
    let marker = pay(&key, coins[2], &key.p2pkh_script(), 1000);
    assert!(a.cli(&["sendrawtransaction", &hex_of(&marker)]).success());
    wait_for("the marker to reach SV Node", DEADLINE, || {
        mempool_has(&sv.cli(&["getrawmempool"]).json(), &marker.txid()).then_some(())
    });
    let (a_pool, sv_pool) = (a.cli(&["getrawmempool"]).json(), sv.cli(&["getrawmempool"]).json());
    for (node, call, pool, mine, other) in [("A", &to_a, &a_pool, &x, &y), ("SV Node", &to_sv, &sv_pool, &y, &x)] {
        if call.success() {
            assert!(mempool_has(pool, &mine.txid()), "{node} keeps the spend it accepted first");
            assert!(!mempool_has(pool, &other.txid()), "{node} never takes the conflicting spend");
        } else {
            assert!(call.stderr.contains("txn-mempool-conflict"), "{node}: {call:?}");
        }
    }
    assert!(to_a.success() || to_sv.success(), "one of the two spends was first somewhere");

    // (e) A raw peer from 127.0.0.2 feeds A invalid transactions.
    let coin = coins[2];
    let marker_coin = Coin { outpoint: OutPoint { txid: marker.txid(), vout: 0 }, value: coin.value - 1000 };
    let mut bad_sig = pay(&key, marker_coin, &key.p2pkh_script(), 1000);
    let mut f: TxFields = (*bad_sig).clone();
    let mut script = f.inputs[0].script_sig.to_vec();
    script[10] ^= 1;
    f.inputs[0].script_sig = Bytes::from(script);
    bad_sig = Transaction::from_fields(f);
    let mut dup: TxFields = (*pay(&key, marker_coin, &key.p2pkh_script(), 1000)).clone();
    dup.inputs.push(dup.inputs[0].clone());
    let dup = Transaction::from_fields(dup);
    let overspend = pay(&key, Coin { value: marker_coin.value + 1_000_000, ..marker_coin }, &key.p2pkh_script(), 1000);

    // A policy failure first, from 127.0.0.3: a second spend of the marker's coin conflicts; no penalty.
    let conflict = pay(&key, coin, &Key::from_seed(b"third").p2pkh_script(), 3000);
    let mut polite = RawPeer::connect_from(a.p2p_addr(), Some("127.0.0.3".parse().expect("ip")));
    polite.handshake();
    polite.send(&Message::Tx(conflict.clone()));
    let mut evil = RawPeer::connect_from(a.p2p_addr(), Some("127.0.0.2".parse().expect("ip")));
    evil.handshake();
    for tx in [&bad_sig, &dup, &overspend] {
        evil.send(&Message::Tx(Transaction::from_slice(&hex::decode(hex_of(tx)).expect("hex")).expect("tx")));
    }
    assert!(evil.closed_within(DEADLINE), "the peer sending invalid transactions is disconnected");
    let banned = a.cli(&["listbanned"]).json();
    assert!(banned.to_string().contains("127.0.0.2"), "{banned}");
    assert!(!banned.to_string().contains("127.0.0.3"), "a policy failure is not punished: {banned}");
    // Another marker through A after the invalid ones: once it is at SV Node, none of them is.
    // tx1's output, confirmed in SV Node's block.
    let coin3 = Coin { outpoint: OutPoint { txid: tx1.txid(), vout: 0 }, value: coins[0].value - 1000 };
    let marker2 = pay(&key, coin3, &key.p2pkh_script(), 1000);
    let sent2 = a.cli(&["sendrawtransaction", &hex_of(&marker2)]);
    assert!(sent2.success(), "{sent2:?}");
    wait_for("marker 2 to reach SV Node", DEADLINE, || {
        mempool_has(&sv.cli(&["getrawmempool"]).json(), &marker2.txid()).then_some(())
    });
    let sv_pool = sv.cli(&["getrawmempool"]).json();
    for tx in [&bad_sig, &dup, &overspend, &conflict] {
        assert!(!mempool_has(&sv_pool, &tx.txid()), "{} must not reach SV Node", tx.txid());
    }
    assert!(polite.try_ping(DEADLINE).is_some(), "the polite peer is still connected");
    assert!(a.metric("bsv_relay_tx_rejected_total", "reason=\"script\"") >= 1.0);
    assert!(a.metric("bsv_relay_tx_accepted_total", "source=\"p2p\"") >= 1.0);

    // A refused transaction earns its sender SV Node's `reject`, identical from both nodes: a
    // spend of an immature coinbase (code 0x10, a policy failure: no score).
    let young = coinbase_of(&a, 102);
    let premature = pay(&key, young, &key.p2pkh_script(), 1000);
    let reject_from = |addr: std::net::SocketAddr| {
        let mut peer = RawPeer::connect(addr);
        peer.send(&common::peer::version_msg(common::peer::rand_nonce()));
        peer.expect(DEADLINE, |m| matches!(m, Message::Version(_)));
        peer.expect(DEADLINE, |m| matches!(m, Message::Verack));
        peer.send(&Message::Verack);
        peer.send(&Message::Tx(premature.clone()));
        let reject = peer.expect(DEADLINE, |m| matches!(m, Message::Reject(_)));
        assert!(peer.try_ping(DEADLINE).is_some(), "still connected after a policy failure");
        reject
    };
    let ours = reject_from(a.p2p_addr());
    let theirs = reject_from(format!("127.0.0.1:{}", sv.port).parse().expect("addr"));
    assert_eq!(ours, theirs, "SV Node's reject, field for field");
    let Message::Reject(r) = ours else { unreachable!() };
    assert_eq!((r.message.as_str(), r.code, r.hash), ("tx", 0x10, Some(premature.txid())));

    // A mines the mempool: SV Node accepts the block with our transactions.
    let before = a.cli(&["getrawmempool"]).json();
    assert!(mempool_has(&before, &marker2.txid()));
    assert!(a.cli(&["generatetoaddress", "1", &key.address(0x6f)]).success());
    let a_tip = a.cli(&["getbestblockhash"]).ok().trim().to_string();
    let block = a.cli(&["getblock", &a_tip, "1"]).json();
    assert!(block["tx"].to_string().contains(&marker2.txid().to_string()), "{block}");
    wait_for("SV Node to accept A's block", DEADLINE, || {
        (sv.cli(&["getbestblockhash"]).ok().trim() == a_tip).then_some(())
    });
    wait_for("the mined transactions to leave SV Node's mempool", DEADLINE, || {
        (!mempool_has(&sv.cli(&["getrawmempool"]).json(), &marker2.txid())).then_some(())
    });

    // sendrawtransaction's fee guard (-maxtxfee, 0.1 BSV; height 5's coinbase is mature now): a 25 BSV fee is refused by both nodes
    // with the same error; with allowhighfees it is accepted and relayed (peers have no guard).
    let rich = coinbase_of(&a, 5);
    let greedy = pay(&key, rich, &key.p2pkh_script(), rich.value / 2);
    let (ours, theirs) =
        (a.cli(&["sendrawtransaction", &hex_of(&greedy)]), sv.cli(&["sendrawtransaction", &hex_of(&greedy)]));
    assert!(!ours.success() && ours.stderr.contains("256: absurdly-high-fee"), "{ours:?}");
    assert_eq!(ours.stderr, theirs.stderr, "the same error as SV Node");
    assert_eq!(a.cli(&["sendrawtransaction", &hex_of(&greedy), "true"]).ok().trim(), greedy.txid().to_string());
    wait_for("the high-fee transaction to reach SV Node", DEADLINE, || {
        mempool_has(&sv.cli(&["getrawmempool"]).json(), &greedy.txid()).then_some(())
    });

    let peers = sv.peers_with_ua("/bsv-relay:");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["banscore"], 0, "SV Node never scored A");
    let a_peers = a.cli(&["getpeerinfo"]).json();
    let sv_peer = a_peers
        .as_array()
        .expect("peers")
        .iter()
        .find(|p| p["subver"].as_str().is_some_and(|s| s.contains("Bitcoin SV")))
        .expect("SV peer");
    assert!(sv_peer["reputation"]["txs_first"].as_u64().unwrap_or(0) >= 1, "{sv_peer}");
}
