//! The connection manager: listeners, outbound dialling, connection limits, bans at accept, and
//! inbound eviction.
//!
//! - Listens on every `-bind` address, or on `[::]` and `0.0.0.0` at the network's port when none
//!   is given (the IPv6 socket is v6-only so both can be bound).
//! - Dials `-connect` peers (and only those) or `-addnode` peers, each kept connected and retried
//!   with exponential backoff; `addnode … onetry` and `addnode … add` from RPC arrive through the
//!   registry.
//! - Refuses banned addresses at accept (unless whitelisted) and never dials them; caps the total
//!   number of connections (`-maxconnections`) and the number per remote IP
//!   (`-maxconnectionsfromaddr`, 0 = no cap, as SV Node); when full, evicts an inbound peer chosen
//!   by `eviction::select`, or refuses the newcomer if every peer is protected.

use super::connection::{self, unix_now, ConnectionSettings, NodeShared, PeerFlags};
use super::eviction::{self, Candidate};
use super::protocol::{Direction, DisconnectReason};
use super::registry::ConnectRequest;
use super::registry::PeerId;
use super::subnet::Subnet;
use crate::metrics::ConnectResult;
use crate::shutdown::Shutdown;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

/// How long a dial may take before we give up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First and last retry delays for `-connect`/`-addnode` peers.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// A connection that lived this long resets the backoff: the peer is fine, it just went away.
const STABLE_CONNECTION: Duration = Duration::from_secs(60);
/// Listen backlog: enough for a burst of honest peers, small enough that a flood waits in the kernel.
const BACKLOG: u32 = 128;

#[derive(Debug, Error)]
pub enum ManagerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Connection policy, from the options.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Addresses to listen on; empty means `[::]` and `0.0.0.0` at `port`.
    pub binds: Vec<SocketAddr>,
    pub port: u16,
    pub listen: bool,
    pub connect: Vec<String>,
    pub addnode: Vec<String>,
    pub max_connections: usize,
    /// Outbound peers kept from the address book when neither `-connect` nor `-addnode` is given.
    pub max_outbound: usize,
    /// 0 = unlimited.
    pub max_per_ip: usize,
    pub whitelist: Vec<Subnet>,
    /// Outbound peers from before the last shutdown, dialled first (see `peer::anchors`).
    pub anchors: Vec<SocketAddr>,
}

/// Listeners bound and ready; `start` spawns the accept and dial tasks.
pub struct Manager {
    config: ManagerConfig,
    listeners: Vec<TcpListener>,
    settings: Arc<ConnectionSettings>,
    shared: Arc<NodeShared>,
}

impl Manager {
    /// Binds the listeners, so that a port in use is a start-up error.
    pub fn bind(
        config: ManagerConfig,
        settings: Arc<ConnectionSettings>,
        shared: Arc<NodeShared>,
    ) -> Result<Manager, ManagerError> {
        let mut listeners = Vec::new();
        if config.listen {
            let addrs = if config.binds.is_empty() {
                vec![
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), config.port),
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.port),
                ]
            } else {
                config.binds.clone()
            };
            for addr in addrs {
                match bind(addr) {
                    Ok(l) => listeners.push(l),
                    // A host without IPv6 still listens on IPv4 when the defaults are used.
                    Err(source) if config.binds.is_empty() && addr.is_ipv6() => {
                        warn!(%addr, %source, "IPv6 listener unavailable");
                    }
                    Err(source) => return Err(ManagerError::Bind { addr, source }),
                }
            }
        }
        Ok(Manager { config, listeners, settings, shared })
    }

    /// The addresses actually listened on (with the ports the OS chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Spawns the accept loops and outbound dialers; they stop when `shutdown` fires.
    pub fn start(self, shutdown: Shutdown) {
        let manager = Arc::new(Shared {
            config: self.config,
            settings: self.settings,
            shared: self.shared,
            live: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            evicting: Mutex::new(HashSet::new()),
        });
        for listener in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "listening for peers");
            }
            tokio::spawn(accept_loop(listener, manager.clone(), shutdown.clone()));
        }
        let targets = if manager.config.connect.is_empty() { &manager.config.addnode } else { &manager.config.connect };
        for target in targets.clone() {
            let addnode = manager.config.connect.is_empty();
            tokio::spawn(keep_connected(target, addnode, false, manager.clone(), shutdown.clone()));
        }
        if manager.config.connect.is_empty() && manager.config.addnode.is_empty() && manager.config.max_outbound > 0 {
            tokio::spawn(fill_outbound(manager.clone(), shutdown.clone()));
        }
        if let Some(requests) = manager.shared.registry.take_connect_requests() {
            tokio::spawn(connect_requests(requests, manager, shutdown));
        }
    }
}

