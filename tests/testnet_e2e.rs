//! The local network end to end, as a user meets it: `testnet/up` with three bsv-relay nodes and a
//! real SV Node v1.0.13, the load generator for 30 s at 500 tx/s, a real Prometheus scraping every
//! node, SV Node mining what the generator got accepted, and `testnet/down` leaving nothing behind.
//!
//! The network runs in its own state folder and port range, beside any network the user has up.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, TempDir};
use serde_json::{json, Value};

const LOAD_DEADLINE: Duration = Duration::from_secs(300);

fn net(run: &Path, base: u16, args: &[&str]) -> std::process::Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Command::new("python3")
        .arg(root.join("testnet/net.py"))
        .args(args)
        .env("BSV_RELAY_TESTNET_RUN", run)
        .env("BSV_RELAY_TESTNET_PORT", base.to_string())
        .output()
        .expect("run testnet/net.py")
}

/// A call through SV Node's real bitcoin-cli (large replies from SV Node come chunked; the CLI
/// handles that). Parameters are JSON values, passed as bitcoin-cli arguments.
fn rpc(port: u16, method: &str, params: Value) -> Value {
    let args: Vec<String> = params
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
        .unwrap_or_default();
    let out = Command::new(common::bitcoin_cli())
        .args(["-regtest", &format!("-rpcport={port}"), "-rpcuser=u", "-rpcpassword=p", method])
        .args(&args)
        .output()
        .expect("bitcoin-cli runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn http_get(port: u16, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    common::http_exchange(port, req.as_bytes()).2
}

#[test]
fn up_load_prometheus_svnode_mining_and_down() {
    let run = TempDir::new();
    // A range of 30 ports: nodes at base + 10 i, SV Node at base - 10, Prometheus at base - 1.
    // Below common::free_port()'s range and below the ephemeral range (32768+).
    let base = 10_100 + (std::process::id() % 140) as u16 * 100;
    let up = net(&run.0, base, &["up", "--with-svnode", "--rate", "0", "--no-mining"]);
    let state_file = run.0.join("state.json");
    let guard = Down { run: run.0.clone(), base };
    assert!(
        up.status.success(),
        "up failed: {}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state")).expect("json");
    let nodes: Vec<(u16, u16, u16)> = state["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["p2p"].as_u64().unwrap() as u16,
                n["rpc"].as_u64().unwrap() as u16,
                n["metrics"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    assert_eq!(nodes.len(), 3);
    let sv_rpc = state["svnode"]["rpc"].as_u64().expect("svnode") as u16;
    wait_for("SV Node to sync the first 101 blocks", LOAD_DEADLINE, || {
        (rpc(sv_rpc, "getblockcount", json!([])).as_u64() == Some(101)).then_some(())
    });

    // 30 s at 500 tx/s into node1, funded by node0's mining.
    let txids_file = run.0.join("accepted.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_bsv-relay"))
        .args(["txgen", "--rpc", &format!("127.0.0.1:{}", nodes[0].1), "--rpcuser", "u", "--rpcpassword", "p"])
        .args(["--connect", &format!("127.0.0.1:{}", nodes[1].0), "--rate", "500", "--duration", "30", "--json"])
        .args(["--observers", "2"])
        .arg("--txids-out")
        .arg(&txids_file)
        .output()
        .expect("txgen runs");
    assert!(out.status.success(), "txgen: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("txgen JSON summary");
    assert_eq!(summary["sent"], 15_000);
    let accepted: Vec<String> = std::fs::read_to_string(&txids_file)
        .expect("txids")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(accepted.len() as u64, summary["accepted"].as_u64().unwrap());
    assert!(accepted.len() >= 14_000, "most of the load was accepted: {summary}");
    // Announce latency: a sample per (transaction, listener) that heard it; the quantiles are ordered.
    let latency = &summary["announce_latency_ms"];
    let samples = latency["samples"].as_u64().expect("samples") as usize;
    assert!((accepted.len()..=2 * accepted.len()).contains(&samples), "{summary}");
    let q = |k: &str| latency[k].as_f64().expect("a quantile");
    assert!(q("p50") <= q("p99") && q("p99") <= q("max"), "{summary}");

    // Every accepted transaction reaches SV Node, which mines them all; every node follows.
    wait_for("SV Node's mempool to hold every accepted transaction", LOAD_DEADLINE, || {
        let pool = rpc(sv_rpc, "getrawmempool", json!([]));
        let pool: std::collections::HashSet<&str> = pool.as_array()?.iter().filter_map(Value::as_str).collect();
        accepted.iter().all(|t| pool.contains(t.as_str())).then_some(())
    });
    let mined = rpc(sv_rpc, "generatetoaddress", json!([1, "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8"]));
    let block_hash = mined[0].as_str().expect("SV Node mined").to_owned();
    let block = rpc(sv_rpc, "getblock", json!([block_hash, 1]));
    let in_block: std::collections::HashSet<&str> =
        block["tx"].as_array().expect("txs").iter().filter_map(Value::as_str).collect();
    assert!(accepted.iter().all(|t| in_block.contains(t.as_str())), "SV Node mined every accepted transaction");
    for n in &nodes {
        wait_for("every node to follow SV Node's block", LOAD_DEADLINE, || {
            (rpc(n.1, "getbestblockhash", json!([])).as_str() == Some(&block_hash)).then_some(())
        });
        // The tip moves before the block's transactions leave the mempool (the block thread updates
        // the mempool right after connecting): wait for that too.
        wait_for("every node to drop the mined transactions", LOAD_DEADLINE, || {
            let pool = rpc(n.1, "getrawmempool", json!([]));
            let pool: std::collections::HashSet<&str> = pool.as_array()?.iter().filter_map(Value::as_str).collect();
            let left = accepted.iter().filter(|a| pool.contains(a.as_str())).count();
            (left == 0).then_some(())
        });
    }

    // Prometheus scrapes every node: up == 1, and a non-zero accepted-transaction rate.
    let prom = base - 1;
    wait_for("Prometheus to report every node up with accepted transactions", LOAD_DEADLINE, || {
        let up: Value = serde_json::from_str(&http_get(prom, "/api/v1/query?query=up")).ok()?;
        let ups = up["data"]["result"].as_array()?;
        let all_up = ups.len() == 3 && ups.iter().all(|r| r["value"][1] == "1");
        let q = "/api/v1/query?query=sum(increase(bsv_relay_tx_accepted_total%5B5m%5D))";
        let rate: Value = serde_json::from_str(&http_get(prom, q)).ok()?;
        let accepted: f64 = rate["data"]["result"].get(0)?["value"][1].as_str()?.parse().ok()?;
        (all_up && accepted > 0.0).then_some(())
    });

    drop(guard);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state")).expect("json");
    assert!(state["processes"].as_array().expect("list").is_empty());
    for p in std::fs::read_dir("/proc").expect("proc").flatten() {
        let cmdline = std::fs::read_to_string(p.path().join("cmdline")).unwrap_or_default();
        assert!(!cmdline.contains(&run.0.display().to_string()), "a process outlived down: {cmdline:?}");
    }
}

/// Runs `down` even when an assertion failed.
struct Down {
    run: PathBuf,
    base: u16,
}

impl Drop for Down {
    fn drop(&mut self) {
        let out = net(&self.run, self.base, &["down"]);
        assert!(out.status.success() || std::thread::panicking(), "down failed");
    }
}
