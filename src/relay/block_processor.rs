//! Connects blocks on one dedicated thread, in the order they arrive, and keeps the mempool in step.
//!
//! Blocks come from peers (through the relay task), from `submitblock` and from our own miner; all
//! go through this one queue, so the chain state sees one change at a time and the relay task never
//! waits for a block's scripts. After each job the outcome goes back to the relay as a
//! [`ChainEvent`] (to announce new blocks, schedule downloads and blame the sender of an invalid
//! block) and, for RPC callers, on a oneshot.
//!
//! The mempool is updated inside [`MempoolSync::exclusive`], so a transaction validated against the
//! UTXO set before a block can never be admitted after the block's transactions were removed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::chain::{ChainError, ChainState, ChainUpdate};
use crate::mempool::MempoolSync;
use crate::peer::PeerId;
use crate::script::SigCache;
use crate::validation::{ScriptVerifier, TxContext};
use crate::wire::{Block, BlockHash};

/// Blocks queued for connection before senders wait (peers) or get "busy" (RPC). Sixteen in flight
/// from each of a few peers fit.
const QUEUE: usize = 256;

/// Where a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSource {
    Peer(PeerId),
    /// `submitblock`, our miner, `invalidateblock`/`reconsiderblock`, start-up.
    Local,
}

/// Reported to the relay after every job.
#[derive(Debug)]
pub struct ChainEvent {
    /// The block submitted (`None` for invalidate/reconsider/activate).
    pub hash: Option<BlockHash>,
    pub source: BlockSource,
    pub result: Result<ChainUpdate, ChainError>,
}

/// Why a submitted block or chain command failed, for RPC callers.
#[derive(Debug, Clone)]
pub struct Failure {
    /// SV Node's reject reason when the block itself is at fault (`submitblock` returns it).
    pub reject_reason: Option<&'static str>,
    pub message: String,
}

pub type Outcome = Result<ChainUpdate, Failure>;

type Reply = oneshot::Sender<Outcome>;

enum Job {
    Accept { block: Arc<Block>, source: BlockSource, reply: Option<Reply> },
    Invalidate { hash: BlockHash, reply: Reply },
    Reconsider { hash: BlockHash, reply: Reply },
    Activate,
}

/// A handle to the block thread; cheap to clone.
#[derive(Clone)]
pub struct BlockProcessor {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for BlockProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockProcessor")
    }
}

/// Why a job was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the block queue is full")]
    Busy,
    #[error("the node is shutting down")]
    Closed,
}

impl BlockProcessor {
    /// Starts the thread. It ends when every handle is dropped.
    pub fn start(
        chain: Arc<ChainState>,
        sig_cache: Arc<SigCache>,
        mempool: Option<Arc<dyn MempoolSync>>,
        events: mpsc::Sender<ChainEvent>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> BlockProcessor {
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        metrics.coins_cache.publish(&chain.coins_cache_stats());
        std::thread::Builder::new()
            .name("blocks".into())
            .spawn(move || {
                let verifier = ScriptVerifier { ctx: TxContext::new(chain.params()).with_sig_cache(&sig_cache) };
                while let Some(job) = rx.blocking_recv() {
                    let started = std::time::Instant::now();
                    let (hash, source, result, reply) = match job {
                        Job::Accept { block, source, reply } => {
                            let hash = block.hash();
                            let r = run(&mempool, || chain.accept_block(block.clone(), &verifier));
                            (Some(hash), source, r, reply)
                        }
                        Job::Invalidate { hash, reply } => {
                            let r = run(&mempool, || chain.invalidate_block(&hash, &verifier));
                            (Some(hash), BlockSource::Local, r, Some(reply))
                        }
                        Job::Reconsider { hash, reply } => {
                            let r = run(&mempool, || chain.reconsider_block(&hash, &verifier));
                            (Some(hash), BlockSource::Local, r, Some(reply))
                        }
                        Job::Activate => (None, BlockSource::Local, run(&mempool, || chain.activate(&verifier)), None),
                    };
                    if let Ok(update) = &result {
                        if !update.connected.is_empty() {
                            metrics.chain_block_validation_seconds.observe(started.elapsed().as_secs_f64());
                        }
                        let (height, _) = chain.tip();
                        metrics.chain_block_height.set(i64::from(height));
                        metrics.chain_best_block_time.set(i64::from(chain.tip_header().time));
                    }
                    metrics.coins_cache.publish(&chain.coins_cache_stats());
                    if let Some(reply) = reply {
                        let outcome = match &result {
                            Ok(u) => Ok(u.clone()),
                            Err(e) => Err(Failure { reject_reason: e.reject_reason(), message: e.to_string() }),
                        };
                        let _ = reply.send(outcome);
                    }
                    if let Err(e) = &result {
                        debug!(?hash, error = %e, "block not accepted");
                    }
                    if events.blocking_send(ChainEvent { hash, source, result }).is_err() {
                        break;
                    }
                }
                if let Err(e) = chain.flush() {
                    warn!(error = %e, "cannot flush the chain database");
                }
            })
            .expect("the block thread starts");
        BlockProcessor { jobs }
    }

    /// Queues a block from a peer without waiting; `Busy` if the queue is full.
    pub fn submit_from_peer(&self, block: Arc<Block>, peer: PeerId) -> Result<(), SubmitError> {
        self.jobs.try_send(Job::Accept { block, source: BlockSource::Peer(peer), reply: None }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })
    }

    /// Connects stored blocks beyond the tip (at start-up).
    pub async fn activate(&self) -> Result<(), SubmitError> {
        self.jobs.send(Job::Activate).await.map_err(|_| SubmitError::Closed)
    }

    /// Submits a block and waits for the outcome (`submitblock`, mining).
    pub async fn submit(&self, block: Arc<Block>) -> Result<Outcome, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Accept { block, source: BlockSource::Local, reply: Some(reply) })
            .await
            .map_err(|_| SubmitError::Closed)?;
        rx.await.map_err(|_| SubmitError::Closed)
    }

    pub async fn invalidate(&self, hash: BlockHash) -> Result<Outcome, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job::Invalidate { hash, reply }).await.map_err(|_| SubmitError::Closed)?;
        rx.await.map_err(|_| SubmitError::Closed)
    }

    pub async fn reconsider(&self, hash: BlockHash) -> Result<Outcome, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job::Reconsider { hash, reply }).await.map_err(|_| SubmitError::Closed)?;
        rx.await.map_err(|_| SubmitError::Closed)
    }
}

/// Runs one chain change with the mempool held still, then brings the mempool in step with it.
fn run(
    mempool: &Option<Arc<dyn MempoolSync>>,
    f: impl FnOnce() -> Result<ChainUpdate, ChainError>,
) -> Result<ChainUpdate, ChainError> {
    let Some(pool) = mempool else { return f() };
    let mut f = Some(f);
    let mut result = None;
    pool.exclusive(&mut || {
        let r = (f.take().expect("exclusive runs the closure once"))();
        if let Ok(update) = &r {
            for (block, height) in &update.disconnected {
                pool.block_disconnected(block, *height);
            }
            for (block, height) in &update.connected {
                pool.block_connected(block, *height);
            }
        }
        result = Some(r);
    });
    result.expect("exclusive ran the closure")
}
