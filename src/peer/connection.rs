//! One connection: a reader task that decodes frames and runs the protocol state machine, and a
//! writer task that drains the outbound queue.
//!
//! Bounds, so a hostile or slow peer costs a fixed amount of memory:
//! - input: the frame decoder refuses a payload over its command's limit at header time, reads are
//!   sized by what the validated header still needs, and a frame still incomplete after the
//!   message deadline ends the connection;
//! - output: the queue is bounded by bytes (`max_send_queue`); a peer that does not read until its
//!   queue overflows is disconnected rather than buffered forever;
//! - events to the relay go through a bounded channel: when the relay is busy we stop reading from
//!   this peer, which is TCP's own back-pressure.

use super::bans::{BanDuration, BanList, BanReason};
use super::misbehavior::Misbehavior;
use super::protocol::{Context, Direction, DisconnectReason, Output, PeerProtocol, ProtocolConfig};
use super::registry::{PeerCommand, PeerId, PeerRegistry};
use super::subnet::Subnet;
use super::transport::{negotiate, DecodeFailure, Decoder, Negotiated, NegotiationError, PRE_HANDSHAKE_MAX_PACKET};
use super::v2::stream::{PacketDecoder, PacketEncoder};
use super::v2::NODE_P2P_V2;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::wire::frame::FrameDecoder;
use crate::wire::{encode_frame, Message};
use bytes::{Bytes, BytesMut};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info};

/// Largest single read: big enough to take a typical burst in one call, small enough that a
/// claimed-but-unsent payload never reserves much more than has arrived.
const READ_CHUNK: usize = 256 * 1024;

/// Payloads at least this large are queued as their own buffer behind a separate header instead
/// of being copied into one frame; smaller ones (transactions, the hot path) are copied, which
/// costs less than the extra allocation.
const SHARED_PAYLOAD_MIN: usize = 64 * 1024;

/// Pieces of a frame smaller than this are gathered into one write; larger ones are written from
/// their own buffer. Bounds the copy made for writing, and the system calls, per frame.
const WRITE_GATHER: usize = 64 * 1024;

/// How long a closing connection may take to flush what is already queued.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(1);

/// Settings common to every connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub magic: [u8; 4],
    pub protocol: ProtocolConfig,
    /// Most bytes queued for one peer before it is disconnected as not reading. It must hold the
    /// largest message we send (a block), so it is the block limit plus room for smaller traffic.
    pub max_send_queue: usize,
    /// `-v2transport`: accept v2 (BIP324) connections and offer them to peers that advertise it.
    pub v2: bool,
}

/// State every connection shares with the rest of the node.
pub struct NodeShared {
    pub registry: Arc<PeerRegistry>,
    pub bans: Arc<BanList>,
    pub metrics: Arc<Metrics>,
    /// Nonces of our outbound `version`s, to recognise a connection to ourselves.
    pub own_nonces: Mutex<HashSet<u64>>,
    /// Our best block height, for the `version` we send.
    pub best_height: AtomicI32,
    /// Messages for the relay layer; bounded, so a busy relay slows reading instead of queueing.
    pub events: mpsc::Sender<PeerEvent>,
    /// Addresses we know of, for outbound connections and `getaddr` replies.
    pub addrbook: Arc<super::addrbook::AddrBook>,
    /// The port we listen on, to advertise to outbound peers (`None` when not listening).
    pub listen_port: Option<u16>,
    /// Our own addresses: inbound peers confirm them in their `version`.
    pub local: Arc<super::local::LocalAddresses>,
    /// Bounds the info-level lines a remote peer can cause (connections, bans): a peer that
    /// reconnects in a loop must not flood the log.
    pub peer_log: crate::logging::RateLimiter,
}

/// What a connection tells the relay layer.
#[derive(Debug)]
pub enum PeerEvent {
    /// The handshake completed; `sender` queues messages to this peer.
    Connected {
        id: PeerId,
        addr: SocketAddr,
        /// Our end of the connection: the address this peer reaches us at.
        local: Option<SocketAddr>,
        /// The address the peer says it reached us at (its `version`'s `addr_recv`).
        reported: Option<SocketAddr>,
        direction: Direction,
        /// The services the peer advertised in its version.
        services: u64,
        /// The height of the chain the peer had at the handshake (its version's start height).
        start_height: i32,
        /// Its version's relay flag: false means no transaction announcements.
        relay: bool,
        sender: PeerSender,
    },
    Message {
        id: PeerId,
        msg: Message,
    },
    /// The connection scored an offence from the misbehaviour table (its own, or one the relay
    /// reported through the registry): the relay's reputation records every offence from here.
    Offence {
        id: PeerId,
        offence: Misbehavior,
    },
    Disconnected {
        id: PeerId,
    },
}

