//! The registry of connected peers, the node-wide byte totals and the `addnode` list.
//!
//! Connection tasks own their peers; this registry only holds what they publish: a [`PeerInfo`] snapshot
//! each task updates as it goes (read by `getpeerinfo`), and a bounded command channel through which the
//! RPC layer asks a task to disconnect or ping. The registry never blocks on a peer: commands use
//! `try_send`, and a peer whose queue is full is already failing to keep up.
//!
//! Lifecycle for the connection layer: [`PeerRegistry::register`] when the TCP connection is up, keep the
//! returned [`PeerCommands`] receiver, publish with [`PeerRegistry::update`], and call
//! [`PeerRegistry::unregister`] when the task ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
use thiserror::Error;
use tokio::sync::mpsc;

/// Commands queued per peer: only disconnect and ping exist, so a handful suffices.
const PEER_COMMAND_QUEUE: usize = 8;

/// Pending `addnode onetry` requests awaiting the connection manager; operators issue these by hand.
const CONNECT_REQUEST_QUEUE: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RegistryError {
    /// SV Node: -23 "Error: Node already added".
    #[error("Error: Node already added")]
    AlreadyAdded { node: String },
    /// SV Node: -24 "Error: Node has not been added.".
    #[error("Error: Node has not been added.")]
    NotAdded { node: String },
    /// SV Node: -29 "Node not found in connected nodes".
    #[error("Node not found in connected nodes")]
    NotConnected,
    #[error("Error: too many pending connection requests")]
    ConnectQueueFull,
}

/// Identifies one connection for its lifetime; never reused while the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the RPC layer may ask of a connection task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCommand {
    /// Close the connection (the `disconnectnode` RPC or a new ban).
    Disconnect,
    /// Send a `ping` now (the `ping` RPC).
    Ping,
    /// Close the connection to make room for a new inbound peer.
    Evict,
    /// The relay found the peer at fault (an invalid header, transaction or block).
    Misbehaving(super::misbehavior::Misbehavior),
}

/// The receiving end a connection task polls for [`PeerCommand`]s.
pub type PeerCommands = mpsc::Receiver<PeerCommand>;

/// A request to open an outbound connection (`addnode ... onetry`, or a newly added node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub node: String,
    /// `true` for the persistent `addnode add` list, `false` for `onetry`.
    pub persistent: bool,
    /// The operator asked for v2 (`addnode`'s `v2transport`).
    pub v2: bool,
}

/// Snapshot of one peer as `getpeerinfo` reports it. Times are unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub id: PeerId,
    pub addr: SocketAddr,
    pub addrlocal: Option<SocketAddr>,
    pub services: u64,
    pub relaytxes: bool,
    pub lastsend: u64,
    pub lastrecv: u64,
    pub bytessent: u64,
    pub bytesrecv: u64,
    pub conntime: u64,
    pub timeoffset: i64,
    pub pingtime: Option<Duration>,
    pub minping: Option<Duration>,
    /// Time since an unanswered ping was sent.
    pub pingwait: Option<Duration>,
    pub version: u32,
    pub subver: String,
    pub inbound: bool,
    pub addnode: bool,
    pub whitelisted: bool,
    pub startingheight: i32,
    pub banscore: u32,
    pub synced_headers: i32,
    pub synced_blocks: i32,
    /// Reputation, the positive side of the ban score: new best headers (blocks) and new valid
    /// transactions this peer delivered before anyone else, and when it last did.
    pub blocks_first: u64,
    pub txs_first: u64,
    pub last_useful: u64,
    /// The reputation value (`peer::reputation`), in [−100, 100].
    pub reputation: f64,
    /// Keys are wire command names, or `*other*` for unknown ones (as SV Node and Core do).
    pub bytessent_per_msg: BTreeMap<String, u64>,
    pub bytesrecv_per_msg: BTreeMap<String, u64>,
    /// "v1" or "v2" (Core's `transport_protocol_type`; "detecting" before it is known).
    pub transport: &'static str,
    /// The v2 session id in hex; empty on v1.
    pub session_id: String,
}

