//! Network RPCs: peers, totals, `addnode`, `disconnectnode` and the ban list, with SV Node's result shapes
//! (SV `rpc/net.cpp`; operators-and-robustness.md §1.4) and its error codes and messages.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{amount, Params, Router, RpcContext, RpcError};
use crate::metrics::BanSource;
use crate::peer::{BanDuration, BanReason, PeerId, PeerInfo, Subnet};

/// P2P protocol version we speak: SV Node 1.0.x's `PROTOCOL_VERSION`.
pub const PROTOCOL_VERSION: u32 = 70016;

/// Minimum relay fee reported by `getnetworkinfo`, in satoshis per kB: SV Node 1.0.13 reports 0 on regtest
/// (checked against the binary); the mempool module will supply the configured value.
const RELAY_FEE_SATS_PER_KB: i64 = 0;

/// SV Node's defaults for the consolidation-transaction policy fields `getnetworkinfo` reports.
const MIN_CONSOLIDATION_FACTOR: u32 = 20;
const MAX_CONSOLIDATION_INPUT_SCRIPT_SIZE: u32 = 150;
const MIN_CONF_CONSOLIDATION_INPUT: u32 = 6;

/// SV Node's `txnpropagationfreq` default in milliseconds (inv batching interval).
const TXN_PROPAGATION_FREQ_MS: u64 = 250;

/// The user agent, BIP 14 style: `/bsv-relay:0.1.0/`.
pub fn subversion() -> String {
    format!("/bsv-relay:{}/", env!("CARGO_PKG_VERSION"))
}

