//! The binary's contract with operators: exit status 1 with a message naming key and value for an invalid
//! option (before anything is opened), warnings for unknown keys, the data-directory lock, and a clean
//! exit 0 on SIGTERM and SIGINT.

mod common;

use common::{Auth, TempDir, TestNode};

fn start_expecting_failure(dir: TempDir, extra: &[&str]) -> (i32, String, TempDir) {
    let mut node = TestNode::spawn(dir, Auth::Password, extra);
    let status = node.wait_exit();
    let out = node.output();
    let dir = std::mem::replace(&mut node.dir, TempDir(std::path::PathBuf::new()));
    (status.code().unwrap_or(-1), out, dir)
}

#[test]
fn invalid_values_exit_1_before_opening_anything() {
    let (code, out, dir) = start_expecting_failure(TempDir::new(), &["-maxconnections=lots"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("-maxconnections") && out.contains("\"lots\""), "{out}");
    // Nothing was created: no network folder, so no lock, cookie or listener either.
    assert!(!dir.0.join("regtest").exists());

    std::fs::write(dir.0.join("bitcoin.conf"), "# comment\nwhitelist=10.0.0.0/99\n").expect("write conf");
    let (code, out, dir) = start_expecting_failure(dir, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("-whitelist") && out.contains("\"10.0.0.0/99\""), "{out}");
    assert!(!dir.0.join("regtest").exists());

    let (code, out, _) = start_expecting_failure(TempDir::new(), &["stray-argument"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stray-argument"), "{out}");
}

#[test]
fn unknown_keys_warn_and_sigterm_exits_0() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("bitcoin.conf"), "frobnicate=1\nnolisten=1\n").expect("write conf");
    let mut node = TestNode::start_in(dir, Auth::Password, &["--wibble=2"]);
    let out = node.output();
    assert!(out.contains("unknown key \"frobnicate\""), "{out}");
    assert!(out.contains("unknown option -wibble"), "{out}");
    node.cli(&["getconnectioncount"]).ok();
    node.signal("TERM");
    assert_eq!(node.wait_exit().code(), Some(0), "{}", node.output());
    assert!(node.output().contains("shutdown complete"));
}

#[test]
fn sigint_exits_0_and_removes_the_cookie() {
    let mut node = TestNode::start_in(TempDir::new(), Auth::Cookie, &[]);
    let cookie = node.netdir().join(".cookie");
    assert!(cookie.exists());
    node.signal("INT");
    assert_eq!(node.wait_exit().code(), Some(0), "{}", node.output());
    assert!(!cookie.exists());
}

#[test]
fn second_start_on_the_same_datadir_fails() {
    let first = TestNode::start(&[]);
    let shared = TempDir(first.dir.0.clone());
    let (code, out, dir) = start_expecting_failure(shared, &[]);
    // Don't let the second handle delete the first node's directory.
    std::mem::forget(dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot obtain a lock on data directory"), "{out}");
    assert!(out.contains("already running"), "{out}");
    // The first node is unaffected.
    assert_eq!(first.cli(&["getconnectioncount"]).ok(), "0\n");
}

#[test]
fn a_second_signal_forces_exit() {
    use std::io::Write;
    let mut node = TestNode::start(&["-debug=rpc"]);
    // A client stalled in the middle of a request body keeps graceful shutdown waiting.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", node.rpcport)).expect("connect");
    stalled
        .write_all(b"POST / HTTP/1.1\r\nAuthorization: Basic dTpw\r\nContent-Length: 100\r\n\r\n{\"meth")
        .expect("write partial request");
    common::wait_for("the server to read the stalled body", common::DEADLINE, || {
        node.output().contains("reading RPC request body").then_some(())
    });
    node.signal("TERM");
    common::wait_for("the first signal to be handled", common::DEADLINE, || {
        node.output().contains("signal received").then_some(())
    });
    node.signal("TERM");
    // Graceful shutdown would wait for the stalled client and exit 0; the forced exit is status 1.
    assert_eq!(node.wait_exit().code(), Some(1), "{}", node.output());
    assert!(node.output().contains("second signal"));
    drop(stalled);
}

#[test]
fn help_lists_every_option_the_node_accepts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bsv-relay")).arg("--help").output().expect("run --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = bsv_relay::config::known_options()
        .iter()
        .copied()
        .filter(|name| {
            !text.contains(&format!("-{name}="))
                && !text.contains(&format!("-{name},"))
                && !text.contains(&format!("-{name}\n"))
                && !text.contains(&format!("-{name} "))
        })
        .collect();
    assert!(missing.is_empty(), "--help does not mention {missing:?}:\n{text}");
}

/// Found as an operator ran it: `-bind=… -connect=…` must listen on the bind (SV Node's
/// InitParameterInteraction), where we used to let `-connect` turn listening off.
#[test]
fn bind_with_connect_listens_on_the_bind() {
    let dead_peer = format!("127.0.0.1:{}", common::free_port());
    let dir = TempDir::new();
    let port = common::free_port();
    let bind = format!("-bind=127.0.0.1:{port}");
    let node = TestNode::start_in(dir, Auth::Password, &[&bind, &format!("-connect={dead_peer}")]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut peer = common::wait_for("the -bind listener", std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).ok().map(common::peer::RawPeer::from_stream)
    });
    assert!(peer.try_handshake(), "handshake on the bound port\n{}", node.output());

    // And -listen=0 still wins over -bind.
    let port = common::free_port();
    let node = TestNode::start_in(TempDir::new(), Auth::Password, &[&format!("-bind=127.0.0.1:{port}"), "-listen=0"]);
    // The RPC answering means the P2P listeners, which start before it, would be bound.
    node.cli(&["getconnectioncount"]).ok();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{}", node.output());
}
