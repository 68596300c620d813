//! Transaction relay decisions: what to announce to whom, what to ask for and from whom.
//!
//! A pure state machine driven by the relay task, with the time (milliseconds) passed in, tested
//! with a fake clock:
//! - accepted transactions are queued for every peer that relays transactions, does not know the
//!   transaction (a bounded per-peer known-inventory set) and whose `feefilter` the fee rate meets;
//!   queues are flushed as `inv` batches every `-txnpropagationfreq` (one message carries as many as
//!   arrived, so batches grow under load instead of messages multiplying);
//! - announced transactions we lack are requested with `getdata`, at most
//!   [`MAX_TX_IN_FLIGHT_PER_PEER`] at a time from one peer; one not delivered within
//!   [`TX_REQUEST_TIMEOUT_MS`] (or answered `notfound`) is asked of the next peer that announced it;
//! - nothing is requested during initial block download (we could not validate it);
//! - withholding ([`WITHHELD_SUSPECT`]): a peer whose requests time out, come back `notfound` or
//!   are answered only after seconds becomes a *suspect* (so does one whose reputation, set by the
//!   relay with [`TxRelay::set_rank`], is below [`SUSPECT_BELOW`]). A suspect is asked last among
//!   announcers, is given [`SUSPECT_TIMEOUT_MS`] instead of the full timeout, and a transaction it
//!   announced first is asked of the next announcer as soon as one announces it, without waiting
//!   for the suspect at all. Prompt deliveries clear the count, so an honest peer recovers. A
//!   holder that the next announcer in line outranks by [`OUTRANKED_BY`] also gets only the
//!   suspect's time, and a peer that has not yet answered a request promptly on this connection
//!   yields at once to an announcer that has: a fresh peer does not hold a transaction hostage.
//!   With reputation switched off ([`TxRelay::set_reputation`]) none of this applies: first come,
//!   first asked, full timeout, as before.
//!
//! Never announced: what a peer sent us or announced to us, what we announced to it already.
//! A peer whose transaction is refused is told so with a `reject`, as SV Node does.

use super::known::RollingFilter;
use std::collections::{HashMap, VecDeque};

use crate::peer::reputation::{Event, SLOW_DELIVERY, SUSPECT_BELOW};

use crate::peer::PeerId;
use crate::validation::TxReject;
use crate::wire::msg::{Reject, MAX_REJECT_REASON_LEN};
use crate::wire::{InvItem, Message, TxId};

/// Transactions requested from one peer and not yet delivered. Core and SV Node use 100; a relay
/// under 40,000 tx/s from one peer needs a deeper pipe: at 100 the round trip would cap it.
pub const MAX_TX_IN_FLIGHT_PER_PEER: usize = 20_000;

/// A requested transaction not delivered in this time is asked of another announcer (Core: 60 s;
/// on a relay network a second is already long).
pub const TX_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Requests to a suspect that fail or arrive late this many times, net of prompt deliveries, make
/// it a suspect: one miss is bad luck (a transaction evicted in between), three in a row is a
/// pattern.
pub const WITHHELD_SUSPECT: u32 = 3;

/// What a suspect gets to deliver before the next announcer is asked: several round trips on any
/// continent, a fifth of the full timeout.
pub const SUSPECT_TIMEOUT_MS: u64 = 1_000;

/// A holder outranked by this much by the next announcer in line gets only [`SUSPECT_TIMEOUT_MS`]
/// too: a fifth of the reputation range, more than the live part (uptime, ping) can make up, so
/// only a record of deliveries or failures moves a request early.
pub const OUTRANKED_BY: f64 = 20.0;

/// Txids a peer's filter always remembers as known to it (it forgets beyond twice this; Core: 50,000).
pub const KNOWN_INVENTORY: usize = 100_000;

/// Most items in one `inv`/`getdata` we send: SV Node's limit for a 1 MiB payload is 29,126.
pub const MAX_INV_PER_MESSAGE: usize = 29_000;

