//! Reputation: the positive, soft side of a peer's record, kept per address across connections and
//! restarts. Misbehaviour scores and bans (`misbehavior`, `bans`) stay the hard side and are not
//! changed by anything here; this only decides whom we prefer.
//!
//! A [`Score`] holds two exponentially decaying sums as of a time: `good` (first deliveries of
//! valid transactions and blocks, answered requests) and `bad` (withheld announcements, slow
//! deliveries, stalls, invalid data, misbehaviour, churn), each event weighted by [`Event::weight`]
//! — one table, as offences are. Its value is
//!
//! ```text
//! value = clamp( min(GOOD_CAP, 10·log2(1 + good)) − bad + uptime + latency , −100, 100 )
//! uptime  = min(10, minutes connected / 6)        (only while connected)
//! latency = 5 if min ping ≤ 100 ms, 2 if ≤ 500 ms (only while connected)
//! ```
//!
//! Why this shape: rewards grow with the logarithm and are capped, so a peer cannot bank unlimited
//! credit by relaying a flood of cheap transactions and then withhold with impunity; penalties are
//! linear and uncapped (until the clamp), so a few withheld announcements outweigh thousands of
//! deliveries' worth of credit only when they keep coming. Uptime and latency are read from the
//! live connection, never stored: they say nothing about a peer once it is gone.
//!
//! Half-life [`HALF_LIFE_SECS`] = 6 hours: long enough that a peer cannot wash a penalty away by
//! reconnecting (it stays with the address, and an hour later it still weighs ~90 %), short enough
//! that an honest peer that stalled once (a restart, a slow disk) is back to neutral within a day,
//! like Core's default 24 h ban ends. Time is passed in (unix seconds), so tests use a fake clock.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Half-life of both sums: see the module documentation for why 6 hours.
pub const HALF_LIFE_SECS: f64 = 6.0 * 3600.0;
/// Most credit rewards can give (10·log2 of about 64 good deliveries): see the module docs.
pub const GOOD_CAP: f64 = 60.0;
/// Below this value a peer is asked last and given only a short time to deliver what it announced.
pub const SUSPECT_BELOW: f64 = -10.0;

/// Something a peer did that changes its reputation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Delivered a new valid transaction before anyone else.
    TxFirst,
    /// Told us of a new best block first.
    BlockFirst,
    /// Delivered a transaction we asked it for, promptly.
    Answered,
    /// Announced a transaction and did not deliver it when asked (timeout or `notfound`).
    Withheld,
    /// Delivered a transaction we asked for only after [`SLOW_DELIVERY`].
    Slow,
    /// Let a block request time out.
    Stall,
    /// Sent a transaction or block that failed validation (also scored as an offence if it is one).
    Invalid,
    /// Committed an offence from the misbehaviour table; the argument is its score.
    Misbehaved(u32),
    /// Disconnected within [`CHURN_WITHIN`] of connecting.
    Churn,
}

/// A requested transaction delivered later than this counts as [`Event::Slow`]: a relay on any
/// continent answers in well under a second; seconds mean it is holding transactions back.
pub const SLOW_DELIVERY: Duration = Duration::from_millis(1500);
/// A connection shorter than this counts as [`Event::Churn`].
pub const CHURN_WITHIN: Duration = Duration::from_secs(60);

impl Event {
    /// (good, bad) added by one event. The reasons: a first block is rare and costly to fake
    /// (proof of work), worth twenty transactions; a withheld announcement costs us a request
    /// timeout, so it weighs four first deliveries; a block stall costs far more time than a
    /// transaction; invalid data and offences are already punished by the ban score, so here they
    /// weigh only enough to move the peer to the back of the queue.
    pub const fn weight(self) -> (f64, f64) {
        match self {
            Event::TxFirst => (1.0, 0.0),
            Event::BlockFirst => (20.0, 0.0),
            Event::Answered => (0.2, 0.0),
            Event::Withheld => (0.0, 4.0),
            Event::Slow => (0.0, 2.0),
            Event::Stall => (0.0, 10.0),
            Event::Invalid => (0.0, 20.0),
            Event::Misbehaved(score) => (0.0, score as f64 / 2.0),
            Event::Churn => (0.0, 3.0),
        }
    }
}

/// Ranges of the `peer_reputation_peers` metric, from suspect to trusted.
pub const RANGE_LABELS: [&str; 5] = ["suspect", "negative", "neutral", "positive", "trusted"];

/// The metric range of a value: suspect below [`SUSPECT_BELOW`], negative below 0, neutral below
/// 10, positive below 40, trusted from 40 (a peer with the reward cap mostly earned).
pub fn range_label(value: f64) -> &'static str {
    match value {
        v if v < SUSPECT_BELOW => "suspect",
        v if v < 0.0 => "negative",
        v if v < 10.0 => "neutral",
        v if v < 40.0 => "positive",
        _ => "trusted",
    }
}

/// Labels of the `reputation_events_total` metric.
pub const EVENT_LABELS: [&str; 9] =
    ["tx_first", "block_first", "answered", "withheld", "slow", "stall", "invalid", "misbehaved", "churn"];

impl Event {
    pub const fn label(self) -> &'static str {
        match self {
            Event::TxFirst => "tx_first",
            Event::BlockFirst => "block_first",
            Event::Answered => "answered",
            Event::Withheld => "withheld",
            Event::Slow => "slow",
            Event::Stall => "stall",
            Event::Invalid => "invalid",
            Event::Misbehaved(_) => "misbehaved",
            Event::Churn => "churn",
        }
    }
}

