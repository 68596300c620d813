//! The WAN bench in its short form (`testnet/bench/wan.py --short`): 6 nodes in 3 regions of
//! network namespaces, IPv4-only, IPv6-only and dual-stack, 20-150 ms and 1 % loss between
//! regions; every transaction and block reaches every node before and after one is killed, and
//! nothing the script created is left behind — also when it is interrupted. Needs root and
//! iptables (testnet/install-iptables). The full form is run by hand (README).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn script() -> Command {
    let mut c = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testnet/bench/wan.py"));
    c.env("BSV_RELAY_BIN", env!("CARGO_BIN_EXE_bsv-relay"));
    c
}

/// Namespaces the run with process id `pid` still has.
fn leftovers(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let prefix = format!("bsvrw{pid}-");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with(&prefix)).map(str::to_string).collect()
}

#[test]
fn short_wan_run_delivers_everything_before_and_after_a_failure() {
    let child = script().arg("--short").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("wan.py");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("2 dual-stack, 2 IPv4-only, 2 IPv6-only"), "{text}");
    for phase in ["before failures: 6 nodes", "after failures: 5 nodes"] {
        assert!(text.contains(&format!("{phase}, 30 transactions; every transaction at every node: yes")), "{text}");
    }
    assert_eq!(text.matches("every block at every node: yes (2 blocks)").count(), 2, "{text}");
    assert!(text.contains("dropped") && !text.contains("dropped 0\n"), "loss was applied: {text}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn an_interrupted_run_removes_what_it_created() {
    let mut child = script().arg("--short").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("wan.py");
    let pid = child.id();
    // Interrupt once the network and the nodes exist.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let up = lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("nodes up"));
    assert!(up, "the run never brought its nodes up");
    assert!(!leftovers(pid).is_empty(), "namespaces exist while it runs");
    let sent = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    assert!(!status.success(), "an interrupted run does not report success");
    assert_eq!(leftovers(pid), Vec::<String>::new());
    let procs = Command::new("pgrep").args(["-f", &format!("bsvrw{pid}-")]).output().expect("pgrep");
    assert!(procs.stdout.is_empty(), "node processes left: {}", String::from_utf8_lossy(&procs.stdout));
}
