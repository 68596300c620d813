//! Regtest mining RPCs: `generatetoaddress n address [maxtries]` and `generate n [maxtries]` build
//! blocks from the mempool ([`crate::mining`]), solve regtest's proof of work and submit them
//! through the block thread, which connects and announces them like any other block.
//!
//! `generate` pays a key of the node's own, created on first use in `<netdir>/mining.seed`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{Params, Router, RpcContext, RpcError};
use crate::chain::Network;
use crate::mining::{assemble, select, Template};

pub fn register(r: &mut Router) {
    r.register_async("generatetoaddress", "Generating", GENERATETOADDRESS_HELP, |ctx, p| async move {
        let address = p.str(1).map(str::to_owned);
        p.expect_count(2, 3)?;
        let script = crate::wallet::address_script(&address?, ctx.chain.params().pubkey_address_prefix)
            .map_err(|_| RpcError::Coded { code: -5, message: "Error: Invalid address".into() })?;
        generate(&ctx, &p, script).await
    });
    r.register_async("generate", "Generating", GENERATE_HELP, |ctx, p| async move {
        p.expect_count(1, 2)?;
        let script = own_key(&ctx)?.p2pkh_script();
        generate(&ctx, &p, script).await
    });
}

const GENERATETOADDRESS_HELP: &str = "generatetoaddress nblocks address (maxtries)\n\n\
Mine blocks immediately to a specified address (before the RPC call returns). Regtest only.\n";
const GENERATE_HELP: &str = "generate nblocks ( maxtries )\n\n\
Mine up to nblocks blocks immediately (before the RPC call returns) to a key of this node. Regtest only.\n";

/// Most blocks one call mines (SV Node has no limit; this bounds one RPC's work).
const MAX_BLOCKS_PER_CALL: i64 = 10_000;

/// The node's own mining key, from a random seed kept in the data directory.
fn own_key(ctx: &RpcContext) -> Result<crate::wallet::Key, RpcError> {
    let path = ctx.config.netdir().join("mining.seed");
    let seed = match std::fs::read(&path) {
        Ok(s) if s.len() == 32 => s,
        _ => {
            let seed: [u8; 32] = rand::random();
            std::fs::write(&path, seed)
                .map_err(|e| RpcError::Internal { message: format!("cannot save {}: {e}", path.display()) })?;
            seed.to_vec()
        }
    };
    Ok(crate::wallet::Key::from_seed(&seed))
}

async fn generate(ctx: &Arc<RpcContext>, p: &Params, payout: Vec<u8>) -> Result<Value, RpcError> {
    if ctx.chain.params().network != Network::Regtest {
        return Err(RpcError::Coded { code: -32601, message: "This method can only be used on regtest".into() });
    }
    let n = p.opt_i64(0)?.ok_or(RpcError::Usage)?;
    if !(0..=MAX_BLOCKS_PER_CALL).contains(&n) {
        return Err(RpcError::InvalidParameter {
            message: format!("nblocks must be between 0 and {MAX_BLOCKS_PER_CALL}"),
        });
    }
    let mut hashes = Vec::new();
    for i in 0..n {
        let template = next_template(ctx);
        let txs = select_for(ctx, &template);
        let extra_nonce = rand::random::<u64>() ^ i as u64;
        let block = assemble(ctx.chain.params(), &template, &txs, &payout, extra_nonce);
        let hash = block.hash();
        let outcome =
            ctx.blocks.submit(Arc::new(block)).await.map_err(|e| RpcError::Misc { message: e.to_string() })?;
        match outcome {
            Ok(u) if u.invalid.is_empty() && ctx.chain.active_height_of(&hash).is_some() => {
                hashes.push(json!(hash.to_string()))
            }
            Ok(u) => {
                let reason = u.invalid.first().map_or("not connected", |(_, e)| e.reject_reason());
                return Err(RpcError::Misc { message: format!("mined block {hash} was not accepted: {reason}") });
            }
            Err(f) => {
                return Err(RpcError::Misc { message: format!("mined block {hash} was not accepted: {}", f.message) })
            }
        }
    }
    Ok(json!(hashes))
}

/// The mempool transactions for a block on `template`, within the pre-Genesis sigop limit (each
/// counted as block validation counts it, with the coins it spends).
fn select_for(ctx: &RpcContext, template: &Template) -> Vec<Arc<crate::mempool::Entry>> {
    let params = ctx.chain.params();
    let entries = ctx.mempool.entries();
    if template.height >= params.activations.genesis {
        return select(&entries, block_size_limit(ctx), None);
    }
    let p2sh = template.height >= params.activations.p2sh;
    let view = crate::mempool::MempoolView { base: ctx.chain.utxo(), pool: &ctx.mempool };
    let count = |e: &crate::mempool::Entry| {
        use crate::validation::CoinView;
        let tx = e.tx();
        // A coin gone since validation (a block raced us) keeps the transaction out.
        match tx.inputs.iter().map(|i| view.coin(&i.prev_out)).collect::<Option<Vec<_>>>() {
            Some(coins) => crate::validation::tx::tx_sigops(&tx, &coins, p2sh),
            None => u64::MAX / 2,
        }
    };
    select(&entries, block_size_limit(ctx), Some(&count))
}

/// The most a mined block may hold: the block size limit, capped so one RPC call stays quick.
fn block_size_limit(ctx: &RpcContext) -> usize {
    const MINED_BLOCK_CAP: u64 = 128 * 1024 * 1024;
    usize::try_from(ctx.config.excessiveblocksize.min(MINED_BLOCK_CAP)).unwrap_or(usize::MAX)
}

fn next_template(ctx: &RpcContext) -> Template {
    let (height, prev_hash) = ctx.chain.tip();
    let tree = ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
    let index = tree.index_of(&prev_hash).expect("the active tip is in the tree");
    let mtp = tree.median_time_past(index);
    let now = u32::try_from(crate::rpc::network::unix_now()).unwrap_or(u32::MAX);
    let time = now.max(mtp.saturating_add(1));
    let bits = tree.next_work_required(index, time);
    Template { prev_hash, height: height + 1, bits, time }
}