/// A frame queued for writing: one buffer, or its header followed by payload pieces that share the
/// buffers they came from (a block's transactions, a stored block), so the payload of a big block
/// is not copied for each peer it is sent to.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Bytes),
    Parts(Vec<Bytes>),
}

impl Outgoing {
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Frame(f) => f.len(),
            Outgoing::Parts(parts) => parts.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A handle that queues frames for one peer; cheap to clone.
#[derive(Debug, Clone)]
pub struct PeerSender {
    magic: [u8; 4],
    /// The connection speaks v2, whose packets carry their own authentication: frames queued for
    /// it skip the v1 checksum (a sha256d of every payload: tens of milliseconds for a large block).
    v2: bool,
    tx: mpsc::UnboundedSender<(&'static str, Outgoing)>,
    queued: Arc<AtomicUsize>,
    max: usize,
    overflow: Arc<Notify>,
    /// The node-wide `p2p_send_queue_bytes` gauge.
    gauge: prometheus::IntGauge,
}

impl PeerSender {
    /// Queues `msg`. Returns false, and tells the connection to close, if the peer's queue is over
    /// its byte limit (the peer is not reading).
    pub fn send(&self, msg: &Message) -> bool {
        if let Some(parts) = crate::wire::encode_frame_parts(self.magic, msg, !self.v2) {
            return self.send_outgoing(crate::metrics::command_label(msg.command()), Outgoing::Parts(parts));
        }
        if self.v2 && msg.command_label() != "other" {
            let mut payload = Vec::new();
            msg.encode_payload(&mut payload);
            return self.send_payload(msg.command_label(), &payload);
        }
        let frame = Bytes::from(encode_frame(self.magic, msg));
        self.send_frame(crate::metrics::command_label(msg.command()), frame)
    }

    /// Queues a message whose payload is already serialized (a mempool transaction), framing it here.
    pub fn send_payload(&self, command: &'static str, payload: &[u8]) -> bool {
        let cmd = crate::wire::Command::new(command).expect("callers pass protocol command names");
        let checksum = if self.v2 { 0 } else { crate::wire::Hash256(crate::wire::hash::sha256d(payload)).checksum() };
        let frame = crate::wire::frame::frame_bytes(self.magic, cmd, payload, checksum);
        self.send_frame(crate::metrics::command_label(command), Bytes::from(frame))
    }

    /// Queues a serialized payload held in a shared buffer (a stored block). A large one is queued
    /// as it is behind its own header, not copied into a frame.
    pub fn send_shared_payload(&self, command: &'static str, payload: &Bytes) -> bool {
        if payload.len() < SHARED_PAYLOAD_MIN {
            return self.send_payload(command, payload);
        }
        let cmd = crate::wire::Command::new(command).expect("callers pass protocol command names");
        let parts = crate::wire::frame::frame_parts(self.magic, cmd, vec![payload.clone()], !self.v2);
        self.send_outgoing(crate::metrics::command_label(command), Outgoing::Parts(parts))
    }

    /// Queues an already encoded frame (to send the same bytes to many peers).
    pub fn send_frame(&self, command: &'static str, frame: Bytes) -> bool {
        self.send_outgoing(command, Outgoing::Frame(frame))
    }

