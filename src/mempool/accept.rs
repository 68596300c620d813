//! Transaction acceptance on every core: the path from a received or submitted transaction into the
//! mempool.
//!
//! One worker thread per core takes jobs from one bounded queue, validates the transaction against
//! the UTXO set with the mempool layered on top ([`MempoolView`]), and inserts it into the concurrent
//! [`Mempool`] itself — no single task serialises admission. Each outcome goes to the relay task on
//! a bounded channel (to announce, to blame, or to ask for missing parents); RPC callers also get it
//! on a oneshot.
//!
//! Orphans (missing inputs) wait in the [`OrphanPool`]; when a transaction is accepted its waiting
//! children are validated again right away by the same worker.
//!
//! Consistency with blocks: workers hold the `gate` shared from validation to insertion; the block
//! thread takes it exclusively ([`MempoolSync::exclusive`]) to change the UTXO set and remove mined
//! and conflicting transactions, so no transaction validated against the old UTXO set is inserted
//! after its conflicts were removed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use super::orphans::{OrphanPool, OrphanPoolConfig, PeerId as OrphanPeer};
use super::pool::{InsertError, Mempool};
use super::view::MempoolView;
use crate::chain::ChainState;
use crate::metrics::{tx_reject_label, Metrics};
use crate::peer::PeerId;
use crate::script::SigCache;
use crate::validation::{validate_transaction, CoinView, RejectKind, TxContext, TxReject};
use crate::wire::{Block, Transaction, TxId};

/// SV Node's `-txnvalidationqueuesmaxmemory` default (MB): the memory transactions waiting for
/// validation may take. A burst of millions of transactions from one peer is queued, not dropped;
/// beyond it a transaction is dropped (the sender may announce it again) instead of growing memory.
pub const DEFAULT_MAX_QUEUE_MB: u64 = 2048;

/// Restored transactions queued at once before waiting for their outcomes.
const RESTORE_IN_FLIGHT: usize = 100_000;

/// Jobs a worker takes from the queue at once: under load, one wake-up and one lock per batch
/// instead of per transaction; when idle, a batch is whatever is queued (often one).
const WORKER_BATCH: usize = 16;

/// Outcomes waiting for the relay task: more than the job queue, so workers never wait for the
/// relay while it waits for them.
pub const OUTCOME_QUEUE: usize = 200_000;

/// Recently rejected txids remembered so a flood of copies costs one lookup each (SV Node keeps a
/// rolling filter of 120,000). As SV Node's, it holds every refusal of a peer's transaction (policy
/// ones too) and is emptied when the chain tip changes, since a block can make those valid.
const RECENT_REJECTS: usize = 120_000;

/// Where a transaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxSource {
    Peer(PeerId),
    Rpc,
    /// Loaded from `mempool.dat` at start-up.
    Restored,
}

impl TxSource {
    fn label(self) -> &'static str {
        match self {
            TxSource::Peer(_) => "p2p",
            TxSource::Rpc => "rpc",
            TxSource::Restored => "restored",
        }
    }
}

/// What happened to one transaction.
#[derive(Debug, Clone)]
pub enum TxOutcome {
    Accepted {
        tx: Arc<Transaction>,
        fee: i64,
        source: TxSource,
        received: Instant,
    },
    Rejected {
        txid: TxId,
        source: TxSource,
        reject: TxReject,
    },
    /// Missing inputs: kept as an orphan; `missing` are the parents to ask the source for.
    Orphan {
        txid: TxId,
        source: TxSource,
        missing: Vec<TxId>,
    },
    /// Already in the mempool or waiting as an orphan.
    Known {
        txid: TxId,
        source: TxSource,
    },
}

struct Job {
    tx: Arc<Transaction>,
    source: TxSource,
    received: Instant,
    /// The entry's time if not now (a restored transaction keeps its first arrival).
    time: Option<u64>,
    reply: Option<oneshot::Sender<TxOutcome>>,
    /// `sendrawtransaction`'s fee ceiling (`-maxtxfee`, lifted by `allowhighfees`).
    max_fee: Option<i64>,
}

impl Job {
    /// A job arriving now, with nobody waiting for its outcome.
    fn new(tx: Arc<Transaction>, source: TxSource) -> Job {
        Job { tx, source, received: Instant::now(), time: None, reply: None, max_fee: None }
    }

