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
//! - nothing is requested during initial block download (we could not validate it).
//!
//! Never announced: what a peer sent us or announced to us, what we announced to it already.
//! A peer whose transaction is refused is told so with a `reject`, as SV Node does.

use super::known::RollingFilter;
use std::collections::{HashMap, VecDeque};

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
}

#[derive(Debug)]
struct Request {
    peer: PeerId,
    deadline: u64,
    /// Other peers that announced it, to ask next.
    others: VecDeque<PeerId>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct TxRelay {
    peers: HashMap<PeerId, TxPeer>,
    requests: HashMap<TxId, Request>,
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
            },
        );
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
        let p = self.peers.get_mut(&peer)?;
        let mut ask = Vec::new();
        for txid in txids {
            p.known.insert(*txid);
            if ibd || have(txid) {
                continue;
            }
            match self.requests.get_mut(txid) {
                Some(r) if r.peer != peer && !r.others.contains(&peer) => r.others.push_back(peer),
                Some(_) => {}
                None if p.in_flight < MAX_TX_IN_FLIGHT_PER_PEER => {
                    p.in_flight += 1;
                    self.requests.insert(
                        *txid,
                        Request { peer, deadline: now + TX_REQUEST_TIMEOUT_MS, others: VecDeque::new() },
                    );
                    ask.push(InvItem::tx(*txid));
                }
                None => {}
            }
        }
        (!ask.is_empty()).then(|| Message::GetData(ask))
    }

    /// We need these parents of an orphan from `peer`.
    pub fn request_parents(&mut self, peer: PeerId, parents: &[TxId], now: u64) -> Option<Message> {
        self.on_inv(peer, parents, false, |_| false, now)
    }

    /// A transaction arrived from `peer` (requested or not).
    pub fn on_tx(&mut self, peer: PeerId, txid: &TxId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.known.insert(*txid);
        }
        if let Some(r) = self.requests.remove(txid) {
            if let Some(p) = self.peers.get_mut(&r.peer) {
                p.in_flight = p.in_flight.saturating_sub(1);
            }
        }
    }

    /// The peer does not have these: ask the next announcer.
    pub fn on_notfound(&mut self, peer: PeerId, txids: &[TxId], now: u64) -> Vec<(PeerId, Message)> {
        let mine: Vec<TxId> =
            txids.iter().filter(|t| self.requests.get(t).is_some_and(|r| r.peer == peer)).copied().collect();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight = p.in_flight.saturating_sub(mine.len());
        }
        self.reassign(&mine, now)
    }

    /// Requests past their deadline go to the next announcer.
    pub fn expire(&mut self, now: u64) -> Vec<(PeerId, Message)> {
        let late: Vec<TxId> = self.requests.iter().filter(|(_, r)| r.deadline <= now).map(|(t, _)| *t).collect();
        for t in &late {
            let peer = self.requests[t].peer;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.in_flight = p.in_flight.saturating_sub(1);
            }
        }
        self.reassign(&late, now)
    }

    fn reassign(&mut self, txids: &[TxId], now: u64) -> Vec<(PeerId, Message)> {
        let mut batches: HashMap<PeerId, Vec<InvItem>> = HashMap::new();
        for txid in txids {
            let Some(mut r) = self.requests.remove(txid) else { continue };
            while let Some(next) = r.others.pop_front() {
                let Some(p) = self.peers.get_mut(&next) else { continue };
                if p.in_flight >= MAX_TX_IN_FLIGHT_PER_PEER {
                    continue;
                }
                p.in_flight += 1;
                batches.entry(next).or_default().push(InvItem::tx(*txid));
                self.requests
                    .insert(*txid, Request { peer: next, deadline: now + TX_REQUEST_TIMEOUT_MS, others: r.others });
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
        r.on_tx(PeerId(2), &t(1));
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
        r.on_tx(PeerId(3), &t(1));
        assert_eq!(r.in_flight(), 0);
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