impl PeerInfo {
    /// A fresh connection before the handshake: everything unknown is zero or empty, heights are -1.
    pub fn new(addr: SocketAddr, inbound: bool, conntime: u64) -> Self {
        Self {
            id: PeerId(0),
            addr,
            addrlocal: None,
            services: 0,
            relaytxes: false,
            lastsend: 0,
            lastrecv: 0,
            bytessent: 0,
            bytesrecv: 0,
            conntime,
            timeoffset: 0,
            pingtime: None,
            minping: None,
            pingwait: None,
            version: 0,
            subver: String::new(),
            inbound,
            addnode: false,
            whitelisted: false,
            startingheight: -1,
            banscore: 0,
            synced_headers: -1,
            synced_blocks: -1,
            blocks_first: 0,
            txs_first: 0,
            last_useful: 0,
            reputation: 0.0,
            bytessent_per_msg: BTreeMap::new(),
            bytesrecv_per_msg: BTreeMap::new(),
            transport: "detecting",
            session_id: String::new(),
        }
    }
}

struct PeerEntry {
    info: PeerInfo,
    commands: mpsc::Sender<PeerCommand>,
}

/// Connected peers, byte totals and the `addnode` list; shared as `Arc<PeerRegistry>`.
pub struct PeerRegistry {
    peers: DashMap<PeerId, PeerEntry>,
    next_id: AtomicU64,
    total_sent: AtomicU64,
    total_recv: AtomicU64,
    added_nodes: Mutex<Vec<String>>,
    connect_tx: mpsc::Sender<ConnectRequest>,
    connect_rx: Mutex<Option<mpsc::Receiver<ConnectRequest>>>,
}

impl Default for PeerRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerRegistry {
    pub fn new() -> Self {
        let (connect_tx, connect_rx) = mpsc::channel(CONNECT_REQUEST_QUEUE);
        Self {
            peers: DashMap::new(),
            next_id: AtomicU64::new(1),
            total_sent: AtomicU64::new(0),
            total_recv: AtomicU64::new(0),
            added_nodes: Mutex::new(Vec::new()),
            connect_tx,
            connect_rx: Mutex::new(Some(connect_rx)),
        }
    }

    /// Adds a connection; `info.id` is overwritten with a fresh id, which is returned with the command
    /// receiver the connection task must poll.
    pub fn register(&self, mut info: PeerInfo) -> (PeerId, PeerCommands) {
        let id = PeerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        info.id = id;
        let (tx, rx) = mpsc::channel(PEER_COMMAND_QUEUE);
        self.peers.insert(id, PeerEntry { info, commands: tx });
        (id, rx)
    }

    /// Removes a connection; returns its last snapshot.
    pub fn unregister(&self, id: PeerId) -> Option<PeerInfo> {
        self.peers.remove(&id).map(|(_, e)| e.info)
    }

    /// Updates a peer's snapshot in place; returns `false` if the peer is gone.
    pub fn update(&self, id: PeerId, f: impl FnOnce(&mut PeerInfo)) -> bool {
        match self.peers.get_mut(&id) {
            Some(mut e) => {
                f(&mut e.info);
                true
            }
            None => false,
        }
    }