    /// Memory the queued job holds: the raw bytes and the decoded form.
    fn cost(&self) -> usize {
        use std::mem::size_of;
        self.tx.size()
            + size_of::<Job>()
            + size_of::<Transaction>()
            + self.tx.inputs.len() * size_of::<crate::wire::TxIn>()
            + self.tx.outputs.len() * size_of::<crate::wire::TxOut>()
    }
}

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Validation threads; 0 is one per core.
    pub workers: usize,
    /// Bytes of queued transactions (see `Job::cost`) beyond which new ones are refused.
    pub max_queue_bytes: usize,
    /// The orphan pool's limits (`-maxorphantxsize` sets its bytes).
    pub orphans: OrphanPoolConfig,
    /// Script time budget per transaction (`-maxnonstdtxvalidationduration`).
    pub max_validation_time: std::time::Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            max_queue_bytes: (DEFAULT_MAX_QUEUE_MB as usize) << 20,
            orphans: OrphanPoolConfig::default(),
            max_validation_time: crate::validation::tx::MAX_TX_VALIDATION_TIME,
        }
    }
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the validation queue is full")]
    Busy,
    #[error("the node is shutting down")]
    Closed,
}

/// The shared acceptance state; workers and the block thread hold it through an `Arc`.
pub struct TxPipeline {
    chain: Arc<ChainState>,
    mempool: Arc<Mempool>,
    orphans: OrphanPool,
    sig_cache: Arc<SigCache>,
    gate: RwLock<()>,
    jobs: Sender<Job>,
    queued_bytes: AtomicUsize,
    max_queue_bytes: usize,
    max_validation_time: std::time::Duration,
    outcomes: mpsc::Sender<TxOutcome>,
    recent_rejects: Mutex<RecentRejects>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TxPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TxPipeline")
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TxPipeline {
    /// Starts the validation threads. Outcomes go to `outcomes`.
    pub fn start(
        chain: Arc<ChainState>,
        mempool: Arc<Mempool>,
        sig_cache: Arc<SigCache>,
        outcomes: mpsc::Sender<TxOutcome>,
        metrics: Arc<Metrics>,
        config: PipelineConfig,
    ) -> Arc<TxPipeline> {
        let (jobs, rx) = channel();
        let pipeline = Arc::new(TxPipeline {
            chain,
            mempool,
            orphans: OrphanPool::new(config.orphans.clone()),
            sig_cache,
            gate: RwLock::new(()),
            jobs,
            queued_bytes: AtomicUsize::new(0),
            max_queue_bytes: config.max_queue_bytes,
            max_validation_time: config.max_validation_time,
            outcomes,
            recent_rejects: Mutex::new(Default::default()),
            metrics,
        });
        metrics_max(&pipeline);
        let rx = Arc::new(Mutex::new(rx));
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for i in 0..workers {
            let (p, rx) = (Arc::downgrade(&pipeline), rx.clone());
            std::thread::Builder::new()
                .name(format!("validate-{i}"))
                .spawn(move || worker(p, rx))
                .expect("a validation thread starts");
        }
        pipeline
    }

    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.mempool
    }

    pub fn orphans(&self) -> &OrphanPool {
        &self.orphans
    }

    /// Queues a job unless the queue holds `max_queue_bytes` already.
    fn enqueue(&self, job: Job) -> Result<(), SubmitError> {
        let cost = job.cost();
        let before = self.queued_bytes.fetch_add(cost, Ordering::AcqRel);
        if before + cost > self.max_queue_bytes {
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            self.metrics.tx_rejected.with_label_values(&["queue_full"]).inc();
            return Err(SubmitError::Busy);
        }
        self.jobs.send(job).map_err(|_| {
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            SubmitError::Closed
        })
    }

    /// Bytes of transactions waiting for a worker.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Queues a transaction from a peer without waiting; `Busy` when the queue is full (the
    /// transaction is dropped; the peer may announce it again).
    pub fn submit_from_peer(&self, tx: Arc<Transaction>, peer: PeerId) -> Result<(), SubmitError> {
        self.enqueue(Job::new(tx, TxSource::Peer(peer)))
    }

