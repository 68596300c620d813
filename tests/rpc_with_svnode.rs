//! The network RPCs with a real peer: SV Node v1.0.13 connected to our node, observed and controlled
//! through SV Node's own `bitcoin-cli` (getpeerinfo, getnettotals, ping, disconnectnode, setban).

mod common;

use std::process::{Child, Command, Stdio};

use common::{bitcoin_cli, free_port, wait_for, CliOutput, TempDir, TestNode, DEADLINE};
use serde_json::Value;

/// A regtest SV Node child process, stopped on drop.
struct SvNode {
    child: Child,
    _dir: TempDir,
    p2p: u16,
    rpc: u16,
}

impl SvNode {
    fn start() -> Self {
        let dir = TempDir::new();
        let (p2p, rpc) = (free_port(), free_port());
        let bitcoind = bitcoin_cli().with_file_name("bitcoind");
        // The three consensus/policy flags are mandatory for SV Node to start (svnode-regtest.md).
        let child = Command::new(bitcoind)
            .args([
                "-regtest".to_owned(),
                format!("-datadir={}", dir.0.display()),
                format!("-port={p2p}"),
                "-bind=127.0.0.1".to_owned(),
                "-listen=1".to_owned(),
                "-server=1".to_owned(),
                format!("-rpcport={rpc}"),
                "-rpcbind=127.0.0.1".to_owned(),
                "-rpcallowip=127.0.0.1".to_owned(),
                "-rpcuser=sv".to_owned(),
                "-rpcpassword=sv".to_owned(),
                "-excessiveblocksize=1000000000".to_owned(),
                "-maxstackmemoryusageconsensus=100000000".to_owned(),
                "-minminingtxfee=0.00000500".to_owned(),
                "-whitelist=127.0.0.1".to_owned(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bitcoind");
        let node = Self { child, _dir: dir, p2p, rpc };
        wait_for("SV Node's RPC", DEADLINE, || node.cli(&["getconnectioncount"]).code.filter(|c| *c == 0));
        node
    }

    fn cli(&self, args: &[&str]) -> CliOutput {
        Command::new(bitcoin_cli())
            .args(["-regtest", "-rpcconnect=127.0.0.1", "-rpcuser=sv", "-rpcpassword=sv"])
            .arg(format!("-rpcport={}", self.rpc))
            .args(args)
            .output()
            .expect("run bitcoin-cli")
            .into()
    }
}

impl Drop for SvNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers(node: &TestNode) -> Vec<Value> {
    node.cli(&["getpeerinfo"]).json().as_array().cloned().unwrap_or_default()
}

#[test]
fn peer_rpcs_against_a_connected_sv_node() {
    let sv = SvNode::start();
    let node = TestNode::start(&[]);
    let target = format!("127.0.0.1:{}", sv.p2p);

    assert_eq!(node.cli(&["addnode", &target, "onetry"]).ok(), "");
    let peer = wait_for("the handshake with SV Node", DEADLINE, || {
        peers(&node).into_iter().find(|p| p["subver"].as_str().is_some_and(|s| s.starts_with("/Bitcoin SV:")))
    });
    assert_eq!(peer["addr"].as_str(), Some(target.as_str()));
    assert_eq!(peer["inbound"], Value::Bool(false));
    assert!(peer["version"].as_u64().is_some_and(|v| v >= 70015), "{peer}");
    assert!(peer["bytesrecv_per_msg"]["version"].as_u64().is_some_and(|b| b > 0), "{peer}");
    assert_eq!(node.cli(&["getconnectioncount"]).ok(), "1\n");
    let totals = node.cli(&["getnettotals"]).json();
    assert!(totals["totalbytesrecv"].as_u64().is_some_and(|b| b > 0), "{totals}");
    assert!(totals["totalbytessent"].as_u64().is_some_and(|b| b > 0), "{totals}");

    // SV Node sees us with our user agent.
    let theirs = sv.cli(&["getpeerinfo"]).json();
    assert!(theirs.as_array().is_some_and(|a| a.iter().any(|p| p["subver"] == "/bsv-relay:0.1.0/")), "{theirs}");

    // ping: the round trip shows up as pingtime.
    assert_eq!(node.cli(&["ping"]).ok(), "");
    wait_for("a pingtime", DEADLINE, || peers(&node).first().and_then(|p| p["pingtime"].as_f64()));

    // disconnectnode by id.
    let id = peer["id"].as_u64().expect("id").to_string();
    assert_eq!(node.cli(&["disconnectnode", "", &id]).ok(), "");
    wait_for("the disconnection", DEADLINE, || peers(&node).is_empty().then_some(()));

    // setban disconnects a connected peer in the banned subnet, and it stays listed.
    assert_eq!(node.cli(&["addnode", &target, "onetry"]).ok(), "");
    wait_for("the reconnection", DEADLINE, || (!peers(&node).is_empty()).then_some(()));
    assert_eq!(node.cli(&["setban", "127.0.0.0/8", "add", "600"]).ok(), "");
    wait_for("the banned peer to go", DEADLINE, || peers(&node).is_empty().then_some(()));
    let banned = node.cli(&["listbanned"]).json();
    assert_eq!(banned[0]["address"], "127.0.0.0/8");
}
