//! Every Prometheus metric of the node, in one struct with its own registry, and the `/metrics` listener.
//!
//! No global registry: the node builds one [`Metrics`] and passes `Arc<Metrics>` to whoever records.
//! Every label value comes from a closed enum or a fixed list in this file (never a peer address, user
//! agent or any other string a remote party controls), so the series count is bounded. Names follow the
//! Prometheus conventions: one `bsv_relay_` prefix, base units, `_total` on counters. Label combinations
//! are created up front so dashboards see zeros instead of missing series.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::http;
use crate::peer::{Direction, DisconnectReason, Misbehavior};
use crate::shutdown::Shutdown;
use crate::wire::DecodeError;

/// Prefix of every metric the node exports itself.
pub const PREFIX: &str = "bsv_relay";

/// Latency buckets from operators-and-robustness.md §2.3: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Validation buckets from operators-and-robustness.md §2.3: a power-of-two ladder, 16 µs to 1 s.
pub const VALIDATION_BUCKETS: &[f64] = &[
    0.000016, 0.000032, 0.000064, 0.000128, 0.000256, 0.000512, 0.001024, 0.002048, 0.004096, 0.008192, 0.016384,
    0.032768, 0.065536, 0.131072, 0.262144, 0.524288, 1.048576,
];

/// The closed set of `tx_rejected_total` reasons (operators-and-robustness.md §2.3).
pub const TX_REJECT_LABELS: [&str; 13] = [
    "duplicate_inputs",
    "bad_value",
    "empty",
    "oversize",
    "missing_inputs",
    "already_known",
    "conflict",
    "fee",
    "nonstandard",
    "nonfinal",
    "script",
    "invalid",
    "other",
];

/// Maps an SV Node reject reason to its `tx_rejected_total` label.
pub fn tx_reject_label(reason: &str) -> &'static str {
    match reason {
        "bad-txns-inputs-duplicate" => "duplicate_inputs",
        r if r.starts_with("bad-txns-vout-")
            || r.starts_with("bad-txns-txouttotal")
            || r.starts_with("bad-txns-inputvalues")
            || r.starts_with("bad-txns-fee")
            || r.starts_with("bad-txns-in-belowout") =>
        {
            "bad_value"
        }
        "bad-txns-vin-empty" | "bad-txns-vout-empty" => "empty",
        "bad-txns-oversize" | "tx-size" => "oversize",
        "missing-inputs" => "missing_inputs",
        "txn-already-known" | "txn-already-in-mempool" => "already_known",
        "txn-mempool-conflict" | "txn-double-spend-detected" => "conflict",
        r if r.contains("fee") || r.contains("mempool full") || r.contains("priority") => "fee",
        "scriptpubkey" | "dust" | "bad-txns-nonstandard-inputs" => "nonstandard",
        r if r.contains("nonstandard") || r.starts_with("scriptsig-") || r == "version" || r == "multi-op-return" => {
            "nonstandard"
        }
        "bad-txns-nonfinal" | "non-final" | "non-BIP68-final" => "nonfinal",
        r if r.contains("script-verify-flag") => "script",
        r if r.starts_with("bad-") => "invalid",
        _ => "other",
    }
}

/// Scrapes served at once; Prometheus scrapes one at a time, a few more cover humans with curl.
const MAX_SCRAPE_CONNECTIONS: usize = 8;

/// A scraper that has not sent its request line within this time is dropped (slowloris).
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A scrape request is a GET with a few headers; anything longer is not a scraper.
const MAX_SCRAPE_HEAD_BYTES: usize = 8 * 1024;

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
    #[error("cannot bind metrics listener on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

label_enum!(
    /// How an outbound connection came about.
    ConnType { Full => "full", Manual => "manual", Feeler => "feeler" }
);
label_enum!(
    /// Outcome of a connection attempt.
    ConnectResult {
        Accepted => "accepted", RejectedFull => "rejected_full", RejectedBanned => "rejected_banned",
        Failed => "failed",
    }
);
label_enum!(
    /// Inventory item kinds.
    InvType { Tx => "tx", Block => "block", Other => "other" }
);
label_enum!(
    /// Who put a ban in place.
    BanSource { Misbehaving => "misbehaving", Manual => "manual" }
);
label_enum!(
    /// Result of an RPC call.
    RpcResult { Ok => "ok", Error => "error" }
);