    /// Validates the transactions saved in `mempool.dat` again, parents before children (one
    /// ancestor count at a time, each level on every core); returns how many were accepted.
    pub async fn restore(&self, saved: Vec<super::persist::Saved>) -> usize {
        let mut accepted = 0;
        let mut pending: Vec<oneshot::Receiver<TxOutcome>> = Vec::new();
        let mut saved = saved.into_iter().peekable();
        let mut level = None;
        while let Some(s) = saved.peek() {
            if level != Some(s.ancestors) || pending.len() >= RESTORE_IN_FLIGHT {
                // A new level waits for the previous one: its parents must be in the pool first.
                accepted += Self::outcomes_accepted(&mut pending).await;
                level = Some(s.ancestors);
            }
            let (reply, rx) = oneshot::channel();
            let job =
                Job { time: Some(s.time), reply: Some(reply), ..Job::new(Arc::new(s.tx.clone()), TxSource::Restored) };
            match self.enqueue(job) {
                Ok(()) => {
                    pending.push(rx);
                    saved.next();
                }
                // Full (peers are busy too): wait for ours, then try again; if none of ours is
                // queued, give the workers a moment.
                Err(SubmitError::Busy) if !pending.is_empty() => {
                    accepted += Self::outcomes_accepted(&mut pending).await;
                }
                Err(SubmitError::Busy) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                Err(SubmitError::Closed) => break,
            }
        }
        accepted + Self::outcomes_accepted(&mut pending).await
    }

    async fn outcomes_accepted(pending: &mut Vec<oneshot::Receiver<TxOutcome>>) -> usize {
        let mut accepted = 0;
        for rx in pending.drain(..) {
            if matches!(rx.await, Ok(TxOutcome::Accepted { .. })) {
                accepted += 1;
            }
        }
        accepted
    }

