//! The mempool across restarts (`-persistmempool`, on by default): a clean stop saves it and the
//! next start validates it back, parents before children, keeping each entry's arrival time; a
//! damaged file is reported and the node starts with an empty mempool; `-persistmempool=0` neither
//! loads nor saves.

mod common;

use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Decodable, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::{wait_for, TestNode, DEADLINE};

fn pay(key: &Key, prev: OutPoint, value: i64, fee: i64) -> Transaction {
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: value - fee, script_pubkey: Bytes::from(key.p2pkh_script()) }],
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
    Transaction::from_fields(fields)
}

fn hex_of(tx: &Transaction) -> String {
    hex::encode(tx.raw())
}

/// Mines 101 blocks to `key` and returns a chain of `n` payments spending the first coinbase.
fn fund_and_chain(node: &TestNode, key: &Key, n: usize) -> Vec<Transaction> {
    assert!(node.cli(&["generatetoaddress", "101", &key.address(0x6f)]).success());
    let hash = node.cli(&["getblockhash", "1"]).ok().trim().to_string();
    let raw = hex::decode(node.cli(&["getblock", &hash, "0"]).ok().trim()).expect("hex");
    let block = bsv_relay::wire::Block::from_slice(&raw).expect("block");
    let cb = &block.transactions[0];
    let (mut prev, mut value) = (OutPoint { txid: cb.txid(), vout: 0 }, cb.outputs[0].value);
    let mut chain = Vec::new();
    for _ in 0..n {
        let tx = pay(key, prev, value, 1000);
        (prev, value) = (OutPoint { txid: tx.txid(), vout: 0 }, value - 1000);
        chain.push(tx);
    }
    chain
}

fn mempool(node: &TestNode) -> Vec<String> {
    let json = node.cli(&["getrawmempool"]).json();
    json.as_array().expect("an array").iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()
}

#[test]
fn a_clean_restart_keeps_the_mempool_and_a_damaged_file_is_refused() {
    let node = TestNode::start(&[]);
    let key = Key::from_seed(b"mempool persistence");
    // A chain of five (each child depends on its parent) plus the entry times to compare.
    let chain = fund_and_chain(&node, &key, 5);
    for tx in &chain {
        assert_eq!(node.cli(&["sendrawtransaction", &hex_of(tx)]).ok().trim(), tx.txid().to_string());
    }
    let txids: Vec<String> = chain.iter().map(|t| t.txid().to_string()).collect();
    let time_of = |node: &TestNode, txid: &str| node.cli(&["getmempoolentry", txid]).json()["time"].as_u64();
    let times: Vec<_> = txids.iter().map(|t| time_of(&node, t)).collect();

    let node = node.restart();
    wait_for("the saved mempool to be validated back", DEADLINE, || {
        let mut now = mempool(&node);
        now.sort();
        let mut want = txids.clone();
        want.sort();
        (now == want).then_some(())
    });
    let restored: Vec<_> = txids.iter().map(|t| time_of(&node, t)).collect();
    assert_eq!(restored, times, "entries keep their arrival time");
    assert!(node.output().contains("mempool restored"), "{}", node.output());

    // A damaged file: the node says why and starts empty; the next clean stop writes a good one.
    let mut node = node;
    node.signal("TERM");
    assert!(node.wait_exit().success());
    let file = node.netdir().join("mempool.dat");
    let mut bytes = std::fs::read(&file).expect("mempool.dat written at shutdown");
    let last = bytes.len() - 40;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).expect("damage the file");
    let node = node.respawn();
    wait_for("the damaged file to be reported", DEADLINE, || node.output().contains("is damaged").then_some(()));
    assert!(mempool(&node).is_empty());
    assert!(node.cli(&["getblockcount"]).success(), "the node runs on");

    // Off: nothing is loaded and nothing is saved.
    let tx = &chain[0];
    assert!(node.cli(&["sendrawtransaction", &hex_of(tx)]).success());
    let node = node.restart_with(&["-persistmempool=0"]);
    assert!(mempool(&node).is_empty(), "nothing is loaded");
    let mut node = node;
    node.signal("TERM");
    assert!(node.wait_exit().success());
    assert!(!node.output().contains("mempool saved"), "{}", node.output());
}