/// Wire commands that get their own `command` label; everything else counts as `other`.
pub const COMMANDS: &[&str] = &[
    "version",
    "verack",
    "addr",
    "inv",
    "getdata",
    "merkleblock",
    "getblocks",
    "getheaders",
    "tx",
    "headers",
    "block",
    "getaddr",
    "mempool",
    "ping",
    "pong",
    "notfound",
    "filterload",
    "filteradd",
    "filterclear",
    "reject",
    "sendheaders",
    "feefilter",
    "sendcmpct",
    "cmpctblock",
    "getblocktxn",
    "blocktxn",
    "protoconf",
    "authch",
    "authresp",
    "createstrm",
    "streamack",
    "dsdetected",
    "extmsg",
    "revokemid",
];

/// The `command` label for a wire command: itself if known, else `other`.
pub fn command_label(command: &str) -> &'static str {
    COMMANDS.iter().find(|c| **c == command).copied().unwrap_or("other")
}

/// The node's metrics. Fields are public so each part records directly, e.g.
/// `metrics.peer_disconnections.with_label_values(&[DisconnectReason::Manual.label()]).inc()`;
/// helper methods cover the common cases.
pub struct Metrics {
    registry: Registry,
    pub build_info: IntGaugeVec,
    pub start_time: Gauge,
    pub peers: IntGaugeVec,
    pub peer_connections: IntCounterVec,
    pub peer_disconnections: IntCounterVec,
    pub peer_ping: Histogram,
    pub messages_received: IntCounterVec,
    pub messages_sent: IntCounterVec,
    pub received_bytes: IntCounterVec,
    pub sent_bytes: IntCounterVec,
    pub decode_errors: IntCounterVec,
    pub unknown_messages: IntCounter,
    pub inv_items_received: IntCounterVec,
    pub send_queue_bytes: IntGauge,
    pub paused_peers: IntGaugeVec,
    /// Connected peers by transport ("v1", "v2").
    pub peers_by_transport: IntGaugeVec,
    /// v2 handshakes that failed, by reason.
    pub v2_handshake_failures: IntCounterVec,
    /// Outbound v2 attempts closed before the peer's key and dialled again with v1.
    pub v2_fallbacks: IntCounter,
    pub misbehavior_events: IntCounterVec,
    pub bans: IntCounterVec,
    pub banned_entries: IntGauge,
    /// Addresses in the address book.
    pub addrbook_entries: IntGauge,
    /// Connected peers by reputation range (closed set of ranges, never per-peer labels).
    pub peer_reputation: IntGaugeVec,
    /// Reputation events recorded, by kind.
    pub reputation_events: IntCounterVec,
    /// Address book entries by table (`new`, `tried`).
    pub addrbook_table: IntGaugeVec,
    /// Height of the best validated header.
    pub chain_header_height: IntGauge,
    /// Headers received, by result (`accepted`, `invalid`, `unconnecting`).
    pub chain_headers_received: IntCounterVec,
    /// Height of the active (fully validated) chain.
    pub chain_block_height: IntGauge,
    /// Timestamp of the best header, for staleness alerts.
    pub chain_best_header_time: IntGauge,
    /// Timestamp of the active tip block.
    pub chain_best_block_time: IntGauge,
    pub chain_block_validation_seconds: Histogram,
    pub chain_tips: IntGauge,
    /// Blocks received from peers, by result (`connected`, `stored`, `duplicate`, `invalid`).
    pub blocks_received: IntCounterVec,
    pub mempool_transactions: IntGauge,
    pub mempool_size_bytes: IntGauge,
    pub mempool_usage_bytes: IntGauge,
    pub mempool_max_bytes: IntGauge,
    pub tx_accepted: IntCounterVec,
    pub tx_rejected: IntCounterVec,
    pub mempool_removed: IntCounterVec,
    pub orphan_transactions: IntGauge,
    pub orphan_size_bytes: IntGauge,
    pub orphans_evicted: IntCounterVec,
    pub tx_validation_duration: HistogramVec,
    pub tx_relay_latency: HistogramVec,
    pub tx_announcements_pending: IntGauge,
    pub rpc_requests: IntCounterVec,
    pub rpc_request_duration: HistogramVec,
    pub rpc_active_requests: IntGauge,
    /// Block relay: compact blocks and latency by stage.
    pub block_relay: BlockRelayMetrics,
    /// The UTXO set's coins cache (`-dbcache`).
    pub coins_cache: CoinsCacheMetrics,
    process: ProcessMetrics,
}