struct Shared {
    config: ManagerConfig,
    settings: Arc<ConnectionSettings>,
    shared: Arc<NodeShared>,
    /// Connections from admission to the end of their task (the registry counts the same set; this
    /// is the cheap check on every accept).
    live: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Peers already asked to leave, so one slow-to-exit victim is not chosen twice.
    evicting: Mutex<HashSet<PeerId>>,
}

/// A connection slot, released when the connection task ends.
struct Slot {
    m: Arc<Shared>,
    ip: IpAddr,
}

impl Slot {
    fn take(m: &Arc<Shared>, ip: IpAddr) -> Slot {
        m.live.fetch_add(1, Ordering::AcqRel);
        *lock(&m.per_ip).entry(ip).or_default() += 1;
        Slot { m: m.clone(), ip }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.m.live.fetch_sub(1, Ordering::AcqRel);
        let mut per_ip = lock(&self.m.per_ip);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn whitelisted(&self, ip: IpAddr) -> bool {
        self.config.whitelist.iter().any(|s| s.contains(ip))
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, m: Arc<Shared>, mut shutdown: Shutdown) {
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        let remote = canonical(remote);
        let whitelisted = m.whitelisted(remote.ip());
        let metrics = &m.shared.metrics;
        if !whitelisted && m.shared.bans.is_banned(remote.ip(), unix_now()) {
            metrics.record_connection(Direction::Inbound, ConnectResult::RejectedBanned);
            debug!(%remote, "refused: banned");
            continue;
        }
        if !whitelisted && !admit(&m, remote.ip()) {
            metrics.record_connection(Direction::Inbound, ConnectResult::RejectedFull);
            debug!(%remote, "refused: no free slot");
            continue;
        }
        metrics.record_connection(Direction::Inbound, ConnectResult::Accepted);
        let flags = PeerFlags { whitelisted, addnode: false, try_v2: false, feeler: false };
        let slot = Slot::take(&m, remote.ip());
        let registered = connection::register(&m.shared, stream, remote, Direction::Inbound, flags);
        let (settings, shared, shutdown) = (m.settings.clone(), m.shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection::run(registered, flags, settings, shared, shutdown).await;
            drop(slot);
        });
    }
}

/// Whether a new inbound peer from `ip` may connect, evicting another inbound peer if needed.
fn admit(m: &Shared, ip: IpAddr) -> bool {
    if m.config.max_per_ip > 0 && lock(&m.per_ip).get(&ip).copied().unwrap_or(0) >= m.config.max_per_ip {
        return false;
    }
    if m.live.load(Ordering::Acquire) < m.config.max_connections {
        return true;
    }
    let peers = m.shared.registry.snapshot();
    let mut evicting = lock(&m.evicting);
    evicting.retain(|id| peers.iter().any(|p| p.id == *id));
    let candidates: Vec<Candidate> = peers
        .iter()
        .filter(|p| p.inbound && !evicting.contains(&p.id))
        .map(|p| Candidate {
            id: p.id,
            ip: p.addr.ip(),
            connected_at: p.conntime,
            min_ping: p.minping,
            last_useful: p.last_useful,
            protected: p.whitelisted || p.addnode,
            reputation: p.reputation,
        })
        .collect();
    match eviction::select(&candidates) {
        Some(victim) => {
            debug!(peer = %victim, "evicting to make room");
            evicting.insert(victim);
            m.shared.registry.evict(victim).is_ok()
        }
        None => false,
    }
}

/// IPv4-mapped IPv6 addresses are shown and matched as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Dials `target` once; returns how long the connection lived, or `None` if it never opened.
/// The transport follows what the address book knows: v2 to an address that advertises it (or
/// when `v2` says the operator asked for it), v1 otherwise; a v2 attempt the peer closes before
/// its key is dialled again with v1 and the address remembered as v1-only, and a v1 peer whose
/// `version` advertises v2 is dialled again with v2, so two bsv-relay nodes end up encrypted
/// without SV Node ever being sent a byte it would ban us for.
async fn dial(target: &str, addnode: bool, v2: bool, m: &Arc<Shared>, shutdown: &Shutdown) -> Option<Duration> {
    let default_port = m.config.port;
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(with_port(target, default_port)).await {
        Ok(a) => a.map(canonical).collect(),
        Err(err) => {
            debug!(target, %err, "cannot resolve");
            return None;
        }
    };
    let addr = *addrs.first()?;
    let whitelisted = m.whitelisted(addr.ip());
    let mut try_v2 = m.settings.v2 && !m.shared.addrbook.v1_only(addr) && (v2 || m.shared.addrbook.offers_v2(addr));
    let mut lived = None;
    // At most one change of transport each way.
    for _ in 0..3 {
        if !whitelisted && m.shared.bans.is_banned(addr.ip(), unix_now()) {
            debug!(%addr, "not dialling a banned address");
            return lived;
        }
        let flags = PeerFlags { whitelisted, addnode, try_v2, feeler: false };
        let Some((reason, elapsed)) = dial_once(addr, flags, m, shutdown).await else { return lived };
        lived = Some(elapsed);
        match reason {
            DisconnectReason::V2Fallback => {
                info!(%addr, "peer closed our v2 handshake: using v1 with it from now on");
                m.shared.addrbook.fell_back_to_v1(addr, unix_now());
                try_v2 = false;
            }
            DisconnectReason::UpgradeToV2 if !try_v2 => try_v2 = true,
            _ => break,
        }
    }
    lived
}

