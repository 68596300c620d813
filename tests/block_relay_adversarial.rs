//! Hostile compact block input against a bsv-relay node, one raw peer per row (each from its own
//! loopback address, so a ban in one row does not hide the next), while an honest peer keeps
//! getting pongs. Every row checks the score against SV Node's (`invalid-cmpctblk`,
//! `invalid-cmpctblk-txns`, `out-of-bound-tx-index` 100; a block rebuilt from a compact block that
//! is invalid, or whose merkle root is wrong after reconstruction, 0) and that the honest block is
//! accepted afterwards. The first row is the honest path: one missing transaction fetched in one
//! `getblocktxn` round trip.

mod common;

use bsv_relay::chain::params::REGTEST;
use bsv_relay::relay::compact::{compact_block, compact_block_with_prefilled};
use bsv_relay::wallet::Key;
use bsv_relay::wire::inv_type;
use bsv_relay::wire::msg::{BlockTxn, GetBlockTxn, PrefilledTx};
use bsv_relay::wire::{Block, BlockHeader, Decodable, Message, Transaction};
use common::adversary::Fixture;
use common::blocks;
use common::funds::{coinbase_of, hex_of, pay, Coin};
use common::peer::RawPeer;
use common::{wait_for, DEADLINE};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const REPLY: Duration = Duration::from_secs(10);

fn key() -> Key {
    Key::from_seed(b"block relay adversarial")
}

fn tip(f: &Fixture) -> (u32, BlockHeader) {
    let hash = f.node.cli(&["getbestblockhash"]).ok().trim().to_string();
    let raw = hex::decode(f.node.cli(&["getblock", &hash, "0"]).ok().trim()).expect("hex");
    let block = Block::from_slice(&raw).expect("block");
    (f.node.cli(&["getblockcount"]).ok().trim().parse().expect("height"), block.header)
}

/// A regtest block on `prev` (at `height - 1`) whose coinbase claims `extra` satoshis too many.
fn block_on(prev: &BlockHeader, height: u32, txs: Vec<Transaction>, extra: i64, tag: u8) -> Block {
    let mut transactions = vec![blocks::coinbase(height, Some(tag), &[REGTEST.subsidy(height) + extra])];
    transactions.extend(txs);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    blocks::solved_block(prev, now.max(prev.time + 1), transactions)
}

fn attacker(f: &Fixture, last_octet: u8) -> RawPeer {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet));
    let mut p = RawPeer::connect_from(f.node.p2p_addr(), Some(ip));
    p.handshake();
    p
}

fn banscore(f: &Fixture, last_octet: u8) -> Option<u64> {
    let prefix = format!("127.0.0.{last_octet}:");
    let peers = f.node.cli(&["getpeerinfo"]).json();
    peers.as_array()?.iter().find(|p| p["addr"].as_str().is_some_and(|a| a.starts_with(&prefix)))?["banscore"].as_u64()
}

fn banned(f: &Fixture, last_octet: u8) -> bool {
    let list = f.node.cli(&["listbanned"]).json();
    let ip = format!("127.0.0.{last_octet}/32");
    list.as_array().is_some_and(|a| a.iter().any(|b| b["address"].as_str() == Some(&ip)))
}

fn wait_tip(f: &Fixture, hash: &bsv_relay::wire::BlockHash) {
    let want = hash.to_string();
    wait_for("the block to become the tip", DEADLINE, || {
        (f.node.cli(&["getbestblockhash"]).ok().trim() == want).then_some(())
    });
}

fn is_getdata_block(m: &Message, hash: &bsv_relay::wire::BlockHash) -> bool {
    matches!(m, Message::GetData(items) if items.iter().any(|i| i.kind == inv_type::BLOCK && i.hash == *hash))
}