    fn send_outgoing(&self, command: &'static str, frame: Outgoing) -> bool {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > self.max {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.overflow.notify_one();
            return false;
        }
        if self.tx.send((command, frame)).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        self.gauge.add(len as i64);
        true
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// Connection flags decided by the manager before the connection starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerFlags {
    /// Whitelisted: never banned, and exempt from the ban list at accept.
    pub whitelisted: bool,
    /// Dialled because of `-addnode`: never banned.
    pub addnode: bool,
    /// Outbound: open with the v2 handshake (the peer advertises NODE_P2P_V2, or an operator said so).
    pub try_v2: bool,
    /// A feeler (Core's): close right after the handshake; it only tests that the address answers.
    pub feeler: bool,
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A connection registered with the registry but not yet running. Registering happens before the
/// task is spawned, so the manager's limits and eviction see every admitted connection at once,
/// even while a burst of accepts outruns the tasks.
pub struct Registered {
    pub id: PeerId,
    commands: super::registry::PeerCommands,
    stream: TcpStream,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    direction: Direction,
}

/// Registers a fresh connection.
pub fn register(
    shared: &NodeShared,
    stream: TcpStream,
    remote: SocketAddr,
    direction: Direction,
    flags: PeerFlags,
) -> Registered {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let mut info = super::registry::PeerInfo::new(remote, direction == Direction::Inbound, unix_now());
    info.addrlocal = local;
    info.whitelisted = flags.whitelisted;
    info.addnode = flags.addnode;
    let (id, commands) = shared.registry.register(info);
    shared.metrics.peers.with_label_values(&[direction.label(), "full"]).inc();
    Registered { id, commands, stream, remote, local, direction }
}

/// Runs one registered connection to completion and returns why it ended.
pub async fn run(
    registered: Registered,
    flags: PeerFlags,
    settings: Arc<ConnectionSettings>,
    shared: Arc<NodeShared>,
    mut shutdown: Shutdown,
) -> DisconnectReason {
    let Registered { id, mut commands, mut stream, remote, local, direction } = registered;
    let negotiation = tokio::select! {
        n = negotiate(&mut stream, direction, flags.try_v2, settings.v2, settings.magic, settings.protocol.handshake_timeout) => n,
        _ = shutdown.wait() => Err(NegotiationError::Failed { reason: DisconnectReason::Shutdown, offence: None, label: None }),
    };
    let (decoder, received, encoder, session_id) = match negotiation {
        Ok(Negotiated::V1 { received }) => {
            (Decoder::V1(FrameDecoder::new(settings.magic, settings.protocol.limits)), received, None, None)
        }
        Ok(Negotiated::V2(session)) => (
            Decoder::V2(Box::new(PacketDecoder::new(
                session.opener,
                settings.protocol.limits,
                PRE_HANDSHAKE_MAX_PACKET,
            ))),
            session.leftover,
            Some(PacketEncoder::new(session.sealer)),
            Some(session.session_id),
        ),
        Err(err) => {
            let reason = match err {
                NegotiationError::Fallback => {
                    shared.metrics.v2_fallbacks.inc();
                    DisconnectReason::V2Fallback
                }
                NegotiationError::Failed { reason, offence, label } => {
                    if let Some(label) = label {
                        shared.metrics.v2_handshake_failures.with_label_values(&[label]).inc();
                    }
                    if let Some(offence) = offence {
                        shared.metrics.record_misbehavior(offence);
                        debug!(peer = %id, %remote, %offence, "v2 handshake failed");
                    }
                    reason
                }
            };
            shared.registry.unregister(id);
            shared.metrics.peers.with_label_values(&[direction.label(), "full"]).dec();
            shared.metrics.record_disconnect(reason);
            return reason;
        }
    };
    let transport = if session_id.is_some() { "v2" } else { "v1" };
    shared.metrics.peers_by_transport.with_label_values(&[transport]).inc();
    shared.registry.update(id, |i| {
        i.transport = transport;
        i.session_id = session_id.map(hex::encode).unwrap_or_default();
    });
    let nonce = loop {
        let n: u64 = rand::random();
        if n != 0 {
            break n;
        }
    };
    if direction == Direction::Outbound {
        shared.own_nonces.lock().unwrap_or_else(|e| e.into_inner()).insert(nonce);
    }

    let (reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let unsent = queued.clone();
    let overflow = Arc::new(Notify::new());
    let sender = PeerSender {
        magic: settings.magic,
        v2: session_id.is_some(),
        tx,
        queued: queued.clone(),
        max: settings.max_send_queue,
        overflow: overflow.clone(),
        gauge: shared.metrics.send_queue_bytes.clone(),
    };
    let closing = Arc::new(Notify::new());
    let writer_task = tokio::spawn(write_loop(writer, encoder, rx, queued, closing.clone(), id, shared.clone()));

    let reason = {
        let mut conn = Connection {
            id,
            remote,
            local,
            direction,
            shared: shared.clone(),
            sender: sender.clone(),
            protocol: None,
            announced: false,
            upgrade: settings.v2 && direction == Direction::Outbound && session_id.is_none(),
            feeler: flags.feeler,
        };
        let input = Input { decoder, buf: received };
        conn.read_loop(reader, input, nonce, flags, &settings, &mut commands, &overflow, &mut shutdown).await
    };
    shared.metrics.peers_by_transport.with_label_values(&[transport]).dec();

    drop(sender);
    // The relay drops its sender for this peer on this event; say it before flushing.
    let _ = shared.events.send(PeerEvent::Disconnected { id }).await;
    if matches!(reason, DisconnectReason::SendQueueFull | DisconnectReason::PeerClosed | DisconnectReason::IoError) {
        // Nobody is reading, or nobody is there: nothing to flush.
        writer_task.abort();
    } else {
        // Let the writer flush what is already queued (a `reject` explaining the disconnect, or
        // the last replies before shutdown), briefly: a clean goodbye, never a hang.
        closing.notify_one();
        let mut writer_task = writer_task;
        if tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer_task).await.is_err() {
            writer_task.abort();
        }
    }
    // Whatever was still queued will never be written.
    shared.metrics.send_queue_bytes.sub(unsent.load(Ordering::Acquire) as i64);
    if direction == Direction::Outbound {
        shared.own_nonces.lock().unwrap_or_else(|e| e.into_inner()).remove(&nonce);
    }
    shared.registry.unregister(id);
    shared.metrics.peers.with_label_values(&[direction.label(), "full"]).dec();
    shared.metrics.record_disconnect(reason);
    debug!(peer = %id, %remote, reason = reason.label(), "disconnected");
    reason
}

struct Connection {
    id: PeerId,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    direction: Direction,
    shared: Arc<NodeShared>,
    sender: PeerSender,
    protocol: Option<PeerProtocol>,
    announced: bool,
    /// An outbound v1 connection that ends once the peer's `version` shows it speaks v2, so the
    /// caller dials it again with v2.
    upgrade: bool,
    /// Close after the handshake (see [`PeerFlags::feeler`]).
    feeler: bool,
}

/// What the reader starts with: the negotiated transport's decoder and the bytes it already read.
struct Input {
    decoder: Decoder,
    buf: BytesMut,
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    async fn read_loop(
        &mut self,
        mut reader: tokio::net::tcp::OwnedReadHalf,
        input: Input,
        nonce: u64,
        flags: PeerFlags,
        settings: &ConnectionSettings,
        commands: &mut mpsc::Receiver<PeerCommand>,
        overflow: &Notify,
        shutdown: &mut Shutdown,
    ) -> DisconnectReason {
        let now = Instant::now();
        let noban = flags.whitelisted || flags.addnode;
        let (protocol, outputs) = {
            let nonces = &self.shared.own_nonces;
            let is_own = |n: u64| nonces.lock().unwrap_or_else(|e| e.into_inner()).contains(&n);
            let ctx = self.context(&is_own);
            PeerProtocol::new(settings.protocol.clone(), self.direction, self.remote, nonce, noban, now, &ctx)
        };
        self.protocol = Some(protocol);
        if let Some(reason) = self.apply(outputs).await {
            return reason;
        }
        let Input { mut decoder, mut buf } = input;
        let mut lifted = false;
        // Bytes read while negotiating the transport may already hold whole messages.
        if let Some(reason) = self.drain(&mut decoder, &mut buf, now, &mut lifted).await {
            return reason;
        }
        let mut partial_since: Option<Instant> = decoder.in_progress(&buf).then_some(now);
        loop {
            let deadline = self.protocol().next_deadline(partial_since);
            let want = decoder.bytes_wanted(&buf).clamp(4096, READ_CHUNK);
            buf.reserve(want);
            tokio::select! {
                read = reader.read_buf(&mut buf) => {
                    let n = match read {
                        Ok(0) => return DisconnectReason::PeerClosed,
                        Ok(n) => n,
                        Err(_) => return DisconnectReason::IoError,
                    };
                    self.shared.registry.record_recv(n as u64);
                    let now = Instant::now();
                    self.shared.registry.update(self.id, |i| { i.lastrecv = unix_now(); i.bytesrecv += n as u64; });
                    if let Some(reason) = self.drain(&mut decoder, &mut buf, now, &mut lifted).await {
                        return reason;
                    }
                    release_spent_buffer(&mut buf);
                    partial_since = if decoder.in_progress(&buf) { partial_since.or(Some(now)) } else { None };
                }
                command = commands.recv() => match command {
                    Some(PeerCommand::Disconnect) | None => return DisconnectReason::Requested,
                    Some(PeerCommand::Evict) => return DisconnectReason::Evicted,
                    Some(PeerCommand::Misbehaving(offence)) => {
                        let outputs = self.protocol.as_mut().expect("set above").misbehaved(offence);
                        if let Some(reason) = self.apply(outputs).await {
                            return reason;
                        }
                    }
                    Some(PeerCommand::Ping) => {
                        let outputs = self.protocol.as_mut().expect("set above").ping_now(Instant::now());
                        if let Some(reason) = self.apply(outputs).await {
                            return reason;
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let outputs = self.protocol.as_mut().expect("set above").on_tick(Instant::now(), partial_since);
                    if let Some(reason) = self.apply(outputs).await {
                        return reason;
                    }
                }
                _ = overflow.notified() => return DisconnectReason::SendQueueFull,
                _ = shutdown.wait() => return DisconnectReason::Shutdown,
            }
        }
    }

    /// Decodes and handles every complete message in `buf`; returns a reason if the connection
    /// must end.
    async fn drain(
        &mut self,
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        now: Instant,
        lifted: &mut bool,
    ) -> Option<DisconnectReason> {
        loop {
            let was_pending =
                decoder.pending().map(|h| h.command.map_or("other", |c| crate::metrics::command_label(c.as_str())));
            match decoder.decode(buf) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    let label = crate::metrics::command_label(frame.command.as_str());
                    let size = frame.wire_len() as u64;
                    self.shared.metrics.record_received(label, size);
                    self.shared
                        .registry
                        .update(self.id, |i| *i.bytesrecv_per_msg.entry(label.to_string()).or_default() += size);
                    let outputs = match frame.message(decoder.limits()) {
                        Ok(msg) => {
                            let nonces = &self.shared.own_nonces;
                            let is_own = |n: u64| nonces.lock().unwrap_or_else(|e| e.into_inner()).contains(&n);
                            let ctx = self.context(&is_own);
                            self.protocol.as_mut().expect("set above").on_message(now, msg, &ctx)
                        }
                        Err(err) => {
                            self.shared.metrics.record_decode_error(&err);
                            debug!(peer = %self.id, command = frame.command.as_str(), %err, "undecodable message");
                            self.protocol.as_mut().expect("set above").on_decode_error(
                                now,
                                Some(frame.command.as_str()),
                                &err,
                            )
                        }
                    };
                    if let Some(reason) = self.apply(outputs).await {
                        return Some(reason);
                    }
                    if !*lifted && self.announced {
                        *lifted = true;
                        decoder.handshake_complete();
                    }
                }
                Err(DecodeFailure::V1(err)) => {
                    self.shared.metrics.record_decode_error(&err);
                    debug!(peer = %self.id, pending = ?was_pending, %err, "bad frame");
                    let outputs = self.protocol.as_mut().expect("set above").on_decode_error(now, None, &err);
                    if let Some(reason) = self.apply(outputs).await {
                        return Some(reason);
                    }
                    if matches!(
                        err,
                        crate::wire::DecodeError::BadMagic { .. } | crate::wire::DecodeError::Oversized { .. }
                    ) {
                        return Some(DisconnectReason::StreamError);
                    }
                }
                Err(DecodeFailure::V2(err)) => {
                    let (offence, reason) = DecodeFailure::v2_offence(&err);
                    debug!(peer = %self.id, %err, "v2 stream broken");
                    let outputs = self.protocol.as_mut().expect("set above").misbehaved(offence);
                    if let Some(r) = self.apply(outputs).await {
                        return Some(r);
                    }
                    return Some(reason);
                }
            }
        }
        None
    }

