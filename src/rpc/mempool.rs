//! Mempool RPCs: `sendrawtransaction`, `getrawmempool`, `getmempoolinfo`, `getmempoolentry`,
//! `getrawtransaction` (mempool transactions, and those of the active chain's blocks when the
//! caller names the block). Submissions go through the same validation pipeline as peers' ones.

use std::sync::Arc;

use serde_json::{json, Value};

use super::blocks::parse_hash;
use super::txjson::{amount, tx_json};
use super::{Params, Router, RpcContext, RpcError};
use crate::mempool::accept::TxOutcome;
use crate::validation::{CoinView, RejectKind};
use crate::wire::{Decodable, Encodable, OutPoint, Transaction};

pub fn register(r: &mut Router) {
    r.register_async("sendrawtransaction", "Rawtransactions", SENDRAWTRANSACTION_HELP, |ctx, p| async move {
        sendrawtransaction(&ctx, &p).await
    });
    // Readers wait for a block being connected, so the tip they may have seen and the mempool agree.
    r.register_blocking("getrawmempool", "Blockchain", GETRAWMEMPOOL_HELP, getrawmempool);
    r.register_blocking("getmempoolinfo", "Blockchain", GETMEMPOOLINFO_HELP, getmempoolinfo);
    r.register_blocking("getmempoolentry", "Blockchain", GETMEMPOOLENTRY_HELP, getmempoolentry);
    r.register_blocking("getrawtransaction", "Rawtransactions", GETRAWTRANSACTION_HELP, getrawtransaction);
}

const SENDRAWTRANSACTION_HELP: &str = "sendrawtransaction \"hexstring\" ( allowhighfees dontcheckfee )\n\n\
Submits raw transaction (serialized, hex-encoded) to local node and network.\n";
const GETRAWMEMPOOL_HELP: &str = "getrawmempool ( verbose )\n\nReturns all transaction ids in memory pool as a json array of string transaction ids.\n";
const GETMEMPOOLINFO_HELP: &str = "getmempoolinfo\n\nReturns details on the active state of the TX memory pool.\n";
const GETMEMPOOLENTRY_HELP: &str = "getmempoolentry txid\n\nReturns mempool data for given transaction\n";
const GETRAWTRANSACTION_HELP: &str = "getrawtransaction \"txid\" ( verbose \"blockhash\" )\n\n\
Return the raw transaction data. Without a blockhash, only mempool transactions are found (bsv-relay keeps no transaction index).\n";

fn decode_failed() -> RpcError {
    RpcError::Coded { code: -22, message: "TX decode failed".into() }
}

async fn sendrawtransaction(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 3)?;
    let bytes = hex::decode(p.str(0)?.trim()).map_err(|_| decode_failed())?;
    let tx = Transaction::from_slice(&bytes).map_err(|_| decode_failed())?;
    let txid = tx.txid();
    // Already confirmed: some output of it is in the UTXO set (SV Node's check, -27).
    let in_chain = (0..tx.outputs.len() as u32).any(|vout| ctx.chain.utxo().coin(&OutPoint { txid, vout }).is_some());
    if in_chain {
        return Err(RpcError::Coded { code: -27, message: "Transaction already in block chain".into() });
    }
    // SV Node's guard against a fat-fingered fee: -maxtxfee unless `allowhighfees` is true.
    let allow_high_fees = p.opt_bool(1)?.unwrap_or(false);
    let max_fee = (!allow_high_fees && ctx.config.maxtxfee_sats > 0).then_some(ctx.config.maxtxfee_sats);
    let outcome =
        ctx.txs.submit_rpc(Arc::new(tx), max_fee).await.map_err(|e| RpcError::Misc { message: e.to_string() })?;
    match outcome {
        TxOutcome::Accepted { .. } | TxOutcome::Known { .. } => Ok(json!(txid.to_string())),
        TxOutcome::Rejected { reject, .. } if reject.kind == RejectKind::MissingInputs => {
            Err(RpcError::Coded { code: -25, message: "Missing inputs".into() })
        }
        TxOutcome::Rejected { reject, .. } => {
            Err(RpcError::Coded { code: -26, message: format!("{}: {}", reject.code, reject.reason) })
        }
        TxOutcome::Orphan { .. } => Err(RpcError::Coded { code: -25, message: "Missing inputs".into() }),
    }
}

fn entry_json(ctx: &RpcContext, e: &crate::mempool::Entry) -> Value {
    let height = ctx.chain.tip().0;
    let depends: Vec<String> = e.parents().iter().map(ToString::to_string).collect();
    json!({
        "size": e.size(),
        "fee": amount(e.fee),
        "modifiedfee": amount(e.fee),
        "time": e.time,
        "height": height,
        "depends": depends,
    })
}

fn getrawmempool(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 1)?;
    if p.opt_bool(0)?.unwrap_or(false) {
        return Ok(ctx.txs.settled(|pool| {
            let mut out = serde_json::Map::new();
            for e in pool.entries() {
                out.insert(e.txid.to_string(), entry_json(ctx, &e));
            }
            Value::Object(out)
        }));
    }
    Ok(ctx.txs.settled(|pool| json!(pool.txids().iter().map(ToString::to_string).collect::<Vec<_>>())))
}

fn getmempoolinfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    let now = crate::rpc::network::unix_now();
    Ok(ctx.txs.settled(|pool| {
        json!({
            "size": pool.len(),
            "bytes": pool.bytes(),
            "usage": pool.usage(),
            "maxmempool": pool.config().max_bytes,
            "mempoolminfee": amount(i64::try_from(pool.min_fee_rate(now)).unwrap_or(i64::MAX)),
            "orphans": ctx.txs.orphans().len(),
        })
    }))
}

fn getmempoolentry(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 1)?;
    let txid = parse_hash(p, 0, "txid")?;
    ctx.txs
        .settled(|pool| pool.get(&txid).map(|e| entry_json(ctx, &e)))
        .ok_or_else(|| RpcError::NotFound { message: "Transaction not in mempool".into() })
}

fn getrawtransaction(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 3)?;
    let txid = parse_hash(p, 0, "txid")?;
    let verbose = match p.get(1) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(Value::String(s)) => !matches!(s.as_str(), "0" | "false"),
        Some(_) => return Err(RpcError::InvalidParameter { message: "Invalid verbose".into() }),
    };
    let mut found = ctx.txs.settled(|pool| pool.get(&txid)).map(|e| (e.tx(), None));
    if found.is_none() && p.len() > 2 {
        let block_hash = parse_hash(p, 2, "blockhash")?;
        let block = ctx
            .chain
            .block(&block_hash)
            .ok_or_else(|| RpcError::NotFound { message: "Block hash not found".into() })?;
        found = block.transactions.into_iter().find(|t| t.txid() == txid).map(|t| (t, Some(block_hash)));
    }
    let (tx, block) = found.ok_or_else(|| RpcError::NotFound {
        message:
            "No such mempool transaction. Blockchain transactions are only found with their block hash (no -txindex)."
                .into(),
    })?;
    if !verbose {
        let mut raw = Vec::new();
        tx.consensus_encode(&mut raw);
        return Ok(json!(hex::encode(raw)));
    }
    let mut v = tx_json(&tx, ctx.chain.params().pubkey_address_prefix);
    if let Some(b) = block {
        v["blockhash"] = json!(b.to_string());
    }
    Ok(v)
}
