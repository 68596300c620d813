//! The relay's side of reputation: one [`Score`] per connected peer, loaded from the address book
//! when it connects and stored back when it leaves, fed by what the relay sees (first deliveries,
//! withheld announcements, stalls, invalid data, offences, churn). Every change is published to
//! the peer's `getpeerinfo` entry and to the transaction relay's request order; the distribution
//! goes to metrics every [`PUBLISH_INTERVAL_MS`].
//!
//! Switched off (`-peerreputation=0`), nothing is recorded or stored, and every peer ranks 0.

use crate::peer::addrbook::AddrBook;
use crate::peer::reputation::{Event, Live, Score, CHURN_WITHIN};
use crate::peer::{PeerId, PeerRegistry};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How often values with uptime and latency are recomputed and the metric published.
pub const PUBLISH_INTERVAL_MS: u64 = 10_000;

struct Tracked {
    addr: SocketAddr,
    inbound: bool,
    score: Score,
    connected_at: u64,
}

pub(super) struct Reputations {
    peers: HashMap<PeerId, Tracked>,
    pub(super) enabled: bool,
    last_publish: u64,
}

impl Reputations {
    pub(super) fn new(enabled: bool) -> Reputations {
        Reputations { peers: HashMap::new(), enabled, last_publish: 0 }
    }

    /// A peer finished its handshake; returns its starting value. Inbound peers on loopback start
    /// afresh: every local process shares the address, so a record per IP would mix them.
    pub(super) fn connected(&mut self, id: PeerId, addr: SocketAddr, inbound: bool, book: &AddrBook, now: u64) -> f64 {
        let shared_ip = inbound && addr.ip().is_loopback();
        let score = if self.enabled && !shared_ip { book.reputation(addr, inbound) } else { Score::default() };
        self.peers.insert(id, Tracked { addr, inbound, score, connected_at: now });
        score.value(now, None)
    }

    /// Records `event`; returns the peer's new value (without the live part) if it is tracked.
    pub(super) fn record(&mut self, id: PeerId, event: Event, now: u64) -> Option<f64> {
        if !self.enabled {
            return None;
        }
        let t = self.peers.get_mut(&id)?;
        t.score.record(event, now);
        Some(t.score.value(now, None))
    }

    /// The peer left: a short outbound connection is churn (an inbound one may be a dialer
    /// reconnecting with v2, or a feeler: its choice, not a fault); the score goes back to the book.
    pub(super) fn disconnected(&mut self, id: PeerId, book: &AddrBook, now: u64) {
        let Some(mut t) = self.peers.remove(&id) else { return };
        if !self.enabled || (t.inbound && t.addr.ip().is_loopback()) {
            return;
        }
        if !t.inbound && now.saturating_sub(t.connected_at) < CHURN_WITHIN.as_secs() {
            t.score.record(Event::Churn, now);
        }
        book.store_reputation(t.addr, t.inbound, t.score, now);
    }

    /// Every [`PUBLISH_INTERVAL_MS`]: full values (with uptime and ping) to the registry, the
    /// ranks returned for the transaction relay, and the distribution to metrics.
    pub(super) fn publish(
        &mut self,
        now_ms: u64,
        registry: &PeerRegistry,
        book: &AddrBook,
        metrics: &crate::metrics::Metrics,
    ) -> Vec<(PeerId, f64)> {
        if now_ms < self.last_publish + PUBLISH_INTERVAL_MS {
            return Vec::new();
        }
        self.last_publish = now_ms;
        let now = now_ms / 1000;
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        let mut ranks = Vec::new();
        for (id, t) in &self.peers {
            let mut min_ping = None;
            registry.update(*id, |i| min_ping = i.minping);
            let live = Live { connected_for: Duration::from_secs(now.saturating_sub(t.connected_at)), min_ping };
            let value = if self.enabled { t.score.value(now, Some(live)) } else { 0.0 };
            registry.update(*id, |i| i.reputation = value);
            *counts.entry(crate::peer::reputation::range_label(value)).or_default() += 1;
            ranks.push((*id, value));
            if self.enabled && !(t.inbound && t.addr.ip().is_loopback()) {
                // Stored while connected too, so a crash loses at most one interval.
                book.store_reputation(t.addr, t.inbound, t.score, now);
            }
        }
        for r in crate::peer::reputation::RANGE_LABELS {
            metrics.peer_reputation.with_label_values(&[r]).set(counts.get(r).copied().unwrap_or(0));
        }
        let (new, tried) = book.table_sizes();
        metrics.addrbook_table.with_label_values(&["new"]).set(new as i64);
        metrics.addrbook_table.with_label_values(&["tried"]).set(tried as i64);
        ranks
    }
}