struct ProcessMetrics {
    cpu_seconds: prometheus::Counter,
    resident_memory: IntGauge,
    virtual_memory: IntGauge,
    start_time: Gauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
}

fn name(s: &str) -> String {
    format!("{PREFIX}_{s}")
}

impl Metrics {
    /// Builds and registers every metric. `network` and `commit` go into `build_info`.
    pub fn new(network: &str, commit: &str) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let counter_vec = |n: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name(n), help), labels);
        let gauge_vec = |n: &str, help: &str, labels: &[&str]| IntGaugeVec::new(Opts::new(name(n), help), labels);

        let build_info =
            reg!(gauge_vec("build_info", "Build information; always 1.", &["version", "commit", "network"])?);
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), commit, network]).set(1);
        let start_time = reg!(Gauge::new(name("start_time_seconds"), "Unix time the node started.")?);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        start_time.set(now);

        let peers = reg!(gauge_vec("peers", "Connected peers.", &["direction", "conn_type"])?);
        let peer_connections = reg!(counter_vec(
            "peer_connections_total",
            "Connection attempts by direction and outcome.",
            &["direction", "result"]
        )?);
        let peer_disconnections =
            reg!(counter_vec("peer_disconnections_total", "Closed peer connections by reason.", &["reason"])?);
        let peer_ping = reg!(Histogram::with_opts(
            HistogramOpts::new(name("peer_ping_seconds"), "Ping round-trip time.").buckets(LATENCY_BUCKETS.to_vec())
        )?);
        let messages_received =
            reg!(counter_vec("p2p_messages_received_total", "P2P messages received by command.", &["command"])?);
        let messages_sent =
            reg!(counter_vec("p2p_messages_sent_total", "P2P messages sent by command.", &["command"])?);
        let received_bytes = reg!(counter_vec(
            "p2p_received_bytes_total",
            "P2P bytes received by command, header included.",
            &["command"]
        )?);
        let sent_bytes =
            reg!(counter_vec("p2p_sent_bytes_total", "P2P bytes sent by command, header included.", &["command"])?);
        let decode_errors =
            reg!(counter_vec("p2p_decode_errors_total", "Frames or payloads that failed to decode.", &["reason"])?);
        let unknown_messages =
            reg!(IntCounter::new(name("p2p_unknown_messages_total"), "Messages with an unknown command.")?);
        let inv_items_received =
            reg!(counter_vec("p2p_inv_items_received_total", "Inventory items received by type.", &["type"])?);
        let send_queue_bytes =
            reg!(IntGauge::new(name("p2p_send_queue_bytes"), "Bytes queued for sending, over all peers.")?);
        let paused_peers = reg!(gauge_vec("p2p_paused_peers", "Peers with reading or sending paused.", &["dir"])?);
        let peers_by_transport =
            reg!(gauge_vec("peers_by_transport", "Connected peers by transport (v1, v2).", &["transport"])?);
        for t in ["v1", "v2"] {
            peers_by_transport.with_label_values(&[t]);
        }
        let v2_handshake_failures =
            reg!(counter_vec("v2_handshake_failures_total", "Failed v2 (BIP324) handshakes by reason.", &["reason"])?);
        for r in crate::peer::transport::FAILURE_LABELS {
            v2_handshake_failures.with_label_values(&[r]);
        }
        let v2_fallbacks = reg!(IntCounter::new(
            name("v2_fallbacks_total"),
            "Outbound v2 attempts closed before the peer's key, dialled again with v1."
        )?);
        let misbehavior_events =
            reg!(counter_vec("misbehavior_events_total", "Peer misbehaviour events by reason.", &["reason"])?);
        let bans = reg!(counter_vec("bans_total", "Bans put in place, by source.", &["source"])?);
        let banned_entries = reg!(IntGauge::new(name("banned_entries"), "Entries on the ban list.")?);
        let addrbook_entries = reg!(IntGauge::new(name("addrbook_entries"), "Addresses in the address book.")?);
        let peer_reputation =
            reg!(gauge_vec("peer_reputation_peers", "Connected peers by reputation range.", &["range"])?);
        for r in crate::peer::reputation::RANGE_LABELS {
            peer_reputation.with_label_values(&[r]);
        }
        let reputation_events =
            reg!(counter_vec("reputation_events_total", "Peer reputation events by kind.", &["event"])?);
        for e in crate::peer::reputation::EVENT_LABELS {
            reputation_events.with_label_values(&[e]);
        }
        let addrbook_table = reg!(gauge_vec("addrbook_table_entries", "Address book entries by table.", &["table"])?);
        for t in ["new", "tried"] {
            addrbook_table.with_label_values(&[t]);
        }
        let chain_header_height =
            reg!(IntGauge::new(name("chain_header_height"), "Height of the best validated header.")?);
        let chain_headers_received =
            reg!(counter_vec("chain_headers_received_total", "Headers received from peers, by result.", &["result"])?);
        for r in ["accepted", "invalid", "unconnecting"] {
            chain_headers_received.with_label_values(&[r]);
        }
        let chain_block_height =
            reg!(IntGauge::new(name("blocks_height"), "Height of the active, fully validated chain.")?);
        let chain_best_header_time =
            reg!(IntGauge::new(name("best_header_timestamp_seconds"), "Timestamp of the best header.")?);
        let chain_best_block_time =
            reg!(IntGauge::new(name("best_block_timestamp_seconds"), "Timestamp of the active tip block.")?);
        let chain_block_validation_seconds = reg!(Histogram::with_opts(
            HistogramOpts::new(name("block_validation_duration_seconds"), "Time to validate and connect a block.")
                .buckets(VALIDATION_BUCKETS.to_vec())
        )?);
        let chain_tips = reg!(IntGauge::new(name("chain_tips"), "Tips of the block tree (getchaintips).")?);
        let blocks_received =
            reg!(counter_vec("blocks_received_total", "Blocks received from peers, by result.", &["result"])?);
        for r in ["connected", "stored", "duplicate", "invalid"] {
            blocks_received.with_label_values(&[r]);
        }
        let mempool_transactions = reg!(IntGauge::new(name("mempool_transactions"), "Transactions in the mempool.")?);
        let mempool_size_bytes =
            reg!(IntGauge::new(name("mempool_size_bytes"), "Serialized size of the mempool's transactions.")?);
        let mempool_usage_bytes =
            reg!(IntGauge::new(name("mempool_usage_bytes"), "Estimated memory used by the mempool.")?);
        let mempool_max_bytes = reg!(IntGauge::new(name("mempool_max_bytes"), "The mempool size limit (maxmempool).")?);
        let tx_accepted =
            reg!(counter_vec("tx_accepted_total", "Transactions accepted to the mempool, by source.", &["source"])?);
        for r in ["p2p", "rpc"] {
            tx_accepted.with_label_values(&[r]);
        }
        let tx_rejected = reg!(counter_vec("tx_rejected_total", "Transactions rejected, by reason.", &["reason"])?);
        for r in TX_REJECT_LABELS {
            tx_rejected.with_label_values(&[r]);
        }
        let mempool_removed =
            reg!(counter_vec("mempool_removed_total", "Transactions removed from the mempool.", &["reason"])?);
        for r in ["expiry", "size_limit", "conflict", "block", "reorg", "era"] {
            mempool_removed.with_label_values(&[r]);
        }
        let orphan_transactions = reg!(IntGauge::new(name("orphan_transactions"), "Transactions in the orphan pool.")?);
        let orphan_size_bytes = reg!(IntGauge::new(name("orphan_size_bytes"), "Bytes in the orphan pool.")?);
        let orphans_evicted = reg!(counter_vec(
            "orphans_evicted_total",
            "Orphans dropped before their parents arrived, by reason.",
            &["reason"]
        )?);
        for r in ["expired", "limit", "peer_disconnected"] {
            orphans_evicted.with_label_values(&[r]);
        }
        let tx_validation_duration = reg!(HistogramVec::new(
            HistogramOpts::new(name("tx_validation_duration_seconds"), "Time to validate one transaction.")
                .buckets(VALIDATION_BUCKETS.to_vec()),
            &["result"]
        )?);
        let tx_relay_latency = reg!(HistogramVec::new(
            HistogramOpts::new(name("tx_relay_latency_seconds"), "Transaction relay latency by stage.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["stage"]
        )?);
        for r in ["first_seen_to_accept", "accept_to_announce"] {
            tx_relay_latency.with_label_values(&[r]);
        }
        let tx_announcements_pending =
            reg!(IntGauge::new(name("tx_announcements_pending"), "Transaction announcements waiting to be sent.")?);
        let rpc_requests =
            reg!(counter_vec("rpc_requests_total", "RPC calls by method and result.", &["method", "result"])?);
        let rpc_request_duration = reg!(HistogramVec::new(
            HistogramOpts::new(name("rpc_request_duration_seconds"), "RPC call duration.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method"]
        )?);
        let rpc_active_requests = reg!(IntGauge::new(name("rpc_active_requests"), "RPC calls being served.")?);

        let block_relay = BlockRelayMetrics::register(&registry)?;
        let coins_cache = CoinsCacheMetrics::register(&registry)?;
        let process = ProcessMetrics {
            cpu_seconds: reg!(prometheus::Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds."
            )?),
            resident_memory: reg!(IntGauge::new("process_resident_memory_bytes", "Resident memory size in bytes.")?),
            virtual_memory: reg!(IntGauge::new("process_virtual_memory_bytes", "Virtual memory size in bytes.")?),
            start_time: reg!(Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds."
            )?),
            open_fds: reg!(IntGauge::new("process_open_fds", "Number of open file descriptors.")?),
            max_fds: reg!(IntGauge::new("process_max_fds", "Maximum number of open file descriptors.")?),
        };
        process.start_time.set(now);

        for d in Direction::ALL {
            for c in ConnType::ALL {
                peers.with_label_values(&[d.label(), c.label()]);
            }
            for r in ConnectResult::ALL {
                peer_connections.with_label_values(&[d.label(), r.label()]);
            }
        }
        for r in DisconnectReason::ALL {
            peer_disconnections.with_label_values(&[r.label()]);
        }
        for c in COMMANDS.iter().copied().chain(["other"]) {
            for v in [&messages_received, &messages_sent, &received_bytes, &sent_bytes] {
                v.with_label_values(&[c]);
            }
        }
        for r in DecodeError::REASONS {
            decode_errors.with_label_values(&[r]);
        }
        for t in InvType::ALL {
            inv_items_received.with_label_values(&[t.label()]);
        }
        for d in ["recv", "send"] {
            paused_peers.with_label_values(&[d]);
        }
        for r in Misbehavior::ALL {
            misbehavior_events.with_label_values(&[r.label()]);
        }
        for s in BanSource::ALL {
            bans.with_label_values(&[s.label()]);
        }

        Ok(Self {
            registry,
            build_info,
            start_time,
            peers,
            peer_connections,
            peer_disconnections,
            peer_ping,
            messages_received,
            messages_sent,
            received_bytes,
            sent_bytes,
            decode_errors,
            unknown_messages,
            inv_items_received,
            send_queue_bytes,
            paused_peers,
            peers_by_transport,
            v2_handshake_failures,
            v2_fallbacks,
            misbehavior_events,
            bans,
            banned_entries,
            addrbook_entries,
            peer_reputation,
            reputation_events,
            addrbook_table,
            chain_header_height,
            chain_headers_received,
            chain_block_height,
            chain_best_header_time,
            chain_best_block_time,
            chain_block_validation_seconds,
            chain_tips,
            blocks_received,
            mempool_transactions,
            mempool_size_bytes,
            mempool_usage_bytes,
            mempool_max_bytes,
            tx_accepted,
            tx_rejected,
            mempool_removed,
            orphan_transactions,
            orphan_size_bytes,
            orphans_evicted,
            tx_validation_duration,
            tx_relay_latency,
            tx_announcements_pending,
            rpc_requests,
            rpc_request_duration,
            rpc_active_requests,
            block_relay,
            coins_cache,
            process,
        })
    }

    /// Counts one received message of `bytes` bytes (header included).
    pub fn record_received(&self, command: &str, bytes: u64) {
        let label = command_label(command);
        if label == "other" {
            self.unknown_messages.inc();
        }
        self.messages_received.with_label_values(&[label]).inc();
        self.received_bytes.with_label_values(&[label]).inc_by(bytes);
    }

    /// Counts one sent message of `bytes` bytes (header included).
    pub fn record_sent(&self, command: &str, bytes: u64) {
        let label = command_label(command);
        self.messages_sent.with_label_values(&[label]).inc();
        self.sent_bytes.with_label_values(&[label]).inc_by(bytes);
    }

    pub fn record_disconnect(&self, reason: DisconnectReason) {
        self.peer_disconnections.with_label_values(&[reason.label()]).inc();
    }

    pub fn record_connection(&self, direction: Direction, result: ConnectResult) {
        self.peer_connections.with_label_values(&[direction.label(), result.label()]).inc();
    }

    pub fn record_decode_error(&self, error: &DecodeError) {
        self.decode_errors.with_label_values(&[error.reason()]).inc();
    }

    pub fn record_misbehavior(&self, reason: Misbehavior) {
        self.misbehavior_events.with_label_values(&[reason.label()]).inc();
    }

    pub fn record_ban(&self, source: BanSource) {
        self.bans.with_label_values(&[source.label()]).inc();
    }

    /// Counts one RPC call; `method` must be a registered method name or `unknown`.
    pub fn record_rpc(&self, method: &'static str, result: RpcResult, duration: Duration) {
        self.rpc_requests.with_label_values(&[method, result.label()]).inc();
        self.rpc_request_duration.with_label_values(&[method]).observe(duration.as_secs_f64());
    }

    /// The exposition text (Prometheus text format 0.0.4), with process metrics refreshed first.
    pub fn render(&self) -> String {
        self.process.refresh();
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for metrics we built ourselves.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            debug!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl ProcessMetrics {
    /// Reads `/proc/self`; on systems without it the process metrics stay at zero.
    fn refresh(&self) {
        // SAFETY: sysconf has no preconditions; it only reads configuration values.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name, which may itself contain spaces.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            // Indices per proc(5), counted from field 3 (state) as 0: utime=11, stime=12, vsize=20, rss=21.
            if ticks > 0 {
                let cpu = (field(11) + field(12)) as f64 / ticks as f64;
                let delta = cpu - self.cpu_seconds.get();
                if delta > 0.0 {
                    self.cpu_seconds.inc_by(delta);
                }
            }
            self.virtual_memory.set(i64::try_from(field(20)).unwrap_or(i64::MAX));
            self.resident_memory.set(i64::try_from(field(21)).unwrap_or(0).saturating_mul(page.max(0)));
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            let max = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<i64>().ok());
            if let Some(max) = max {
                self.max_fds.set(max);
            }
        }
    }
}

