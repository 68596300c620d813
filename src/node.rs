//! Composition root: builds the node's parts from the [`Config`], starts the listeners and owns shutdown.
//!
//! Start-up order, so that a failure leaves nothing half-open: network data folder → lock file (a second
//! process on the same folder fails here) → ban list → metrics → P2P (connection manager and relay) →
//! RPC (last, because a client that can connect expects the node to be ready; `.cookie` is written just
//! before).
//!
//! Shutdown: SIGINT, SIGTERM or the `stop` RPC trigger the [`crate::shutdown`] channel; every task holds
//! a `Shutdown` clone and drops it once it has closed its sockets (connection tasks say goodbye to their
//! peers then). The node waits up to [`SHUTDOWN_TIMEOUT`] for all of them, then flushes the ban list,
//! removes the cookie and releases the lock. A second signal exits at once with status 1.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::metrics::{self, Metrics, MetricsError};
use crate::peer::addrbook::AddrBook;
use crate::peer::{BanError, BanList, PeerRegistry};
use crate::rpc::{self, Cookie, Credentials, Router, RpcContext, Server, ServerSettings, MAX_BODY_BYTES};
use crate::shutdown::{self, ShutdownTrigger};

/// How long tasks get to finish after shutdown is triggered; "within a few seconds" for operators and
/// service managers (systemd's default stop timeout is 90 s, so this is well inside it).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the lock file in the network data folder (SV Node's name).
const LOCK_FILE: &str = ".lock";

#[derive(Debug, Error)]
pub enum NodeError {
    #[error("cannot create data directory {path}: {source}")]
    Datadir { path: PathBuf, source: std::io::Error },
    #[error("cannot obtain a lock on data directory {path}: bsv-relay is probably already running")]
    Locked { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Bans(#[from] BanError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot bind RPC server on {addr}: {source}")]
    RpcBind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot write RPC cookie {path}: {source}")]
    Cookie { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    P2p(#[from] crate::peer::manager::ManagerError),
    #[error(transparent)]
    AddrBook(#[from] crate::peer::addrbook::AddrBookError),
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

/// An exclusive `flock` on `<netdir>/.lock`, held for the life of the process; the kernel releases it
/// even if the process is killed, so a crash never leaves a stale lock.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(netdir: &Path) -> Result<Self, NodeError> {
        let path = netdir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| NodeError::Lock { path: path.clone(), source })?;
        // SAFETY: flock on a valid, open file descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.kind() == std::io::ErrorKind::WouldBlock {
                NodeError::Locked { path: netdir.to_owned() }
            } else {
                NodeError::Lock { path, source: err }
            });
        }
        Ok(Self { _file: file })
    }
}

/// The git commit baked in at build time (`BSV_RELAY_COMMIT`), for `build_info`.
fn commit() -> &'static str {
    option_env!("BSV_RELAY_COMMIT").unwrap_or("unknown")
}

