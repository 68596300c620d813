//! The per-connection protocol state machine: handshake, message order, ping, timeouts, scoring.
//!
//! This is plain code with no I/O and no clock of its own: every call takes `now`, and the result
//! is a list of `Output`s for the connection task to carry out (send, disconnect, ban, hand a
//! message to the relay). Tests drive it with a fake clock.
//!
//! Rules, as SV Node applies them (svnode-protocol.md §1.6, §3):
//! - before the peer's `version`, anything else is `MissingVersion` (+1) and dropped;
//! - between its `version` and its `verack`, anything but `verack`/`authch`/`reject` is
//!   `MissingVerack` (+1) and dropped;
//! - we send `verack` after their `version`, and `protoconf`, `sendheaders`, `feefilter` only after
//!   their `verack`; an inbound peer gets our `version` only after sending its own;
//! - a second `version` is `DuplicateVersion` (+1); a second `protoconf`, a protoconf below 1 MiB,
//!   an `inv` of a type other than tx/block, an obsolete version (< 31800) and a connection to
//!   ourselves are disconnected without a ban.
//!
//! Misbehaviour adds to a score that never decays; when it reaches the ban threshold the peer is
//! banned and disconnected, unless it is exempt (whitelisted or `-addnode`).

use super::misbehavior::{BanScore, Misbehavior};
// A `feefilter` rate must be within MAX_MONEY (SV Node's MoneyRange check).
use crate::validation::check_tx::MAX_MONEY;
use crate::wire::message::{Limits, Message, LEGACY_MAX_PAYLOAD, MAX_ADDR, MAX_HEADERS};
use crate::wire::msg::{reject_code, Protoconf, Reject, Version};
use crate::wire::{inv_type, DecodeError, NetAddress};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The protocol version we speak: SV Node's `PROTOCOL_VERSION`.
pub const PROTOCOL_VERSION: i32 = 70016;
/// Oldest peer version we talk to: SV Node's `MIN_PEER_PROTO_VERSION` (= `GETHEADERS_VERSION`).
pub const MIN_PEER_PROTO_VERSION: i32 = 31800;
/// NODE_NETWORK | NODE_BITCOIN_CASH, as SV Node advertises: without bit 0 SV Node treats us as a
/// client and never syncs from us.
pub const OUR_SERVICES: u64 = 0x21;

/// The services we advertise: [`OUR_SERVICES`], and NODE_P2P_V2 when we accept v2 connections.
pub const fn local_services(v2: bool) -> u64 {
    if v2 {
        OUR_SERVICES | super::v2::NODE_P2P_V2
    } else {
        OUR_SERVICES
    }
}
/// A ping is answered with a pong only for peers above this version (BIP31).
const BIP0031_VERSION: i32 = 60000;
/// More bad checksums than this, each within `BAD_CHECKSUM_INTERVAL` of the previous, is an offence
/// (SV Node's `-invalidcsfreq` default, src/validation.h:194-195).
const BAD_CHECKSUM_FLOOD: u32 = 100;
const BAD_CHECKSUM_INTERVAL: Duration = Duration::from_millis(500);

/// Substrings of a user agent that make SV Node ban a peer on sight (`-banclientua` default).
pub const BANNED_USER_AGENT_PARTS: [&str; 3] = ["abc", "cash", "bch"];

/// Which side opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    pub const fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Settings shared by every connection.
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    pub user_agent: String,
    pub services: u64,
    /// What our protoconf advertises, and the receive limit of our frame decoder.
    pub limits: Limits,
    /// `-p2phandshaketimeout`: the handshake must complete within this (SV Node: 60 s).
    pub handshake_timeout: Duration,
    /// `-p2ptimeout`: silence in either direction, or an unanswered ping, for this long ends the
    /// connection (SV Node: 20 min).
    pub inactivity_timeout: Duration,
    /// How often we ping (SV Node's `PING_INTERVAL`: 2 min).
    pub ping_interval: Duration,
    /// A frame whose first byte arrived this long ago and that is still incomplete ends the
    /// connection: a header promising 1000 bytes followed by silence, or a one-byte drip.
    pub message_deadline: Duration,
    /// `-banscore`.
    pub ban_threshold: u32,
    /// The minimum fee rate we announce with `feefilter` (sat/kB).
    pub min_fee_rate: i64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            user_agent: format!("/bsv-relay:{}/", env!("CARGO_PKG_VERSION")),
            services: OUR_SERVICES,
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(60),
            inactivity_timeout: Duration::from_secs(20 * 60),
            ping_interval: Duration::from_secs(120),
            message_deadline: Duration::from_secs(120),
            ban_threshold: 100,
            min_fee_rate: 0,
        }
    }
}