/// Binds the metrics listener (call before spawning [`serve`], so bind errors stop the start-up).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })
}

/// Serves `GET /metrics` until shutdown. Every other path is 404; one request per connection.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(MAX_SCRAPE_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.wait() => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => { debug!(error = %e, "metrics accept failed"); continue; }
            },
            _ = shutdown.wait() => return,
        };
        let metrics = metrics.clone();
        let task_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _alive = task_shutdown;
            if let Err(e) = scrape(stream, &metrics).await {
                debug!(error = %e, "metrics request failed");
            }
        });
    }
}

async fn scrape(stream: TcpStream, metrics: &Metrics) -> Result<(), http::HttpError> {
    let mut stream = BufReader::new(stream);
    let head = tokio::time::timeout(SCRAPE_READ_TIMEOUT, http::read_head(&mut stream, MAX_SCRAPE_HEAD_BYTES))
        .await
        .map_err(|_| http::HttpError::Timeout)??;
    let Some(head) = head else { return Ok(()) };
    let path = head.path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (head.method.as_str(), path) {
        ("GET", "/metrics") => (200, "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        _ => (404, "text/plain; charset=utf-8", "not found; try /metrics\n".to_owned()),
    };
    http::write_response(stream.get_mut(), status, ctype, &[], body.as_bytes(), false).await?;
    stream.get_mut().shutdown().await.map_err(http::HttpError::Io)
}

/// Registers `metric` and hands it back: the metric groups' counterpart of `Metrics::new`'s `reg!`.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, MetricsError> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Block relay metrics (`src/relay/block_relay.rs`).
pub struct BlockRelayMetrics {
    /// Time from a block's header first seen to each later stage.
    pub latency: HistogramVec,
    /// Compact blocks received, by how they ended.
    pub compact_blocks: IntCounterVec,
    /// Transactions of received compact blocks, by where they came from.
    pub compact_txs: IntCounterVec,
}

/// Stages of `block_relay_latency_seconds`, each measured from the header first seen.
pub const BLOCK_RELAY_STAGES: [&str; 3] = ["reconstructed", "validated", "announced"];

/// Ends of a received compact block (`compact_blocks_received_total{result}`): rebuilt from our
/// pools alone, rebuilt after one `getblocktxn`, fetched whole instead (collision, merkle
/// mismatch), malformed (scored), or not needed (known, behind the tip, too far ahead).
pub const COMPACT_RESULTS: [&str; 5] =
    ["reconstructed", "reconstructed_after_getblocktxn", "full_block", "invalid", "ignored"];

/// Sources of a compact block's transactions (`compact_block_txs_total{source}`).
pub const COMPACT_TX_SOURCES: [&str; 3] = ["prefilled", "pool", "missing"];

impl BlockRelayMetrics {
    fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let latency = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    name("block_relay_latency_seconds"),
                    "Block relay latency from header seen, by stage.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["stage"],
            )?,
        )?;
        let compact_blocks = registered(
            registry,
            IntCounterVec::new(
                Opts::new(name("compact_blocks_received_total"), "Compact blocks received, by result."),
                &["result"],
            )?,
        )?;
        let compact_txs = registered(
            registry,
            IntCounterVec::new(
                Opts::new(name("compact_block_txs_total"), "Transactions of received compact blocks, by source."),
                &["source"],
            )?,
        )?;
        for s in BLOCK_RELAY_STAGES {
            latency.with_label_values(&[s]);
        }
        for r in COMPACT_RESULTS {
            compact_blocks.with_label_values(&[r]);
        }
        for r in COMPACT_TX_SOURCES {
            compact_txs.with_label_values(&[r]);
        }
        Ok(BlockRelayMetrics { latency, compact_blocks, compact_txs })
    }
}

