//! Blockchain RPCs over the chain state: `getblockchaininfo`, `getblockcount`, `getbestblockhash`,
//! `getblockheader`. `blocks`, `bestblockhash` and confirmations follow the active chain (fully
//! validated blocks); `headers` and `bestheaderhash` the best valid header, as in SV Node.

use serde_json::{json, Value};

use super::{Params, Router, RpcContext, RpcError};
use crate::chain::{HeaderEntry, HeaderTree, U256};
use crate::wire::{Encodable, Hash256};

pub fn register(r: &mut Router) {
    r.register("getblockchaininfo", "Blockchain", GETBLOCKCHAININFO_HELP, getblockchaininfo);
    r.register("getblockcount", "Blockchain", GETBLOCKCOUNT_HELP, getblockcount);
    r.register("getbestblockhash", "Blockchain", GETBESTBLOCKHASH_HELP, getbestblockhash);
    r.register("getblockheader", "Blockchain", GETBLOCKHEADER_HELP, getblockheader);
}

const GETBLOCKCHAININFO_HELP: &str =
    "getblockchaininfo\n\nReturns an object containing various state info regarding blockchain processing.\n";
const GETBLOCKCOUNT_HELP: &str = "getblockcount\n\nReturns the number of blocks in the longest blockchain.\n";
const GETBESTBLOCKHASH_HELP: &str =
    "getbestblockhash\n\nReturns the hash of the best (tip) block in the longest blockchain.\n";
const GETBLOCKHEADER_HELP: &str = "getblockheader \"hash\" ( verbosity )\n\n\
If verbose is false, returns a string that is serialized, hex-encoded data for blockheader 'hash'.\n\
If verbose is true, returns an Object with information about blockheader <hash>.\n\n\
Arguments:\n1. \"hash\"          (string, required) The block hash\n\
2. verbosity       (boolean, numeric or string, optional, default=1) 0 (false, RAW_HEADER) for the hex encoded data, 1 (true, DECODE_HEADER) for a json object\n";

/// Difficulty as SV Node prints it: the genesis target divided by this target.
pub fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mut diff = f64::from(0x0000_ffff) / f64::from(bits & 0x00ff_ffff).max(1.0);
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

fn work_hex(work: U256) -> String {
    let mut be = work.to_le_bytes();
    be.reverse();
    hex::encode(be)
}

fn tree(ctx: &RpcContext) -> std::sync::RwLockReadGuard<'_, HeaderTree> {
    ctx.headers.read().unwrap_or_else(|e| e.into_inner())
}

fn getblockchaininfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    let (height, hash) = ctx.chain.tip();
    let ibd = ctx.chain.is_initial_block_download(crate::rpc::network::unix_now());
    let t = tree(ctx);
    let best = t.best_tip();
    let index = t.index_of(&hash).expect("the active tip is in the tree");
    let tip = t.entry(index);
    Ok(json!({
        "chain": t.params().network.name(),
        "blocks": height,
        "headers": best.height,
        "bestblockhash": hash.to_string(),
        "bestheaderhash": best.hash.to_string(),
        "difficulty": difficulty(tip.header.bits),
        "mediantime": t.median_time_past(index),
        "verificationprogress": if best.height == 0 { 1.0 } else { f64::from(height) / f64::from(best.height.max(height)) },
        "initialblockdownload": ibd,
        "chainwork": work_hex(tip.chain_work),
        "headerschainwork": work_hex(best.chain_work),
        "pruned": false,
    }))
}

fn getblockcount(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    Ok(json!(ctx.chain.tip().0))
}

fn getbestblockhash(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    Ok(json!(ctx.chain.tip().1.to_string()))
}

fn getblockheader(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 2)?;
    let hash: Hash256 = p
        .str(0)?
        .parse()
        .map_err(|_| RpcError::InvalidParameter { message: "hash must be of length 64 (not a valid hash)".into() })?;
    let verbose = verbosity(p.get(1))? != 0;
    if !verbose {
        let t = tree(ctx);
        let index = t.index_of(&hash).ok_or_else(|| RpcError::NotFound { message: "Block not found".into() })?;
        return Ok(json!(hex::encode(t.entry(index).header.to_bytes())));
    }
    header_json_active(ctx, &hash).ok_or_else(|| RpcError::NotFound { message: "Block not found".into() })
}

/// A header as `getblockheader` shows it, with confirmations counted on the active chain.
pub(crate) fn header_json_active(ctx: &RpcContext, hash: &Hash256) -> Option<Value> {
    let (tip_height, _) = ctx.chain.tip();
    let active_height = ctx.chain.active_height_of(hash);
    let next = active_height.and_then(|h| ctx.chain.active_hash_at(h + 1));
    let t = tree(ctx);
    let index = t.index_of(hash)?;
    let e = t.entry(index);
    let confirmations = match active_height {
        Some(h) => i64::from(tip_height) - i64::from(h) + 1,
        None => -1,
    };
    Some(header_json(&t, index, e, confirmations, next))
}

/// SV Node's `verbosity`: a bool, a number or a name (bitcoin-cli sends what it was given as a string).
pub(crate) fn verbosity(v: Option<&Value>) -> Result<u8, RpcError> {
    let bad = || RpcError::InvalidParameter { message: "Invalid verbosity".into() };
    match v {
        None | Some(Value::Null) => Ok(1),
        Some(Value::Bool(b)) => Ok(u8::from(*b)),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n <= 2).map(|n| n as u8).ok_or_else(bad),
        Some(Value::String(s)) => match s.as_str() {
            "false" | "0" | "RAW_HEADER" => Ok(0),
            "true" | "1" | "DECODE_HEADER" => Ok(1),
            "2" | "DECODE_HEADER_EXTENDED" | "DECODE_TRANSACTIONS" => Ok(2),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

fn header_json(t: &HeaderTree, index: usize, e: &HeaderEntry, confirmations: i64, next: Option<Hash256>) -> Value {
    let mut v = json!({
        "hash": e.hash.to_string(),
        "confirmations": confirmations,
        "height": e.height,
        "version": e.header.version,
        "versionHex": format!("{:08x}", e.header.version),
        "merkleroot": e.header.merkle_root.to_string(),
        "time": e.header.time,
        "mediantime": t.median_time_past(index),
        "nonce": e.header.nonce,
        "bits": format!("{:08x}", e.header.bits),
        "difficulty": difficulty(e.header.bits),
        "chainwork": work_hex(e.chain_work),
    });
    if e.height > 0 {
        v["previousblockhash"] = json!(e.header.prev_block.to_string());
    }
    if let Some(n) = next {
        v["nextblockhash"] = json!(n.to_string());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_matches_sv_node_for_known_bits() {
        assert!((difficulty(0x1d00ffff) - 1.0).abs() < 1e-12);
        assert!((difficulty(0x207fffff) - 4.656542373906925e-10).abs() < 1e-20);
    }
}
