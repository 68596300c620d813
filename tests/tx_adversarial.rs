//! The adversarial suite's transaction rows (operators-and-robustness.md §5.4, rows 25–28 and
//! 35–37): `getdata` abuse, announcement floods, a transaction announced and never delivered, orphan
//! floods, orphans that turn out invalid when their parent arrives, and a chain past the ancestor
//! limit — each while an honest peer keeps getting `pong` within 2 s.

mod common;

use std::time::Instant;

use bsv_relay::relay::txrelay::{MAX_TX_IN_FLIGHT_PER_PEER, TX_REQUEST_TIMEOUT_MS};
use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Hash256, InvItem, Message, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::adversary::Fixture;
use common::funds::{coinbase_of, mempool_has, pay, Coin};
use common::peer::{RawPeer, ReadResult};
use common::{wait_for, DEADLINE};

/// A txid nobody has.
fn unknown(i: u32, tag: &[u8]) -> Hash256 {
    Hash256::sha256d(&[tag, &i.to_le_bytes()[..]].concat())
}

/// `inv`/`getdata` payload with `count` items claimed and only ten present.
fn oversized_inventory(count: u16) -> Vec<u8> {
    let mut payload = vec![0xfd];
    payload.extend_from_slice(&count.to_le_bytes());
    payload.extend_from_slice(&[0; 36 * 10]);
    payload
}

/// Mines a block, so the node leaves initial block download and requests announced transactions.
fn leave_ibd(f: &Fixture) {
    assert!(f.node.cli(&["generatetoaddress", "1", &Key::from_seed(b"miner").address(0x6f)]).success());
}

/// Mines 101 blocks on the fixture's node to `key`: the coinbase of block 1 is then spendable.
fn fund(f: &Fixture, key: &Key) -> Coin {
    assert!(f.node.cli(&["generatetoaddress", "101", &key.address(0x6f)]).success());
    coinbase_of(&f.node, 1)
}

#[test]
fn row25_26_oversized_getdata_is_scored_and_unknown_transactions_get_notfound() {
    let mut f = Fixture::start(&[]);
    let mut a = f.attacker_after_handshake();
    // 1,000 transactions we do not have: one `notfound` lists them all, and it costs nothing.
    let asked: Vec<InvItem> = (0..1000).map(|i| InvItem::tx(unknown(i, b"getdata"))).collect();
    a.send(&Message::GetData(asked.clone()));
    let Message::NotFound(items) = a.expect(DEADLINE, |m| matches!(m, Message::NotFound(_))) else { unreachable!() };
    assert_eq!(items, asked);
    assert_eq!(f.attacker_banscore(), Some(0));
    // One item past the protoconf-derived maximum (58,254): +20, as for `inv` (row 23).
    a.send_command("getdata", &oversized_inventory(58_255));
    wait_for("banscore 20", DEADLINE, || (f.attacker_banscore() == Some(20)).then_some(()));
    f.wait_metric("bsv_relay_misbehavior_events_total", "reason=\"oversized_inv\"", 1.0);
    // The connection scored it (the relay never saw the message), and the reputation records it too.
    f.wait_metric("bsv_relay_reputation_events_total", "event=\"misbehaved\"", 1.0);
    f.assert_alive();
}

