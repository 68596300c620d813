//! The JSON-RPC server driven by SV Node's own `bitcoin-cli` (v1.0.13): every implemented method, the
//! error output bitcoin-cli prints, wrong credentials and cookie authentication; plus the raw HTTP
//! envelope and limits that bitcoin-cli cannot exercise.

mod common;

use common::{Auth, TempDir, TestNode, PASS, USER};
use serde_json::{json, Value};

/// bitcoin-cli's stderr for an RPC error (SV `bitcoin-cli.cpp`).
fn rpc_error(code: i32, message: &str) -> String {
    format!("error code: {code}\nerror message:\n{message}\n")
}

fn assert_rpc_error(out: &common::CliOutput, code: i32, message: &str) {
    assert_eq!(out.stderr, rpc_error(code, message), "{out:?}");
    // bitcoin-cli exits with |code|, truncated to 8 bits by the OS.
    assert_eq!(out.code, Some(code.unsigned_abs() as i32 & 0xff), "{out:?}");
    assert_eq!(out.stdout, "");
}

#[test]
fn network_and_control_methods() {
    let node = TestNode::start(&[]);

    let info = node.cli(&["getnetworkinfo"]);
    let v = info.json();
    assert_eq!(v["subversion"], json!("/bsv-relay:0.1.0/"));
    assert_eq!(v["protocolversion"], json!(70016));
    assert_eq!(v["localservices"], json!("0000000000000821"), "NODE_NETWORK | NODE_BITCOIN_CASH | NODE_P2P_V2");
    assert_eq!(v["localrelay"], json!(true));
    assert_eq!(v["connections"], json!(0));
    assert_eq!(v["networkactive"], json!(true));
    assert!(v["version"].is_u64() && v["timeoffset"].is_i64());
    assert_eq!(v["networks"][0]["name"], json!("ipv4"));
    // Amounts are printed like SV Node's, with 8 decimals.
    assert!(info.stdout.contains("\"relayfee\": 0.00000000"), "{}", info.stdout);

    assert_eq!(node.cli(&["getpeerinfo"]).json(), json!([]));
    assert_eq!(node.cli(&["getconnectioncount"]).ok(), "0\n");
    let totals = node.cli(&["getnettotals"]).json();
    assert_eq!((totals["totalbytesrecv"].clone(), totals["totalbytessent"].clone()), (json!(0), json!(0)));
    assert!(totals["timemillis"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
    assert_eq!(totals["uploadtarget"]["timeframe"], json!(86400));
    assert_eq!(node.cli(&["ping"]).ok(), "");
    assert!(node.cli(&["uptime"]).ok().trim().parse::<u64>().is_ok());

    // addnode: add / duplicate / remove / remove again / onetry / bad command.
    assert_eq!(node.cli(&["addnode", "1.2.3.4:8333", "add"]).ok(), "");
    assert_rpc_error(&node.cli(&["addnode", "1.2.3.4:8333", "add"]), -23, "Error: Node already added");
    assert_eq!(node.cli(&["addnode", "1.2.3.4:8333", "remove"]).ok(), "");
    assert_rpc_error(&node.cli(&["addnode", "1.2.3.4:8333", "remove"]), -24, "Error: Node has not been added.");
    assert_eq!(node.cli(&["addnode", "5.6.7.8:8333", "onetry"]).ok(), "");
    let bad = node.cli(&["addnode", "1.2.3.4:8333", "bogus"]);
    assert!(
        bad.stderr.starts_with("error code: -1\nerror message:\naddnode \"node\" \"add|remove|onetry\""),
        "{bad:?}"
    );

    // disconnectnode: nobody is connected.
    assert_rpc_error(&node.cli(&["disconnectnode", "1.2.3.4:8333"]), -29, "Node not found in connected nodes");
    assert_rpc_error(&node.cli(&["disconnectnode", "", "7"]), -29, "Node not found in connected nodes");

    // setban / listbanned / clearbanned.
    assert_eq!(node.cli(&["setban", "1.2.3.4", "add"]).ok(), "");
    assert_rpc_error(&node.cli(&["setban", "1.2.3.4", "add"]), -23, "Error: IP/Subnet already banned");
    assert_eq!(node.cli(&["setban", "10.0.0.0/8", "add", "100"]).ok(), "");
    assert_eq!(node.cli(&["setban", "5.6.7.8", "add", "4000000000", "true"]).ok(), "");
    let list = node.cli(&["listbanned"]).json();
    let addrs: Vec<&str> = list.as_array().expect("array").iter().filter_map(|e| e["address"].as_str()).collect();
    assert_eq!(addrs, vec!["1.2.3.4/32", "5.6.7.8/32", "10.0.0.0/8"]);
    let entry = &list[1];
    assert_eq!(entry["banned_until"], json!(4_000_000_000u64));
    assert_eq!(entry["ban_reason"], json!("manually added"));
    let ten = &list[2];
    let created = ten["ban_created"].as_u64().expect("ban_created");
    assert_eq!(ten["banned_until"].as_u64(), Some(created + 100));
    assert_rpc_error(
        &node.cli(&["setban", "9.9.9.9", "remove"]),
        -30,
        "Error: Unban failed. Requested address/subnet was not previously banned.",
    );
    assert_rpc_error(&node.cli(&["setban", "not-an-ip", "add"]), -30, "Error: Invalid IP/Subnet");
    assert_eq!(node.cli(&["setban", "1.2.3.4", "remove"]).ok(), "");
    assert_eq!(node.cli(&["listbanned"]).json().as_array().map(Vec::len), Some(2));
    assert_eq!(node.cli(&["clearbanned"]).ok(), "");
    assert_eq!(node.cli(&["listbanned"]).json(), json!([]));

    // help lists every method; help <cmd> gives its text.
    let help = node.cli(&["help"]);
    let text = help.ok();
    for m in [
        "== Network ==",
        "== Control ==",
        "getnetworkinfo",
        "getpeerinfo",
        "getconnectioncount",
        "getnettotals",
        "ping",
        "addnode \"node\" \"add|remove|onetry\"",
        "disconnectnode",
        "setban",
        "listbanned",
        "clearbanned",
        "uptime",
        "help",
        "stop",
    ] {
        assert!(text.contains(m), "help lacks {m}: {text}");
    }
    assert!(node.cli(&["help", "ping"]).ok().starts_with("ping\n\nRequests that a ping be sent"));
    assert_eq!(node.cli(&["help", "nosuch"]).ok(), "help: unknown command: nosuch\n");
}

#[test]
fn errors_print_as_bitcoin_cli_expects() {
    let node = TestNode::start(&[]);
    assert_rpc_error(&node.cli(&["nosuchmethod"]), -32601, "Method not found");
    // Too many parameters: the method's help text, code -1, as SV Node.
    let out = node.cli(&["getconnectioncount", "extra"]);
    assert!(out.stderr.starts_with("error code: -1\nerror message:\ngetconnectioncount\n"), "{out:?}");
    // bitcoin-cli sends `bantime` as JSON; a boolean there is a type error.
    assert_rpc_error(&node.cli(&["setban", "1.2.3.4", "add", "true"]), -3, "Expected type number, got bool");
    // A value bitcoin-cli itself cannot convert never reaches the server.
    let out = node.cli(&["setban", "1.2.3.4", "add", "abc"]);
    assert_eq!(out.stderr, "error: Error parsing JSON:abc\n");
    assert_rpc_error(
        &node.cli(&["disconnectnode", "1.2.3.4:1", "3"]),
        -8,
        "Only one of address and nodeid should be provided.",
    );
}

#[test]
fn wrong_credentials_are_refused() {
    let node = TestNode::start(&[]);
    let out = node.cli_with(&[format!("-rpcuser={USER}"), "-rpcpassword=wrong".to_owned(), "uptime".to_owned()]);
    assert_eq!(out.stderr, "error: incorrect rpcuser or rpcpassword (authorization failed)\n");
    assert_eq!(out.code, Some(1));
    let (status, head, _) = node.post(r#"{"method":"uptime","id":1}"#, Some((USER, "nope")));
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Basic realm=\"jsonrpc\""), "{head}");
    let (status, _, _) = node.post(r#"{"method":"uptime","id":1}"#, None);
    assert_eq!(status, 401);
}

#[test]
fn cookie_authentication_and_stop() {
    let dir = TempDir::new();
    let datadir = dir.0.clone();
    let mut node = TestNode::start_in(dir, Auth::Cookie, &[]);
    let cookie_path = node.netdir().join(".cookie");
    let cookie = std::fs::read_to_string(&cookie_path).expect("cookie written at start");
    let secret = cookie.strip_prefix("__cookie__:").expect("cookie user");
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));

    // bitcoin-cli finds the cookie in <datadir>/regtest/ by itself.
    let with_datadir = |cmd: &str| vec![format!("-datadir={}", datadir.display()), cmd.to_owned()];
    assert!(node.cli_with(&with_datadir("uptime")).ok().trim().parse::<u64>().is_ok());
    let out = node.cli_with(&[format!("-rpcuser={USER}"), format!("-rpcpassword={PASS}"), "uptime".to_owned()]);
    assert_eq!(out.stderr, "error: incorrect rpcuser or rpcpassword (authorization failed)\n");

    assert_eq!(node.cli_with(&with_datadir("stop")).ok(), "Bitcoin server stopping\n");
    let status = node.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", node.output());
    assert!(!cookie_path.exists(), "cookie removed at shutdown");
    assert!(node.netdir().join("banlist.json").exists(), "ban list flushed at shutdown");
}

