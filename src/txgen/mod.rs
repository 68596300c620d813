//! `bsv-relay txgen`: a transaction load generator for regtest networks.
//!
//! It creates a key from `--seed`, gets coins with `generatetoaddress` on the `--rpc` node (then 100
//! more blocks for maturity), fans each coinbase out into `--fanout` outputs (one transaction per
//! coinbase, mined), signs one 1-input 1-output P2PKH spend per output before sending anything (so
//! signing never limits the send rate), and sends them as `tx` messages over P2P to the `--connect`
//! nodes in turn, paced to `--rate` per second (0: as fast as the socket takes them).
//!
//! Acceptance is observed, not assumed: `--observers` more connections to each node listen, and a
//! transaction counts as accepted when a node announces it by `inv` (a node relays what it accepted
//! to every peer but the sender); with `--accept-by-mempool`, by the growth of the node's
//! `getmempoolinfo.size` instead (for nodes that trickle announcements slowly). The time from
//! writing a transaction to each listener's first `inv` of it is the announce latency. A line per
//! second shows sent, accepted and the rate; a summary (or JSON with `--json`) ends the run, and
//! `--txids-out` writes the accepted txids.

mod p2p;
mod rpc;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;

use crate::wallet::{Key, SIGHASH_ALL_FORKID};
use crate::wire::{Block, Decodable, Encodable, OutPoint, Transaction, TxFields, TxId, TxIn, TxOut};
use p2p::Conn;
use rpc::Rpc;

/// Fee per spend: 1 sat/byte on a ~191-byte transaction, above SV Node's default relay fee.
const SPEND_FEE: i64 = 500;
/// Fee of a fan-out transaction.
const FANOUT_FEE: i64 = 100_000;
/// Fan-out outputs mined per block: their sigops stay under the pre-Genesis block limit.
const SIGOPS_PER_BLOCK: u64 = 10_000;
/// How long to wait for the last announcements after sending.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TxgenError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Rpc(#[from] rpc::RpcError),
    #[error(transparent)]
    P2p(#[from] p2p::P2pError),
    #[error("{0}")]
    Chain(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub rpc: String,
    pub rpcuser: String,
    pub rpcpassword: String,
    pub connect: Vec<SocketAddr>,
    pub rate: u64,
    pub count: u64,
    pub duration: Option<Duration>,
    pub seed: u64,
    pub fanout: u64,
    pub json: bool,
    pub txids_out: Option<std::path::PathBuf>,
    /// Do not wait for announcements (for targets that do not relay back, e.g. a lone node).
    pub no_listen: bool,
    /// Listening connections per node: each is one more peer the node announces to.
    pub observers: u64,
    /// Count acceptance by the growth of the `--rpc` node's `getmempoolinfo.size` (a lone node
    /// without other traffic or mining), not by announcements.
    pub accept_by_mempool: bool,
    /// Speak the v2 (BIP324) transport on every connection.
    pub v2: bool,
}

pub const USAGE: &str =
    "Usage: bsv-relay txgen --rpc HOST:PORT --rpcuser U --rpcpassword P --connect IP:PORT [--connect ...]\n\
  [--rate TX_PER_S (0 = as fast as possible)] [--count N | --duration SECONDS] [--seed N] [--fanout N]\n\
  [--json] [--txids-out FILE (accepted txids; with --no-listen, sent ones)] [--no-listen]\n\
  [--observers N (listening connections per node, default 1)] [--accept-by-mempool]\n\
  [--v2 (every connection over the v2 encrypted transport)]\n";

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, TxgenError> {
        let mut o = Options {
            rpc: String::new(),
            rpcuser: String::new(),
            rpcpassword: String::new(),
            connect: Vec::new(),
            rate: 100,
            count: 1000,
            duration: None,
            seed: 1,
            fanout: 1000,
            json: false,
            txids_out: None,
            no_listen: false,
            observers: 1,
            accept_by_mempool: false,
            v2: false,
        };
        let mut it = args.iter();
        let bad = |k: &str, v: &str| TxgenError::Usage(format!("invalid value for {k}: {v:?}\n{USAGE}"));
        while let Some(a) = it.next() {
            let key = a.trim_start_matches('-');
            let (key, inline) = match key.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (key, None),
            };
            if matches!(key, "json" | "no-listen" | "accept-by-mempool" | "v2") {
                match key {
                    "json" => o.json = true,
                    "no-listen" => o.no_listen = true,
                    "v2" => o.v2 = true,
                    _ => o.accept_by_mempool = true,
                }
                continue;
            }
            let v = match inline.or_else(|| it.next().cloned()) {
                Some(v) => v,
                None => return Err(TxgenError::Usage(format!("{a} needs a value\n{USAGE}"))),
            };
            let num = |v: &str| v.parse::<u64>().map_err(|_| bad(key, v));
            match key {
                "rpc" => o.rpc = v,
                "rpcuser" => o.rpcuser = v,
                "rpcpassword" => o.rpcpassword = v,
                "connect" => o.connect.push(v.parse().map_err(|_| bad(key, &v))?),
                "rate" => o.rate = num(&v)?,
                "count" => o.count = num(&v)?,
                "duration" => o.duration = Some(Duration::from_secs(num(&v)?)),
                "seed" => o.seed = num(&v)?,
                "fanout" => o.fanout = num(&v)?.clamp(1, 10_000),
                "observers" => o.observers = num(&v)?.clamp(1, 100),
                "txids-out" => o.txids_out = Some(v.into()),
                _ => return Err(TxgenError::Usage(format!("unknown option {a}\n{USAGE}"))),
            }
        }
        if o.rpc.is_empty() || o.connect.is_empty() {
            return Err(TxgenError::Usage(USAGE.to_owned()));
        }
        if let Some(d) = o.duration {
            // Enough transactions for the whole duration at the rate.
            o.count = (o.rate.max(1) * d.as_secs()).max(1);
        }
        Ok(o)
    }
}