/// The `reject` SV Node sends the peer whose transaction it refused (`CreateTxRejectMsgForP2PTxn`):
/// command `tx`, the reject code, the reason cut to 111 bytes and the txid. Internal codes (256 and
/// up: a conflict, an absurd fee, already known) and missing inputs (code 0) get none.
pub fn reject_message(txid: TxId, reject: &TxReject) -> Option<Message> {
    if reject.kind == crate::validation::RejectKind::MissingInputs {
        return None;
    }
    let code = u8::try_from(reject.code).ok().filter(|c| *c > 0)?;
    let mut reason = reject.reason.clone();
    let mut cut = reason.len().min(MAX_REJECT_REASON_LEN as usize);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.truncate(cut);
    Some(Message::Reject(Reject { message: "tx".into(), code, reason, hash: Some(txid) }))
}

#[derive(Debug)]
struct TxPeer {
    known: RollingFilter,
    pending: Vec<TxId>,
    /// Its `feefilter`, in satoshis per 1000 bytes.
    fee_filter: u64,
    /// Its version's relay flag.
    relay: bool,
    in_flight: usize,
    /// Requests it let time out, answered `notfound` or answered late, less prompt answers.
    withheld: u32,
    /// Its reputation, from the relay.
    rank: f64,
    /// It has delivered a transaction we asked it for, promptly, on this connection.
    proven: bool,
}

impl TxPeer {
    fn suspect(&self) -> bool {
        self.withheld >= WITHHELD_SUSPECT || self.rank < SUSPECT_BELOW
    }
}

#[derive(Debug)]
struct Request {
    peer: PeerId,
    /// When it was asked (ms), to measure how long delivery took.
    asked: u64,
    deadline: u64,
    /// Other peers that announced it, to ask next.
    others: VecDeque<PeerId>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct TxRelay {
    peers: HashMap<PeerId, TxPeer>,
    requests: HashMap<TxId, Request>,
    /// Reputation events for the relay to record ([`TxRelay::take_events`]).
    events: Vec<(PeerId, Event)>,
    reputation: bool,
}

impl Default for TxRelay {
    fn default() -> Self {
        TxRelay { peers: HashMap::new(), requests: HashMap::new(), events: Vec::new(), reputation: true }
    }
}

impl TxRelay {
    pub fn new() -> TxRelay {
        TxRelay::default()
    }

    pub fn add_peer(&mut self, peer: PeerId, relay: bool) {
        self.peers.insert(
            peer,
            TxPeer {
                known: RollingFilter::new(KNOWN_INVENTORY),
                pending: Vec::new(),
                fee_filter: 0,
                relay,
                in_flight: 0,
                withheld: 0,
                rank: 0.0,
                proven: false,
            },
        );
    }

    /// Switches the reputation rules (suspects, ordering) on or off.
    pub fn set_reputation(&mut self, on: bool) {
        self.reputation = on;
    }

    /// The peer's current reputation value, from the relay.
    pub fn set_rank(&mut self, peer: PeerId, rank: f64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.rank = rank;
        }
    }

    /// Whether the peer is treated as a withholder now.
    pub fn is_suspect(&self, peer: PeerId) -> bool {
        self.reputation && self.peers.get(&peer).is_some_and(TxPeer::suspect)
    }

    /// Reputation events since the last call.
    pub fn take_events(&mut self) -> Vec<(PeerId, Event)> {
        std::mem::take(&mut self.events)
    }

    fn timeout_for(&self, peer: PeerId) -> u64 {
        if self.is_suspect(peer) {
            SUSPECT_TIMEOUT_MS
        } else {
            TX_REQUEST_TIMEOUT_MS
        }
    }

    /// Whether `holder` has never answered a request promptly while `other` has: the first
    /// announcer is often the fastest re-announcer, not the best source, and a peer that has
    /// delivered nothing yet is not waited for when one that has is offering the same transaction.
    fn unproven_against_proven(&self, holder: PeerId, other: PeerId) -> bool {
        self.reputation
            && self.peers.get(&holder).is_some_and(|h| !h.proven)
            && self.peers.get(&other).is_some_and(|o| o.proven)
    }

    /// Whether a request held past the suspect's time should go to the next announcer now.
    fn should_move_on(&self, r: &Request) -> bool {
        let Some(next) = r.others.front() else { return false };
        if !self.reputation {
            return false;
        }
        let rank = |id: &PeerId| self.peers.get(id).map_or(f64::MIN, |p| p.rank);
        self.is_suspect(r.peer) || (!self.is_suspect(*next) && rank(next) >= rank(&r.peer) + OUTRANKED_BY)
    }