#[test]
fn hostile_compact_blocks_are_scored_as_sv_node_scores_them_and_honest_blocks_still_get_in() {
    let mut f = Fixture::start(&[]);
    let key = key();
    let address = key.address(0x6f);
    assert!(f.node.cli(&["generatetoaddress", "110", &address]).success());
    let mut coins: Vec<Coin> = (1..=10).map(|h| coinbase_of(&f.node, h)).collect();
    let mut spend = || {
        let coin = coins.remove(0);
        pay(&key, coin, &key.p2pkh_script(), 1000)
    };

    // 1. Honest: two payments in the pool, a third only in the block; one getblocktxn for it.
    let (in_pool, missing) = (vec![spend(), spend()], spend());
    for tx in &in_pool {
        assert!(f.node.cli(&["sendrawtransaction", &hex_of(tx)]).success());
    }
    let (height, prev) = tip(&f);
    let mut txs = in_pool.clone();
    txs.push(missing.clone());
    let block = block_on(&prev, height + 1, txs, 0, 1);
    let mut honest = attacker(&f, 3);
    honest.send(&Message::CmpctBlock(compact_block(&block, 7).unwrap()));
    let req = honest.expect(REPLY, |m| matches!(m, Message::GetBlockTxn(_)));
    let Message::GetBlockTxn(req) = req else { unreachable!() };
    assert_eq!(req, GetBlockTxn { block_hash: block.hash(), index_deltas: vec![3] }, "only the missing one");
    honest.send(&Message::BlockTxn(BlockTxn { block_hash: block.hash(), transactions: vec![missing] }));
    wait_tip(&f, &block.hash());
    assert_eq!(banscore(&f, 3), Some(0));

    // 2. A blocktxn with the wrong transaction: the merkle root does not match, so the full block
    // is fetched from the same peer (SV Node: READ_STATUS_FAILED, no score), and accepted.
    let (height, prev) = tip(&f);
    let (a, b) = (spend(), spend());
    let block = block_on(&prev, height + 1, vec![a.clone()], 0, 2);
    let mut p = attacker(&f, 4);
    p.send(&Message::CmpctBlock(compact_block(&block, 8).unwrap()));
    p.expect(REPLY, |m| matches!(m, Message::GetBlockTxn(_)));
    p.send(&Message::BlockTxn(BlockTxn { block_hash: block.hash(), transactions: vec![b.clone()] }));
    p.expect(REPLY, |m| is_getdata_block(m, &block.hash()));
    assert_eq!(banscore(&f, 4), Some(0));
    p.send(&Message::Block(block.clone()));
    wait_tip(&f, &block.hash());

    // 3. A blocktxn with the wrong number of transactions: "invalid-cmpctblk-txns", 100.
    let (height, prev) = tip(&f);
    let block = block_on(&prev, height + 1, vec![b.clone()], 0, 3);
    let mut p = attacker(&f, 5);
    p.send(&Message::CmpctBlock(compact_block(&block, 9).unwrap()));
    p.expect(REPLY, |m| matches!(m, Message::GetBlockTxn(_)));
    p.send(&Message::BlockTxn(BlockTxn { block_hash: block.hash(), transactions: vec![] }));
    wait_for("the wrong count to cost 100", DEADLINE, || banned(&f, 5).then_some(()));
    f.wait_metric("bsv_relay_misbehavior_events_total", "reason=\"invalid_blocktxn\"", 1.0);
    // The honest block, from an honest peer, still gets in.
    let mut h = attacker(&f, 6);
    h.send(&Message::Block(block.clone()));
    wait_tip(&f, &block.hash());

    // 4. A compact block whose merkle root is wrong after reconstruction (the genuine header with
    // another coinbase prefilled, as a short-id collision would give): not an offence, the full
    // block is asked for, and the genuine block is accepted.
    let (height, prev) = tip(&f);
    let c = spend();
    assert!(f.node.cli(&["sendrawtransaction", &hex_of(&c)]).success());
    let honest_block = block_on(&prev, height + 1, vec![c.clone()], 0, 4);
    let other = block_on(&prev, height + 1, vec![c.clone()], 0, 5);
    let lying = Block::new(honest_block.header, other.transactions);
    assert_eq!(lying.hash(), honest_block.hash());
    let mut p = attacker(&f, 7);
    p.send(&Message::CmpctBlock(compact_block(&lying, 10).unwrap()));
    p.expect(REPLY, |m| is_getdata_block(m, &honest_block.hash()));
    assert_eq!(banscore(&f, 7), Some(0));
    h.send(&Message::Block(honest_block.clone()));
    wait_tip(&f, &honest_block.hash());

    // 5. An invalid block announced high-bandwidth (its coinbase claims one satoshi too many, which
    // only full validation finds): rebuilt, forwarded at once to a high-bandwidth listener (relay
    // before validation, as BIP152), refused, not scored (SV Node, BIP152). A second invalid block
    // from the same peer is not forwarded before validation; the valid block gets in and is
    // announced after validation, and a listener without high-bandwidth mode only ever sees it.
    let (height, prev) = tip(&f);
    let bad = block_on(&prev, height + 1, vec![], 1, 6);
    let bad2 = block_on(&prev, height + 1, vec![], 2, 9);
    let good = block_on(&prev, height + 1, vec![], 0, 7);
    let sendcmpct_seen = f.metric("bsv_relay_p2p_messages_received_total", "command=\"sendcmpct\"");
    let mut hb = attacker(&f, 11);
    hb.send(&Message::SendCmpct(bsv_relay::wire::msg::SendCmpct { announce: true, version: 1 }));
    f.wait_metric("bsv_relay_p2p_messages_received_total", "command=\"sendcmpct\"", sendcmpct_seen + 1.0);
    let mut p = attacker(&f, 8);
    p.send(&Message::CmpctBlock(compact_block(&bad, 11).unwrap()));
    let forwarded = hb.expect(REPLY, |m| matches!(m, Message::CmpctBlock(_)));
    assert!(
        matches!(&forwarded, Message::CmpctBlock(c) if c.header.hash() == bad.hash()),
        "forwarded before validation"
    );
    f.wait_metric("bsv_relay_blocks_received_total", "result=\"invalid\"", 1.0);
    assert_eq!(banscore(&f, 8), Some(0));
    assert_ne!(f.node.cli(&["getbestblockhash"]).ok().trim(), bad.hash().to_string());
    p.send(&Message::CmpctBlock(compact_block(&bad2, 14).unwrap()));
    f.wait_metric("bsv_relay_blocks_received_total", "result=\"invalid\"", 2.0);
    assert_eq!(banscore(&f, 8), Some(0));
    p.send(&Message::CmpctBlock(compact_block(&good, 12).unwrap()));
    wait_tip(&f, &good.hash());
    let next = hb.expect(REPLY, |m| matches!(m, Message::CmpctBlock(_)));
    assert!(
        matches!(&next, Message::CmpctBlock(c) if c.header.hash() == good.hash()),
        "the second invalid block was not forwarded; the valid one was, after validation"
    );
    let seen = h.expect(REPLY, |m| match m {
        Message::Headers(hs) => hs.iter().any(|x| [good.hash(), bad.hash(), bad2.hash()].contains(&x.hash())),
        Message::Inv(items) => items.iter().any(|i| [good.hash(), bad.hash(), bad2.hash()].contains(&i.hash)),
        Message::CmpctBlock(c) => [good.hash(), bad.hash(), bad2.hash()].contains(&c.header.hash()),
        _ => false,
    });
    let announced = match seen {
        Message::Headers(hs) => hs.last().map(|x| x.hash()),
        Message::Inv(items) => items.last().map(|i| i.hash),
        Message::CmpctBlock(c) => Some(c.header.hash()),
        _ => None,
    };
    assert_eq!(announced, Some(good.hash()));

    // 6. A malformed compact block (a prefilled transaction past the announced ones): 100.
    let (height, prev) = tip(&f);
    let block = block_on(&prev, height + 1, vec![], 0, 8);
    let mut cmpct = compact_block_with_prefilled(&block, 13, &[]).unwrap();
    cmpct.prefilled.push(PrefilledTx { index_delta: 5, tx: block.transactions[0].clone() });
    let mut p = attacker(&f, 9);
    p.send(&Message::CmpctBlock(cmpct));
    wait_for("a malformed cmpctblock to cost 100", DEADLINE, || banned(&f, 9).then_some(()));
    f.wait_metric("bsv_relay_misbehavior_events_total", "reason=\"invalid_cmpctblock\"", 1.0);
    h.send(&Message::Block(block.clone()));
    wait_tip(&f, &block.hash());

    // 7. getblocktxn: in range it is answered with the transactions; out of range costs 100.
    let mut p = attacker(&f, 10);
    p.send(&Message::GetBlockTxn(GetBlockTxn { block_hash: honest_block.hash(), index_deltas: vec![1] }));
    let reply = p.expect(REPLY, |m| matches!(m, Message::BlockTxn(_)));
    assert_eq!(reply, Message::BlockTxn(BlockTxn { block_hash: honest_block.hash(), transactions: vec![c] }));
    p.send(&Message::GetBlockTxn(GetBlockTxn { block_hash: honest_block.hash(), index_deltas: vec![0, 5] }));
    wait_for("an out-of-range index to cost 100", DEADLINE, || banned(&f, 10).then_some(()));
    f.wait_metric("bsv_relay_misbehavior_events_total", "reason=\"out_of_bound_tx_index\"", 1.0);

    assert!(
        !banned(&f, 3) && !banned(&f, 4) && !banned(&f, 7) && !banned(&f, 8) && !banned(&f, 11),
        "unscored rows stay unbanned"
    );
    f.assert_alive();
}