/// Runs the node until shutdown. Errors before the listeners are up are start-up failures.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let config = Arc::new(config);
    let netdir = config.netdir();
    std::fs::create_dir_all(&netdir).map_err(|source| NodeError::Datadir { path: netdir.clone(), source })?;
    let _lock = DataDirLock::acquire(&netdir)?;

    let now = crate::rpc::network::unix_now();
    let bans = Arc::new(BanList::open(&netdir.join("banlist.json"), config.bantime, now)?);
    let metrics = Arc::new(Metrics::new(config.network.name(), commit())?);
    metrics.banned_entries.set(i64::try_from(bans.len()).unwrap_or(i64::MAX));
    let peers = Arc::new(PeerRegistry::new());
    for node in &config.addnode {
        // Duplicates in the config are harmless; the list keeps one entry. No connect request: the
        // manager dials the options' nodes itself (a request too made two connections to each).
        peers.addnode_from_config(node);
    }

    let (shutdown, complete) = shutdown::channel();
    let trigger = shutdown.trigger_handle();
    // The anchors are taken before any task sees the shutdown: once the connection tasks wake they
    // leave the registry, and a snapshot taken after that (on a busy machine) finds no peers at all.
    let anchors_at_stop: Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>> = Arc::default();
    {
        let (peers, anchors) = (peers.clone(), anchors_at_stop.clone());
        trigger.before_trigger(move || {
            *anchors.lock().unwrap_or_else(|e| e.into_inner()) = anchor_candidates(&peers.snapshot());
        });
    }
    spawn_signal_handler(trigger.clone())?;

    if let Some(addr) = config.metricsbind {
        let listener = metrics::bind(addr).await?;
        info!(%addr, "metrics listener on /metrics");
        tokio::spawn(metrics::serve(listener, metrics.clone(), shutdown.clone()));
    }

    let params = crate::chain::ChainParams::for_node(config.network, &config.eras);
    if !config.eras.is_empty() {
        let a = &params.activations;
        info!(
            genesis = a.genesis,
            chronicle = a.chronicle,
            chronicle_grace = a.chronicle_grace,
            "era heights set by the operator"
        );
    }
    let chain_opts = crate::chain::ChainOptions {
        max_block_size: config.excessiveblocksize,
        minimum_chain_work: config.minimumchainwork,
        coins_cache_bytes: config.dbcache_bytes,
        reindex_chainstate: config.reindex_chainstate,
        ..crate::chain::ChainOptions::new()
    };
    let chain = Arc::new(crate::chain::ChainState::open(&netdir, params, chain_opts)?);
    let sig_cache = Arc::new(crate::script::SigCache::new(SIG_CACHE_ENTRIES));
    let mempool = Arc::new(crate::mempool::Mempool::new(crate::mempool::MempoolConfig {
        max_bytes: usize::try_from(config.maxmempool_bytes).unwrap_or(usize::MAX),
        expiry_secs: config.mempoolexpiry.as_secs(),
        max_ancestors: config.limitancestorcount,
    }));
    let (outcome_tx, outcome_rx) = tokio::sync::mpsc::channel(crate::mempool::accept::OUTCOME_QUEUE);
    let txs = crate::mempool::accept::TxPipeline::start(
        chain.clone(),
        mempool.clone(),
        sig_cache.clone(),
        outcome_tx,
        metrics.clone(),
        crate::mempool::accept::PipelineConfig {
            workers: 0,
            max_queue_bytes: usize::try_from(config.txnvalidationqueuesmaxmemory_bytes).unwrap_or(usize::MAX),
            max_validation_time: config.maxnonstdtxvalidationduration,
            orphans: crate::mempool::OrphanPoolConfig {
                max_bytes: usize::try_from(config.maxorphantxsize_bytes).unwrap_or(usize::MAX),
                ..Default::default()
            },
        },
    );
    let (chain_tx, chain_rx) = tokio::sync::mpsc::channel(CHAIN_EVENT_QUEUE);
    let blocks = crate::relay::block_processor::BlockProcessor::start(
        chain.clone(),
        sig_cache.clone(),
        Some(txs.clone() as Arc<dyn crate::mempool::MempoolSync>),
        chain_tx,
        metrics.clone(),
    );
    // Blocks stored but not connected when the node last stopped.
    let _ = blocks.activate().await;
    let mempool_file = netdir.join(crate::mempool::persist::FILE);
    // Set once the saved mempool is back (or there is none): saving before that would lose the rest.
    let mempool_loaded = Arc::new(std::sync::atomic::AtomicBool::new(!config.persistmempool));
    if config.persistmempool {
        tokio::spawn(restore_mempool(txs.clone(), mempool_file.clone(), mempool_loaded.clone()));
    }
    let headers = chain.headers().clone();
    let local = Arc::new(own_addresses(&config));
    if config.natpmp {
        map_port(&config, &local, &shutdown);
    }
    let p2p_parts = P2pParts {
        chain: chain.clone(),
        blocks: blocks.clone(),
        chain_events: chain_rx,
        txs: txs.clone(),
        tx_outcomes: outcome_rx,
        local: local.clone(),
    };
    let (p2p, addrbook) = start_p2p(&config, params, &peers, &bans, &metrics, p2p_parts, &shutdown)?;
    for addr in &p2p {
        info!(%addr, "P2P listener");
    }

    let mut cookie = None;
    if config.server {
        let credentials = match (&config.rpcuser, &config.rpcpassword) {
            (Some(user), Some(password)) => Credentials::new(user, password),
            _ => {
                let path = netdir.join(".cookie");
                let c = Cookie::create(&path).map_err(|source| NodeError::Cookie { path, source })?;
                let creds = c.credentials.clone();
                cookie = Some(c);
                creds
            }
        };
        let listeners =
            rpc::bind(&config.rpcbind).await.map_err(|(addr, source)| NodeError::RpcBind { addr, source })?;
        let ctx = Arc::new(RpcContext {
            config: config.clone(),
            peers: peers.clone(),
            bans: bans.clone(),
            metrics: metrics.clone(),
            headers: headers.clone(),
            chain: chain.clone(),
            mempool: mempool.clone(),
            txs: txs.clone(),
            blocks: blocks.clone(),
            started: Instant::now(),
            shutdown: trigger.clone(),
            local: local.clone(),
        });
        let settings = ServerSettings {
            credentials,
            allow: config.rpcallowip.clone(),
            work_queue: config.rpcworkqueue,
            idle_timeout: config.rpcservertimeout,
            max_body: MAX_BODY_BYTES,
        };
        let server = Server::new(ctx, Router::standard(), settings);
        for l in listeners {
            tokio::spawn(server.clone().serve(l, shutdown.clone()));
        }
    }
    info!(network = config.network.name(), datadir = %config.datadir.display(), "bsv-relay started");

    let mut waiter = shutdown.clone();
    waiter.wait().await;
    info!("shutdown requested");
    // The longest-lived automatic outbound peers, taken by the trigger's hook.
    let anchors = std::mem::take(&mut *anchors_at_stop.lock().unwrap_or_else(|e| e.into_inner()));
    drop(waiter);
    drop(shutdown);
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, complete.wait()).await.is_err() {
        warn!(timeout = ?SHUTDOWN_TIMEOUT, "some tasks did not finish in time; exiting anyway");
    }
    if let Err(e) = bans.flush() {
        error!(error = %e, "cannot save the ban list");
    }
    if let Err(e) = addrbook.save() {
        error!(error = %e, "cannot save the address book");
    }
    if config.connect.is_empty() && config.addnode.is_empty() {
        if let Err(e) = crate::peer::anchors::save(&config.netdir().join(ANCHORS_FILE), &anchors) {
            error!(error = %e, "cannot save the anchors");
        }
    }
    if let Err(e) = chain.flush() {
        error!(error = %e, "cannot flush the chain database");
    }
    if config.persistmempool {
        if mempool_loaded.load(std::sync::atomic::Ordering::Acquire) {
            match crate::mempool::persist::save(&mempool, &mempool_file) {
                Ok(n) => info!(transactions = n, file = %mempool_file.display(), "mempool saved"),
                Err(e) => error!(error = %e, "cannot save the mempool"),
            }
        } else {
            warn!(file = %mempool_file.display(), "mempool not saved: it was still being loaded; the file is kept");
        }
    }
    drop(cookie);
    info!("shutdown complete");
    Ok(())
}

