//! A 100 MB block mined by SV Node v1.0.13 relays through bsv-relay to a second SV Node, both hops
//! on the plaintext v1 protocol: SV Node → bsv-relay (a compact block whose transactions we lack,
//! then the block) and bsv-relay → SV Node. The resident memory of bsv-relay before and at its peak
//! is printed, and checked against the bound the README states.
//!
//! Made cheap: after Genesis (here from height 1) a transaction may carry large data outputs, so
//! 100 transactions of 1 MB (four 250 kB `OP_FALSE OP_RETURN` outputs each, under SV Node's 500 kB
//! script and 10 MB transaction policies) make 100 MB with 100 signatures.

mod common;

use bsv_relay::wallet::{Key, SIGHASH_ALL_FORKID};
use bsv_relay::wire::{Block, Decodable, OutPoint, Transaction, TxFields, TxIn, TxOut};
use bytes::Bytes;
use common::funds::hex_of;
use common::svnode::SvNode;
use common::{wait_for, TestNode};
use std::time::Duration;

const TXS: usize = 100;
const OUTPUTS: usize = 4;
const DATA: usize = 250_000;
const SYNC: Duration = Duration::from_secs(300);

/// SV Node's options for big data transactions on regtest (svnode-regtest.md): Genesis from height
/// 1, room for the block in what it mines (`-blockmaxsize`, default 128 MB after Genesis) and for
/// the data in its policy (`-datacarriersize`).
const SV_BIG: [&str; 3] = ["-genesisactivationheight=1", "-blockmaxsize=200000000", "-datacarriersize=1000000000"];

fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn data_tx(key: &Key, prev: OutPoint, value: i64, tag: u8) -> Transaction {
    let fee = 1_000_000;
    let mut outputs = Vec::with_capacity(OUTPUTS + 1);
    for i in 0..OUTPUTS {
        let mut script = vec![0x00, 0x6a]; // OP_FALSE OP_RETURN
        let mut data = vec![tag; DATA];
        data[0] = i as u8;
        bsv_relay::script::asm::push_data(&mut script, &data);
        outputs.push(TxOut { value: 0, script_pubkey: Bytes::from(script) });
    }
    outputs.push(TxOut { value: value - fee, script_pubkey: Bytes::from(key.p2pkh_script()) });
    let mut fields = TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out: prev, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs,
        lock_time: 0,
    };
    let sig = key.sign(&fields, 0, &key.p2pkh_script(), value, SIGHASH_ALL_FORKID);
    fields.inputs[0].script_sig = Bytes::from(bsv_relay::wallet::push_all(&[&sig, &key.pubkey()]));
    Transaction::from_fields(fields)
}

#[test]
fn a_100_mb_block_from_sv_node_relays_through_bsv_relay_to_another_sv_node() {
    let a = SvNode::start(false, &SV_BIG);
    let key = Key::from_seed(b"block relay big");
    assert!(a.cli(&["generatetoaddress", &(TXS + 101).to_string(), &key.address(0x6f)]).success());
    for height in 1..=TXS {
        let hash = a.cli(&["getblockhash", &height.to_string()]).ok().trim().to_string();
        let raw = hex::decode(a.cli(&["getblock", &hash, "0"]).ok().trim()).expect("hex");
        let coinbase = &Block::from_slice(&raw).expect("block").transactions[0];
        let tx = data_tx(&key, OutPoint { txid: coinbase.txid(), vout: 0 }, coinbase.outputs[0].value, height as u8);
        let sent = a.cli_stdin(&["sendrawtransaction"], &[&hex_of(&tx)]);
        assert!(sent.success(), "{sent:?}");
    }
    let pool = a.json(&["getmempoolinfo"]);
    assert_eq!(pool["size"].as_u64(), Some(TXS as u64));

    // bsv-relay and B join after the transactions, so the block is news to both.
    let metrics = format!("-metricsbind=127.0.0.1:{}", common::free_port());
    let r = TestNode::start(&[
        &format!("-connect=127.0.0.1:{}", a.port),
        "-listen=1",
        "-genesisactivationheight=1",
        &metrics,
    ]);
    let b = SvNode::start(false, &[SV_BIG[0], &format!("-connect=127.0.0.1:{}", r.p2pport)]);
    let a_tip = a.cli(&["getbestblockhash"]).ok().trim().to_string();
    wait_for("bsv-relay and B to sync", SYNC, || {
        (r.cli(&["getbestblockhash"]).ok().trim() == a_tip && b.cli(&["getbestblockhash"]).ok().trim() == a_tip)
            .then_some(())
    });
    let rss_before = proc_kb(r.pid(), "VmRSS:");

    assert!(a.cli(&["generatetoaddress", "1", &key.address(0x6f)]).success());
    let tip = a.cli(&["getbestblockhash"]).ok().trim().to_string();
    let size = a.json(&["getblock", &tip, "1"])["size"].as_u64().expect("size");
    assert!(size > 100_000_000, "a block of {size} bytes");
    wait_for("bsv-relay to accept the 100 MB block", SYNC, || {
        (r.cli(&["getbestblockhash"]).ok().trim() == tip).then_some(())
    });
    wait_for("B to get it from bsv-relay", SYNC, || (b.cli(&["getbestblockhash"]).ok().trim() == tip).then_some(()));

    let peak = proc_kb(r.pid(), "VmHWM:");
    let after = proc_kb(r.pid(), "VmRSS:");
    let mb = |kb: u64| kb as f64 / 1000.0;
    eprintln!(
        "block {:.1} MB; bsv-relay resident: {:.1} MB before, peak {:.1} MB (+{:.1} MB = {:.2}x the block), {:.1} MB after",
        size as f64 / 1e6,
        mb(rss_before),
        mb(peak),
        mb(peak.saturating_sub(rss_before)),
        (peak.saturating_sub(rss_before) * 1000) as f64 / size as f64,
        mb(after),
    );
    // The bound the README states: the block once (the buffer it arrived in, which its parsed
    // transactions, its file in the store and every peer it is sent to share), plus its parsed
    // transactions and a fixed overhead; never proportional to anything a peer only announces.
    // Measured 0.99x here (100 transactions: their parsed form is a few kB); 1.5x leaves room for
    // allocator and thread noise, and fails if any second copy of the block comes back.
    assert!(peak.saturating_sub(rss_before) * 1000 * 2 < 3 * size, "peak growth within 1.5x the block");

    for sv in [&a, &b] {
        let peers = sv.peers_with_ua("/bsv-relay:");
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0]["banscore"], 0);
    }
}
