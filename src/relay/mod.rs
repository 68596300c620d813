//! The protocol brain: what to do with the messages peers deliver once the handshake is done.
//!
//! One task owns the relay state (the ready peers, their senders and per-peer sync state) and
//! consumes `PeerEvent`s from every connection and `ChainEvent`s from the block thread: address
//! gossip (`addr`), headers-first sync of the header tree (`sync`), block download from several
//! peers (`blocks`), serving our blocks and headers, and announcing new blocks. Blocks are
//! validated and connected on the block thread ([`block_processor`]), never here.

mod addr;
pub mod block_processor;
mod block_relay;
pub mod blocks;
pub mod compact;
mod known;
mod reputation;
pub mod sync;
pub mod txrelay;

use crate::chain::ChainState;
use crate::mempool::accept::{TxOutcome, TxPipeline, TxSource};
use crate::peer::addrbook::AddrBook;
use crate::peer::connection::{unix_now, PeerEvent, PeerSender};
use crate::peer::reputation::Event;
use crate::peer::{Misbehavior, PeerId, PeerRegistry};
use crate::shutdown::Shutdown;
use crate::validation::RejectKind;
use crate::wire::{inv_type, BlockHash, InvItem, Message};
use block_processor::{BlockProcessor, BlockSource, ChainEvent};
use blocks::BlockDownload;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use txrelay::TxRelay;

pub use crate::chain::SharedHeaders;

/// Our services, advertised with our own address.
const OUR_SERVICES: u64 = crate::peer::protocol::OUR_SERVICES;

/// How often download deadlines are checked.
const TICK: Duration = Duration::from_millis(500);

/// Blocks asked of the chain state per scheduling round: enough for 16 in flight at many peers.
const SCHEDULE_BATCH: usize = 512;

struct Peer {
    sender: PeerSender,
    addr: addr::AddrState,
    sync: sync::PeerSync,
    /// New blocks and transactions it delivered first (for the address book when it leaves).
    useful: u64,
    /// It sent `sendheaders`: new blocks are announced to it by `headers`.
    prefers_headers: bool,
    /// The address it says it reached us at (its `version`'s `addr_recv`).
    reported: Option<std::net::IpAddr>,
    /// Our end of the connection.
    local: Option<std::net::IpAddr>,
    /// When we next tell it our address (unix seconds).
    next_self_advert: u64,
}

/// What the relay task needs from the rest of the node.
pub struct RelayContext {
    pub book: Arc<AddrBook>,
    pub listen_port: Option<u16>,
    /// Our own addresses, for advertising ourselves.
    pub local: Arc<crate::peer::local::LocalAddresses>,
    pub chain: Arc<ChainState>,
    pub blocks: BlockProcessor,
    pub registry: Arc<PeerRegistry>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub txs: Arc<TxPipeline>,
    /// `-txnpropagationfreq`.
    pub propagation: Duration,
    /// `-peerreputation`: reputation chooses whom to ask first and whom to pass over.
    pub reputation: bool,
}

/// How often the mempool is expired and trimmed.
const HOUSEKEEPING_MS: u64 = 60_000;

/// NODE_NETWORK: peers without it cannot serve the chain, so we do not sync from them.
const NODE_NETWORK: u64 = 1;

struct Relay {
    ctx: RelayContext,
    peers: HashMap<PeerId, Peer>,
    download: BlockDownload,
    /// Blocks received and queued on the block thread: not requested again meanwhile.
    processing: std::collections::HashSet<BlockHash>,
    txrelay: TxRelay,
    /// Acceptance times of transactions not yet announced (for the relay latency metric).
    accepted_since_flush: Vec<std::time::Instant>,
    last_housekeeping: u64,
    /// Compact blocks and block relay latency.
    block_relay: block_relay::BlockRelay,
    reputations: reputation::Reputations,
}