/// `version` as SV Node and Core encode it: major·1 000 000 + minor·10 000 + patch·100.
pub fn client_version() -> u64 {
    let part = |s: &str| s.parse::<u64>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_PATCH")) * 100
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn register(r: &mut Router) {
    r.register("getnetworkinfo", "Network", GETNETWORKINFO_HELP, getnetworkinfo);
    r.register("getpeerinfo", "Network", GETPEERINFO_HELP, getpeerinfo);
    r.register("getconnectioncount", "Network", GETCONNECTIONCOUNT_HELP, getconnectioncount);
    r.register("getnettotals", "Network", GETNETTOTALS_HELP, getnettotals);
    r.register("ping", "Network", PING_HELP, ping);
    r.register("addnode", "Network", ADDNODE_HELP, addnode);
    r.register("disconnectnode", "Network", DISCONNECTNODE_HELP, disconnectnode);
    r.register("setban", "Network", SETBAN_HELP, setban);
    r.register("listbanned", "Network", LISTBANNED_HELP, listbanned);
    r.register("clearbanned", "Network", CLEARBANNED_HELP, clearbanned);
}

const GETNETWORKINFO_HELP: &str =
    "getnetworkinfo\n\nReturns an object containing various state info regarding P2P networking.\n";
const GETPEERINFO_HELP: &str =
    "getpeerinfo\n\nReturns data about each connected network node as a json array of objects.\n";
const GETCONNECTIONCOUNT_HELP: &str = "getconnectioncount\n\nReturns the number of connections to other nodes.\n";
const GETNETTOTALS_HELP: &str =
    "getnettotals\n\nReturns information about network traffic, including bytes in, bytes out,\nand current time.\n";
const PING_HELP: &str = "ping\n\nRequests that a ping be sent to all other nodes, to measure ping time.\n\
Results provided in getpeerinfo, pingtime and pingwait fields are decimal seconds.\n";
const ADDNODE_HELP: &str = "addnode \"node\" \"add|remove|onetry\" ( v2transport )\n\n\
Attempts add or remove a node from the addnode list.\nOr try a connection to a node once.\n\n\
Arguments:\n1. \"node\"     (string, required) The node (see getpeerinfo for nodes)\n\
2. \"command\"  (string, required) 'add' to add a node to the list, 'remove' to remove a node from the list, \
'onetry' to try a connection to the node once\n\
3. v2transport (boolean, optional, default=false) Open the connection with the v2 (BIP324) handshake; \
if the node closes it before its key, v1 is used with it from then on\n";
const DISCONNECTNODE_HELP: &str = "disconnectnode \"[address]\" [nodeid]\n\n\
Immediately disconnects from the specified peer node.\n\n\
Strictly one out of 'address' and 'nodeid' can be provided to identify the node.\n\n\
Arguments:\n1. \"address\"     (string, optional) The IP address/port of the node\n\
2. \"nodeid\"      (number, optional) The node ID (see getpeerinfo for node IDs)\n";
const SETBAN_HELP: &str = "setban \"subnet\" \"add|remove\" (bantime) (absolute)\n\n\
Attempts add or remove a IP/Subnet from the banned list.\n\n\
Arguments:\n1. \"subnet\"       (string, required) The IP/Subnet with a optional netmask (default is /32 = single ip)\n\
2. \"command\"      (string, required) 'add' to add a IP/Subnet to the list, 'remove' to remove a IP/Subnet from the list\n\
3. \"bantime\"      (numeric, optional) time in seconds how long (or until when if [absolute] is set) the ip is banned \
(0 or empty means using the default time, set by -bantime)\n\
4. \"absolute\"     (boolean, optional) If set, the bantime must be a absolute timestamp in seconds since epoch\n";
const LISTBANNED_HELP: &str = "listbanned\n\nList all banned IPs/Subnets.\n";
const CLEARBANNED_HELP: &str = "clearbanned\n\nClear all banned IPs.\n";

fn getnetworkinfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    use crate::peer::local::Family;
    // As SV Node: `limited` is "only connect to other networks" (`-onlynet`), `reachable` its inverse.
    let network = |f: Family| {
        let reachable = ctx.local.is_reachable(f);
        json!({"name": f.name(), "limited": !reachable, "reachable": reachable, "proxy": "", "proxy_randomize_credentials": false})
    };
    let localaddresses: Vec<Value> = ctx
        .local
        .list()
        .iter()
        .map(|a| json!({"address": a.ip.to_string(), "port": a.port, "score": a.score}))
        .collect();
    Ok(json!({
        "version": client_version(),
        "subversion": subversion(),
        "protocolversion": PROTOCOL_VERSION,
        "localservices": format!("{:016x}", crate::peer::protocol::local_services(ctx.config.v2transport)),
        "localrelay": true,
        "timeoffset": 0,
        "txnpropagationfreq": TXN_PROPAGATION_FREQ_MS,
        "txnpropagationqlen": 0,
        "networkactive": true,
        "connections": ctx.peers.count(),
        "addresscount": 0,
        "streampolicies": "Default",
        "networks": [network(Family::Ipv4), network(Family::Ipv6)],
        "relayfee": amount(RELAY_FEE_SATS_PER_KB),
        "excessutxocharge": amount(0),
        "minconsolidationfactor": MIN_CONSOLIDATION_FACTOR,
        "maxconsolidationinputscriptsize": MAX_CONSOLIDATION_INPUT_SCRIPT_SIZE,
        "minconfconsolidationinput": MIN_CONF_CONSOLIDATION_INPUT,
        "minconsolidationinputmaturity": MIN_CONF_CONSOLIDATION_INPUT,
        "acceptnonstdconsolidationinput": false,
        "localaddresses": localaddresses,
        "warnings": "",
    }))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One `getpeerinfo` element (SV `rpc/net.cpp`), with the fields tools read.
pub fn peer_json(p: &PeerInfo) -> Value {
    let mut v = json!({
        "id": p.id.0,
        "addr": p.addr.to_string(),
        "services": format!("{:016x}", p.services),
        "relaytxes": p.relaytxes,
        "lastsend": p.lastsend,
        "lastrecv": p.lastrecv,
        "bytessent": p.bytessent,
        "bytesrecv": p.bytesrecv,
        "conntime": p.conntime,
        "timeoffset": p.timeoffset,
        "version": p.version,
        "subver": p.subver,
        "inbound": p.inbound,
        "addnode": p.addnode,
        "startingheight": p.startingheight,
        "banscore": p.banscore,
        "transport_protocol_type": p.transport,
        "session_id": p.session_id,
        "reputation": {
            "blocks_first": p.blocks_first,
            "txs_first": p.txs_first,
            "last_useful": p.last_useful,
            "score": (p.reputation * 100.0).round() / 100.0,
            "minping": p.minping.map(|d| d.as_secs_f64()),
        },
        "synced_headers": p.synced_headers,
        "synced_blocks": p.synced_blocks,
        "inflight": [],
        "whitelisted": p.whitelisted,
        "bytessent_per_msg": p.bytessent_per_msg,
        "bytesrecv_per_msg": p.bytesrecv_per_msg,
    });
    let obj = v.as_object_mut().expect("json! of an object literal is an object");
    if let Some(a) = p.addrlocal {
        obj.insert("addrlocal".into(), json!(a.to_string()));
    }
    for (key, d) in [("pingtime", p.pingtime), ("minping", p.minping), ("pingwait", p.pingwait)] {
        if let Some(d) = d {
            obj.insert(key.into(), json!(secs(d)));
        }
    }
    v
}

fn getpeerinfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    Ok(Value::Array(ctx.peers.snapshot().iter().map(peer_json).collect()))
}

fn getconnectioncount(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    Ok(json!(ctx.peers.count()))
}

fn getnettotals(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    let (sent, recv) = ctx.peers.totals();
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Ok(json!({
        "totalbytesrecv": recv,
        "totalbytessent": sent,
        "timemillis": u64::try_from(millis).unwrap_or(u64::MAX),
        "uploadtarget": {
            "timeframe": 86400,
            "target": 0,
            "target_reached": false,
            "serve_historical_blocks": true,
            "bytes_left_in_cycle": 0,
            "time_left_in_cycle": 0,
        },
    }))
}