/// A spendable output of the generator's key.
#[derive(Clone, Copy)]
struct Utxo {
    outpoint: OutPoint,
    value: i64,
}

fn sign_spend(key: &Key, coins: &[Utxo], outputs: Vec<TxOut>) -> Transaction {
    let script = key.p2pkh_script();
    let mut fields = TxFields {
        version: 1,
        inputs: coins
            .iter()
            .map(|c| TxIn { prev_out: c.outpoint, script_sig: Bytes::new(), sequence: u32::MAX })
            .collect(),
        outputs,
        lock_time: 0,
    };
    let sigs: Vec<Vec<u8>> =
        coins.iter().enumerate().map(|(i, c)| key.sign(&fields, i, &script, c.value, SIGHASH_ALL_FORKID)).collect();
    for (i, sig) in sigs.iter().enumerate() {
        fields.inputs[i].script_sig = Bytes::from(crate::wallet::push_all(&[sig, &key.pubkey()]));
    }
    Transaction::from_fields(fields)
}

fn hex_of(tx: &Transaction) -> String {
    let mut raw = Vec::new();
    tx.consensus_encode(&mut raw);
    hex::encode(raw)
}

/// Runs the generator; returns the process exit status.
pub fn run(args: &[String]) -> i32 {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match generate(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("txgen: {e}");
            1
        }
    }
}