/// The decaying record of one address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    good: f64,
    bad: f64,
    /// When `good` and `bad` were last brought up to date (unix seconds).
    at: u64,
}

/// What only a live connection knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub connected_for: Duration,
    pub min_ping: Option<Duration>,
}

fn decay(value: f64, secs: u64) -> f64 {
    value * (-(secs as f64) * std::f64::consts::LN_2 / HALF_LIFE_SECS).exp()
}

impl Score {
    fn catch_up(&mut self, now: u64) {
        // A clock that went backwards (or a file from the future) decays nothing.
        let dt = now.saturating_sub(self.at);
        if dt > 0 {
            self.good = decay(self.good, dt);
            self.bad = decay(self.bad, dt);
        }
        self.at = self.at.max(now);
    }

    pub fn record(&mut self, event: Event, now: u64) {
        self.catch_up(now);
        let (good, bad) = event.weight();
        // Bounded so a file or a long life cannot grow them past what the clamp can show.
        self.good = (self.good + good).min(1e12);
        self.bad = (self.bad + bad).min(1e6);
    }

    /// Adds another record's sums (an address reconnecting while another connection still runs).
    pub fn merge(&mut self, other: &Score, now: u64) {
        let mut o = *other;
        o.catch_up(now);
        self.catch_up(now);
        self.good = (self.good + o.good).min(1e12);
        self.bad = (self.bad + o.bad).min(1e6);
    }

    /// The decayed (good, bad) sums at `now`.
    pub fn sums(&self, now: u64) -> (f64, f64) {
        let dt = now.saturating_sub(self.at);
        (decay(self.good, dt), decay(self.bad, dt))
    }

    /// The reputation value at `now`, in [−100, 100]; see the module documentation.
    pub fn value(&self, now: u64, live: Option<Live>) -> f64 {
        let (good, bad) = self.sums(now);
        let good = if good.is_finite() && good > 0.0 { good } else { 0.0 };
        let bad = if bad.is_finite() && bad > 0.0 { bad } else { 0.0 };
        let mut v = (10.0 * (1.0 + good).log2()).min(GOOD_CAP) - bad;
        if let Some(live) = live {
            v += (live.connected_for.as_secs_f64() / 360.0).min(10.0);
            v += match live.min_ping {
                Some(p) if p <= Duration::from_millis(100) => 5.0,
                Some(p) if p <= Duration::from_millis(500) => 2.0,
                _ => 0.0,
            };
        }
        v.clamp(-100.0, 100.0)
    }

    /// Whether the record is empty enough to forget (nothing left worth a point).
    pub fn is_negligible(&self, now: u64) -> bool {
        let (g, b) = self.sums(now);
        g < 0.05 && b < 0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn rewards_are_capped_and_penalties_are_not() {
        let mut s = Score::default();
        for _ in 0..100_000 {
            s.record(Event::TxFirst, T0);
        }
        assert_eq!(s.value(T0, None), GOOD_CAP, "a flood of cheap transactions buys at most the cap");
        for _ in 0..20 {
            s.record(Event::Withheld, T0);
        }
        assert!(s.value(T0, None) < 0.0, "twenty withheld announcements outweigh it: {}", s.value(T0, None));
    }

    #[test]
    fn a_few_withheld_announcements_make_a_fresh_peer_suspect() {
        let mut s = Score::default();
        s.record(Event::Withheld, T0);
        s.record(Event::Withheld, T0);
        assert!(s.value(T0, None) >= SUSPECT_BELOW);
        s.record(Event::Withheld, T0);
        assert!(s.value(T0, None) < SUSPECT_BELOW);
    }

    #[test]
    fn both_sides_halve_every_half_life() {
        let mut s = Score::default();
        for _ in 0..10 {
            s.record(Event::Stall, T0);
        }
        s.record(Event::BlockFirst, T0);
        let (g0, b0) = s.sums(T0);
        let (g1, b1) = s.sums(T0 + HALF_LIFE_SECS as u64);
        assert!((g1 - g0 / 2.0).abs() < 1e-9 && (b1 - b0 / 2.0).abs() < 1e-9);
        // A day later the stalls are forgotten enough for the peer to be tried again.
        assert!(s.value(T0, None) < SUSPECT_BELOW);
        assert!(s.value(T0 + 24 * 3600, None) > SUSPECT_BELOW);
        assert!(s.is_negligible(T0 + 30 * 24 * 3600));
    }

    #[test]
    fn uptime_and_latency_count_only_while_connected() {
        let s = Score::default();
        let live = Live { connected_for: Duration::from_secs(7200), min_ping: Some(Duration::from_millis(20)) };
        assert_eq!(s.value(T0, Some(live)), 15.0);
        assert_eq!(s.value(T0, None), 0.0);
        let slow = Live { connected_for: Duration::from_secs(360), min_ping: Some(Duration::from_millis(400)) };
        assert_eq!(s.value(T0, Some(slow)), 3.0);
    }

    #[test]
    fn a_clock_going_backwards_changes_nothing_and_merges_add_up() {
        let mut a = Score::default();
        a.record(Event::Slow, T0);
        assert_eq!(a.value(T0 - 1000, None), a.value(T0, None));
        let mut b = Score::default();
        b.record(Event::Slow, T0);
        a.merge(&b, T0);
        assert_eq!(a.sums(T0).1, 4.0);
        let mut m = Score::default();
        m.record(Event::Misbehaved(100), T0);
        assert_eq!(m.value(T0, None), -50.0);
    }
}
