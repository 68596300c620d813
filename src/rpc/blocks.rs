//! Block and UTXO RPCs over the chain state: `getblockhash`, `getblock`, `getchaintips`, `gettxout`,
//! `gettxoutsetinfo`, `submitblock`, `invalidateblock`, `reconsiderblock`. Changes to the chain go
//! through the block thread ([`crate::relay::block_processor`]), like blocks from peers.

use std::sync::Arc;

use serde_json::{json, Value};

use super::blockchain::{header_json_active, verbosity};
use super::txjson::{amount, script_pubkey_json, tx_json};
use super::{Params, Router, RpcContext, RpcError};
use crate::validation::CoinView;
use crate::wire::{Block, Decodable, Hash256, OutPoint, Reader};

pub fn register(r: &mut Router) {
    r.register("getblockhash", "Blockchain", GETBLOCKHASH_HELP, getblockhash);
    r.register("getblock", "Blockchain", GETBLOCK_HELP, getblock);
    r.register("getchaintips", "Blockchain", GETCHAINTIPS_HELP, getchaintips);
    r.register_blocking("gettxout", "Blockchain", GETTXOUT_HELP, gettxout);
    r.register("gettxoutsetinfo", "Blockchain", GETTXOUTSETINFO_HELP, gettxoutsetinfo);
    r.register_async("submitblock", "Mining", SUBMITBLOCK_HELP, |ctx, p| async move { submitblock(&ctx, &p).await });
    r.register_async("invalidateblock", "Blockchain", INVALIDATEBLOCK_HELP, |ctx, p| async move {
        change(&ctx, &p, false).await
    });
    r.register_async("reconsiderblock", "Blockchain", RECONSIDERBLOCK_HELP, |ctx, p| async move {
        change(&ctx, &p, true).await
    });
}

const GETBLOCKHASH_HELP: &str =
    "getblockhash height\n\nReturns hash of block in best-block-chain at height provided.\n";
const GETBLOCK_HELP: &str = "getblock \"blockhash\" ( verbosity )\n\n\
If verbosity is 0, returns a string that is serialized, hex-encoded data for block 'hash'.\n\
If verbosity is 1, returns an Object with information about block <hash>.\n\
If verbosity is 2, returns an Object with information about block <hash> and information about each transaction.\n";
const GETCHAINTIPS_HELP: &str =
    "getchaintips\n\nReturn information about all known tips in the block tree, including the main chain as well as orphaned branches.\n";
const GETTXOUT_HELP: &str =
    "gettxout \"txid\" n ( include_mempool )\n\nReturns details about an unspent transaction output.\n";
const GETTXOUTSETINFO_HELP: &str = "gettxoutsetinfo\n\nReturns statistics about the unspent transaction output set.\n";
const SUBMITBLOCK_HELP: &str =
    "submitblock \"hexdata\" ( \"jsonparametersobject\" )\n\nAttempts to submit new block to network.\n";
const INVALIDATEBLOCK_HELP: &str =
    "invalidateblock \"blockhash\"\n\nPermanently marks a block as invalid, as if it violated a consensus rule.\n";
const RECONSIDERBLOCK_HELP: &str =
    "reconsiderblock \"blockhash\"\n\nRemoves invalidity status of a block and its descendants, reconsider them for activation.\n";

pub(crate) fn parse_hash(p: &Params, i: usize, what: &str) -> Result<Hash256, RpcError> {
    p.str(i)?
        .parse()
        .map_err(|_| RpcError::InvalidParameter { message: format!("{what} must be of length 64 (not a valid hash)") })
}

fn getblockhash(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 1)?;
    let height = p.opt_i64(0)?.ok_or(RpcError::Usage)?;
    let out_of_range = || RpcError::InvalidParameter { message: "Block height out of range".into() };
    let height = u32::try_from(height).map_err(|_| out_of_range())?;
    let hash = ctx.chain.active_hash_at(height).ok_or_else(out_of_range)?;
    Ok(json!(hash.to_string()))
}

fn getblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 2)?;
    let hash = parse_hash(p, 0, "blockhash")?;
    let verbosity = verbosity(p.get(1))?;
    let not_found = || RpcError::NotFound { message: "Block not found".into() };
    let raw = ctx.chain.block_bytes(&hash).ok_or_else(not_found)?;
    if verbosity == 0 {
        return Ok(json!(hex::encode(&raw)));
    }
    let block = Block::consensus_decode(&mut Reader::new(&raw))
        .map_err(|e| RpcError::Internal { message: format!("stored block does not decode: {e}") })?;
    let mut v = header_json_active(ctx, &hash).ok_or_else(not_found)?;
    v["size"] = json!(raw.len());
    v["num_tx"] = json!(block.transactions.len());
    let prefix = ctx.chain.params().pubkey_address_prefix;
    v["tx"] = if verbosity >= 2 {
        block.transactions.iter().map(|tx| tx_json(tx, prefix)).collect()
    } else {
        block.transactions.iter().map(|tx| json!(tx.txid().to_string())).collect()
    };
    Ok(v)
}