#[test]
fn http_envelope_batches_and_limits() {
    let node = TestNode::start(&[]);
    let auth = Some((USER, PASS));
    for body in [
        r#"{"method":"getconnectioncount","params":[],"id":1}"#,
        r#"{"jsonrpc":"1.0","method":"getconnectioncount","params":[],"id":1}"#,
        r#"{"jsonrpc":"2.0","method":"getconnectioncount","id":1}"#,
    ] {
        let (status, head, reply) = node.post(body, auth);
        assert_eq!(status, 200, "{body}");
        assert!(head.contains("Content-Type: application/json"));
        let v: Value = serde_json::from_str(&reply).expect("json reply");
        assert_eq!(v, json!({"result": 0, "error": null, "id": 1}));
    }
    let (status, _, reply) = node.post(r#"[{"method":"uptime","id":1},{"method":"nope","id":2},5]"#, auth);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(v[1], json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": 2}));
    assert_eq!(v[2]["error"]["code"], json!(-32600));

    let (status, _, reply) = node.post("{not json", auth);
    assert_eq!(status, 500);
    assert_eq!(serde_json::from_str::<Value>(&reply).expect("json")["error"]["code"], json!(-32700));
    let (status, _, _) = node.post(r#"{"method":"nope","id":1}"#, auth);
    assert_eq!(status, 404);
    let (status, _, _) = node.post(r#"{"id":1}"#, auth);
    assert_eq!(status, 400);

    // A body over the limit is refused from its Content-Length, before any of it is read.
    let req = format!(
        "POST / HTTP/1.1\r\nAuthorization: Basic dTpw\r\nContent-Length: {}\r\n\r\n",
        bsv_relay::rpc::MAX_BODY_BYTES + 1
    );
    let (status, _, reply) = node.http(req.as_bytes());
    assert_eq!(status, 413);
    assert_eq!(serde_json::from_str::<Value>(&reply).expect("json")["error"]["code"], json!(-32603));

    let (status, _, body) = node.http(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!((status, body.as_str()), (405, "JSONRPC server handles only POST requests"));
    let (status, _, _) = node.http(b"garbage\r\n\r\n");
    assert_eq!(status, 400);

    // Keep-alive: two requests on one connection.
    let one = r#"{"method":"getconnectioncount","id":1}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nAuthorization: Basic dTpw\r\nContent-Length: {len}\r\n\r\n{one}\
         POST / HTTP/1.1\r\nAuthorization: Basic dTpw\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n{one}",
        len = one.len()
    );
    let (_, _, rest) = node.http(req.as_bytes());
    assert_eq!(rest.matches("\"result\":0").count(), 2, "{rest}");

    // The server is still healthy after all of that.
    assert_eq!(node.cli(&["getconnectioncount"]).ok(), "0\n");
}