    /// All peers, ordered by id.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self.peers.iter().map(|e| e.info.clone()).collect();
        v.sort_by_key(|p| p.id);
        v
    }

    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// (inbound, outbound) connection counts.
    pub fn count_by_direction(&self) -> (usize, usize) {
        let inbound = self.peers.iter().filter(|e| e.info.inbound).count();
        (inbound, self.peers.len() - inbound)
    }

    fn send(&self, id: PeerId, cmd: PeerCommand) -> Result<(), RegistryError> {
        let entry = self.peers.get(&id).ok_or(RegistryError::NotConnected)?;
        // A full queue means a command is already pending; a closed one means the task is exiting.
        // Either way the peer is going to see a command or go away, which is what the caller wants.
        let _ = entry.commands.try_send(cmd);
        Ok(())
    }

    /// Asks the peer's task to disconnect (`disconnectnode nodeid`).
    pub fn disconnect(&self, id: PeerId) -> Result<(), RegistryError> {
        self.send(id, PeerCommand::Disconnect)
    }

    /// Records an offence against a peer; its connection scores it and bans it at the threshold.
    pub fn punish(&self, id: PeerId, offence: super::misbehavior::Misbehavior) -> Result<(), RegistryError> {
        self.send(id, PeerCommand::Misbehaving(offence))
    }

    /// Asks one peer to close so a newcomer can have its slot.
    pub fn evict(&self, id: PeerId) -> Result<(), RegistryError> {
        self.send(id, PeerCommand::Evict)
    }

    /// Asks the peer(s) at exactly `addr` to disconnect (`disconnectnode "ip:port"`).
    pub fn disconnect_addr(&self, addr: SocketAddr) -> Result<(), RegistryError> {
        let ids: Vec<PeerId> = self.peers.iter().filter(|e| e.info.addr == addr).map(|e| *e.key()).collect();
        if ids.is_empty() {
            return Err(RegistryError::NotConnected);
        }
        for id in ids {
            self.send(id, PeerCommand::Disconnect)?;
        }
        Ok(())
    }

    /// Disconnects every peer whose address `matches` (used after a ban); returns how many.
    pub fn disconnect_matching(&self, matches: impl Fn(&SocketAddr) -> bool) -> usize {
        let ids: Vec<PeerId> = self.peers.iter().filter(|e| matches(&e.info.addr)).map(|e| *e.key()).collect();
        ids.iter().filter(|id| self.send(**id, PeerCommand::Disconnect).is_ok()).count()
    }

    /// Queues a ping to every peer (the `ping` RPC).
    pub fn ping_all(&self) {
        for e in self.peers.iter() {
            let _ = e.commands.try_send(PeerCommand::Ping);
        }
    }

    /// Counts bytes written to any peer (`getnettotals`).
    pub fn record_sent(&self, bytes: u64) {
        self.total_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts bytes read from any peer (`getnettotals`).
    pub fn record_recv(&self, bytes: u64) {
        self.total_recv.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (total bytes sent, total bytes received) since start.
    pub fn totals(&self) -> (u64, u64) {
        (self.total_sent.load(Ordering::Relaxed), self.total_recv.load(Ordering::Relaxed))
    }

    fn added(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // Every mutation is a single push or remove; a poisoned lock still holds a valid list.
        self.added_nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `addnode <node> add`: remember `node` and ask the connection manager to connect to it.
    pub fn addnode_add(&self, node: &str, v2: bool) -> Result<(), RegistryError> {
        let mut list = self.added();
        if list.iter().any(|n| n == node) {
            return Err(RegistryError::AlreadyAdded { node: node.to_owned() });
        }
        list.push(node.to_owned());
        drop(list);
        // The persistent list is the source of truth; the request only hurries the first attempt.
        let _ = self.connect_tx.try_send(ConnectRequest { node: node.to_owned(), persistent: true, v2 });
        Ok(())
    }

    /// A `-addnode` from the options: on the list (so `addnode … remove` and `getaddednodeinfo`
    /// see it) without a connect request, as the connection manager already keeps it connected.
    pub fn addnode_from_config(&self, node: &str) {
        let mut list = self.added();
        if !list.iter().any(|n| n == node) {
            list.push(node.to_owned());
        }
    }

    /// `addnode <node> remove`.
    pub fn addnode_remove(&self, node: &str) -> Result<(), RegistryError> {
        let mut list = self.added();
        let pos =
            list.iter().position(|n| n == node).ok_or_else(|| RegistryError::NotAdded { node: node.to_owned() })?;
        list.remove(pos);
        Ok(())
    }

    /// `addnode <node> onetry`: one connection attempt, not remembered.
    pub fn addnode_onetry(&self, node: &str, v2: bool) -> Result<(), RegistryError> {
        self.connect_tx
            .try_send(ConnectRequest { node: node.to_owned(), persistent: false, v2 })
            .map_err(|_| RegistryError::ConnectQueueFull)
    }

    /// The persistent `addnode` list, in the order added.
    pub fn added_nodes(&self) -> Vec<String> {
        self.added().clone()
    }

    /// The connection manager takes the request stream once; later calls get `None`.
    pub fn take_connect_requests(&self) -> Option<mpsc::Receiver<ConnectRequest>> {
        self.connect_rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test addr")
    }

    #[test]
    fn register_update_snapshot_unregister() {
        let reg = PeerRegistry::new();
        let (a, _rx_a) = reg.register(PeerInfo::new(addr("1.2.3.4:8333"), false, 10));
        let (b, _rx_b) = reg.register(PeerInfo::new(addr("5.6.7.8:50000"), true, 11));
        assert_ne!(a, b);
        assert!(reg.update(b, |p| {
            p.subver = "/x/".into();
            *p.bytesrecv_per_msg.entry("ping".into()).or_default() += 32;
        }));
        let snap = reg.snapshot();
        assert_eq!(snap.iter().map(|p| p.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(snap[1].subver, "/x/");
        assert_eq!(snap[1].bytesrecv_per_msg["ping"], 32);
        assert_eq!(reg.count_by_direction(), (1, 1));
        assert_eq!(reg.unregister(a).map(|p| p.id), Some(a));
        assert!(!reg.update(a, |_| {}));
        assert_eq!(reg.count(), 1);
    }

    #[test]
    fn disconnect_requests_reach_the_connection_task() {
        let reg = PeerRegistry::new();
        let (id, mut rx) = reg.register(PeerInfo::new(addr("1.2.3.4:8333"), false, 0));
        assert_eq!(reg.disconnect(PeerId(999)), Err(RegistryError::NotConnected));
        assert_eq!(reg.disconnect_addr(addr("1.2.3.4:8334")), Err(RegistryError::NotConnected));
        reg.disconnect_addr(addr("1.2.3.4:8333")).expect("connected");
        assert_eq!(rx.try_recv(), Ok(PeerCommand::Disconnect));
        reg.ping_all();
        assert_eq!(rx.try_recv(), Ok(PeerCommand::Ping));
        reg.disconnect(id).expect("connected");
        assert_eq!(rx.try_recv(), Ok(PeerCommand::Disconnect));
        // A full queue never blocks or errors the caller.
        for _ in 0..PEER_COMMAND_QUEUE * 2 {
            reg.ping_all();
        }
        assert_eq!(reg.disconnect_matching(|a| a.port() == 8333), 1);
    }

    #[test]
    fn addnode_semantics_match_sv_node() {
        let reg = PeerRegistry::new();
        let mut requests = reg.take_connect_requests().expect("first take");
        assert!(reg.take_connect_requests().is_none());
        reg.addnode_add("1.2.3.4:8333", false).expect("add");
        assert_eq!(
            reg.addnode_add("1.2.3.4:8333", false),
            Err(RegistryError::AlreadyAdded { node: "1.2.3.4:8333".into() })
        );
        reg.addnode_onetry("5.5.5.5:8333", true).expect("onetry");
        assert_eq!(reg.added_nodes(), vec!["1.2.3.4:8333".to_string()]);
        reg.addnode_remove("1.2.3.4:8333").expect("remove");
        assert_eq!(reg.addnode_remove("1.2.3.4:8333"), Err(RegistryError::NotAdded { node: "1.2.3.4:8333".into() }));
        assert_eq!(
            requests.try_recv().ok(),
            Some(ConnectRequest { node: "1.2.3.4:8333".into(), persistent: true, v2: false })
        );
        assert_eq!(
            requests.try_recv().ok(),
            Some(ConnectRequest { node: "5.5.5.5:8333".into(), persistent: false, v2: true })
        );
    }

    #[test]
    fn totals_accumulate() {
        let reg = PeerRegistry::new();
        reg.record_sent(10);
        reg.record_recv(7);
        reg.record_sent(5);
        assert_eq!(reg.totals(), (15, 7));
    }
}