#[test]
fn row27_an_announcement_flood_is_requested_only_up_to_the_in_flight_limit() {
    let mut f = Fixture::start(&[]);
    let rss_kb = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    };
    leave_ibd(&f);
    let before = rss_kb(f.node.pid());
    let mut a = f.attacker_after_handshake();
    let mut requested = 0usize;
    let mut first_request: Option<Instant> = None;
    // Ten announcements of 50,000 new txids each; after each, a `getdata` marker whose `notfound`
    // comes after every request the announcement caused (one peer's messages are handled in order).
    for round in 0..10u32 {
        let inv: Vec<InvItem> = (0..50_000).map(|i| InvItem::tx(unknown(round * 50_000 + i, b"flood"))).collect();
        a.send(&Message::Inv(inv));
        let marker = InvItem::tx(unknown(round, b"marker"));
        a.send(&Message::GetData(vec![marker]));
        loop {
            match a.read(DEADLINE) {
                ReadResult::Message(Message::GetData(items)) => {
                    first_request.get_or_insert_with(Instant::now);
                    requested += items.len();
                }
                ReadResult::Message(Message::NotFound(items)) if items == vec![marker] => break,
                ReadResult::Message(Message::Ping(n)) => a.send(&Message::Pong(n)),
                ReadResult::Message(_) => {}
                other => panic!("the flooding peer lost its connection: {other:?}"),
            }
        }
        if round == 0 {
            assert_eq!(requested, MAX_TX_IN_FLIGHT_PER_PEER, "the first 50,000 fill the per-peer limit exactly");
        }
    }
    // Undelivered requests expire after TX_REQUEST_TIMEOUT_MS, freeing room for that many more.
    let windows = 1 + first_request.expect("requests").elapsed().as_millis() as usize / TX_REQUEST_TIMEOUT_MS as usize;
    assert!(requested <= windows * MAX_TX_IN_FLIGHT_PER_PEER, "{requested} requested in {windows} request windows");
    let grown_mb = rss_kb(f.node.pid()).saturating_sub(before) / 1024;
    assert!(grown_mb < 64, "500,000 announcements grew the node by {grown_mb} MB");
    assert_eq!(f.attacker_banscore(), Some(0), "announcing is not an offence");
    f.assert_alive();
}

#[test]
fn row28_a_transaction_announced_and_never_delivered_is_fetched_from_the_next_announcer() {
    let mut f = Fixture::start(&[]);
    let key = Key::from_seed(b"row 28");
    let tx = pay(&key, fund(&f, &key), &key.p2pkh_script(), 1000);
    let item = InvItem::tx(tx.txid());
    let mut withholder = f.attacker_after_handshake();
    withholder.send(&Message::Inv(vec![item]));
    withholder.expect(DEADLINE, |m| matches!(m, Message::GetData(items) if items.contains(&item)));
    // A second announcer: asked once the first request times out, and it delivers.
    let mut honest = RawPeer::connect(f.node.p2p_addr());
    honest.handshake();
    honest.send(&Message::Inv(vec![item]));
    honest.expect(DEADLINE, |m| matches!(m, Message::GetData(items) if items.contains(&item)));
    honest.send(&Message::Tx(tx.clone()));
    wait_for("the transaction in the mempool", DEADLINE, || {
        mempool_has(&f.node.cli(&["getrawmempool"]).json(), &tx.txid()).then_some(())
    });
    assert_eq!(f.attacker_banscore(), Some(0), "withholding is not an offence");
    f.assert_alive();
}

#[test]
fn row35_an_orphan_flood_stays_within_the_orphan_limit_and_leaves_with_its_peer() {
    let mut f = Fixture::start(&["-maxorphantxsize=1"]);
    leave_ibd(&f);
    let mut a = f.attacker_after_handshake();
    // 10,000 transactions of 263 bytes spending outputs nobody has: 2.6 MB of orphans offered to
    // a pool of 1 MB, which keeps about 3,800.
    for i in 0..10_000u32 {
        let tx = Transaction::from_fields(TxFields {
            version: 1,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: unknown(i, b"orphan parent"), vout: 0 },
                script_sig: Bytes::from([&[0x4c, 200][..], &[7; 200]].concat()),
                sequence: u32::MAX,
            }],
            outputs: vec![TxOut { value: 1000, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        });
        a.send(&Message::Tx(tx));
    }
    f.wait_metric("bsv_relay_tx_rejected_total", "reason=\"missing_inputs\"", 10_000.0);
    assert!(f.metric("bsv_relay_orphan_size_bytes", "") <= 1_000_000.0);
    assert!(f.metric("bsv_relay_orphans_evicted_total", "reason=\"limit\"") >= 6_000.0);
    assert!(f.metric("bsv_relay_orphan_transactions", "") >= 3_000.0, "the newest are kept");
    assert_eq!(f.attacker_banscore(), Some(0), "orphans are not an offence");
    drop(a);
    wait_for("the orphans to leave with their peer", DEADLINE, || {
        (f.metric("bsv_relay_orphan_transactions", "") == 0.0).then_some(())
    });
    assert!(f.metric("bsv_relay_orphans_evicted_total", "reason=\"peer_disconnected\"") >= 1.0);
    f.assert_alive();
}

