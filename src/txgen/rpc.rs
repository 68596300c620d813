//! A minimal blocking JSON-RPC client (HTTP/1.1 with basic auth) for the load generator: enough
//! for `generatetoaddress`, `getblockhash`, `getblock`, `sendrawtransaction` on a regtest node.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach the node's RPC at {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("RPC {method} failed: {message}")]
    Call { method: String, message: String },
    #[error("unreadable RPC reply to {method}: {detail}")]
    Reply { method: String, detail: String },
}

pub struct Rpc {
    pub addr: String,
    auth: String,
}

impl Rpc {
    pub fn new(addr: &str, user: &str, password: &str) -> Rpc {
        use base64_lite::encode;
        Rpc { addr: addr.to_owned(), auth: encode(format!("{user}:{password}").as_bytes()) }
    }

    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let io = |source| RpcError::Io { addr: self.addr.clone(), source };
        let body = json!({ "jsonrpc": "1.0", "id": 1, "method": method, "params": params }).to_string();
        let mut s = TcpStream::connect(&self.addr).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(300))).ok();
        let req = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.addr,
            self.auth,
            body.len(),
            body
        );
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let bad = |detail: String| RpcError::Reply { method: method.to_owned(), detail };
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| bad("no HTTP body".into()))?;
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body).ok_or_else(|| bad("bad chunked encoding".into()))?
        } else {
            body.to_owned()
        };
        let v: Value = serde_json::from_str(body.trim()).map_err(|e| bad(format!("{e}: {body}")))?;
        if !v["error"].is_null() {
            return Err(RpcError::Call { method: method.to_owned(), message: v["error"]["message"].to_string() });
        }
        Ok(v["result"].clone())
    }
}

/// Joins the chunks of an HTTP/1.1 chunked body (SV Node's server sends large replies so).
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
#[test]
fn chunked_bodies_are_joined() {
    assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(), Some("abcde"));
    assert_eq!(dechunk("5\r\nabc"), None);
}

/// Base64 for the Authorization header (the one place the generator needs it).
mod base64_lite {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    #[test]
    fn encodes_like_rfc_4648() {
        assert_eq!(encode(b"u:p"), "dTpw");
        assert_eq!(encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(encode(b"ab"), "YWI=");
    }
}