    /// Submits a transaction from RPC and waits for its outcome; a fee above `max_fee` is refused
    /// as `absurdly-high-fee`.
    pub async fn submit_rpc(&self, tx: Arc<Transaction>, max_fee: Option<i64>) -> Result<TxOutcome, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Job { reply: Some(reply), max_fee, ..Job::new(tx, TxSource::Rpc) })?;
        rx.await.map_err(|_| SubmitError::Closed)
    }

    /// Runs `f` while no chain change is in progress, so a reader that has seen a block as the tip
    /// never sees that block's transactions still in the mempool (SV Node reads both under
    /// `cs_main`). It waits for a block being connected; call it from a blocking thread.
    pub fn settled<T>(&self, f: impl FnOnce(&Mempool) -> T) -> T {
        let _gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        f(&self.mempool)
    }

    /// Whether the txid is in the mempool or the orphan pool.
    pub fn knows(&self, txid: &TxId) -> bool {
        self.mempool.contains(txid) || self.orphans.contains(txid)
    }

    /// Whether an announcement of the txid is not worth a `getdata`: we have it, or refused it
    /// since the last block (SV Node's `AlreadyHave`).
    pub fn already_have(&self, txid: &TxId) -> bool {
        self.knows(txid) || self.recently_rejected(txid)
    }

    /// Drops the orphans a disconnected peer sent.
    pub fn peer_gone(&self, peer: PeerId) {
        let dropped = self.orphans.remove_peer(OrphanPeer(peer.0));
        self.metrics.orphans_evicted.with_label_values(&["peer_disconnected"]).inc_by(dropped as u64);
        self.update_gauges();
    }

    /// Expires old mempool entries and orphans, and trims the pool to its size limit.
    pub fn housekeeping(&self) {
        let now = unix_now();
        let expired = self.mempool.expire(now).len();
        let trimmed = self.mempool.trim_to_size(now).len();
        self.metrics.mempool_removed.with_label_values(&["expiry"]).inc_by(expired as u64);
        self.metrics.mempool_removed.with_label_values(&["size_limit"]).inc_by(trimmed as u64);
        let expired = self.orphans.expire(now);
        self.metrics.orphans_evicted.with_label_values(&["expired"]).inc_by(expired as u64);
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let m = &self.metrics;
        m.mempool_transactions.set(self.mempool.len() as i64);
        m.mempool_size_bytes.set(self.mempool.bytes() as i64);
        m.mempool_usage_bytes.set(self.mempool.usage() as i64);
        m.orphan_transactions.set(self.orphans.len() as i64);
        m.orphan_size_bytes.set(self.orphans.bytes() as i64);
    }

    fn recently_rejected(&self, txid: &TxId) -> bool {
        self.recent_rejects.lock().unwrap_or_else(PoisonError::into_inner).map.contains_key(txid)
    }

    /// Refused for a reason no later block can cure, so its children are invalid too.
    fn rejected_for_good(&self, txid: &TxId) -> bool {
        self.recent_rejects.lock().unwrap_or_else(PoisonError::into_inner).map.get(txid) == Some(&false)
    }

    /// A new tip: what was refused may be valid now.
    /// At an era boundary every pool transaction was validated for the wrong era: SV Node drops
    /// them all rather than re-validate (a relayed transaction that is still valid comes back
    /// from its peers or its sender).
    fn clear_at_era_crossing(&self, height: u32) {
        if crosses_era(self.chain.params(), height) {
            let gone = self.mempool.clear(unix_now());
            info!(height, removed = gone.len(), "mempool cleared: the next block is in another era");
            self.metrics.mempool_removed.with_label_values(&["era"]).inc_by(gone.len() as u64);
        }
    }

    fn forget_rejects(&self) {
        let mut r = self.recent_rejects.lock().unwrap_or_else(PoisonError::into_inner);
        r.map.clear();
        r.order.clear();
    }

    /// Remembers a refusal until the tip changes; `curable` when a later block can make the
    /// transaction valid (see [`cured_by_a_later_block`]).
    fn remember_reject(&self, txid: TxId, curable: bool) {
        let mut r = self.recent_rejects.lock().unwrap_or_else(PoisonError::into_inner);
        if r.map.insert(txid, curable).is_none() {
            r.order.push_back(txid);
            if r.order.len() > RECENT_REJECTS {
                if let Some(old) = r.order.pop_front() {
                    r.map.remove(&old);
                }
            }
        }
    }

    /// Validates one transaction and, if it is accepted, the orphans waiting for it; the outcomes
    /// for the relay are added to `out`.
    fn process(&self, job: Job, out: &mut Vec<TxOutcome>) {
        let mut stack = vec![job];
        while let Some(job) = stack.pop() {
            let outcome = self.process_one(&job);
            if let TxOutcome::Accepted { tx, .. } = &outcome {
                for (child, peer) in self.orphans.take_children_of(&tx.txid()) {
                    let source = if peer.0 == u64::MAX { TxSource::Rpc } else { TxSource::Peer(PeerId(peer.0)) };
                    stack.push(Job::new(child, source));
                }
            }
            if let Some(reply) = job.reply {
                let _ = reply.send(outcome.clone());
            }
            out.push(outcome);
        }
    }

    fn process_one(&self, job: &Job) -> TxOutcome {
        let tx = &job.tx;
        let txid = tx.txid();
        let source = job.source;
        if self.knows(&txid) {
            return TxOutcome::Known { txid, source };
        }
        if self.recently_rejected(&txid) && matches!(source, TxSource::Peer(_)) {
            return TxOutcome::Known { txid, source };
        }
        let started = Instant::now();
        let _gate = self.gate.read().unwrap_or_else(PoisonError::into_inner);
        let view = MempoolView { base: self.chain.utxo(), pool: &self.mempool };
        let ctx = TxContext {
            max_fee: job.max_fee,
            min_fee_rate: self.mempool.min_fee_rate(unix_now()),
            max_validation_time: self.max_validation_time,
            ..TxContext::new(self.chain.params()).with_sig_cache(&self.sig_cache)
        };
        let result = validate_transaction(tx, &view, &ctx);
        let outcome = match result {
            Ok(v) => match self.mempool.insert(tx.clone(), v.fee, job.time.unwrap_or_else(unix_now)) {
                Ok(_) => TxOutcome::Accepted { tx: tx.clone(), fee: v.fee, source, received: job.received },
                Err(InsertError::AlreadyKnown) => TxOutcome::Known { txid, source },
                Err(e) => TxOutcome::Rejected {
                    txid,
                    source,
                    reject: TxReject {
                        reason: e.reason().to_owned(),
                        code: insert_code(&e),
                        score: 0,
                        kind: RejectKind::Policy,
                    },
                },
            },
            Err(reject) if reject.kind == RejectKind::MissingInputs => {
                let missing: Vec<TxId> = tx
                    .inputs
                    .iter()
                    .filter(|i| view.coin(&i.prev_out).is_none())
                    .map(|i| i.prev_out.txid)
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                // An input spent in the chain looks missing too; if every parent is known to the
                // mempool or chain, it is a double spend, not an orphan — SV Node keeps it as an
                // orphan anyway, which expires.
                match source {
                    // A parent refused as invalid makes this one invalid forever: not kept as an
                    // orphan, remembered as rejected so it is not fetched again (SV Node).
                    // A parent refused only until a later block (an immature coinbase spend, a
                    // lock time) does not count: this one waits as an orphan for that block.
                    TxSource::Peer(_) if missing.iter().any(|parent| self.rejected_for_good(parent)) => {
                        self.remember_reject(txid, false);
                        TxOutcome::Rejected { txid, source, reject }
                    }
                    TxSource::Peer(p) => {
                        if let Some(evicted) =
                            self.orphans.add(tx.clone(), missing.clone(), OrphanPeer(p.0), unix_now())
                        {
                            self.metrics.orphans_evicted.with_label_values(&["limit"]).inc_by(evicted as u64);
                        }
                        TxOutcome::Orphan { txid, source, missing }
                    }
                    TxSource::Rpc | TxSource::Restored => TxOutcome::Rejected { txid, source, reject },
                }
            }
            Err(reject) => TxOutcome::Rejected { txid, source, reject },
        };
        drop(_gate);
        let elapsed = started.elapsed().as_secs_f64();
        let m = &self.metrics;
        match &outcome {
            TxOutcome::Accepted { received, .. } => {
                m.tx_validation_duration.with_label_values(&["accepted"]).observe(elapsed);
                m.tx_accepted.with_label_values(&[source.label()]).inc();
                m.tx_relay_latency
                    .with_label_values(&["first_seen_to_accept"])
                    .observe(received.elapsed().as_secs_f64());
                m.mempool_transactions.set(self.mempool.len() as i64);
                m.mempool_size_bytes.set(self.mempool.bytes() as i64);
            }
            TxOutcome::Rejected { reject, .. } => {
                m.tx_validation_duration.with_label_values(&["rejected"]).observe(elapsed);
                m.tx_rejected.with_label_values(&[tx_reject_label(&reject.reason)]).inc();
                // A peer's refused transaction is not validated again before the next block; an
                // RPC refusal may be RPC-only (the fee guard), so only consensus ones count there.
                let from_peer = matches!(source, TxSource::Peer(_));
                if reject.kind == RejectKind::Consensus || (from_peer && reject.kind == RejectKind::Policy) {
                    self.remember_reject(txid, cured_by_a_later_block(&reject.reason));
                }
                debug!(%txid, reason = %reject.reason, "transaction rejected");
            }
            TxOutcome::Orphan { .. } => {
                m.tx_rejected.with_label_values(&["missing_inputs"]).inc();
                m.orphan_transactions.set(self.orphans.len() as i64);
            }
            TxOutcome::Known { .. } => m.tx_rejected.with_label_values(&["already_known"]).inc(),
        }
        outcome
    }
}