    /// A request to `peer` failed (timeout or `notfound`).
    fn withheld(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.withheld = p.withheld.saturating_add(1);
            self.events.push((peer, Event::Withheld));
        }
    }

    /// Where `peer` goes in a queue of announcers: behind every better-ranked one (FIFO when
    /// reputation is off).
    fn enqueue(&self, others: &mut VecDeque<PeerId>, peer: PeerId) {
        if !self.reputation {
            others.push_back(peer);
            return;
        }
        let key = |id: &PeerId| self.peers.get(id).map_or((true, 0.0), |p| (p.suspect(), -p.rank));
        let mine = key(&peer);
        let at = others.iter().position(|o| {
            let k = key(o);
            (k.0, k.1) > (mine.0, mine.1)
        });
        match at {
            Some(i) => others.insert(i, peer),
            None => others.push_back(peer),
        }
    }

    /// The peer left; its requests go to other announcers.
    pub fn remove_peer(&mut self, peer: PeerId, now: u64) -> Vec<(PeerId, Message)> {
        self.peers.remove(&peer);
        let mine: Vec<TxId> = self.requests.iter().filter(|(_, r)| r.peer == peer).map(|(t, _)| *t).collect();
        for r in self.requests.values_mut() {
            r.others.retain(|p| *p != peer);
        }
        self.reassign(&mine, now)
    }

    pub fn set_fee_filter(&mut self, peer: PeerId, sats_per_kb: i64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.fee_filter = u64::try_from(sats_per_kb).unwrap_or(0);
        }
    }

    /// Transactions waiting to be announced, over all peers.
    pub fn pending(&self) -> usize {
        self.peers.values().map(|p| p.pending.len()).sum()
    }

    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// A peer announced transactions. Returns the `getdata` to send it, if any. `have` tells
    /// whether we already hold (or are validating) a txid; `ibd` suppresses requests.
    pub fn on_inv(
        &mut self,
        peer: PeerId,
        txids: &[TxId],
        ibd: bool,
        have: impl Fn(&TxId) -> bool,
        now: u64,
    ) -> Option<Message> {
        let suspect = self.is_suspect(peer);
        let timeout = self.timeout_for(peer);
        let mut ask = Vec::new();
        for txid in txids {
            let p = self.peers.get_mut(&peer)?;
            p.known.insert(*txid);
            if ibd || have(txid) {
                continue;
            }
            let has_room = p.in_flight < MAX_TX_IN_FLIGHT_PER_PEER;
            let Some(r) = self.requests.get(txid) else {
                if has_room {
                    p.in_flight += 1;
                    let r = Request { peer, asked: now, deadline: now + timeout, others: VecDeque::new() };
                    self.requests.insert(*txid, r);
                    ask.push(InvItem::tx(*txid));
                }
                continue;
            };
            if r.peer == peer || r.others.contains(&peer) {
                continue;
            }
            if !suspect && has_room && (self.is_suspect(r.peer) || self.unproven_against_proven(r.peer, peer)) {
                // Asked of a suspect and an honest-looking peer has it too: ask it now instead of
                // waiting for the suspect; the suspect may still deliver, which also ends the wait.
                let old = r.peer;
                if let Some(o) = self.peers.get_mut(&old) {
                    o.in_flight = o.in_flight.saturating_sub(1);
                }
                let p = self.peers.get_mut(&peer).expect("checked above");
                p.in_flight += 1;
                let r = self.requests.get_mut(txid).expect("checked above");
                r.peer = peer;
                r.asked = now;
                r.deadline = now + TX_REQUEST_TIMEOUT_MS;
                ask.push(InvItem::tx(*txid));
                continue;
            }
            let mut others = std::mem::take(&mut self.requests.get_mut(txid).expect("checked above").others);
            self.enqueue(&mut others, peer);
            self.requests.get_mut(txid).expect("checked above").others = others;
        }
        (!ask.is_empty()).then(|| Message::GetData(ask))
    }

    /// We need these parents of an orphan from `peer`.
    pub fn request_parents(&mut self, peer: PeerId, parents: &[TxId], now: u64) -> Option<Message> {
        self.on_inv(peer, parents, false, |_| false, now)
    }

    /// A transaction arrived from `peer` (requested or not) at `now` (ms).
    pub fn on_tx(&mut self, peer: PeerId, txid: &TxId, now: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.known.insert(*txid);
        }
        if let Some(r) = self.requests.remove(txid) {
            if let Some(p) = self.peers.get_mut(&r.peer) {
                p.in_flight = p.in_flight.saturating_sub(1);
                if r.peer == peer {
                    if now.saturating_sub(r.asked) >= SLOW_DELIVERY.as_millis() as u64 {
                        p.withheld = p.withheld.saturating_add(1);
                        self.events.push((peer, Event::Slow));
                    } else {
                        p.withheld = p.withheld.saturating_sub(1);
                        p.proven = true;
                        self.events.push((peer, Event::Answered));
                    }
                }
            }
        }
    }

    /// The peer does not have these: ask the next announcer.
    pub fn on_notfound(&mut self, peer: PeerId, txids: &[TxId], now: u64) -> Vec<(PeerId, Message)> {
        let mine: Vec<TxId> =
            txids.iter().filter(|t| self.requests.get(t).is_some_and(|r| r.peer == peer)).copied().collect();
        for _ in &mine {
            self.withheld(peer);
        }
        self.reassign(&mine, now)
    }

    /// Requests past their deadline go to the next announcer.
    pub fn expire(&mut self, now: u64) -> Vec<(PeerId, Message)> {
        // A holder that became a suspect after it was asked, or that the next announcer in line
        // clearly outranks, gets only the suspect's time too.
        let late: Vec<TxId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= now || (r.asked + SUSPECT_TIMEOUT_MS <= now && self.should_move_on(r)))
            .map(|(t, _)| *t)
            .collect();
        for t in &late {
            let peer = self.requests[t].peer;
            self.withheld(peer);
        }
        self.reassign(&late, now)
    }

    fn reassign(&mut self, txids: &[TxId], now: u64) -> Vec<(PeerId, Message)> {
        let mut batches: HashMap<PeerId, Vec<InvItem>> = HashMap::new();
        for txid in txids {
            let Some(mut r) = self.requests.remove(txid) else { continue };
            while let Some(next) = r.others.pop_front() {
                let timeout = self.timeout_for(next);
                let Some(p) = self.peers.get_mut(&next) else { continue };
                if p.in_flight >= MAX_TX_IN_FLIGHT_PER_PEER {
                    continue;
                }
                p.in_flight += 1;
                batches.entry(next).or_default().push(InvItem::tx(*txid));
                let request = Request { peer: next, asked: now, deadline: now + timeout, others: r.others };
                self.requests.insert(*txid, request);
                break;
            }
        }
        let mut out: Vec<(PeerId, Message)> = batches.into_iter().map(|(p, i)| (p, Message::GetData(i))).collect();
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// A transaction entered the mempool: queue it for every peer that should hear of it.
    pub fn on_accepted(&mut self, txid: TxId, fee_rate: u64, source: Option<PeerId>) {
        for (id, p) in &mut self.peers {
            if Some(*id) == source {
                // It sent it to us: it has it.
                p.known.insert(txid);
                continue;
            }
            if !p.relay || fee_rate < p.fee_filter {
                continue;
            }
            if p.known.insert(txid) {
                p.pending.push(txid);
            }
        }
    }

    /// The `inv` batches due now, one or more per peer with pending announcements.
    pub fn flush(&mut self) -> Vec<(PeerId, Message)> {
        let mut out = Vec::new();
        for (id, p) in &mut self.peers {
            if p.pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut p.pending);
            for chunk in pending.chunks(MAX_INV_PER_MESSAGE) {
                out.push((*id, Message::Inv(chunk.iter().map(|t| InvItem::tx(*t)).collect())));
            }
        }
        out.sort_by_key(|(p, _)| *p);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hash256;

    fn t(i: u32) -> TxId {
        Hash256::sha256d(&i.to_le_bytes())
    }

    #[test]
    fn refused_transactions_get_sv_nodes_reject_except_for_internal_codes() {
        use crate::validation::RejectKind;
        let reject =
            |reason: &str, code: u16| TxReject { reason: reason.into(), code, score: 0, kind: RejectKind::Policy };
        let msg = reject_message(t(1), &reject("bad-txns-premature-spend-of-coinbase", 0x10));
        assert_eq!(
            msg,
            Some(Message::Reject(Reject {
                message: "tx".into(),
                code: 0x10,
                reason: "bad-txns-premature-spend-of-coinbase".into(),
                hash: Some(t(1)),
            }))
        );
        for internal in [0x100, 0x101, 0x102] {
            assert_eq!(reject_message(t(1), &reject("txn-mempool-conflict", internal)), None);
        }
        let missing = TxReject { kind: RejectKind::MissingInputs, ..reject("missing-inputs", 0x10) };
        assert_eq!(reject_message(t(1), &missing), None);
        // Long script errors are cut to SV Node's 111 bytes, on a character boundary.
        let long = format!("mandatory-script-verify-flag-failed ({})", "é".repeat(100));
        let Some(Message::Reject(r)) = reject_message(t(2), &reject(&long, 0x10)) else { panic!("a reject") };
        assert!(r.reason.len() <= 111 && r.reason.len() >= 110 && long.starts_with(&r.reason), "{}", r.reason);
    }

    fn items(m: &Message) -> Vec<TxId> {
        match m {
            Message::Inv(i) | Message::GetData(i) => i.iter().map(|i| i.hash).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_transactions_go_to_everyone_but_the_source_once_in_batches() {
        let mut r = TxRelay::new();
        for p in 1..=3 {
            r.add_peer(PeerId(p), true);
        }
        r.on_accepted(t(1), 1000, Some(PeerId(1)));
        r.on_accepted(t(2), 1000, None);
        r.on_accepted(t(1), 1000, None);
        assert_eq!(r.pending(), 2 + 2 + 1);
        let out = r.flush();
        assert_eq!(out.len(), 3);
        assert_eq!(items(&out[0].1), vec![t(2)]);
        assert_eq!(items(&out[1].1), vec![t(1), t(2)]);
        assert!(r.flush().is_empty(), "nothing twice");
        r.on_accepted(t(2), 1000, None);
        assert!(r.flush().is_empty(), "known to everyone now");
    }

    #[test]
    fn a_peer_that_announced_a_transaction_is_not_told_of_it() {
        let mut r = TxRelay::new();
        r.add_peer(PeerId(1), true);
        r.add_peer(PeerId(2), true);
        assert!(r.on_inv(PeerId(2), &[t(1)], false, |_| false, 0).is_some());
        r.on_tx(PeerId(2), &t(1), 0);
        r.on_accepted(t(1), 1000, Some(PeerId(2)));
        let out = r.flush();
        assert_eq!(out.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![PeerId(1)]);
    }

    #[test]
    fn fee_filter_and_relay_flag_are_respected() {
        let mut r = TxRelay::new();
        r.add_peer(PeerId(1), true);
        r.add_peer(PeerId(2), false);
        r.set_fee_filter(PeerId(1), 2000);
        r.on_accepted(t(1), 1999, None);
        assert!(r.flush().is_empty());
        r.on_accepted(t(2), 2000, None);
        assert_eq!(r.flush(), vec![(PeerId(1), Message::Inv(vec![InvItem::tx(t(2))]))]);
    }

    #[test]
    fn a_big_batch_is_split_to_fit_a_message() {
        let mut r = TxRelay::new();
        r.add_peer(PeerId(1), true);
        for i in 0..(MAX_INV_PER_MESSAGE as u32 + 5) {
            r.on_accepted(t(i), 1000, None);
        }
        let out = r.flush();
        assert_eq!(out.len(), 2);
        assert_eq!(items(&out[1].1).len(), 5);
    }

    #[test]
    fn requests_go_to_one_announcer_and_move_on_timeout_or_notfound() {
        let mut r = TxRelay::new();
        for p in 1..=3 {
            r.add_peer(PeerId(p), true);
        }
        let ask = r.on_inv(PeerId(1), &[t(1), t(2)], false, |x| *x == t(2), 0).expect("getdata");
        assert_eq!(items(&ask), vec![t(1)], "what we have is not asked for");
        assert!(r.on_inv(PeerId(2), &[t(1)], false, |_| false, 10).is_none(), "already asked of peer 1");
        assert!(r.on_inv(PeerId(3), &[t(1)], false, |_| false, 10).is_none());
        assert!(r.expire(TX_REQUEST_TIMEOUT_MS - 1).is_empty());
        let next = r.expire(TX_REQUEST_TIMEOUT_MS);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].0, items(&next[0].1)), (PeerId(2), vec![t(1)]));
        let last = r.on_notfound(PeerId(2), &[t(1)], TX_REQUEST_TIMEOUT_MS + 1);
        assert_eq!(last[0].0, PeerId(3));
        r.on_tx(PeerId(3), &t(1), TX_REQUEST_TIMEOUT_MS + 2);
        assert_eq!(r.in_flight(), 0);
    }

    fn peers(n: u64) -> TxRelay {
        let mut r = TxRelay::new();
        for p in 1..=n {
            r.add_peer(PeerId(p), true);
        }
        r
    }

    /// Peer 1 announces first and never delivers; peer 2 announces the same transactions a moment
    /// later. The first few cost the full timeout; after that peer 1 is a suspect and peer 2 is
    /// asked as soon as it announces.
    #[test]
    fn a_withholder_is_passed_over_after_a_few_withheld_announcements() {
        // Peer 1 withholds; peers 2.. are honest and new (each answers once, so none is proven
        // when it announces: the withholder's strikes alone must make the difference).
        let mut r = peers(2 + u64::from(WITHHELD_SUSPECT) + 1);
        let mut now = 0;
        for i in 0..WITHHELD_SUSPECT {
            let honest = PeerId(2 + u64::from(i));
            assert!(r.on_inv(PeerId(1), &[t(i)], false, |_| false, now).is_some());
            assert!(r.on_inv(honest, &[t(i)], false, |_| false, now + 5).is_none(), "waits for peer 1");
            now += TX_REQUEST_TIMEOUT_MS;
            let next = r.expire(now);
            assert_eq!(next[0].0, honest);
            r.on_tx(honest, &t(i), now + 5);
        }
        assert!(r.is_suspect(PeerId(1)));
        assert_eq!(r.take_events().iter().filter(|(p, e)| *p == PeerId(1) && *e == Event::Withheld).count(), 3);
        // Now: asked of peer 1 (it may deliver), then of a new peer the moment it announces.
        let fresh = PeerId(2 + u64::from(WITHHELD_SUSPECT));
        assert!(r.on_inv(PeerId(1), &[t(100)], false, |_| false, now).is_some());
        let second = r.on_inv(fresh, &[t(100)], false, |_| false, now + 5).expect("asked at once");
        assert_eq!(items(&second), vec![t(100)]);
        r.on_tx(fresh, &t(100), now + 10);
        assert_eq!(r.in_flight(), 0);
        // Alone, a suspect still gets asked, with the short timeout.
        r.on_inv(PeerId(1), &[t(101)], false, |_| false, now);
        assert!(r.expire(now + SUSPECT_TIMEOUT_MS - 1).is_empty());
        assert_eq!(r.in_flight(), 1);
        // Prompt deliveries clear the record.
        for i in 200..210 {
            r.on_inv(PeerId(1), &[t(i)], false, |_| false, now);
            r.on_tx(PeerId(1), &t(i), now + 10);
        }
        assert!(!r.is_suspect(PeerId(1)));
    }

    #[test]
    fn late_deliveries_count_as_withheld_and_low_reputation_is_asked_last() {
        let mut r = peers(3);
        for i in 0..WITHHELD_SUSPECT {
            r.on_inv(PeerId(1), &[t(i)], false, |_| false, 0);
            r.on_tx(PeerId(1), &t(i), SLOW_DELIVERY.as_millis() as u64);
        }
        assert!(r.is_suspect(PeerId(1)), "a laggard is a suspect too");
        // A request it already holds, with another announcer waiting, moves on after the
        // suspect's time rather than the full timeout.
        let mut q = peers(2);
        q.on_inv(PeerId(1), &[t(7)], false, |_| false, 0);
        q.on_inv(PeerId(2), &[t(7)], false, |_| false, 1);
        for i in 0..WITHHELD_SUSPECT {
            q.on_inv(PeerId(1), &[t(20 + i)], false, |_| false, 0);
            q.on_tx(PeerId(1), &t(20 + i), SLOW_DELIVERY.as_millis() as u64);
        }
        let next = q.expire(SLOW_DELIVERY.as_millis() as u64);
        assert_eq!((next[0].0, items(&next[0].1)), (PeerId(2), vec![t(7)]));
        r.set_rank(PeerId(2), -50.0);
        r.on_inv(PeerId(3), &[t(9)], false, |_| false, 0);
        r.on_inv(PeerId(2), &[t(9)], false, |_| false, 1);
        r.on_inv(PeerId(1), &[t(9)], false, |_| false, 2);
        // Peer 3 does not deliver: peer 1 (suspect for lateness, rank 0) before peer 2 (rank -50).
        let next = r.expire(TX_REQUEST_TIMEOUT_MS);
        assert_eq!(next[0].0, PeerId(1));
    }

    #[test]
    fn a_request_to_an_outranked_peer_moves_on_after_the_suspects_time() {
        let mut r = peers(3);
        r.set_rank(PeerId(2), 40.0);
        r.set_rank(PeerId(3), 15.0);
        r.on_inv(PeerId(1), &[t(1), t(2)], false, |_| false, 0);
        r.on_inv(PeerId(2), &[t(1)], false, |_| false, 1);
        r.on_inv(PeerId(3), &[t(2)], false, |_| false, 1);
        let next = r.expire(SUSPECT_TIMEOUT_MS);
        assert_eq!(next.len(), 1, "only where the next in line outranks the holder by {OUTRANKED_BY}");
        assert_eq!((next[0].0, items(&next[0].1)), (PeerId(2), vec![t(1)]));
        assert!(!r.is_suspect(PeerId(1)), "one miss is not a pattern");
    }

    #[test]
    fn a_peer_that_never_delivered_is_not_waited_for_when_a_proven_one_offers() {
        let mut r = peers(3);
        r.on_inv(PeerId(2), &[t(1)], false, |_| false, 0);
        r.on_tx(PeerId(2), &t(1), 10); // peer 2 answers promptly: proven
        assert!(r.on_inv(PeerId(1), &[t(2)], false, |_| false, 20).is_some(), "first announcer asked");
        let now_asked = r.on_inv(PeerId(2), &[t(2)], false, |_| false, 25).expect("the proven peer at once");
        assert_eq!(items(&now_asked), vec![t(2)]);
        // Two unproven peers: first come, first asked, as before.
        assert!(r.on_inv(PeerId(1), &[t(3)], false, |_| false, 30).is_some());
        assert!(r.on_inv(PeerId(3), &[t(3)], false, |_| false, 31).is_none());
    }

    #[test]
    fn with_reputation_off_announcers_are_asked_in_order_with_the_full_timeout() {
        let mut r = peers(2);
        r.set_reputation(false);
        for i in 0..10 {
            r.on_inv(PeerId(1), &[t(i)], false, |_| false, 0);
            r.expire(TX_REQUEST_TIMEOUT_MS);
        }
        assert!(!r.is_suspect(PeerId(1)));
        r.on_inv(PeerId(1), &[t(50)], false, |_| false, 0);
        assert!(r.on_inv(PeerId(2), &[t(50)], false, |_| false, 1).is_none());
        assert!(r.expire(TX_REQUEST_TIMEOUT_MS - 1).is_empty());
    }

    #[test]
    fn nothing_is_requested_during_initial_block_download() {
        let mut r = TxRelay::new();
        r.add_peer(PeerId(1), true);
        assert!(r.on_inv(PeerId(1), &[t(1)], true, |_| false, 0).is_none());
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn a_leaving_peer_hands_its_requests_to_the_next_announcer() {
        let mut r = TxRelay::new();
        r.add_peer(PeerId(1), true);
        r.add_peer(PeerId(2), true);
        r.on_inv(PeerId(1), &[t(1)], false, |_| false, 0);
        r.on_inv(PeerId(2), &[t(1)], false, |_| false, 0);
        let out = r.remove_peer(PeerId(1), 5);
        assert_eq!((out[0].0, items(&out[0].1)), (PeerId(2), vec![t(1)]));
    }

    #[test]
    fn a_peer_is_not_told_twice_and_its_filter_stays_small() {
        let mut r = TxRelay::new();
        r.add_peer(PeerId(1), true);
        r.on_accepted(t(1), 1000, None);
        r.on_accepted(t(1), 1000, None);
        let out = r.flush();
        assert_eq!(out.len(), 1);
        assert_eq!(items(&out[0].1), vec![t(1)]);
        assert!(r.peers[&PeerId(1)].known.memory() < 1_000_000);
    }
}