/// The coins cache in front of the UTXO set on disk, published by the block thread after each
/// block (the cache also grows between blocks, when mempool batches read their inputs).
pub struct CoinsCacheMetrics {
    bytes: IntGaugeVec,
    entries: IntGaugeVec,
    flushes: IntCounter,
    flushed_entries: IntCounter,
}

impl CoinsCacheMetrics {
    fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let gauges = |n: &str, help: &str| IntGaugeVec::new(Opts::new(name(n), help), &["kind"]);
        Ok(CoinsCacheMetrics {
            bytes: registered(
                registry,
                gauges("utxo_cache_bytes", "Memory of the coins cache (used) and its -dbcache bound (limit).")?,
            )?,
            entries: registered(
                registry,
                gauges("utxo_cache_entries", "Coins cache entries: all, and dirty (written by the next flush).")?,
            )?,
            flushes: registered(
                registry,
                IntCounter::new(name("utxo_cache_flushes_total"), "Flushes of the coins cache to disk.")?,
            )?,
            flushed_entries: registered(
                registry,
                IntCounter::new(
                    name("utxo_cache_flushed_entries_total"),
                    "Entries written to disk by coins cache flushes.",
                )?,
            )?,
        })
    }

    /// Publishes `stats`; the counters move up to the totals the chain state keeps.
    pub fn publish(&self, stats: &crate::chain::CoinsCacheStats) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.bytes.with_label_values(&["used"]).set(gauge(stats.bytes));
        self.bytes.with_label_values(&["limit"]).set(gauge(stats.limit));
        self.entries.with_label_values(&["all"]).set(gauge(stats.entries));
        self.entries.with_label_values(&["dirty"]).set(gauge(stats.dirty));
        self.flushes.inc_by(stats.flushes.saturating_sub(self.flushes.get()));
        self.flushed_entries.inc_by(stats.flushed_entries.saturating_sub(self.flushed_entries.get()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_closed_labels() {
        let m = Metrics::new("regtest", "test").expect("metrics");
        m.record_received("tx", 250);
        m.record_received("bogus-command", 30);
        m.record_sent("inv", 61);
        m.record_disconnect(DisconnectReason::Requested);
        m.record_rpc("uptime", RpcResult::Ok, Duration::from_millis(1));
        let text = m.render();
        for needle in [
            "bsv_relay_build_info{commit=\"test\",network=\"regtest\",version=\"0.1.0\"} 1",
            "bsv_relay_p2p_received_bytes_total{command=\"tx\"} 250",
            "bsv_relay_p2p_messages_received_total{command=\"other\"} 1",
            "bsv_relay_p2p_unknown_messages_total 1",
            "bsv_relay_peer_disconnections_total{reason=\"requested\"} 1",
            "bsv_relay_rpc_requests_total{method=\"uptime\",result=\"ok\"} 1",
            "bsv_relay_peers{conn_type=\"full\",direction=\"inbound\"} 0",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("bogus-command"));
    }

    #[test]
    fn coins_cache_counters_follow_the_chain_states_totals() {
        let m = Metrics::new("regtest", "x").expect("metrics");
        let mut stats = crate::chain::CoinsCacheStats {
            bytes: 10,
            limit: 100,
            entries: 3,
            dirty: 2,
            flushes: 2,
            flushed_entries: 7,
        };
        m.coins_cache.publish(&stats);
        stats.flushes = 3;
        stats.flushed_entries = 9;
        m.coins_cache.publish(&stats);
        m.coins_cache.publish(&stats);
        let text = m.render();
        for needle in [
            "bsv_relay_utxo_cache_bytes{kind=\"used\"} 10",
            "bsv_relay_utxo_cache_bytes{kind=\"limit\"} 100",
            "bsv_relay_utxo_cache_entries{kind=\"dirty\"} 2",
            "bsv_relay_utxo_cache_flushes_total 3",
            "bsv_relay_utxo_cache_flushed_entries_total 9",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn two_instances_do_not_share_state() {
        let a = Metrics::new("regtest", "x").expect("a");
        let b = Metrics::new("regtest", "x").expect("b");
        a.unknown_messages.inc();
        assert_eq!(b.unknown_messages.get(), 0);
    }
}