fn generate(o: &Options) -> Result<(), TxgenError> {
    let rpc = Rpc::new(&o.rpc, &o.rpcuser, &o.rpcpassword);
    let params = crate::chain::Network::Regtest.params();
    let key = Key::from_seed(&o.seed.to_le_bytes());
    let address = key.address(params.pubkey_address_prefix);
    // Coins: one coinbase per fan-out transaction.
    let coinbases = o.count.div_ceil(o.fanout);
    eprintln!("txgen: mining {coinbases} coinbases + 100 for maturity to {address}");
    let hashes = rpc.call("generatetoaddress", json!([coinbases, address]))?;
    let hashes: Vec<String> =
        hashes.as_array().into_iter().flatten().filter_map(|h| h.as_str().map(str::to_owned)).collect();
    let burn = Key::from_seed(b"txgen maturity").address(params.pubkey_address_prefix);
    rpc.call("generatetoaddress", json!([100, burn]))?;
    let mut coins = Vec::new();
    for h in &hashes {
        let raw = rpc.call("getblock", json!([h, 0]))?;
        let bytes = hex::decode(raw.as_str().unwrap_or_default()).map_err(|e| TxgenError::Chain(e.to_string()))?;
        let block = Block::from_slice(&bytes).map_err(|e| TxgenError::Chain(e.to_string()))?;
        let cb = &block.transactions[0];
        coins.push(Utxo { outpoint: OutPoint { txid: cb.txid(), vout: 0 }, value: cb.outputs[0].value });
    }
    // Fan out, and mine the fan-outs so the spends are independent of each other.
    let mut outputs = Vec::new();
    let mut pending_sigops = 0;
    for coin in &coins {
        let each = (coin.value - FANOUT_FEE) / o.fanout as i64;
        let outs =
            (0..o.fanout).map(|_| TxOut { value: each, script_pubkey: Bytes::from(key.p2pkh_script()) }).collect();
        let tx = sign_spend(&key, &[*coin], outs);
        rpc.call("sendrawtransaction", json!([hex_of(&tx)]))?;
        outputs.extend(
            (0..o.fanout as u32).map(|vout| Utxo { outpoint: OutPoint { txid: tx.txid(), vout }, value: each }),
        );
        // Each P2PKH output is a legacy sigop: keep each block under the pre-Genesis limit (20,000 per MB).
        pending_sigops += o.fanout;
        if pending_sigops + o.fanout > SIGOPS_PER_BLOCK {
            rpc.call("generatetoaddress", json!([1, burn]))?;
            pending_sigops = 0;
        }
    }
    rpc.call("generatetoaddress", json!([1, burn]))?;
    outputs.truncate(o.count as usize);
    eprintln!("txgen: signing {} transactions", outputs.len());
    let txs = sign_all(&key, &outputs);
    send(o, params.magic, &rpc, &txs)
}

/// Signs one 1-input 1-output spend per coin, on every core.
fn sign_all(key: &Key, coins: &[Utxo]) -> Vec<Transaction> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = coins.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = coins
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|c| {
                            let out =
                                TxOut { value: c.value - SPEND_FEE, script_pubkey: Bytes::from(key.p2pkh_script()) };
                            sign_spend(key, &[*c], vec![out])
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("signing thread")).collect()
    })
}

/// When each listener first heard of each txid.
type Seen = Arc<Mutex<HashMap<TxId, Instant>>>;