/// Transactions refused until the tip changes (SV Node's recent rejects), and which of them a later
/// block can make valid.
#[derive(Default)]
struct RecentRejects {
    /// txid → curable by a later block.
    map: HashMap<TxId, bool>,
    /// Oldest first, to bound the set at [`RECENT_REJECTS`].
    order: std::collections::VecDeque<TxId>,
}

/// Refusals that depend only on the height or time of the next block: a coinbase spent before it
/// matures, a lock time not yet reached. A node a block or two behind its peers refuses such a
/// transaction that its peers accept; its children must then wait as orphans for the block that
/// cures it, not be refused with it (they would never be fetched again: every peer has already
/// announced them).
fn cured_by_a_later_block(reason: &str) -> bool {
    matches!(reason, "bad-txns-premature-spend-of-coinbase" | "non-final" | "bad-txns-nonfinal" | "non-BIP68-final")
}

fn metrics_max(p: &TxPipeline) {
    p.metrics.mempool_max_bytes.set(i64::try_from(p.mempool.config().max_bytes).unwrap_or(i64::MAX));
}

/// SV Node's reject codes for pool insertion failures (none is an offence): `REJECT_ALREADY_KNOWN`
/// and `REJECT_CONFLICT` are internal (above a byte, so `sendrawtransaction` shows
/// "258: txn-mempool-conflict" and no `reject` message is sent), the others `reject` codes.
fn insert_code(e: &InsertError) -> u16 {
    match e {
        InsertError::AlreadyKnown => 0x101,
        InsertError::Conflict { .. } => 0x102,
        InsertError::TooLongChain { .. } => 0x40,
        InsertError::FeeTooLow { .. } => 0x42,
    }
}