/// The outbound peers worth dialling first next time: automatic (not `-addnode`), handshake done,
/// longest connected first.
fn anchor_candidates(peers: &[crate::peer::PeerInfo]) -> Vec<std::net::SocketAddr> {
    let mut out: Vec<&crate::peer::PeerInfo> =
        peers.iter().filter(|p| !p.inbound && !p.addnode && p.version != 0).collect();
    out.sort_by_key(|p| (p.conntime, p.id));
    out.into_iter().take(crate::peer::anchors::MAX_ANCHORS).map(|p| p.addr).collect()
}

/// Loads `mempool.dat` and validates its transactions again; a damaged file is reported and the
/// node goes on with an empty mempool.
async fn restore_mempool(
    txs: Arc<crate::mempool::accept::TxPipeline>,
    path: std::path::PathBuf,
    loaded: Arc<std::sync::atomic::AtomicBool>,
) {
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || crate::mempool::persist::load(&path)).await
    };
    match read {
        Ok(Ok(saved)) if saved.is_empty() => {}
        Ok(Ok(saved)) => {
            let count = saved.len();
            let accepted = txs.restore(saved).await;
            info!(saved = count, accepted, file = %path.display(), "mempool restored");
        }
        Ok(Err(e)) => warn!(error = %e, "mempool not restored; starting with an empty one"),
        Err(e) => warn!(error = %e, "mempool not restored; starting with an empty one"),
    }
    loaded.store(true, std::sync::atomic::Ordering::Release);
}

/// Info-level log lines peers can cause per minute; the rest go to debug.
const PEER_LOG_LINES_PER_MINUTE: u32 = 60;