fn ping(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    ctx.peers.ping_all();
    Ok(Value::Null)
}

fn addnode(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(2, 3)?;
    let node = p.str(0)?;
    // Core's third argument: open the connection with the v2 handshake. SV Node's bitcoin-cli
    // knows no third argument of addnode and passes it as a string, so "true"/"false" count too.
    let v2 = match p.opt_str(2) {
        Ok(Some("true")) => true,
        Ok(Some("false")) => false,
        _ => p.opt_bool(2)?.unwrap_or(false),
    };
    match p.str(1)? {
        "add" => ctx.peers.addnode_add(node, v2)?,
        "remove" => ctx.peers.addnode_remove(node)?,
        "onetry" => ctx.peers.addnode_onetry(node, v2)?,
        _ => return Err(RpcError::Usage),
    }
    Ok(Value::Null)
}

fn disconnectnode(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 2)?;
    let address = p.opt_str(0)?.unwrap_or("");
    let nodeid = p.opt_i64(1)?;
    match (address.is_empty(), nodeid) {
        (false, None) => {
            if let Ok(sa) = address.parse::<SocketAddr>() {
                ctx.peers.disconnect_addr(sa)?;
            } else if let Ok(ip) = address.parse::<IpAddr>() {
                if ctx.peers.disconnect_matching(|a| a.ip() == ip) == 0 {
                    return Err(crate::peer::RegistryError::NotConnected.into());
                }
            } else {
                return Err(crate::peer::RegistryError::NotConnected.into());
            }
        }
        (true, Some(id)) => {
            let id = u64::try_from(id).map_err(|_| crate::peer::RegistryError::NotConnected)?;
            ctx.peers.disconnect(PeerId(id))?;
        }
        _ => {
            return Err(RpcError::InvalidParameter {
                message: "Only one of address and nodeid should be provided.".into(),
            })
        }
    }
    Ok(Value::Null)
}

fn setban(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(2, 4)?;
    let subnet_text = p.str(0)?;
    let command = p.str(1)?;
    if command != "add" && command != "remove" {
        return Err(RpcError::Usage);
    }
    let subnet: Subnet = subnet_text.parse().map_err(|_| RpcError::InvalidSubnet)?;
    let now = unix_now();
    if command == "remove" {
        ctx.bans.unban(subnet, now)?;
    } else {
        let bantime = p.opt_i64(2)?.unwrap_or(0);
        let absolute = p.opt_bool(3)?.unwrap_or(false);
        let bantime = u64::try_from(bantime)
            .map_err(|_| RpcError::InvalidParameter { message: format!("Invalid bantime: {bantime}") })?;
        let duration = match (bantime, absolute) {
            (0, _) => BanDuration::Default,
            (t, true) => BanDuration::Until(t),
            (t, false) => BanDuration::For(Duration::from_secs(t)),
        };
        ctx.bans.ban(subnet, duration, BanReason::Manual, now)?;
        ctx.metrics.record_ban(BanSource::Manual);
        ctx.peers.disconnect_matching(|a| subnet.contains(a.ip()));
    }
    ctx.metrics.banned_entries.set(i64::try_from(ctx.bans.len()).unwrap_or(i64::MAX));
    Ok(Value::Null)
}

fn listbanned(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    let list = ctx.bans.list(unix_now())?;
    ctx.metrics.banned_entries.set(i64::try_from(list.len()).unwrap_or(i64::MAX));
    Ok(Value::Array(
        list.iter()
            .map(|(s, e)| {
                json!({
                    "address": s.to_string(),
                    "banned_until": e.until,
                    "ban_created": e.created,
                    "ban_reason": e.reason.description(),
                })
            })
            .collect(),
    ))
}

fn clearbanned(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    ctx.bans.clear()?;
    ctx.metrics.banned_entries.set(0);
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_agent() {
        assert_eq!(client_version(), 10_000);
        assert_eq!(subversion(), "/bsv-relay:0.1.0/");
    }

    #[test]
    fn peer_json_has_the_minimum_fields() {
        let mut info = PeerInfo::new("1.2.3.4:8333".parse().expect("addr"), true, 5);
        info.pingtime = Some(Duration::from_millis(1500));
        info.bytesrecv_per_msg.insert("*other*".into(), 26);
        let v = peer_json(&info);
        for key in [
            "id",
            "addr",
            "services",
            "relaytxes",
            "lastsend",
            "lastrecv",
            "bytessent",
            "bytesrecv",
            "conntime",
            "pingtime",
            "version",
            "subver",
            "inbound",
            "addnode",
            "startingheight",
            "banscore",
            "synced_headers",
            "whitelisted",
            "bytessent_per_msg",
            "bytesrecv_per_msg",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["pingtime"], json!(1.5));
        assert_eq!(v["bytesrecv_per_msg"]["*other*"], json!(26));
        assert!(v.get("pingwait").is_none());
    }
}