fn worker(pipeline: std::sync::Weak<TxPipeline>, rx: Arc<Mutex<Receiver<Job>>>) {
    let mut batch = Vec::with_capacity(WORKER_BATCH);
    let mut outcomes = Vec::new();
    loop {
        {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => batch.push(job),
                Err(_) => return,
            }
            while batch.len() < WORKER_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let Some(p) = pipeline.upgrade() else { return };
        let cost: usize = batch.iter().map(Job::cost).sum();
        p.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
        // The batch's inputs that only the disk holds are read at once, in parallel, before any
        // script runs (a no-op when the whole UTXO set is cached).
        p.chain.utxo().prefetch(batch.iter().flat_map(|job| job.tx.inputs.iter().map(|i| &i.prev_out)));
        for job in batch.drain(..) {
            p.process(job, &mut outcomes);
        }
        // Peers' outcomes must reach the relay (announcements); if it is far behind, wait.
        for outcome in outcomes.drain(..) {
            if p.outcomes.blocking_send(outcome).is_err() {
                return;
            }
        }
    }
}

/// What the mempool must do when the active chain changes (called by the block processor in
/// `crate::relay`, which owns the chain's changes).
pub trait MempoolSync: Send + Sync {
    /// Runs `f` while no transaction is being admitted to the mempool.
    fn exclusive(&self, f: &mut dyn FnMut());
    /// A block joined the active chain: its transactions and their conflicts leave the mempool.
    fn block_connected(&self, block: &Block, height: u32);
    /// The block at `height` left the active chain: its transactions may return to the mempool.
    fn block_disconnected(&self, block: &Block, height: u32);
}

/// True if the tip moving between `height` and `height - 1` changes the era of the next block
/// (Genesis or Chronicle): SV Node's `FinalizeEraCrossing`, called with the connected or the
/// disconnected block's height.
fn crosses_era(params: &crate::params::ChainParams, height: u32) -> bool {
    let a = &params.activations;
    a.era(height.saturating_add(1)) != a.era(height)
}

impl MempoolSync for TxPipeline {
    fn exclusive(&self, f: &mut dyn FnMut()) {
        let _gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        f();
    }

    fn block_connected(&self, block: &Block, height: u32) {
        self.forget_rejects();
        let (mined, conflicts) = self.mempool.remove_for_block(&block.transactions, unix_now());
        self.metrics.mempool_removed.with_label_values(&["block"]).inc_by(mined.len() as u64);
        self.metrics.mempool_removed.with_label_values(&["conflict"]).inc_by(conflicts.len() as u64);
        self.clear_at_era_crossing(height);
        for tx in &block.transactions {
            let txid = tx.txid();
            self.orphans.remove(&txid);
            // Orphans waiting for a transaction that was mined (never seen loose) can now be
            // validated: queue them, they run once the chain change is complete.
            for (child, peer) in self.orphans.take_children_of(&txid) {
                let source = if peer.0 == u64::MAX { TxSource::Rpc } else { TxSource::Peer(PeerId(peer.0)) };
                let job = Job::new(child, source);
                if self.enqueue(job).is_err() {
                    break;
                }
            }
        }
        self.update_gauges();
    }

    fn block_disconnected(&self, block: &Block, height: u32) {
        self.forget_rejects();
        // Cleared before the block's own transactions come back, so they are validated under the
        // era they will now be mined in, as SV Node re-adds its disconnect pool after the clear.
        self.clear_at_era_crossing(height);
        // The block's transactions go back through validation (queued; the caller holds the gate,
        // so they are validated after the chain change completes). Coinbases cannot return.
        for tx in block.transactions.iter().filter(|t| !t.is_coinbase()) {
            if self.enqueue(Job::new(Arc::new(tx.clone()), TxSource::Rpc)).is_err() {
                break;
            }
        }
        self.metrics.mempool_removed.with_label_values(&["reorg"]).inc_by(0);
    }
}