#[test]
fn row36_orphans_that_fail_costly_scripts_when_their_parent_arrives_do_not_stall_the_node() {
    let mut f = Fixture::start(&[]);
    let key = Key::from_seed(b"row 36");
    let coin = fund(&f, &key);
    // The parent: 100 outputs, each a bare 1-of-20 multisig.
    let keys: Vec<[u8; 33]> = (0..20u8).map(|i| Key::from_seed(&[b'k', i]).pubkey()).collect();
    let mut multisig = vec![0x51];
    for k in &keys {
        multisig.push(33);
        multisig.extend_from_slice(k);
    }
    multisig.extend_from_slice(&[0x01, 20, 0xae]);
    let each = (coin.value - 10_000) / 100;
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: coin.outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: each, script_pubkey: Bytes::from(multisig) }; 100],
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), coin.value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
    let parent = Transaction::from_fields(fields);
    // Each child offers a well-formed signature of something else: CHECKMULTISIG tries it
    // against all 20 keys (20 verifications) and fails.
    let children: Vec<Transaction> = (0..100u32)
        .map(|vout| {
            let mut fields = TxFields {
                version: 1,
                inputs: vec![TxIn {
                    prev_out: OutPoint { txid: parent.txid(), vout },
                    script_sig: Bytes::new(),
                    sequence: u32::MAX,
                }],
                outputs: vec![TxOut { value: each - 1000, script_pubkey: Bytes::from(key.p2pkh_script()) }],
                lock_time: 0,
            };
            let wrong = key.sign(&fields, 0, &key.p2pkh_script(), each, SIGHASH_ALL_FORKID);
            fields.inputs[0].script_sig = Bytes::from([&[0x00u8, wrong.len() as u8][..], &wrong].concat());
            Transaction::from_fields(fields)
        })
        .collect();
    let mut a = f.attacker_after_handshake();
    for child in &children {
        a.send(&Message::Tx(child.clone()));
    }
    f.wait_metric("bsv_relay_orphan_transactions", "", 100.0);
    a.send(&Message::Tx(parent.clone()));
    // The parent is valid; every child is then validated and refused, and the sender banned.
    f.wait_metric("bsv_relay_tx_rejected_total", "reason=\"script\"", 100.0);
    assert!(a.closed_within(DEADLINE), "the peer that sent invalid transactions is disconnected");
    let pool = f.node.cli(&["getrawmempool"]).json();
    assert!(mempool_has(&pool, &parent.txid()));
    assert!(children.iter().all(|c| !mempool_has(&pool, &c.txid())));
    assert!(f.node.cli(&["listbanned"]).json().to_string().contains("127.0.0.2"));
    f.assert_alive();
}

#[test]
fn row37_a_chain_past_the_ancestor_limit_is_refused_without_penalty() {
    let mut f = Fixture::start(&["-limitancestorcount=3"]);
    let key = Key::from_seed(b"row 37");
    let mut coin = fund(&f, &key);
    let mut chain = Vec::new();
    for _ in 0..5 {
        let tx = pay(&key, coin, &key.p2pkh_script(), 1000);
        coin = Coin { outpoint: OutPoint { txid: tx.txid(), vout: 0 }, value: coin.value - 1000 };
        chain.push(tx);
    }
    let mut a = f.attacker_after_handshake();
    for tx in &chain {
        a.send(&Message::Tx(tx.clone()));
    }
    // The fourth's unconfirmed ancestor chain is 3 high, the limit: refused as policy, told with a
    // `reject`; the fifth then lacks its parent, which was refused, so it is dropped too.
    let refused = chain[3].txid();
    let Message::Reject(r) = a.expect(DEADLINE, |m| matches!(m, Message::Reject(r) if r.hash == Some(refused))) else {
        unreachable!()
    };
    assert_eq!((r.code, r.reason.as_str()), (0x40, "too-long-mempool-chain"));
    let pool = f.node.cli(&["getrawmempool"]).json();
    assert!(chain[..3].iter().all(|t| mempool_has(&pool, &t.txid())));
    assert!(!mempool_has(&pool, &refused) && !mempool_has(&pool, &chain[4].txid()));
    assert_eq!(f.attacker_banscore(), Some(0), "a policy refusal");
    f.assert_alive();
}