/// One TCP connection to `addr`, run to its end.
async fn dial_once(
    addr: SocketAddr,
    flags: PeerFlags,
    m: &Arc<Shared>,
    shutdown: &Shutdown,
) -> Option<(DisconnectReason, Duration)> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(err)) => {
            m.shared.metrics.record_connection(Direction::Outbound, ConnectResult::Failed);
            debug!(%addr, %err, "connect failed");
            return None;
        }
        Err(_) => {
            m.shared.metrics.record_connection(Direction::Outbound, ConnectResult::Failed);
            return None;
        }
    };
    m.shared.metrics.record_connection(Direction::Outbound, ConnectResult::Accepted);
    let _slot = Slot::take(m, addr.ip());
    let started = tokio::time::Instant::now();
    let registered = connection::register(&m.shared, stream, addr, Direction::Outbound, flags);
    let reason = connection::run(registered, flags, m.settings.clone(), m.shared.clone(), shutdown.clone()).await;
    debug!(%addr, reason = reason.label(), v2 = flags.try_v2, "outbound connection ended");
    Some((reason, started.elapsed()))
}

fn with_port(target: &str, port: u16) -> String {
    // "host", "1.2.3.4", "[::1]" take the default port; "host:p", "1.2.3.4:p", "[::1]:p" keep theirs.
    if target.parse::<SocketAddr>().is_ok() {
        return target.to_string();
    }
    if let Ok(ip) = target.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    if target.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        return target.to_string();
    }
    format!("{target}:{port}")
}

