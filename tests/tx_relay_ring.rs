//! Ten bsv-relay nodes in a ring on loopback: blocks mined at one node reach all, and a transaction
//! submitted at any node reaches every mempool, in both directions around the ring.

mod common;

use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Block, Decodable, Encodable, Hash256, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::{wait_for, TestNode};
use std::time::Duration;

const NODES: usize = 10;
const DEADLINE: Duration = Duration::from_secs(120);

fn spend(key: &Key, node: &TestNode, height: u32) -> Transaction {
    let hash = node.cli(&["getblockhash", &height.to_string()]).ok().trim().to_string();
    let block =
        Block::from_slice(&hex::decode(node.cli(&["getblock", &hash, "0"]).ok().trim()).expect("hex")).expect("block");
    let cb = &block.transactions[0];
    let value = cb.outputs[0].value;
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint { txid: cb.txid(), vout: 0 },
            script_sig: Bytes::new(),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut { value: value - 1000, script_pubkey: Bytes::from(key.p2pkh_script()) }],
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
    Transaction::from_fields(fields)
}

fn in_mempool(node: &TestNode, txid: &Hash256) -> bool {
    node.cli(&["getrawmempool"])
        .json()
        .as_array()
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(&txid.to_string())))
}

#[test]
fn a_transaction_submitted_anywhere_reaches_every_node_of_a_ring() {
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..NODES {
        let mut args = vec!["-listen=1".to_string()];
        if i > 0 {
            args.push(format!("-addnode=127.0.0.1:{}", nodes[i - 1].p2pport));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(TestNode::start(&refs));
    }
    // Close the ring.
    assert!(nodes[NODES - 1].cli(&["addnode", &format!("127.0.0.1:{}", nodes[0].p2pport), "add"]).success());

    let key = Key::from_seed(b"ring");
    assert!(nodes[0].cli(&["generatetoaddress", "103", &key.address(0x6f)]).success());
    let tip = nodes[0].cli(&["getbestblockhash"]).ok().trim().to_string();
    for (i, n) in nodes.iter().enumerate() {
        wait_for(&format!("node {i} to sync"), DEADLINE, || {
            (n.cli(&["getbestblockhash"]).ok().trim() == tip).then_some(())
        });
    }
    // getblock verbosity 2 decodes the coinbase and names the address it pays.
    let h1 = nodes[4].cli(&["getblockhash", "1"]).ok().trim().to_string();
    let decoded = nodes[4].cli(&["getblock", &h1, "2"]).json();
    assert!(decoded["tx"][0]["vin"][0]["coinbase"].is_string(), "{decoded}");
    assert_eq!(decoded["tx"][0]["vout"][0]["scriptPubKey"]["type"], "pubkeyhash");
    assert_eq!(decoded["tx"][0]["vout"][0]["scriptPubKey"]["addresses"][0], key.address(0x6f));
    // `generate` at another node pays the node's own key; every node follows.
    let mined = nodes[7].cli(&["generate", "1"]).json();
    let tip = mined[0].as_str().expect("a block hash").to_string();
    for (i, n) in nodes.iter().enumerate() {
        wait_for(&format!("node {i} to follow node 7's block"), DEADLINE, || {
            (n.cli(&["getbestblockhash"]).ok().trim() == tip).then_some(())
        });
    }
    for (from, height) in [(5usize, 1u32), (9, 2), (0, 3)] {
        let tx = spend(&key, &nodes[0], height);
        let mut raw = Vec::new();
        tx.consensus_encode(&mut raw);
        assert!(nodes[from].cli(&["sendrawtransaction", &hex::encode(raw)]).success());
        for (i, n) in nodes.iter().enumerate() {
            wait_for(&format!("tx from node {from} to reach node {i}"), DEADLINE, || {
                in_mempool(n, &tx.txid()).then_some(())
            });
        }
    }
}