/// The address book's file in the network data folder.
const ADDRBOOK_FILE: &str = "peers.json";
/// The outbound peers to dial first after a restart (Core's `anchors.dat`).
const ANCHORS_FILE: &str = "anchors.json";

/// Most peer events queued for the relay before connections wait: enough to absorb a burst, small
/// enough that a stalled relay slows peers down instead of growing memory.
const PEER_EVENT_QUEUE: usize = 4096;

/// Signatures remembered as verified: each entry is 32 bytes, so 1 M entries cost about 50 MB with
/// the map's overhead, and cover a mempool of several hundred thousand transactions.
const SIG_CACHE_ENTRIES: usize = 1 << 20;

/// Chain events queued for the relay task.
const CHAIN_EVENT_QUEUE: usize = 1024;

/// The chain parts the relay needs.
struct P2pParts {
    chain: Arc<crate::chain::ChainState>,
    blocks: crate::relay::block_processor::BlockProcessor,
    chain_events: tokio::sync::mpsc::Receiver<crate::relay::block_processor::ChainEvent>,
    txs: Arc<crate::mempool::accept::TxPipeline>,
    tx_outcomes: tokio::sync::mpsc::Receiver<crate::mempool::accept::TxOutcome>,
    local: Arc<crate::peer::local::LocalAddresses>,
}

/// Our own addresses from the options: `-externalip`, then with `-discover` the explicit `-bind`
/// addresses and the interfaces' routable addresses (regtest counts the documentation and private
/// ranges as routable, see [`crate::peer::local`]).
fn own_addresses(config: &Config) -> crate::peer::local::LocalAddresses {
    use crate::peer::local::{interface_addresses, LocalAddresses, RoutePolicy, Source};
    let policy =
        if config.network == crate::params::Network::Regtest { RoutePolicy::TestNetwork } else { RoutePolicy::Public };
    let local = LocalAddresses::new(config.port, policy, &config.onlynet);
    for ip in &config.externalip {
        if !local.add(*ip, Source::Manual) {
            warn!(%ip, "-externalip is not a routable address on a reachable network: not advertised");
        }
    }
    if config.listen && config.discover {
        for bind in config.binds.iter().filter(|b| !b.ip().is_unspecified()) {
            local.add(bind.ip(), Source::Bind);
        }
        for ip in interface_addresses(policy) {
            local.add(ip, Source::Interface);
        }
    }
    for a in local.list() {
        info!(address = %a.ip, port = a.port, score = a.score, "own address");
    }
    local
}

/// `-natpmp`: maps the P2P port on the default gateways and keeps the external addresses granted
/// among our own (a mapping to another external port is logged and not advertised: we advertise
/// one port).
fn map_port(config: &Config, local: &Arc<crate::peer::local::LocalAddresses>, shutdown: &shutdown::Shutdown) {
    use crate::peer::local::{interface_addresses, Source};
    use crate::peer::portmap::{self, PortMapConfig};
    let gateways = portmap::default_gateways();
    let v6 = interface_addresses(local.policy())
        .into_iter()
        .filter_map(|ip| match ip {
            std::net::IpAddr::V6(v6) => Some(v6),
            std::net::IpAddr::V4(_) => None,
        })
        .collect();
    info!(gateways = ?gateways.iter().map(|g| g.ip).collect::<Vec<_>>(), "port mapping");
    let mut mapped = portmap::spawn(PortMapConfig::new(gateways, v6, config.port), shutdown.clone());
    let (local, port) = (local.clone(), config.port);
    tokio::spawn(async move {
        while mapped.changed().await.is_ok() {
            let now: Vec<std::net::SocketAddr> = mapped.borrow_and_update().clone();
            for a in now.iter().filter(|a| a.port() != port) {
                warn!(external = %a, "the gateway mapped another port: not advertised");
            }
            let ips: Vec<std::net::IpAddr> = now.iter().filter(|a| a.port() == port).map(|a| a.ip()).collect();
            local.replace(Source::Mapped, &ips);
        }
    });
}