/// Why a connection ended; a closed set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    HandshakeTimeout,
    InactivityTimeout,
    PingTimeout,
    MessageDeadline,
    SelfConnection,
    ObsoleteVersion,
    BadProtoconf,
    /// A `version` we cannot parse, or a locator longer than any honest node sends.
    Malformed,
    InvalidInvType,
    BadMagic,
    Oversized,
    StreamError,
    Banned,
    SendQueueFull,
    Evicted,
    Requested,
    Shutdown,
    PeerClosed,
    IoError,
    /// Our v2 attempt was closed before the peer's key: dialled again with v1.
    V2Fallback,
    /// The v1 peer's `version` advertises v2: dialled again with v2.
    UpgradeToV2,
    /// A feeler connection closed after the handshake, its purpose served.
    Feeler,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 22] = [
        Self::HandshakeTimeout,
        Self::InactivityTimeout,
        Self::PingTimeout,
        Self::MessageDeadline,
        Self::SelfConnection,
        Self::ObsoleteVersion,
        Self::BadProtoconf,
        Self::Malformed,
        Self::InvalidInvType,
        Self::BadMagic,
        Self::Oversized,
        Self::StreamError,
        Self::Banned,
        Self::SendQueueFull,
        Self::Evicted,
        Self::Requested,
        Self::Shutdown,
        Self::PeerClosed,
        Self::IoError,
        Self::V2Fallback,
        Self::UpgradeToV2,
        Self::Feeler,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Self::HandshakeTimeout => "handshake_timeout",
            Self::InactivityTimeout => "inactivity_timeout",
            Self::PingTimeout => "ping_timeout",
            Self::MessageDeadline => "message_deadline",
            Self::SelfConnection => "self_connection",
            Self::ObsoleteVersion => "obsolete_version",
            Self::BadProtoconf => "bad_protoconf",
            Self::Malformed => "malformed",
            Self::InvalidInvType => "invalid_inv_type",
            Self::BadMagic => "bad_magic",
            Self::Oversized => "oversized",
            Self::StreamError => "stream_error",
            Self::Banned => "banned",
            Self::SendQueueFull => "send_queue_full",
            Self::Evicted => "evicted",
            Self::Requested => "requested",
            Self::Shutdown => "shutdown",
            Self::PeerClosed => "peer_closed",
            Self::IoError => "io_error",
            Self::V2Fallback => "v2_fallback",
            Self::UpgradeToV2 => "upgrade_to_v2",
            Self::Feeler => "feeler",
        }
    }
}

/// What the connection task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Message),
    /// An offence was recorded (for metrics and logs).
    Misbehaved(Misbehavior),
    /// The score reached the threshold: ban the peer's address and disconnect.
    Ban,
    Disconnect(DisconnectReason),
    /// Both sides have sent version and verack.
    HandshakeComplete,
    /// A message for the relay layer (inv, getdata, tx, block, headers, getheaders, addr…).
    Deliver(Message),
    /// A ping round trip was measured.
    PingMeasured(Duration),
}

/// Facts about the node a connection needs when handling a message.
pub struct Context<'a> {
    /// Seconds since the Unix epoch, for our `version`'s timestamp.
    pub unix_time: i64,
    pub best_height: i32,
    /// True for a nonce we put in one of our own outbound `version`s: a self-connection.
    pub is_own_nonce: &'a dyn Fn(u64) -> bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the peer's version.
    AwaitVersion,
    /// Got their version; waiting for their verack.
    AwaitVerack,
    Ready,
    Closed,
}

/// The state of one connection.
#[derive(Debug)]
pub struct PeerProtocol {
    config: ProtocolConfig,
    direction: Direction,
    remote: SocketAddr,
    our_nonce: u64,
    /// Exempt from bans (whitelisted or `-addnode`): offences are still counted.
    noban: bool,
    stage: Stage,
    sent_version: bool,
    connected_at: Instant,
    last_recv: Instant,
    last_send: Instant,
    ping: Option<(u64, Instant)>,
    next_ping: Instant,
    rng: u64,
    score: BanScore,
    their_version: Option<Version>,
    their_protoconf: Option<Protoconf>,
    sendheaders: bool,
    fee_filter: i64,
    bad_checksums: (u32, Option<Instant>),
    last_ping_time: Option<Duration>,
    min_ping_time: Option<Duration>,
}

