//! A UTXO set of 5,600,000 coins (5,040,000 at the end) followed with `-dbcache=64`: resident memory stays bounded, and
//! after a `kill -9` while blocks that spend cold coins are being connected, the stored set equals
//! a recount.
//!
//! The chain is built here, cheaply: 200 empty regtest blocks, then 56 blocks whose two extra
//! transactions each fan a mature coinbase out into 50,000 OP_TRUE outputs (no signatures; one
//! transaction stays under the 1 MB transaction size limit), then blocks whose transactions spend
//! 56,000 of those coins each, drawn from every fan-out transaction (most of them long evicted
//! from the cache, so they are read from disk). Every block is a pure function of its height and parent,
//! so the child process that connects them can be killed and started again and continue the same
//! chain. The expected statistics are computed from the chain's shape, not from the code under test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use bsv_relay::chain::params::REGTEST;
use bsv_relay::chain::{ChainOptions, ChainState};
use bsv_relay::validation::{ScriptVerifier, TxContext};
use bsv_relay::wire::{Block, BlockHeader, OutPoint, Transaction, TxFields, TxId, TxIn, TxOut};
use bytes::Bytes;

mod common;
use common::blocks::{self, OP_TRUE};
use common::TempDir;

/// Outputs of each fan-out transaction.
const FAN: u32 = 50_000;
/// Fan-out transactions per fan-out block.
const FANS_PER_BLOCK: u32 = 2;
/// Fan-out blocks: FAN × FANS_PER_BLOCK × FAN_BLOCKS = 5,600,000 coins, 5,040,000 after the spends.
const FAN_BLOCKS: u32 = 56;
/// Fan-out transactions in all; fan-out transaction `k` spends the coinbase of block `k + 1`.
const FAN_TXS: u32 = FAN_BLOCKS * FANS_PER_BLOCK;
/// The first fan-out block: the coinbases its successors spend (up to block 100) are mature.
const FIRST_FAN: u32 = 201;
/// Blocks that spend cold coins, after the fan-out blocks.
const SPEND_BLOCKS: u32 = 10;
/// Spending transactions per spending block, and inputs per transaction.
const SPEND_TXS: u32 = 5;
const SPEND_INPUTS: u32 = 11_200;
const LAST: u32 = FIRST_FAN + FAN_BLOCKS + SPEND_BLOCKS - 1;
/// `-dbcache=64`.
const DBCACHE: usize = 64 << 20;
/// Resident memory bound for the node following this chain with `-dbcache=64`: the cache (64 MB,
/// up to twice that while its map grows by doubling), redb's page cache (8 MB), one block being
/// connected (two 0.5 MB fan-out transactions: 100,000 new coins staged, ~25 MB) and the test's own
/// code. The whole set held in memory would take about 750 MB.
const MAX_RSS_MB: u64 = 300;

fn coinbase(height: u32) -> Transaction {
    blocks::coinbase(height, None, &[REGTEST.subsidy(height)])
}

/// Value of each output of fan-out transaction `k`: the spent coinbase split evenly.
fn fan_value(k: u32) -> i64 {
    REGTEST.subsidy(k + 1) / i64::from(FAN)
}

fn fan_tx(k: u32) -> Transaction {
    let prev_out = OutPoint { txid: coinbase(k + 1).txid(), vout: 0 };
    Transaction::from_fields(TxFields {
        version: 1,
        inputs: vec![TxIn { prev_out, script_sig: Bytes::new(), sequence: u32::MAX }],
        outputs: vec![TxOut { value: fan_value(k), script_pubkey: Bytes::from_static(OP_TRUE) }; FAN as usize],
        lock_time: 0,
    })
}

/// Spending transaction `t` of spending block `s`: input `i` takes output `(s·SPEND_TXS + t)·100 +
/// i / 112` of fan-out transaction `i % 112`, so each transaction reads from every fan-out
/// transaction and no coin is spent twice.
fn spend_tx(s: u32, t: u32, fan_txids: &[TxId]) -> Transaction {
    let per_fan = SPEND_INPUTS / FAN_TXS;
    let inputs = (0..SPEND_INPUTS)
        .map(|i| {
            let f = i % FAN_TXS;
            let vout = (s * SPEND_TXS + t) * per_fan + i / FAN_TXS;
            TxIn {
                prev_out: OutPoint { txid: fan_txids[f as usize], vout },
                script_sig: Bytes::new(),
                sequence: u32::MAX,
            }
        })
        .collect();
    let value: i64 = (0..SPEND_INPUTS).map(|i| fan_value(i % FAN_TXS)).sum();
    Transaction::from_fields(TxFields {
        version: 1,
        inputs,
        outputs: vec![TxOut { value, script_pubkey: Bytes::from_static(OP_TRUE) }],
        lock_time: 0,
    })
}

fn block_at(prev: &BlockHeader, height: u32, fan_txids: &[TxId]) -> Block {
    let mut txs = vec![coinbase(height)];
    if (FIRST_FAN..FIRST_FAN + FAN_BLOCKS).contains(&height) {
        let first = (height - FIRST_FAN) * FANS_PER_BLOCK;
        txs.extend((first..first + FANS_PER_BLOCK).map(fan_tx));
    } else if height >= FIRST_FAN + FAN_BLOCKS {
        let s = height - FIRST_FAN - FAN_BLOCKS;
        txs.extend((0..SPEND_TXS).map(|t| spend_tx(s, t, fan_txids)));
    }
    blocks::solved_block(prev, prev.time + 1, txs)
}