    fn protocol(&self) -> &PeerProtocol {
        self.protocol.as_ref().expect("set before the loop")
    }

    fn context<'a>(&self, is_own: &'a dyn Fn(u64) -> bool) -> Context<'a> {
        Context {
            unix_time: unix_now() as i64,
            best_height: self.shared.best_height.load(Ordering::Relaxed),
            is_own_nonce: is_own,
        }
    }

    /// Carries out the protocol's decisions; returns the reason if the connection must end.
    async fn apply(&mut self, outputs: Vec<Output>) -> Option<DisconnectReason> {
        for output in outputs {
            match output {
                Output::Send(msg) => {
                    if !self.sender.send(&msg) {
                        return Some(DisconnectReason::SendQueueFull);
                    }
                    self.protocol.as_mut().expect("set").on_sent(Instant::now());
                }
                Output::Misbehaved(offence) => {
                    self.record_offence(offence);
                    if self.shared.events.send(PeerEvent::Offence { id: self.id, offence }).await.is_err() {
                        return Some(DisconnectReason::Shutdown);
                    }
                }
                Output::Ban => self.ban(),
                Output::Disconnect(reason) => return Some(reason),
                Output::HandshakeComplete => {
                    if let Some(reason) = self.handshake_complete().await {
                        return Some(reason);
                    }
                }
                Output::Deliver(msg) => {
                    if self.shared.events.send(PeerEvent::Message { id: self.id, msg }).await.is_err() {
                        return Some(DisconnectReason::Shutdown);
                    }
                }
                Output::PingMeasured(rtt) => {
                    self.shared.metrics.peer_ping.observe(rtt.as_secs_f64());
                    let p = self.protocol();
                    let (last, min) = (p.last_ping_time(), p.min_ping_time());
                    self.shared.registry.update(self.id, |i| {
                        i.pingtime = last;
                        i.minping = min;
                        i.pingwait = None;
                    });
                }
            }
        }
        None
    }