/// Consumes peer and chain events until shutdown or until every connection has gone.
pub async fn run(
    mut events: mpsc::Receiver<PeerEvent>,
    mut chain_events: mpsc::Receiver<ChainEvent>,
    mut tx_outcomes: mpsc::Receiver<TxOutcome>,
    ctx: RelayContext,
    mut shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(ctx.propagation);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut txrelay = TxRelay::new();
    txrelay.set_reputation(ctx.reputation);
    let reputations = reputation::Reputations::new(ctx.reputation);
    let mut relay = Relay {
        ctx,
        peers: HashMap::new(),
        download: BlockDownload::new(),
        processing: Default::default(),
        txrelay,
        accepted_since_flush: Vec::new(),
        last_housekeeping: millis_now(),
        block_relay: block_relay::BlockRelay::new(),
        reputations,
    };
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => relay.on_peer_event(e),
                None => return,
            },
            Some(e) = chain_events.recv() => relay.on_chain_event(e),
            Some(o) = tx_outcomes.recv() => relay.on_tx_outcome(o),
            _ = flush.tick() => relay.flush_announcements(),
            _ = tick.tick() => relay.on_tick(),
            _ = shutdown.wait() => return,
        }
    }
}

fn millis_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Relay {
    fn on_peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Connected { id, addr, local, reported, direction, services, start_height, relay, sender } => {
                self.txrelay.add_peer(id, relay);
                let now = unix_now();
                let inbound = direction == crate::peer::Direction::Inbound;
                let value = self.reputations.connected(id, addr, inbound, &self.ctx.book, now);
                self.txrelay.set_rank(id, value);
                self.download.set_rank(id, value);
                self.ctx.registry.update(id, |i| i.reputation = value);
                let ctx = &self.ctx;
                if direction == crate::peer::Direction::Outbound {
                    ctx.book.connected(addr, services, now);
                }
                let (local, reported) = (local.map(|a| a.ip()), reported.map(|a| a.ip()));
                let ours = addr::self_address(&ctx.local, ctx.listen_port.is_some(), addr.ip(), reported, local);
                for msg in addr::on_connected(direction, ours, OUR_SERVICES, now) {
                    sender.send(&msg);
                }
                if services & NODE_NETWORK != 0 {
                    let tree = ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
                    sender.send(&sync::getheaders(&tree, crate::wire::Hash256::ZERO));
                    drop(tree);
                    self.download.add_peer(id, u32::try_from(start_height).unwrap_or(0));
                }
                // Another bsv-relay node gets high-bandwidth compact blocks from the start.
                let bsv_relay =
                    ctx.registry.snapshot().iter().any(|p| p.id == id && p.subver.starts_with("/bsv-relay:"));
                sender.send(&self.block_relay.add_peer(id, bsv_relay));
                let state = addr::AddrState { addr, direction, answered_getaddr: false };
                let peer = Peer {
                    sender,
                    addr: state,
                    sync: sync::PeerSync::default(),
                    useful: 0,
                    prefers_headers: false,
                    reported,
                    local,
                    next_self_advert: addr::next_self_advertisement(now, rand::random()),
                };
                self.peers.insert(id, peer);
                self.schedule();
            }
            PeerEvent::Disconnected { id } => {
                self.block_relay.remove_peer(id);
                self.reputations.disconnected(id, &self.ctx.book, unix_now());
                if let Some(peer) = self.peers.remove(&id) {
                    // An outbound peer's address is where it listens: remember how useful it was.
                    if peer.addr.direction == crate::peer::Direction::Outbound && peer.useful > 0 {
                        self.ctx.book.record_useful(peer.addr.addr, peer.useful);
                    }
                }
                if !self.download.remove_peer(id).is_empty() {
                    self.schedule();
                }
                for (to, msg) in self.txrelay.remove_peer(id, millis_now()) {
                    self.send(to, &msg);
                }
                self.ctx.txs.peer_gone(id);
            }
            PeerEvent::Message { id, msg } => self.on_message(id, msg),
            PeerEvent::Offence { id, offence } => self.reputation_event(id, Event::Misbehaved(offence.score())),
        }
    }

    fn on_message(&mut self, id: PeerId, msg: Message) {
        if !self.peers.contains_key(&id) {
            return;
        }
        let Some(msg) = self.on_block_relay_message(id, msg) else { return };
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let ctx = &self.ctx;
        match msg {
            Message::Addr(list) => {
                addr::on_addr(&ctx.book, &peer.addr, &list, unix_now());
                ctx.metrics.addrbook_entries.set(i64::try_from(ctx.book.len()).unwrap_or(i64::MAX));
            }
            Message::GetAddr => {
                if let Some(reply) = addr::on_getaddr(&ctx.book, &mut peer.addr) {
                    peer.sender.send(&reply);
                }
            }
            Message::SendHeaders => peer.prefers_headers = true,
            Message::Headers(list) => self.on_headers(id, &list),
            Message::GetHeaders(locator) => {
                let reply = {
                    let tree = ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
                    sync::on_getheaders(&tree, &locator)
                };
                // Only what we can also serve: the part of the reply on our active chain.
                let reply = match reply {
                    Message::Headers(h) => Message::Headers(
                        h.into_iter().take_while(|h| ctx.chain.active_height_of(&h.hash()).is_some()).collect(),
                    ),
                    other => other,
                };
                peer.sender.send(&reply);
            }
            Message::GetBlocks(locator) => {
                let hashes = {
                    let tree = ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner());
                    tree.block_hashes_after(&locator.hashes, &locator.stop)
                };
                let items: Vec<InvItem> = hashes
                    .into_iter()
                    .take_while(|h| ctx.chain.active_height_of(h).is_some())
                    .map(InvItem::block)
                    .collect();
                if !items.is_empty() {
                    peer.sender.send(&Message::Inv(items));
                }
            }
            Message::Inv(items) => {
                for item in &items {
                    let kind = match item.kind {
                        inv_type::TX => "tx",
                        inv_type::BLOCK => "block",
                        _ => "other",
                    };
                    ctx.metrics.inv_items_received.with_label_values(&[kind]).inc();
                }
                let ask = sync::on_block_inv(&ctx.chain.headers().read().unwrap_or_else(|e| e.into_inner()), &items);
                if let Some(ask) = ask {
                    peer.sender.send(&ask);
                }
                let txids: Vec<crate::wire::TxId> =
                    items.iter().filter(|i| i.kind == inv_type::TX).map(|i| i.hash).collect();
                if !txids.is_empty() {
                    let ibd = ctx.chain.is_initial_block_download(unix_now());
                    let txs = &ctx.txs;
                    if let Some(getdata) = self.txrelay.on_inv(id, &txids, ibd, |t| txs.already_have(t), millis_now()) {
                        peer.sender.send(&getdata);
                    }
                }
            }
            Message::Tx(tx) => {
                let txid = tx.txid();
                self.txrelay.on_tx(id, &txid, millis_now());
                if let Err(e) = ctx.txs.submit_from_peer(Arc::new(tx), id) {
                    debug!(peer = %id, %txid, error = %e, "transaction dropped");
                }
            }
            Message::FeeFilter(rate) => self.txrelay.set_fee_filter(id, rate),
            Message::GetData(items) => {
                let mut missing = Vec::new();
                for item in &items {
                    match item.kind {
                        inv_type::BLOCK => match ctx.chain.block_bytes(&item.hash) {
                            Some(raw) => {
                                peer.sender.send_shared_payload("block", &raw);
                            }
                            None => missing.push(*item),
                        },
                        inv_type::TX => match ctx.txs.mempool().for_relay(&item.hash, unix_now()) {
                            Some(entry) => {
                                peer.sender.send_payload("tx", entry.raw());
                            }
                            None => missing.push(*item),
                        },
                        _ => missing.push(*item),
                    }
                }
                for chunk in inventory_chunks(&missing) {
                    peer.sender.send(&Message::NotFound(chunk.to_vec()));
                }
            }
            Message::NotFound(items) => {
                for item in items.iter().filter(|i| i.kind == inv_type::BLOCK) {
                    self.download.not_found(id, &item.hash);
                }
                let txids: Vec<crate::wire::TxId> =
                    items.iter().filter(|i| i.kind == inv_type::TX).map(|i| i.hash).collect();
                for (to, msg) in self.txrelay.on_notfound(id, &txids, millis_now()) {
                    self.send(to, &msg);
                }
                self.schedule();
            }
            Message::Block(block) => self.on_block(id, block),
            other => debug!(peer = %id, command = other.command(), "not handled"),
        }
    }

    fn on_headers(&mut self, id: PeerId, list: &[crate::wire::BlockHeader]) {
        if list.len() <= blocks::MAX_BLOCKS_TO_ANNOUNCE {
            for h in list {
                self.block_relay.saw_header(h.hash());
            }
        }
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let ctx = &self.ctx;
        let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
        let (actions, last_height) = {
            let mut tree = ctx.chain.headers().write().unwrap_or_else(|e| e.into_inner());
            let actions = sync::on_headers(&mut tree, &mut peer.sync, list, now);
            let last = list.last().and_then(|h| tree.get(&h.hash())).map(|e| e.height);
            ctx.metrics.chain_best_header_time.set(i64::from(tree.best_tip().header.time));
            (actions, last)
        };
        for reply in &actions.reply {
            peer.sender.send(reply);
        }
        if let Some(offence) = actions.offence {
            let _ = ctx.registry.punish(id, offence);
        }
        let result = match (&actions.offence, actions.reply.is_empty()) {
            (Some(_), _) => "invalid",
            (None, false) if list.len() < 2000 => "unconnecting",
            _ => "accepted",
        };
        ctx.metrics.chain_headers_received.with_label_values(&[result]).inc_by(list.len() as u64);
        if let Some((height, hash)) = actions.new_best {
            ctx.metrics.chain_header_height.set(i64::from(height));
            info!(height, %hash, "new best header");
            // This peer told us of a new best chain first: that is reputation.
            let (now, blocks) = (unix_now(), u64::from(actions.new_blocks));
            ctx.registry.update(id, |i| {
                i.blocks_first += blocks;
                i.last_useful = now;
            });
            peer.useful += blocks;
            self.reputation_event(id, Event::BlockFirst);
        }
        if let Some(height) = last_height {
            self.download.peer_height(id, height);
        }
        self.schedule();
    }

    fn on_block(&mut self, id: PeerId, block: crate::wire::Block) {
        let hash = block.hash();
        self.block_relay.saw_header(hash);
        self.block_relay.block_arrived(&hash);
        let solicited = self.download.received(id, &hash);
        if !solicited {
            debug!(peer = %id, %hash, "unsolicited block");
        }
        let block = Arc::new(block);
        self.forward_full_block_early(id, &block);
        match self.ctx.blocks.submit_from_peer(block, id) {
            Ok(()) => {
                self.processing.insert(hash);
            }
            Err(e) => warn!(peer = %id, %hash, error = %e, "block dropped; it will be requested again"),
        }
    }

    fn on_chain_event(&mut self, event: ChainEvent) {
        if let Some(hash) = &event.hash {
            self.processing.remove(hash);
        }
        // A block rebuilt from a compact block is not scored when invalid (SV Node, BIP152).
        let punishable = self.block_relay_chain_event(&event);
        let ctx = &self.ctx;
        let peer = match event.source {
            BlockSource::Peer(id) => Some(id),
            BlockSource::Local => None,
        };
        match &event.result {
            Ok(update) => {
                let label = if update.duplicate {
                    "duplicate"
                } else if update.invalid.iter().any(|(h, _)| Some(*h) == event.hash) {
                    "invalid"
                } else if update.connected.iter().any(|(b, _)| Some(b.hash()) == event.hash) {
                    "connected"
                } else {
                    "stored"
                };
                if peer.is_some() {
                    ctx.metrics.blocks_received.with_label_values(&[label]).inc();
                }
                let mut invalid_from = None;
                for (hash, err) in &update.invalid {
                    if let (Some(id), true) = (punishable, Some(*hash) == event.hash) {
                        if err.misbehavior().is_some() {
                            let _ = ctx.registry.punish(id, Misbehavior::InvalidBlock);
                            invalid_from = Some(id);
                        }
                    }
                }
                if let Some((height, hash)) = update.new_tip {
                    info!(height, %hash, connected = update.connected.len(), disconnected = update.disconnected.len(), "new tip");
                    if let Some(id) = peer {
                        let now = unix_now();
                        ctx.registry.update(id, |i| i.last_useful = now);
                    }
                    self.announce(&update.connected, peer);
                }
                if let Some(id) = invalid_from {
                    self.reputation_event(id, Event::Invalid);
                }
            }
            Err(e) => {
                if peer.is_some() {
                    ctx.metrics.blocks_received.with_label_values(&["invalid"]).inc();
                }
                if let Some(id) = punishable {
                    let offence = match e {
                        crate::chain::ChainError::Header(h) => sync::offence(h),
                        crate::chain::ChainError::Block(b) if b.misbehavior().is_some() => {
                            Some(Misbehavior::InvalidBlock)
                        }
                        _ => None,
                    };
                    if let Some(offence) = offence {
                        let _ = ctx.registry.punish(id, offence);
                        self.reputation_event(id, Event::Invalid);
                    }
                }
            }
        }
        self.ctx.metrics.chain_tips.set(self.ctx.chain.chain_tips().len() as i64);
        self.schedule();
    }

    /// Tells every peer but the one that sent them about newly connected blocks (not during
    /// initial block download, as SV Node).
    fn announce(&mut self, connected: &[(Arc<crate::wire::Block>, u32)], source: Option<PeerId>) {
        if connected.is_empty() || self.ctx.chain.is_initial_block_download(unix_now()) {
            return;
        }
        let headers: Vec<crate::wire::BlockHeader> = connected.iter().map(|(b, _)| b.header).collect();
        // Peers that asked for high-bandwidth compact blocks get one instead of the header.
        let compact = self.compact_announcement(connected);
        for (id, peer) in &self.peers {
            if Some(*id) == source {
                continue;
            }
            let msg = match &compact {
                Some(_) if self.forwarded_early(&headers[0].hash(), *id) => None,
                Some(c) if self.block_relay.announces_compact(*id) => Some(c.clone()),
                _ => blocks::announcement(&headers, peer.prefers_headers),
            };
            if let Some(msg) = msg {
                peer.sender.send(&msg);
            }
        }
        self.announced(connected);
    }

    fn send(&self, to: PeerId, msg: &Message) {
        if let Some(peer) = self.peers.get(&to) {
            peer.sender.send(msg);
        }
    }

    fn on_tx_outcome(&mut self, outcome: TxOutcome) {
        let ctx = &self.ctx;
        match outcome {
            TxOutcome::Accepted { tx, fee, source, .. } => {
                let txid = tx.txid();
                let peer = match source {
                    TxSource::Peer(p) => Some(p),
                    TxSource::Rpc | TxSource::Restored => None,
                };
                if let Some(id) = peer {
                    // Reputation: this peer brought us a new valid transaction first.
                    let now = unix_now();
                    ctx.registry.update(id, |i| {
                        i.txs_first += 1;
                        i.last_useful = now;
                    });
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.useful += 1;
                    }
                    self.reputation_event(id, Event::TxFirst);
                }
                let fee_rate = (fee.max(0) as u64).saturating_mul(1000) / tx.size().max(1) as u64;
                self.txrelay.on_accepted(txid, fee_rate, peer);
                self.accepted_since_flush.push(std::time::Instant::now());
            }
            TxOutcome::Rejected { txid, source: TxSource::Peer(id), reject } => {
                if let Some(msg) = txrelay::reject_message(txid, &reject) {
                    self.send(id, &msg);
                }
                // Only consensus failures are offences; policy failures never are.
                if reject.kind == RejectKind::Consensus && reject.score > 0 {
                    let offence =
                        if reject.score >= 100 { Misbehavior::InvalidTx } else { Misbehavior::InvalidTxMinor };
                    debug!(peer = %id, %txid, reason = %reject.reason, "invalid transaction");
                    let _ = ctx.registry.punish(id, offence);
                    self.reputation_event(id, Event::Invalid);
                }
            }
            TxOutcome::Orphan { source: TxSource::Peer(id), missing, .. } => {
                if let Some(getdata) = self.txrelay.request_parents(id, &missing, millis_now()) {
                    self.send(id, &getdata);
                }
            }
            _ => {}
        }
    }

    /// Sends the queued transaction announcements (every `-txnpropagationfreq`).
    fn flush_announcements(&mut self) {
        let batches = self.txrelay.flush();
        for (to, msg) in &batches {
            self.send(*to, msg);
        }
        let latency = &self.ctx.metrics.tx_relay_latency;
        for accepted in self.accepted_since_flush.drain(..) {
            latency.with_label_values(&["accept_to_announce"]).observe(accepted.elapsed().as_secs_f64());
        }
        self.ctx.metrics.tx_announcements_pending.set(self.txrelay.pending() as i64);
    }

    fn on_tick(&mut self) {
        let now = millis_now();
        for (to, msg) in self.txrelay.expire(now) {
            self.send(to, &msg);
        }
        if now >= self.last_housekeeping + HOUSEKEEPING_MS {
            self.last_housekeeping = now;
            let txs = self.ctx.txs.clone();
            tokio::task::spawn_blocking(move || txs.housekeeping());
        }
        self.advertise_self(now / 1000);
        self.expire_compact(now);
        let late = self.download.expire(millis_now());
        for (hash, peer) in &late {
            debug!(%hash, %peer, "block download timed out; asking another peer");
            self.reputation_event(*peer, Event::Stall);
        }
        self.drain_reputation_events();
        let ctx = &self.ctx;
        for (id, value) in self.reputations.publish(now, &ctx.registry, &ctx.book, &ctx.metrics) {
            self.txrelay.set_rank(id, value);
            self.download.set_rank(id, value);
        }
        self.schedule();
    }

    /// Records a reputation event. A penalty is published at once (the peer may have just become
    /// a suspect); rewards, which come with every delivered transaction, wait for the next
    /// periodic publication, so the hot path pays one counter and one score update per event.
    fn reputation_event(&mut self, id: PeerId, event: Event) {
        self.ctx.metrics.reputation_events.with_label_values(&[event.label()]).inc();
        if let Some(value) = self.reputations.record(id, event, unix_now()) {
            if event.weight().1 > 0.0 {
                self.txrelay.set_rank(id, value);
                self.download.set_rank(id, value);
                self.ctx.registry.update(id, |i| i.reputation = value);
            }
        }
    }

    /// The transaction relay's events (answered, late, withheld requests).
    fn drain_reputation_events(&mut self) {
        for (id, event) in self.txrelay.take_events() {
            self.reputation_event(id, event);
        }
    }

    /// Tells each peer whose time has come our address again (about daily, Core's
    /// `AVG_LOCAL_ADDRESS_BROADCAST_INTERVAL`), so our entry stays fresh in the network's books.
    fn advertise_self(&mut self, now: u64) {
        let ctx = &self.ctx;
        for peer in self.peers.values_mut().filter(|p| p.next_self_advert <= now) {
            peer.next_self_advert = addr::next_self_advertisement(now, rand::random());
            let ours = addr::self_address(
                &ctx.local,
                ctx.listen_port.is_some(),
                peer.addr.addr.ip(),
                peer.reported,
                peer.local,
            );
            if let Some(ours) = ours {
                peer.sender.send(&addr::advertisement(ours, OUR_SERVICES, now));
            }
        }
    }

    /// Asks peers for the blocks the chain lacks.
    fn schedule(&mut self) {
        let wanted = self.ctx.chain.blocks_to_download(SCHEDULE_BATCH, blocks::DOWNLOAD_WINDOW);
        if wanted.is_empty() {
            return;
        }
        let wanted: Vec<(BlockHash, u32)> = wanted
            .into_iter()
            .filter(|(h, _)| !self.download.is_requested(h) && !self.processing.contains(h))
            .collect();
        let mut requests = self.download.schedule(&wanted, millis_now());
        self.prefer_compact(&mut requests, &wanted);
        for (id, msg) in requests {
            if let Some(peer) = self.peers.get(&id) {
                peer.sender.send(&msg);
            }
        }
    }
}

/// Splits inventory so that each message fits any peer's payload limit. A peer's protoconf may
/// not advertise less than 1 MiB (`LEGACY_MAX_PAYLOAD`), and until it arrives that is all SV Node
/// assumes, so chunks of `max_inv_items(1 MiB)` = 29,126 items fit every peer.
fn inventory_chunks(items: &[InvItem]) -> std::slice::Chunks<'_, InvItem> {
    let per_message = crate::wire::inv::max_inv_items(crate::wire::message::LEGACY_MAX_PAYLOAD) as usize;
    items.chunks(per_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Hash256;

    #[test]
    fn inventory_is_split_to_fit_a_one_mebibyte_peer() {
        let many: Vec<InvItem> = (0..58_254u32).map(|i| InvItem::tx(Hash256::sha256d(&i.to_le_bytes()))).collect();
        let chunks: Vec<&[InvItem]> = inventory_chunks(&many).collect();
        assert_eq!(chunks.len(), 58_254usize.div_ceil(29_126));
        for c in chunks {
            let mut payload = Vec::new();
            Message::NotFound(c.to_vec()).encode_payload(&mut payload);
            assert!(payload.len() as u64 <= crate::wire::message::LEGACY_MAX_PAYLOAD);
        }
    }
}