/// Keeps one `-connect`/`-addnode` peer connected, with exponential backoff between attempts.
async fn keep_connected(target: String, addnode: bool, v2: bool, m: Arc<Shared>, mut shutdown: Shutdown) {
    let mut delay = RETRY_MIN;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        if addnode && !m.shared.registry.added_nodes().contains(&target) && !m.config.addnode.contains(&target) {
            return;
        }
        match dial(&target, addnode, v2, &m, &shutdown).await {
            Some(lived) if lived >= STABLE_CONNECTION => delay = RETRY_MIN,
            _ => delay = (delay * 2).min(RETRY_MAX),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// How often the outbound filler looks for a free slot.
const FILL_INTERVAL: Duration = Duration::from_secs(2);
/// Average time between feeler connections (Core's `FEELER_INTERVAL`): often enough to test a
/// collision within its 40 minutes and to confirm hundreds of new addresses a day, rare enough to
/// cost nothing.
const FEELER_INTERVAL: Duration = Duration::from_secs(120);

/// Keeps up to `max_outbound` outbound connections to addresses from the address book, skipping
/// peers we are already connected to, banned addresses, our own listening addresses and network
/// groups an outbound peer already occupies (so an attacker holding a few /16s can take at most a
/// few slots; a group may hold two peers only while fewer than half the slots are filled). The anchors saved at the last shutdown are dialled first. Once the slots are full, a
/// feeler connection every [`FEELER_INTERVAL`] tests the holder of a contested tried slot or an
/// address from the new table.
async fn fill_outbound(m: Arc<Shared>, mut shutdown: Shutdown) {
    let mut dialling: HashMap<SocketAddr, Vec<u8>> = Default::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
    let dial_shutdown = shutdown.clone();
    let spawn_dial = |addr: SocketAddr, feeler: bool, done: tokio::sync::mpsc::UnboundedSender<SocketAddr>| {
        let (m2, s2) = (m.clone(), dial_shutdown.clone());
        tokio::spawn(async move {
            if feeler {
                dial_feeler(addr, &m2, &s2).await;
            } else {
                dial(&addr.to_string(), false, false, &m2, &s2).await;
            }
            let _ = done.send(addr);
        });
    };
    for anchor in m.config.anchors.iter().take(m.config.max_outbound) {
        if m.shared.bans.is_banned(anchor.ip(), unix_now()) {
            continue;
        }
        info!(addr = %anchor, "dialling anchor");
        m.shared.addrbook.attempted(*anchor, unix_now());
        dialling.insert(*anchor, super::addrbook::buckets::group(anchor));
        spawn_dial(*anchor, false, done_tx.clone());
    }
    let mut next_feeler = tokio::time::Instant::now() + jitter(FEELER_INTERVAL);
    loop {
        while let Ok(addr) = done_rx.try_recv() {
            dialling.remove(&addr);
        }
        let peers = m.shared.registry.snapshot();
        let outbound = peers.iter().filter(|p| !p.inbound).count();
        let connected: HashSet<SocketAddr> = peers.iter().map(|p| p.addr).collect();
        let mut groups: HashMap<Vec<u8>, usize> = HashMap::new();
        let outbound_groups = peers.iter().filter(|p| !p.inbound).map(|p| super::addrbook::buckets::group(&p.addr));
        for g in dialling.values().cloned().chain(outbound_groups) {
            *groups.entry(g).or_default() += 1;
        }
        let in_group = |a: &SocketAddr| groups.get(&super::addrbook::buckets::group(a)).copied().unwrap_or(0);
        let locals: Vec<SocketAddr> = peers.iter().filter_map(|p| p.addrlocal).collect();
        let now = unix_now();
        let own_port = m.shared.listen_port;
        let local = &m.shared.local;
        let unusable = |a: &SocketAddr| {
            // `-onlynet`: automatic outbound connections only to the networks named.
            !local.is_reachable(super::local::Family::of(a.ip()))
                || connected.contains(a)
                || dialling.contains_key(a)
                || m.shared.bans.is_banned(a.ip(), now)
                || (Some(a.port()) == own_port && (a.ip().is_loopback() || locals.iter().any(|l| l.ip() == a.ip())))
        };
        if outbound + dialling.len() < m.config.max_outbound {
            let book = &m.shared.addrbook;
            // A new group first; only while fewer than half the slots are filled may a second peer
            // share a group, so a network with few groups (a LAN, one IPv6 /32) still connects and
            // an attacker in our groups can never hold more than half the slots that way.
            let pick = book.select(now, |a| unusable(a) || in_group(a) > 0).or_else(|| {
                (2 * (outbound + dialling.len()) < m.config.max_outbound)
                    .then(|| book.select(now, |a| unusable(a) || in_group(a) > 1))
                    .flatten()
            });
            if let Some(addr) = pick {
                m.shared.addrbook.attempted(addr, now);
                dialling.insert(addr, super::addrbook::buckets::group(&addr));
                spawn_dial(addr, false, done_tx.clone());
                continue;
            }
        }
        // Feelers run once nothing more can be dialled: slots full, or no group left to fill.
        if tokio::time::Instant::now() >= next_feeler {
            next_feeler = tokio::time::Instant::now() + jitter(FEELER_INTERVAL);
            let target = m
                .shared
                .addrbook
                .collision_to_test(now)
                .filter(|a| !unusable(a))
                .or_else(|| m.shared.addrbook.select_with(&mut rand::thread_rng(), now, true, |a| unusable(a)));
            if let Some(addr) = target {
                debug!(%addr, "feeler");
                m.shared.addrbook.attempted(addr, now);
                dialling.insert(addr, Vec::new());
                spawn_dial(addr, true, done_tx.clone());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(FILL_INTERVAL) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Between half and one and a half times `d`, so feelers of many nodes do not line up.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random::<f64>() + 0.5)
}

/// A feeler: connect, complete the handshake (which records the address as tried), close.
async fn dial_feeler(addr: SocketAddr, m: &Arc<Shared>, shutdown: &Shutdown) {
    let flags = PeerFlags { whitelisted: m.whitelisted(addr.ip()), addnode: false, try_v2: false, feeler: true };
    dial_once(addr, flags, m, shutdown).await;
}

async fn connect_requests(
    mut requests: tokio::sync::mpsc::Receiver<ConnectRequest>,
    m: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    loop {
        let request = tokio::select! {
            r = requests.recv() => match r { Some(r) => r, None => return },
            _ = shutdown.wait() => return,
        };
        let (m, shutdown) = (m.clone(), shutdown.clone());
        if request.persistent {
            tokio::spawn(keep_connected(request.node, true, request.v2, m, shutdown));
        } else {
            tokio::spawn(async move {
                dial(&request.node, false, request.v2, &m, &shutdown).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_get_the_default_port_only_when_they_have_none() {
        assert_eq!(with_port("127.0.0.1", 18444), "127.0.0.1:18444");
        assert_eq!(with_port("127.0.0.1:1", 18444), "127.0.0.1:1");
        assert_eq!(with_port("[::1]", 18444), "[::1]:18444");
        assert_eq!(with_port("::1", 18444), "[::1]:18444");
        assert_eq!(with_port("[::1]:7", 18444), "[::1]:7");
        assert_eq!(with_port("localhost", 18444), "localhost:18444");
        assert_eq!(with_port("localhost:9", 18444), "localhost:9");
    }

    #[test]
    fn mapped_addresses_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:5".parse().unwrap());
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
