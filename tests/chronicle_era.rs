//! A regtest chain across the Chronicle height, end to end: SV Node v1.0.13 (which has no
//! Chronicle) — A — B, A and B bsv-relay nodes run with `-genesisactivationheight=10
//! -chronicleactivationheight=120 -maxchroniclegracefulperiod=0`.
//!
//! Below 120 SV Node follows A's chain and never scores it; the Chronicle-only transactions
//! (original-digest signature with the CHRONICLE bit, a restored opcode, a high-S signature in a
//! version-2 transaction) are refused by A with SV Node 1.2.2's reasons, reach neither B nor SV
//! Node, and a block carrying one is invalid. From 120 they are accepted, relayed to B and mined,
//! and B accepts the block. Reorganisations across the boundary leave the mempool as SV Node's
//! FinalizeEraCrossing does: emptied when the next block's era changes, then the disconnected
//! block's transactions validated again for their new height.
//!
//! No SV Node with Chronicle (1.2.x) is installable here (the PyPI package carries 1.0.13), so
//! the rules above 120 were checked against the bitcoin-sv v1.2.2 source (validation.cpp's
//! CheckInputScripts and TxnValidation, verify_script_flags.cpp, protocol_era.cpp, policy.h).

mod common;

use bsv_relay::params::Network;
use bsv_relay::wallet::{push_all, Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{merkle_root, Block, BlockHeader, Encodable, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::funds::{coinbase_of, hex_of, high_s, mempool_has, pay, Coin};
use common::svnode::SvNode;
use common::{wait_for, TestNode, DEADLINE};

const CHRONICLE: u32 = 120;
const ERA_ARGS: [&str; 3] =
    ["-genesisactivationheight=10", "-chronicleactivationheight=120", "-maxchroniclegracefulperiod=0"];
const RESTORED_OPCODE_SCRIPT: [u8; 3] = [0x8d, 0x54, 0x87]; // OP_2MUL OP_4 OP_EQUAL
const OP_2: u8 = 0x52;

fn tip(node: &TestNode) -> (u32, String) {
    let info = node.cli(&["getblockchaininfo"]).json();
    (info["blocks"].as_u64().expect("blocks") as u32, info["bestblockhash"].as_str().expect("hash").to_string())
}

fn one_to_one(coin: Coin, version: i32, to: &[u8]) -> TxFields {
    TxFields {
        version,
        inputs: vec![TxIn { prev_out: coin.outpoint, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: coin.value - 1000, script_pubkey: Bytes::copy_from_slice(to) }],
        lock_time: 0,
    }
}

fn with_script_sig(mut f: TxFields, script_sig: Vec<u8>) -> Transaction {
    f.inputs[0].script_sig = Bytes::from(script_sig);
    Transaction::from_fields(f)
}

/// An original-digest signature with ALL|FORKID|CHRONICLE (0x61).
fn otda(key: &Key, coin: Coin) -> Transaction {
    let f = one_to_one(coin, 1, &key.p2pkh_script());
    let sig = key.sign_original(&f, 0, &key.p2pkh_script(), 0x61);
    with_script_sig(f, push_all(&[&sig, &key.pubkey()]))
}

/// A version-2 spend with a high-S signature.
fn high_s_v2(key: &Key, coin: Coin) -> Transaction {
    let f = one_to_one(coin, 2, &key.p2pkh_script());
    let sig = high_s(&key.sign(&f, 0, &key.p2pkh_script(), coin.value, SIGHASH_ALL_FORKID));
    with_script_sig(f, push_all(&[&sig, &key.pubkey()]))
}

/// A spend of output 0 of `parent` (an OP_2MUL script) with `OP_2`.
fn restored_spend(parent: &Transaction) -> Transaction {
    let coin = Coin { outpoint: OutPoint { txid: parent.txid(), vout: 0 }, value: parent.outputs[0].value };
    with_script_sig(one_to_one(coin, 1, &[0x51]), vec![OP_2])
}

/// `sendrawtransaction` at `node`: Ok(txid) or Err(the reason).
fn send(node: &TestNode, tx: &Transaction) -> Result<(), String> {
    let out = node.cli(&["sendrawtransaction", &hex_of(tx)]);
    if out.success() {
        Ok(())
    } else {
        Err(out.stderr)
    }
}

fn mempool(node: &TestNode) -> Vec<String> {
    let mut txids: Vec<String> = node
        .cli(&["getrawmempool"])
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t.as_str().expect("txid").to_string())
        .collect();
    txids.sort();
    txids
}

fn sorted(txs: &[&Transaction]) -> Vec<String> {
    let mut v: Vec<String> = txs.iter().map(|t| t.txid().to_string()).collect();
    v.sort();
    v
}

/// A block on `node`'s tip carrying `txs` (fees left unclaimed), solved.
fn block_on_tip(node: &TestNode, txs: &[&Transaction]) -> Block {
    let params = Network::Regtest.params();
    let (height, hash) = tip(node);
    let header = node.cli(&["getblockheader", &hash]).json();
    let mut transactions = vec![bsv_relay::mining::coinbase(height + 1, 77, params.subsidy(height + 1), &[0x51])];
    transactions.extend(txs.iter().map(|t| (*t).clone()));
    let (root, _) = merkle_root(transactions.iter().map(Transaction::txid).collect());
    let mut header = BlockHeader {
        version: 0x2000_0000,
        prev_block: hash.parse().expect("hash"),
        merkle_root: root,
        time: header["time"].as_u64().expect("time") as u32 + 1,
        bits: u32::from_str_radix(header["bits"].as_str().expect("bits"), 16).expect("hex bits"),
        nonce: 0,
    };
    bsv_relay::mining::solve(params, &mut header);
    Block::new(header, transactions)
}

#[test]
fn a_regtest_chain_across_the_chronicle_height() {
    let sv = SvNode::start(false, &["-genesisactivationheight=10"]);
    let connect_sv = format!("-connect=127.0.0.1:{}", sv.port);
    let a = TestNode::start(&[&connect_sv, "-listen=1", ERA_ARGS[0], ERA_ARGS[1], ERA_ARGS[2]]);
    let connect_a = format!("-connect=127.0.0.1:{}", a.p2pport);
    let b = TestNode::start(&[&connect_a, ERA_ARGS[0], ERA_ARGS[1], ERA_ARGS[2]]);
    wait_for("A to connect to SV Node", DEADLINE, || (sv.peers_with_ua("/bsv-relay:").len() == 1).then_some(()));

    let key = Key::from_seed(b"chronicle era");
    assert!(a.cli(&["generatetoaddress", &(CHRONICLE - 2).to_string(), &key.address(0x6f)]).success());
    let at_118 = tip(&a);
    assert_eq!(at_118.0, CHRONICLE - 2);
    wait_for("SV Node and B to follow A", DEADLINE, || {
        (sv.cli(&["getbestblockhash"]).ok().trim() == at_118.1 && tip(&b) == at_118).then_some(())
    });

    // Below Chronicle (the next block is 119): the three are refused with SV Node 1.2.2's reasons.
    let coins: Vec<Coin> = (1..=8).map(|h| coinbase_of(&a, h)).collect();
    let (otda_tx, high_s_tx) = (otda(&key, coins[0]), high_s_v2(&key, coins[1]));
    let old_parent = pay(&key, coins[2], &RESTORED_OPCODE_SCRIPT, 1000);
    let keep = pay(&key, coins[3], &key.p2pkh_script(), 1000);
    send(&a, &old_parent).expect("a plain payment to an OP_2MUL script");
    send(&a, &keep).expect("a plain payment");
    let old_spend = restored_spend(&old_parent);
    for (tx, reason) in [
        (&otda_tx, "mandatory-script-verify-flag-failed (Illegal use of SIGHASH_CHRONICLE)"),
        (&old_spend, "mandatory-script-verify-flag-failed (Attempted to use a disabled opcode)"),
        (&high_s_tx, "mandatory-script-verify-flag-failed (Non-canonical signature: S value is unnecessarily high)"),
    ] {
        let err = send(&a, tx).expect_err("refused before Chronicle");
        assert!(err.contains(reason), "{err}");
    }
    wait_for("the valid two to reach B and SV Node", DEADLINE, || {
        let sv_pool = sv.cli(&["getrawmempool"]).json();
        (mempool(&b) == sorted(&[&old_parent, &keep])
            && mempool_has(&sv_pool, &keep.txid())
            && mempool_has(&sv_pool, &old_parent.txid()))
        .then_some(())
    });
    // SV Node v1.0.13 refuses the last two alike (the first with its own pre-1.2 wording).
    for tx in [&old_spend, &high_s_tx] {
        let out = sv.cli_stdin(&["sendrawtransaction"], &[&hex_of(tx)]);
        assert!(!out.success() && out.stderr.contains("mandatory-script-verify-flag-failed"), "{out:?}");
    }
    // A block at 119 carrying a Chronicle-only transaction is invalid.
    let early = block_on_tip(&a, &[&otda_tx]);
    let verdict = a.cli(&["submitblock", &hex::encode(early.to_bytes())]).ok().trim().to_string();
    assert!(verdict.contains("mandatory-script-verify-flag-failed") || verdict.contains("blk-bad-inputs"), "{verdict}");
    assert_eq!(tip(&a), at_118);

    // Block 119 (A's, with the two) reaches SV Node, which never scored A.
    assert!(a.cli(&["generatetoaddress", "1", &key.address(0x6f)]).success());
    let at_119 = tip(&a);
    wait_for("SV Node and B to reach 119", DEADLINE, || {
        (sv.cli(&["getbestblockhash"]).ok().trim() == at_119.1 && tip(&b) == at_119).then_some(())
    });
    let peers = sv.peers_with_ua("/bsv-relay:");
    assert_eq!(peers[0]["banscore"], 0, "SV Node never scored A below Chronicle");
    drop(sv);

    // A reorganisation back across the boundary: block 119's disconnect changes the next block's
    // era, so the pool is emptied (a Chronicle-era transaction in it goes) and block 119's two
    // come back, validated for 119 again.
    let plain = pay(&key, coins[4], &key.p2pkh_script(), 1000);
    send(&a, &plain).expect("valid in both eras");
    assert_eq!(mempool(&a), sorted(&[&plain]));
    assert!(a.cli(&["invalidateblock", &at_119.1]).success());
    wait_for("the pool to hold block 119's two only", DEADLINE, || {
        (mempool(&a) == sorted(&[&old_parent, &keep])).then_some(())
    });
    assert!(a.cli(&["reconsiderblock", &at_119.1]).success());
    wait_for("A back at 119 with an empty pool (the crossing)", DEADLINE, || {
        (tip(&a) == at_119 && mempool(&a).is_empty()).then_some(())
    });

    // From Chronicle (the next block is 120): accepted and relayed; the restored opcode needs a
    // coin created in the new era — the old coin stays under the old rules.
    let new_parent = pay(&key, coins[5], &RESTORED_OPCODE_SCRIPT, 1000);
    let new_spend = restored_spend(&new_parent);
    for tx in [&otda_tx, &high_s_tx, &new_parent, &new_spend] {
        send(&a, tx).unwrap_or_else(|e| panic!("{} refused after Chronicle: {e}", tx.txid()));
    }
    let err = send(&a, &old_spend).expect_err("a pre-Chronicle coin keeps its opcodes");
    assert!(err.contains("Attempted to use a disabled opcode"), "{err}");
    let chronicle_txs = sorted(&[&otda_tx, &high_s_tx, &new_parent, &new_spend]);
    // B did not reorganise, so it still holds `plain` beside them.
    wait_for("the four to reach B", DEADLINE, || {
        (mempool(&b) == sorted(&[&otda_tx, &high_s_tx, &new_parent, &new_spend, &plain])).then_some(())
    });

    // Mined into block 120, which B validates and accepts.
    assert!(a.cli(&["generatetoaddress", "1", &key.address(0x6f)]).success());
    let at_120 = tip(&a);
    assert_eq!(at_120.0, CHRONICLE);
    let mined: Vec<String> = a.cli(&["getblock", &at_120.1, "1"]).json()["tx"]
        .as_array()
        .expect("txs")
        .iter()
        .skip(1)
        .map(|t| t.as_str().expect("txid").to_string())
        .collect();
    let mut mined_sorted = mined.clone();
    mined_sorted.sort();
    assert_eq!(mined_sorted, chronicle_txs);
    wait_for("B to accept block 120", DEADLINE, || (tip(&b) == at_120).then_some(()));
    assert!(mempool(&a).is_empty());
    assert_eq!(mempool(&b), sorted(&[&plain]));

    // Back to 118 (both blocks out): the Chronicle-only transactions cannot return; block 119's
    // can, and so can block 120's plain payment to the OP_2MUL script (valid in both eras).
    assert!(a.cli(&["invalidateblock", &at_119.1]).success());
    wait_for("A's pool after the reorg below Chronicle", DEADLINE, || {
        (mempool(&a) == sorted(&[&old_parent, &keep, &new_parent])).then_some(())
    });
    assert!(a.cli(&["reconsiderblock", &at_119.1]).success());
    wait_for("A back at 120 with an empty pool", DEADLINE, || {
        (tip(&a) == at_120 && mempool(&a).is_empty()).then_some(())
    });
}