/// (txouts, total amount) of the set at `height`, from the chain's shape.
fn expected(height: u32) -> (u64, i64) {
    let (mut txouts, mut amount) = (0u64, 0i64);
    for h in 1..=height {
        txouts += 1;
        amount += REGTEST.subsidy(h);
        if (FIRST_FAN..FIRST_FAN + FAN_BLOCKS).contains(&h) {
            // Two coinbases spent, FAN coins of each one's value (exactly divisible) created.
            txouts += u64::from(FANS_PER_BLOCK * FAN) - u64::from(FANS_PER_BLOCK);
        } else if h >= FIRST_FAN + FAN_BLOCKS {
            txouts -= u64::from(SPEND_TXS * (SPEND_INPUTS - 1));
        }
    }
    (txouts, amount)
}

fn rss_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a memory line")
}

fn open(dir: &Path) -> ChainState {
    let opts = ChainOptions { coins_cache_bytes: DBCACHE, ..ChainOptions::new() };
    ChainState::open(dir, &REGTEST, opts).expect("chain state opens")
}

const CHILD_DIR: &str = "BSV_RELAY_UTXO_CHILD_DIR";

/// The child: connects the chain from its stored tip to `LAST`, printing each height and its
/// resident memory, then its peak.
#[test]
fn utxo_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let state = open(Path::new(&dir));
    let verifier = ScriptVerifier { ctx: TxContext::new(&REGTEST) };
    state.activate(&verifier).expect("stored blocks replay");
    let fan_txids: Vec<TxId> = (0..FAN_TXS).map(|k| fan_tx(k).txid()).collect();
    let (mut height, _) = state.tip();
    let mut prev = state.tip_header();
    while height < LAST {
        let block = block_at(&prev, height + 1, &fan_txids);
        let update = state.accept_block(Arc::new(block.clone()), &verifier).expect("child connects");
        assert!(update.invalid.is_empty(), "{:?}", update.invalid);
        let cache = state.coins_cache_stats();
        assert!(
            cache.bytes <= cache.limit,
            "after block {}: cache {} bytes over its bound {}",
            height + 1,
            cache.bytes,
            cache.limit
        );
        height += 1;
        prev = block.header;
        println!("connected {height} rss_kb {}", rss_kb("VmRSS:"));
    }
    let before = state.coins_cache_stats();
    state.flush().expect("flush");
    let after = state.coins_cache_stats();
    assert_eq!(after.flushes, before.flushes + 1, "the final flush is counted");
    assert!(after.flushed_entries >= before.flushed_entries + before.dirty as u64, "{before:?} then {after:?}");
    assert_eq!(after.dirty, 0, "nothing left to write: {after:?}");
    println!("done peak_rss_kb {}", rss_kb("VmHWM:"));
}

/// Runs the child until it prints `connected <stop_at>` (then kills it) or `done`; returns the last
/// height it printed and the peak RSS (kB) it reported.
fn run_child(dir: &Path, stop_at: Option<u32>) -> (u32, u64) {
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "utxo_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("piped");
    let (mut last, mut peak) = (0, 0);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["connected", h, "rss_kb", rss] => {
                last = h.parse().expect("height");
                peak = peak.max(rss.parse().expect("rss"));
                if Some(last) == stop_at {
                    child.kill().expect("SIGKILL");
                    break;
                }
            }
            ["done", "peak_rss_kb", rss] => peak = peak.max(rss.parse().expect("rss")),
            _ => {}
        }
    }
    let status = child.wait().expect("reaped");
    assert!(stop_at.is_some() || status.success(), "the child failed: {status}");
    (last, peak)
}

fn assert_stored_set_is_the_recount(dir: &Path) -> u32 {
    let state = open(dir);
    let (height, _) = state.tip();
    let (txouts, amount) = expected(height);
    let stats = state.utxo().stats();
    assert_eq!((stats.txouts, stats.total_amount), (txouts, amount), "kept statistics at {height}");
    let stored = state.utxo_counts().expect("the stored set counts");
    assert_eq!((stored.txouts, stored.total_amount, stored.bogosize), (txouts, amount, txouts * 51), "at {height}");
    height
}

#[test]
fn five_million_coins_with_a_64_mb_cache_survive_a_kill_9() {
    assert!(expected(LAST).0 > 5_000_000);
    let coinbases = u64::from(FIRST_FAN + FAN_BLOCKS - 1 - FAN_TXS);
    assert_eq!(expected(FIRST_FAN + FAN_BLOCKS - 1).0, u64::from(FAN_TXS * FAN) + coinbases, "5M coins and coinbases");
    let dir = TempDir::new();
    // Killed while connecting the blocks that spend cold coins.
    let kill_at = FIRST_FAN + FAN_BLOCKS + 3;
    let (last, peak_first) = run_child(&dir.0, Some(kill_at));
    assert_eq!(last, kill_at, "the child stopped early");
    let height = assert_stored_set_is_the_recount(&dir.0);
    eprintln!("killed after {last}, stored set at {height}, peak RSS {} MB", peak_first / 1024);
    assert!(height >= FIRST_FAN + FAN_BLOCKS / 2, "the 64 MB cache was flushed as the set grew: tip {height}");
    // Started again, the node replays what it lost and follows the chain to its end.
    let (last, peak) = run_child(&dir.0, None);
    assert_eq!(last, LAST);
    assert_eq!(assert_stored_set_is_the_recount(&dir.0), LAST);
    let peak_mb = peak.max(peak_first) / 1024;
    eprintln!("peak RSS {peak_mb} MB with -dbcache=64 and {} coins", expected(LAST).0);
    assert!(peak_mb < MAX_RSS_MB, "peak resident memory {peak_mb} MB, bound {MAX_RSS_MB} MB");
}