fn send(o: &Options, magic: [u8; 4], rpc: &Rpc, txs: &[Transaction]) -> Result<(), TxgenError> {
    let mut listeners: Vec<Seen> = Vec::new();
    if !o.no_listen {
        for addr in &o.connect {
            for _ in 0..o.observers {
                let listener = Conn::connect(*addr, magic, o.v2)?;
                let seen = Seen::default();
                listeners.push(seen.clone());
                std::thread::spawn(move || listener.listen(seen));
            }
        }
    }
    let mut senders: Vec<Conn> = o.connect.iter().map(|a| Conn::connect(*a, magic, o.v2)).collect::<Result<_, _>>()?;
    // Frames are encoded (and checksummed) before the clock starts: the generator shares the cores.
    let frames: Vec<Vec<u8>> =
        txs.iter().map(|tx| crate::wire::encode_frame(magic, &crate::wire::Message::Tx(tx.clone()))).collect();
    let mempool_before = if o.accept_by_mempool { mempool_size(rpc)? } else { 0 };
    let sent_ids: HashSet<_> = txs.iter().map(Transaction::txid).collect();
    let accepted_now = || {
        if o.accept_by_mempool {
            mempool_size(rpc).map(|n| n.saturating_sub(mempool_before))
        } else {
            Ok(count_accepted(&listeners, &sent_ids))
        }
    };
    let start = Instant::now();
    let mut sent_at = Vec::with_capacity(txs.len());
    let mut last_report = Instant::now();
    let mut reported = 0usize;
    let mut per_second = Vec::new();
    let batch = if o.rate == 0 { 500 } else { (o.rate as usize / 100).max(1) };
    let mut sent = 0usize;
    let mut out = Vec::new();
    while sent < txs.len() {
        let end = (sent + batch).min(txs.len());
        let conn = &mut senders[(sent / batch) % o.connect.len()];
        conn.send_frames(&frames[sent..end], &mut out)?;
        let now = Instant::now();
        sent_at.extend(std::iter::repeat_n(now, end - sent));
        conn.drain()?;
        sent = end;
        if o.rate > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / o.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            let accepted = accepted_now()?;
            per_second.push(accepted.saturating_sub(reported));
            reported = accepted;
            last_report = Instant::now();
            eprintln!(
                "txgen: {:>6.1}s sent {sent:>8} accepted {accepted:>8} ({:>6}/s)",
                start.elapsed().as_secs_f64(),
                per_second.last().unwrap_or(&0)
            );
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    // Wait for the last acceptances, until every transaction was seen or the settle time is over.
    // The sending connections stay open meanwhile: a node may drop what it received from a peer
    // but has not processed yet when that peer disconnects (SV Node does).
    let mut accepted = accepted_now()?;
    let settle_until = Instant::now() + SETTLE;
    while (!o.no_listen || o.accept_by_mempool) && accepted < txs.len() && Instant::now() < settle_until {
        std::thread::sleep(Duration::from_millis(20));
        for conn in &mut senders {
            conn.drain()?;
        }
        accepted = accepted_now()?;
    }
    for conn in senders {
        conn.finish();
    }
    let total_secs = start.elapsed().as_secs_f64();
    let mut sorted = per_second.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(accepted);
    let latency = latency_ms(txs, &sent_at, &listeners);
    if let Some(path) = &o.txids_out {
        // Without listeners nothing is seen: then the file lists what was sent.
        let lines: Vec<String> = sent_ids
            .iter()
            .filter(|t| o.no_listen || first_seen(&listeners, t).is_some())
            .map(ToString::to_string)
            .collect();
        std::fs::write(path, lines.join("\n") + "\n")
            .map_err(|e| TxgenError::Chain(format!("{}: {e}", path.display())))?;
    }
    let summary = json!({
        "sent": txs.len(),
        "accepted": accepted,
        "send_seconds": send_secs,
        "seconds": total_secs,
        "sent_per_second": txs.len() as f64 / send_secs.max(1e-9),
        "accepted_per_second": accepted as f64 / total_secs.max(1e-9),
        "median_accepted_per_second": median,
        "announce_latency_ms": latency,
    });
    if o.json {
        println!("{summary}");
    } else {
        println!(
            "txgen: sent {} in {send_secs:.2} s, accepted {accepted} ({:.0} tx/s overall, median {median}/s)",
            txs.len(),
            accepted as f64 / total_secs.max(1e-9)
        );
        if let Some(l) = latency.as_object().filter(|l| !l.is_empty()) {
            println!(
                "txgen: sent -> announced to a listener: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
                l["p50"], l["p90"], l["p99"], l["max"]
            );
        }
    }
    Ok(())
}

fn mempool_size(rpc: &Rpc) -> Result<usize, TxgenError> {
    let info = rpc.call("getmempoolinfo", json!([]))?;
    Ok(info["size"].as_u64().unwrap_or(0) as usize)
}

fn first_seen(listeners: &[Seen], txid: &TxId) -> Option<Instant> {
    listeners.iter().filter_map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).get(txid).copied()).min()
}

/// Quantiles (ms) of the time from writing a transaction to each listener's first `inv` of it,
/// over every (transaction, listener) pair that saw it; an empty object without listeners.
fn latency_ms(txs: &[Transaction], sent_at: &[Instant], listeners: &[Seen]) -> serde_json::Value {
    let mut all: Vec<f64> = Vec::new();
    for l in listeners {
        let seen = l.lock().unwrap_or_else(|e| e.into_inner());
        for (tx, at) in txs.iter().zip(sent_at) {
            if let Some(heard) = seen.get(&tx.txid()) {
                all.push(heard.saturating_duration_since(*at).as_secs_f64() * 1000.0);
            }
        }
    }
    if all.is_empty() {
        return json!({});
    }
    all.sort_unstable_by(f64::total_cmp);
    let q = |p: f64| (all[((all.len() - 1) as f64 * p).round() as usize] * 10.0).round() / 10.0;
    json!({ "samples": all.len(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0) })
}

fn count_accepted(listeners: &[Seen], sent: &HashSet<TxId>) -> usize {
    let mut union: HashSet<TxId> = HashSet::new();
    for l in listeners {
        union.extend(l.lock().unwrap_or_else(|e| e.into_inner()).keys().filter(|t| sent.contains(t)));
    }
    union.len()
}