fn getchaintips(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    let tips: Vec<Value> = ctx
        .chain
        .chain_tips()
        .iter()
        .map(|t| json!({ "height": t.height, "hash": t.hash.to_string(), "branchlen": t.branch_len, "status": t.status.as_str() }))
        .collect();
    Ok(json!(tips))
}

fn gettxout(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(2, 3)?;
    let txid = parse_hash(p, 0, "txid")?;
    let vout = p.opt_i64(1)?.and_then(|n| u32::try_from(n).ok()).ok_or(RpcError::Usage)?;
    let include_mempool = p.opt_bool(2)?.unwrap_or(true);
    let outpoint = OutPoint { txid, vout };
    // With the mempool held still, the tip, the coins and the pool agree.
    ctx.txs.settled(|pool| txout_json(ctx, pool, &outpoint, include_mempool))
}

fn txout_json(
    ctx: &RpcContext,
    pool: &crate::mempool::Mempool,
    outpoint: &OutPoint,
    include_mempool: bool,
) -> Result<Value, RpcError> {
    let (height, best) = ctx.chain.tip();
    let prefix = ctx.chain.params().pubkey_address_prefix;
    if include_mempool {
        if pool.spender(outpoint).is_some() {
            return Ok(Value::Null);
        }
        if let Some(entry) = pool.get(&outpoint.txid) {
            let Some(out) = entry.tx().outputs.get(outpoint.vout as usize).cloned() else { return Ok(Value::Null) };
            return Ok(json!({
                "bestblock": best.to_string(),
                "confirmations": 0,
                "value": amount(out.value),
                "scriptPubKey": script_pubkey_json(&out.script_pubkey, prefix),
                "coinbase": false,
            }));
        }
    }
    let Some(coin) = ctx.chain.utxo().coin(outpoint) else { return Ok(Value::Null) };
    Ok(json!({
        "bestblock": best.to_string(),
        "confirmations": height - coin.height + 1,
        "value": amount(coin.value),
        "scriptPubKey": script_pubkey_json(&coin.script_pubkey, prefix),
        "coinbase": coin.is_coinbase,
    }))
}

fn gettxoutsetinfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(0, 0)?;
    // Flushes the coins cache and counts the set on disk, as SV Node does; blocks are not
    // connected meanwhile, so the statistics below describe the same block.
    let counts = ctx.chain.utxo_counts().map_err(|e| RpcError::Misc { message: e.to_string() })?;
    let stats = ctx.chain.utxo().stats();
    Ok(json!({
        "height": stats.height,
        "bestblock": stats.best_block.to_string(),
        "transactions": counts.transactions,
        "txouts": stats.txouts,
        "bogosize": stats.bogosize,
        "total_amount": amount(stats.total_amount),
    }))
}

async fn submitblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    p.expect_count(1, 2)?;
    let bytes =
        hex::decode(p.str(0)?).map_err(|_| RpcError::Coded { code: -22, message: "Block decode failed".into() })?;
    let block =
        Block::from_slice(&bytes).map_err(|_| RpcError::Coded { code: -22, message: "Block decode failed".into() })?;
    let hash = block.hash();
    let outcome = ctx.blocks.submit(Arc::new(block)).await.map_err(|e| RpcError::Misc { message: e.to_string() })?;
    Ok(match outcome {
        Ok(u) if u.duplicate => json!("duplicate"),
        Ok(u) => match u.invalid.iter().find(|(h, _)| *h == hash) {
            Some((_, e)) => json!(e.reject_reason()),
            None if ctx.chain.has_block(&hash) => Value::Null,
            None => json!("inconclusive"),
        },
        Err(f) => json!(f.reject_reason.unwrap_or("rejected")),
    })
}

async fn change(ctx: &RpcContext, p: &Params, reconsider: bool) -> Result<Value, RpcError> {
    p.expect_count(1, 1)?;
    let hash = parse_hash(p, 0, "blockhash")?;
    if !ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner()).contains(&hash) {
        return Err(RpcError::NotFound { message: "Block not found".into() });
    }
    let outcome = if reconsider { ctx.blocks.reconsider(hash).await } else { ctx.blocks.invalidate(hash).await };
    match outcome.map_err(|e| RpcError::Misc { message: e.to_string() })? {
        Ok(_) => Ok(Value::Null),
        Err(f) => Err(RpcError::Coded { code: -20, message: f.message }),
    }
}