impl PeerProtocol {
    /// A new connection. An outbound one starts by sending our version, with `our_nonce`.
    pub fn new(
        config: ProtocolConfig,
        direction: Direction,
        remote: SocketAddr,
        our_nonce: u64,
        noban: bool,
        now: Instant,
        ctx: &Context<'_>,
    ) -> (PeerProtocol, Vec<Output>) {
        let mut peer = PeerProtocol {
            config,
            direction,
            remote,
            our_nonce,
            noban,
            stage: Stage::AwaitVersion,
            sent_version: false,
            connected_at: now,
            last_recv: now,
            last_send: now,
            ping: None,
            next_ping: now,
            rng: our_nonce | 1,
            score: BanScore::default(),
            their_version: None,
            their_protoconf: None,
            sendheaders: false,
            fee_filter: 0,
            bad_checksums: (0, None),
            last_ping_time: None,
            min_ping_time: None,
        };
        let mut out = Vec::new();
        if direction == Direction::Outbound {
            out.push(peer.our_version(ctx));
        }
        (peer, out)
    }

    fn our_version(&mut self, ctx: &Context<'_>) -> Output {
        self.sent_version = true;
        Output::Send(Message::Version(Version {
            version: PROTOCOL_VERSION,
            services: self.config.services,
            timestamp: ctx.unix_time,
            receiver: NetAddress::new(self.remote, 0),
            sender: NetAddress::unspecified(self.config.services),
            nonce: self.our_nonce,
            user_agent: self.config.user_agent.clone(),
            start_height: ctx.best_height,
            relay: true,
            association_id: None,
        }))
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn is_ready(&self) -> bool {
        self.stage == Stage::Ready
    }

    pub fn their_version(&self) -> Option<&Version> {
        self.their_version.as_ref()
    }

    pub fn ban_score(&self) -> u32 {
        self.score.total()
    }

    /// Whether the peer asked for block announcements as `headers`.
    pub fn wants_headers(&self) -> bool {
        self.sendheaders
    }

    /// The peer's minimum fee rate (sat/kB) from its `feefilter`.
    pub fn fee_filter(&self) -> i64 {
        self.fee_filter
    }

    /// Whether the peer wants transaction announcements (its version's relay flag).
    pub fn relays_transactions(&self) -> bool {
        self.their_version.as_ref().is_none_or(|v| v.relay)
    }

    /// The largest non-block payload the peer accepts: its protoconf, or 1 MiB until one arrives.
    pub fn peer_max_payload(&self) -> u64 {
        self.their_protoconf.as_ref().map_or(LEGACY_MAX_PAYLOAD, |p| u64::from(p.max_recv_payload_length))
    }

    pub fn last_ping_time(&self) -> Option<Duration> {
        self.last_ping_time
    }

    pub fn min_ping_time(&self) -> Option<Duration> {
        self.min_ping_time
    }

    /// The connection wrote bytes at `now`.
    pub fn on_sent(&mut self, now: Instant) {
        self.last_send = now;
    }

    fn next_nonce(&mut self) -> u64 {
        // xorshift64: ping nonces need only be unpredictable enough not to collide.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x.max(1)
    }

    fn offend(&mut self, offence: Misbehavior, out: &mut Vec<Output>) {
        out.push(Output::Misbehaved(offence));
        if self.score.add(offence, self.config.ban_threshold) && !self.noban {
            out.push(Output::Ban);
            self.close(DisconnectReason::Banned, out);
        }
    }

    fn close(&mut self, reason: DisconnectReason, out: &mut Vec<Output>) {
        if self.stage != Stage::Closed {
            self.stage = Stage::Closed;
            out.push(Output::Disconnect(reason));
        }
    }

    /// A complete, decoded message arrived.
    pub fn on_message(&mut self, now: Instant, msg: Message, ctx: &Context<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stage == Stage::Closed {
            return out;
        }
        self.last_recv = now;
        match (&self.stage, msg) {
            (_, Message::Reject(_)) => {}
            (Stage::AwaitVersion, Message::Version(v)) => self.on_version(now, v, ctx, &mut out),
            (Stage::AwaitVersion, _) => self.offend(Misbehavior::MissingVersion, &mut out),
            (_, Message::Version(_)) => {
                out.push(Output::Send(Message::Reject(Reject {
                    message: "version".into(),
                    code: reject_code::DUPLICATE,
                    reason: "Duplicate version message".into(),
                    hash: None,
                })));
                self.offend(Misbehavior::DuplicateVersion, &mut out);
            }
            (Stage::AwaitVerack, Message::Verack) => {
                self.stage = Stage::Ready;
                out.push(Output::Send(Message::Protoconf(Protoconf::ours(
                    u32::try_from(self.config.limits.max_recv_payload).unwrap_or(u32::MAX),
                ))));
                out.push(Output::Send(Message::SendHeaders));
                out.push(Output::Send(Message::FeeFilter(self.config.min_fee_rate)));
                out.push(Output::HandshakeComplete);
                // First ping right away, as SV Node does, so the RTT is known early.
                self.next_ping = now;
                self.send_ping_if_due(now, &mut out);
            }
            (Stage::AwaitVerack, Message::AuthCh(_)) => {}
            (Stage::AwaitVerack, _) => self.offend(Misbehavior::MissingVerack, &mut out),
            (Stage::Ready, msg) => self.on_ready_message(now, msg, &mut out),
            (Stage::Closed, _) => {}
        }
        out
    }

    fn on_version(&mut self, now: Instant, v: Version, ctx: &Context<'_>, out: &mut Vec<Output>) {
        if self.direction == Direction::Inbound && (ctx.is_own_nonce)(v.nonce) {
            self.close(DisconnectReason::SelfConnection, out);
            return;
        }
        if v.version < MIN_PEER_PROTO_VERSION {
            out.push(Output::Send(Message::Reject(Reject {
                message: "version".into(),
                code: reject_code::OBSOLETE,
                reason: format!("Version must be {MIN_PEER_PROTO_VERSION} or greater"),
                hash: None,
            })));
            self.close(DisconnectReason::ObsoleteVersion, out);
            return;
        }
        let ua = v.user_agent.to_ascii_lowercase();
        let banned_ua = BANNED_USER_AGENT_PARTS.iter().any(|p| ua.contains(p));
        self.their_version = Some(v);
        if banned_ua {
            self.offend(Misbehavior::BannedUserAgent, out);
            if self.stage == Stage::Closed {
                return;
            }
        }
        if !self.sent_version {
            let version = self.our_version(ctx);
            out.push(version);
        }
        out.push(Output::Send(Message::Verack));
        self.stage = Stage::AwaitVerack;
        self.last_recv = now;
    }

    fn on_ready_message(&mut self, now: Instant, msg: Message, out: &mut Vec<Output>) {
        match msg {
            Message::Verack | Message::AuthCh(_) => {}
            Message::Ping(nonce) => {
                if self.their_version.as_ref().is_some_and(|v| v.version > BIP0031_VERSION) {
                    out.push(Output::Send(Message::Pong(nonce)));
                }
            }
            Message::Pong(nonce) => {
                if let Some((expected, sent)) = self.ping {
                    if nonce == expected {
                        let rtt = now.saturating_duration_since(sent);
                        self.last_ping_time = Some(rtt);
                        self.min_ping_time = Some(self.min_ping_time.map_or(rtt, |m| m.min(rtt)));
                        self.ping = None;
                        out.push(Output::PingMeasured(rtt));
                    } else if nonce == 0 {
                        // A zero nonce cancels the outstanding ping (SV Node does the same).
                        self.ping = None;
                    }
                }
            }
            Message::Protoconf(p) => {
                if self.their_protoconf.is_some() || u64::from(p.max_recv_payload_length) < LEGACY_MAX_PAYLOAD {
                    self.close(DisconnectReason::BadProtoconf, out);
                } else {
                    self.their_protoconf = Some(p);
                }
            }
            Message::SendHeaders => {
                if self.sendheaders {
                    self.offend(Misbehavior::DuplicateSendHeaders, out);
                }
                self.sendheaders = true;
                // The relay announces blocks to this peer by `headers` from now on.
                out.push(Output::Deliver(Message::SendHeaders));
            }
            Message::FeeFilter(rate) => {
                if (0..=MAX_MONEY).contains(&rate) {
                    self.fee_filter = rate;
                    // The relay filters its announcements to this peer by it.
                    out.push(Output::Deliver(Message::FeeFilter(rate)));
                }
            }
            Message::Inv(ref items) if items.iter().any(|i| i.kind != inv_type::TX && i.kind != inv_type::BLOCK) => {
                self.close(DisconnectReason::InvalidInvType, out);
            }
            Message::Unknown { .. } => {}
            other => out.push(Output::Deliver(other)),
        }
    }

    /// A frame could not be decoded. `command` is the frame's command when it was known.
    pub fn on_decode_error(&mut self, now: Instant, command: Option<&str>, err: &DecodeError) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stage == Stage::Closed {
            return out;
        }
        match err {
            // The stream cannot be trusted past these: disconnect at once, read nothing more.
            DecodeError::BadMagic { .. } => self.close(DisconnectReason::BadMagic, &mut out),
            DecodeError::Oversized { .. } => self.close(DisconnectReason::Oversized, &mut out),
            _ if command == Some("protoconf") => self.close(DisconnectReason::BadProtoconf, &mut out),
            // A peer whose version we cannot read is of no use (SV Node and Core drop it too), and a
            // locator longer than any honest node builds is an attempt to make us work (Core: disconnect).
            _ if matches!(command, Some("version" | "getheaders" | "getblocks")) => {
                self.close(DisconnectReason::Malformed, &mut out)
            }
            DecodeError::BadChecksum { .. } => {
                let (count, last) = self.bad_checksums;
                let flooding = last.is_some_and(|t| now.saturating_duration_since(t) < BAD_CHECKSUM_INTERVAL);
                let count = if flooding { count + 1 } else { 1 };
                self.bad_checksums = (count, Some(now));
                if count > BAD_CHECKSUM_FLOOD {
                    self.bad_checksums = (0, Some(now));
                    self.offend(Misbehavior::BadChecksumFlood, &mut out);
                }
            }
            DecodeError::InvalidCommand { .. } => {}
            DecodeError::CompactSizeTooLarge { .. } => self.offend(Misbehavior::OversizedCompactSize, &mut out),
            DecodeError::TooMany { count, max, .. } => {
                let offence = match command {
                    Some("addr") if *count > MAX_ADDR => Some(Misbehavior::OversizedAddr),
                    Some("headers") if *count > MAX_HEADERS => Some(Misbehavior::TooManyHeaders),
                    Some("inv" | "getdata" | "notfound") if count > max => Some(Misbehavior::OversizedInv),
                    _ => None,
                };
                if let Some(offence) = offence {
                    self.offend(offence, &mut out);
                }
            }
            // Truncated or malformed payloads are dropped without penalty, as SV Node does
            // ("error parsing message"); a version we cannot parse leaves the handshake to time out.
            _ => {}
        }
        out
    }