/// Starts the connection manager and the relay; returns the addresses listened on.
fn start_p2p(
    config: &Config,
    chain_params: &'static crate::chain::ChainParams,
    peers: &Arc<PeerRegistry>,
    bans: &Arc<BanList>,
    metrics: &Arc<Metrics>,
    parts: P2pParts,
    shutdown: &shutdown::Shutdown,
) -> Result<(Vec<std::net::SocketAddr>, Arc<AddrBook>), NodeError> {
    use crate::peer::addrbook;
    use crate::peer::connection::{ConnectionSettings, NodeShared};
    use crate::peer::manager::{Manager, ManagerConfig};
    use crate::peer::ProtocolConfig;
    use crate::wire::message::Limits;

    let limits = Limits { max_block_size: config.excessiveblocksize, ..Limits::default() };
    let protocol = ProtocolConfig {
        limits,
        handshake_timeout: config.p2phandshaketimeout,
        inactivity_timeout: config.p2ptimeout,
        // A frame must complete within the handshake timeout, bounded to 2 minutes (issue: a
        // header promising 1,000 bytes followed by silence must not hold a slot for 20 minutes).
        message_deadline: config.p2phandshaketimeout.min(Duration::from_secs(120)),
        ban_threshold: config.banscore,
        services: crate::peer::protocol::local_services(config.v2transport),
        ..ProtocolConfig::default()
    };
    // SV Node's per-peer send buffer. Serving blocks larger than it will need the block streamed
    // rather than queued whole; until blocks are served, every message is far smaller.
    let max_send_queue = usize::try_from(config.maxsendbuffer_bytes).unwrap_or(usize::MAX);
    let settings =
        Arc::new(ConnectionSettings { magic: chain_params.magic, protocol, max_send_queue, v2: config.v2transport });
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(PEER_EVENT_QUEUE);
    let (book, damaged) = AddrBook::open_or_empty(&config.netdir().join(ADDRBOOK_FILE), addrbook::DEFAULT_CAPACITY);
    if let Some(e) = damaged {
        error!(error = %e, "address book not loaded; starting with an empty one");
    }
    let addrbook = Arc::new(book);
    let anchors = crate::peer::anchors::take(&config.netdir().join(ANCHORS_FILE)).unwrap_or_else(|e| {
        error!(error = %e, "anchors not loaded");
        Vec::new()
    });
    let listen_port = config.listen.then_some(config.port);
    let shared = Arc::new(NodeShared {
        registry: peers.clone(),
        bans: bans.clone(),
        metrics: metrics.clone(),
        own_nonces: Default::default(),
        best_height: std::sync::atomic::AtomicI32::new(i32::try_from(parts.chain.tip().0).unwrap_or(i32::MAX)),
        events: events_tx,
        addrbook: addrbook.clone(),
        listen_port,
        local: parts.local.clone(),
        peer_log: crate::logging::RateLimiter::per_minute(PEER_LOG_LINES_PER_MINUTE),
    });
    let manager_config = ManagerConfig {
        binds: config.binds.clone(),
        port: config.port,
        listen: config.listen,
        connect: config.connect.clone(),
        addnode: config.addnode.clone(),
        max_connections: config.maxconnections as usize,
        max_outbound: config.maxoutboundconnections as usize,
        max_per_ip: config.maxconnectionsfromaddr as usize,
        whitelist: config.whitelist.clone(),
        anchors,
    };
    let manager = Manager::bind(manager_config, settings, shared)?;
    let addrs = manager.local_addrs();
    manager.start(shutdown.clone());
    let relay = crate::relay::RelayContext {
        book: addrbook.clone(),
        listen_port,
        local: parts.local,
        chain: parts.chain,
        blocks: parts.blocks,
        registry: peers.clone(),
        metrics: metrics.clone(),
        txs: parts.txs,
        propagation: config.txnpropagationfreq,
        reputation: config.peerreputation,
    };
    tokio::spawn(crate::relay::run(events_rx, parts.chain_events, parts.tx_outcomes, relay, shutdown.clone()));
    Ok((addrs, addrbook))
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
fn spawn_signal_handler(trigger: ShutdownTrigger) -> Result<(), NodeError> {
    let mut term = signal(SignalKind::terminate()).map_err(NodeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(NodeError::Signal)?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            seen += 1;
            if seen == 1 {
                info!("signal received, shutting down (send again to force)");
                trigger.trigger();
            } else {
                eprintln!("second signal: exiting without cleanup");
                std::process::exit(1);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("bsv-relay-lock-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let first = DataDirLock::acquire(&dir).expect("first lock");
        assert!(matches!(DataDirLock::acquire(&dir), Err(NodeError::Locked { .. })));
        drop(first);
        DataDirLock::acquire(&dir).expect("lock after release");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