    fn record_offence(&self, offence: Misbehavior) {
        self.shared.metrics.record_misbehavior(offence);
        let score = self.protocol().ban_score();
        self.shared.registry.update(self.id, |i| i.banscore = score);
        debug!(peer = %self.id, remote = %self.remote, %offence, score, "misbehaving");
    }

    fn ban(&self) {
        let subnet = Subnet::single(self.remote.ip());
        match self.shared.bans.ban(subnet, BanDuration::Default, BanReason::Misbehaving, unix_now()) {
            Ok(_) => {
                self.shared.metrics.record_ban(crate::metrics::BanSource::Misbehaving);
                self.shared.metrics.banned_entries.set(i64::try_from(self.shared.bans.len()).unwrap_or(i64::MAX));
                if let Some(suppressed) = self.shared.peer_log.check(Instant::now()) {
                    info!(peer = %self.id, ip = %self.remote.ip(), suppressed, "banned for misbehaving");
                }
            }
            Err(err) => debug!(peer = %self.id, %err, "ban not recorded"),
        }
        let ip = self.remote.ip();
        self.shared.registry.disconnect_matching(|a| a.ip() == ip);
    }

    /// Publishes the handshake; returns a reason to end the connection when it is to be
    /// dialled again with v2.
    async fn handshake_complete(&mut self) -> Option<DisconnectReason> {
        let p = self.protocol();
        let v = p.their_version().cloned()?;
        let relay = p.relays_transactions();
        let offset = v.timestamp - unix_now() as i64;
        self.shared.registry.update(self.id, |i| {
            i.version = u32::try_from(v.version).unwrap_or(0);
            i.subver = v.user_agent.clone();
            i.services = v.services;
            i.startingheight = v.start_height;
            i.relaytxes = relay;
            i.timeoffset = offset;
        });
        if let Some(suppressed) = self.shared.peer_log.check(Instant::now()) {
            info!(peer = %self.id, remote = %self.remote, version = v.version, user_agent = %v.user_agent, suppressed, "handshake complete");
        } else {
            debug!(peer = %self.id, remote = %self.remote, version = v.version, user_agent = %v.user_agent, "handshake complete");
        }
        if self.upgrade && v.services & NODE_P2P_V2 != 0 && !self.shared.addrbook.v1_only(self.remote) {
            // It speaks v2: its address is recorded with the bit, and the caller dials again.
            self.shared.addrbook.connected(self.remote, v.services, unix_now());
            debug!(peer = %self.id, remote = %self.remote, "peer speaks v2: reconnecting with v2");
            return Some(DisconnectReason::UpgradeToV2);
        }
        if self.feeler {
            // The address answers: that is all a feeler wanted to know.
            self.shared.addrbook.connected(self.remote, v.services, unix_now());
            return Some(DisconnectReason::Feeler);
        }
        // As Core's `SeenLocal`: an inbound peer confirms the address it reached us at.
        if self.direction == Direction::Inbound {
            self.shared.local.seen(v.receiver.socket_addr().ip(), self.remote.ip());
        }
        if !self.announced {
            self.announced = true;
            let event = PeerEvent::Connected {
                id: self.id,
                addr: self.remote,
                local: self.local,
                reported: Some(v.receiver.socket_addr()).filter(|a| !a.ip().is_unspecified()),
                direction: self.direction,
                services: v.services,
                start_height: v.start_height,
                relay,
                sender: self.sender.clone(),
            };
            let _ = self.shared.events.send(event).await;
        }
        None
    }
}

/// After a large frame was taken off the front of `buf`, what is left shares that frame's
/// allocation, and so would every small message read after it: one transaction kept in the
/// mempool would keep a whole block's buffer alive. The few bytes left are moved to a fresh buffer
/// instead. While a large frame is still arriving its bytes fill most of the capacity (the buffer
/// grows by doubling), so this never copies a frame in progress.
fn release_spent_buffer(buf: &mut BytesMut) {
    if buf.capacity() > 4 * READ_CHUNK && buf.len() <= READ_CHUNK {
        *buf = BytesMut::from(&buf[..]);
    }
}

/// Writes a frame's pieces in order: small ones gathered into one write of at most
/// [`WRITE_GATHER`] bytes, large ones from their own buffers. Each piece is released as soon as it
/// is written, so a block sent to a slow peer does not keep buffers alive it no longer needs.
async fn write_parts(writer: &mut tokio::net::tcp::OwnedWriteHalf, parts: Vec<Bytes>) -> std::io::Result<()> {
    let mut gather = Vec::new();
    for part in parts {
        if gather.len() + part.len() > WRITE_GATHER && !gather.is_empty() {
            writer.write_all(&gather).await?;
            gather.clear();
        }
        if part.len() >= WRITE_GATHER {
            writer.write_all(&part).await?;
        } else {
            gather.extend_from_slice(&part);
        }
    }
    if !gather.is_empty() {
        writer.write_all(&gather).await?;
    }
    Ok(())
}

async fn write_loop(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut encoder: Option<PacketEncoder>,
    mut rx: mpsc::UnboundedReceiver<(&'static str, Outgoing)>,
    queued: Arc<AtomicUsize>,
    closing: Arc<Notify>,
    id: PeerId,
    shared: Arc<NodeShared>,
) {
    let mut draining = false;
    loop {
        let next = if draining {
            // Closing: write what is already queued, then stop; do not wait for more.
            rx.try_recv().ok()
        } else {
            tokio::select! {
                item = rx.recv() => item,
                _ = closing.notified() => {
                    draining = true;
                    continue;
                }
            }
        };
        let Some((command, frame)) = next else { break };
        let len = frame.len();
        let written = match (&mut encoder, frame) {
            (Some(encoder), Outgoing::Frame(frame)) => writer.write_all(&encoder.encode(&frame)).await,
            (Some(encoder), Outgoing::Parts(parts)) => {
                let mut packets = encoder.encode_parts(parts);
                let mut written = Ok(());
                while let Some(packet) = packets.next_packet() {
                    written = writer.write_all(&packet).await;
                    if written.is_err() {
                        break;
                    }
                }
                written
            }
            (None, Outgoing::Frame(frame)) => writer.write_all(&frame).await,
            (None, Outgoing::Parts(parts)) => write_parts(&mut writer, parts).await,
        };
        if written.is_err() {
            break;
        }
        queued.fetch_sub(len, Ordering::AcqRel);
        let len = len as u64;
        shared.metrics.send_queue_bytes.sub(len as i64);
        shared.metrics.record_sent(command, len);
        shared.registry.record_sent(len);
        shared.registry.update(id, |i| {
            i.lastsend = unix_now();
            i.bytessent += len;
            *i.bytessent_per_msg.entry(command.to_string()).or_default() += len;
        });
    }
    let _ = writer.shutdown().await;
}