    /// Time passed. `partial_since` is when the first byte of a still-incomplete frame arrived.
    pub fn on_tick(&mut self, now: Instant, partial_since: Option<Instant>) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stage == Stage::Closed {
            return out;
        }
        let since = |t: Instant| now.saturating_duration_since(t);
        if self.stage != Stage::Ready && since(self.connected_at) >= self.config.handshake_timeout {
            self.close(DisconnectReason::HandshakeTimeout, &mut out);
            return out;
        }
        if partial_since.is_some_and(|t| since(t) >= self.config.message_deadline) {
            self.close(DisconnectReason::MessageDeadline, &mut out);
            return out;
        }
        if self.stage != Stage::Ready {
            return out;
        }
        if let Some((_, sent)) = self.ping {
            if since(sent) >= self.config.inactivity_timeout {
                self.close(DisconnectReason::PingTimeout, &mut out);
                return out;
            }
        }
        let timeout = self.config.inactivity_timeout;
        if since(self.last_recv) >= timeout || since(self.last_send) >= timeout {
            self.close(DisconnectReason::InactivityTimeout, &mut out);
            return out;
        }
        self.send_ping_if_due(now, &mut out);
        out
    }

    fn send_ping_if_due(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.ping.is_none() && now >= self.next_ping {
            let nonce = self.next_nonce();
            self.ping = Some((nonce, now));
            self.next_ping = now + self.config.ping_interval;
            out.push(Output::Send(Message::Ping(nonce)));
        }
    }

    /// Sends a ping now unless one is outstanding (the `ping` RPC).
    pub fn ping_now(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stage == Stage::Ready {
            self.next_ping = now;
            self.send_ping_if_due(now, &mut out);
        }
        out
    }

    /// Records an offence found outside this state machine (an invalid transaction or header).
    pub fn misbehaved(&mut self, offence: Misbehavior) -> Vec<Output> {
        let mut out = Vec::new();
        if self.stage != Stage::Closed {
            self.offend(offence, &mut out);
        }
        out
    }

    /// The earliest time `on_tick` could do something.
    pub fn next_deadline(&self, partial_since: Option<Instant>) -> Instant {
        let mut t = if self.stage == Stage::Closed {
            return self.last_recv + Duration::from_secs(365 * 24 * 3600);
        } else if self.stage == Stage::Ready {
            let idle = self.last_recv.min(self.last_send) + self.config.inactivity_timeout;
            let ping = self.ping.map_or(self.next_ping, |(_, sent)| sent + self.config.inactivity_timeout);
            idle.min(ping)
        } else {
            self.connected_at + self.config.handshake_timeout
        };
        if let Some(p) = partial_since {
            t = t.min(p + self.config.message_deadline);
        }
        t
    }
}
