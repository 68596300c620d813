//! BIP152 compact blocks, version 1 (no witness), as SV Node v1.0.13 speaks them: the pure parts.
//!
//! This module owns the arithmetic of compact block relay and nothing else: short transaction ids
//! (SipHash-2-4 keyed by the header and a nonce), building a `cmpctblock` from a block, rebuilding
//! a block from a `cmpctblock` plus the transactions we already hold ([`PartialBlock`]), the
//! differential index encoding of `getblocktxn` and prefilled transactions, and answering a
//! `getblocktxn` from a stored block. It does no I/O, keeps no state between calls and knows no
//! peer: the relay decides when to send what, and scores offences with [`CompactError::remedy`].
//!
//! Bounds and invariants:
//! - nothing here panics on any input; every index a peer sends is checked before it is used;
//! - a compact block may announce at most `max_block_size / MIN_TX_LEN` transactions
//!   ([`max_block_txs`], SV Node's check), and allocations are proportional to the counts in a
//!   message already received and decoded (and so already bounded by its payload limit);
//! - absolute indexes are `u32`, as in SV Node (Core uses `u16`: its blocks are small);
//! - a block rebuilt here has had its merkle root checked by nobody: the caller must call
//!   [`check_merkle_root`] before treating it as the block the header commits to.

use crate::peer::Misbehavior;
use crate::wire::block::{merkle_root, Block, BlockHeader, HEADER_LEN};
use crate::wire::hash::{sha256, BlockHash, Hash256, TxId};
use crate::wire::msg::{BlockTxn, CompactBlock, GetBlockTxn, PrefilledTx, ShortId};
use crate::wire::tx::{Transaction, MIN_TX_LEN};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

/// The compact block version we speak: 1, the only one SV Node honours in `sendcmpct`
/// (version 2 is Core's segwit variant, keyed by wtxid).
pub const COMPACT_BLOCK_VERSION: u64 = 1;

/// Deepest block whose `getblocktxn` SV Node answers with a `blocktxn`; deeper requests get the
/// full block (`MAX_BLOCKTXN_DEPTH`, SV Node src/validation.h, as Core), so that a peer cannot make
/// us read old blocks from disk only to send a few transactions.
pub const MAX_BLOCKTXN_DEPTH: u32 = 10;

/// Short ids are SipHash-2-4 truncated to their low 48 bits (BIP152: 6 bytes on the wire).
const SHORT_ID_MASK: u64 = 0xffff_ffff_ffff;

/// The most transactions a block of at most `max_block_size` bytes can hold: SV Node refuses a
/// `cmpctblock` announcing more (`config.GetMaxBlockSize() / MIN_TRANSACTION_SIZE`, the size of an
/// empty serialized transaction, our `MIN_TX_LEN`).
pub fn max_block_txs(max_block_size: u64) -> u64 {
    max_block_size / MIN_TX_LEN as u64
}

/// Everything that can go wrong with compact block data, ours or a peer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// A block with no transactions has no coinbase to prefill.
    #[error("a block without transactions cannot be sent as a compact block")]
    EmptyBlock,
    /// Asked to prefill a transaction the block does not have.
    #[error("prefill index {index} is past the block's {count} transactions")]
    PrefillOutOfRange { index: usize, count: usize },
    /// A `cmpctblock` whose header has nBits 0 (SV Node's `IsNull`).
    #[error("compact block header is null")]
    NullHeader,
    /// A `cmpctblock` with neither short ids nor prefilled transactions.
    #[error("compact block announces no transactions")]
    NoTransactions,
    /// A `cmpctblock` announcing more transactions than a block of the size limit can hold.
    #[error("compact block announces {count} transactions, at most {max} fit in a block")]
    TooManyTransactions { count: u64, max: u64 },
    /// A prefilled transaction with neither inputs nor outputs (SV Node's `IsNull`).
    #[error("prefilled transaction {position} is null")]
    NullPrefilledTx { position: usize },
    /// A prefilled transaction's absolute index does not fit 32 bits.
    #[error("prefilled transaction {position}: index overflows 32 bits")]
    PrefilledIndexOverflow { position: usize },
    /// A prefilled transaction placed where there is no slot for it.
    #[error("prefilled transaction {position} at index {index}, past the {count} transactions announced")]
    PrefilledIndexOutOfRange { position: usize, index: u64, count: u64 },
    /// Two equal short ids in one `cmpctblock`: we cannot tell which transaction is which.
    #[error("compact block has the short id {short_id:012x} twice")]
    DuplicateShortIds { short_id: u64 },
    /// A `blocktxn` or `getblocktxn` for another block than the one at hand.
    #[error("message is for block {got}, expected {expected}")]
    WrongBlock { expected: BlockHash, got: BlockHash },
    /// A `blocktxn` whose transaction count is not the number of transactions requested.
    #[error("blocktxn has {got} transactions, {expected} were requested")]
    WrongTxnCount { expected: usize, got: usize },
    /// A differentially encoded index list whose absolute indexes do not fit 32 bits.
    #[error("index {position} of the list overflows 32 bits")]
    IndexOverflow { position: usize },
    /// Indexes to encode that are not strictly increasing.
    #[error("index {index} at position {position} does not follow the one before it")]
    IndexesNotIncreasing { position: usize, index: u32 },
    /// A `getblocktxn` asking for a transaction past the block's end.
    #[error("getblocktxn asks for transaction {index} of a block of {count}")]
    IndexOutOfRange { index: u32, count: usize },
    /// The rebuilt block's transactions do not hash to the header's merkle root.
    #[error("rebuilt block's merkle root {computed} is not the header's {expected}")]
    MerkleMismatch { expected: Hash256, computed: Hash256 },
    /// The rebuilt block's merkle tree has the CVE-2012-2459 duplicate-pair shape.
    #[error("rebuilt block's merkle tree is mutated (duplicate transactions)")]
    MerkleMutated,
}

/// What the caller should do about a [`CompactError`], as SV Node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// The peer sent something malformed. SV Node scores it 100 with this reason
    /// ("invalid-cmpctblk", "invalid-cmpctblk-txns", "out-of-bound-tx-index").
    Punish(&'static str),
    /// Not provably the peer's fault (a short-id collision can cause it): ask for the full block.
    RequestFullBlock,
    /// Drop the message and carry on; SV Node does not score it (a decode failure it only logs, a
    /// reply for a block no longer wanted), or the error is ours.
    Ignore,
}

impl CompactError {
    /// How SV Node treats this failure (svnode-protocol.md §3.2; src/blockencodings.cpp).
    pub fn remedy(&self) -> Remedy {
        match self {
            Self::NullHeader
            | Self::NoTransactions
            | Self::TooManyTransactions { .. }
            | Self::NullPrefilledTx { .. }
            | Self::PrefilledIndexOverflow { .. }
            | Self::PrefilledIndexOutOfRange { .. } => Remedy::Punish("invalid-cmpctblk"),
            Self::WrongTxnCount { .. } => Remedy::Punish("invalid-cmpctblk-txns"),
            Self::IndexOutOfRange { .. } => Remedy::Punish("out-of-bound-tx-index"),
            Self::DuplicateShortIds { .. } | Self::MerkleMismatch { .. } | Self::MerkleMutated => {
                Remedy::RequestFullBlock
            }
            Self::EmptyBlock
            | Self::PrefillOutOfRange { .. }
            | Self::WrongBlock { .. }
            | Self::IndexOverflow { .. }
            | Self::IndexesNotIncreasing { .. } => Remedy::Ignore,
        }
    }

    /// The offence in the misbehaviour table for a failure SV Node scores ([`Remedy::Punish`]).
    pub fn misbehavior(&self) -> Option<Misbehavior> {
        match self.remedy() {
            Remedy::Punish("out-of-bound-tx-index") => Some(Misbehavior::OutOfBoundTxIndex),
            Remedy::Punish("invalid-cmpctblk-txns") => Some(Misbehavior::InvalidBlockTxn),
            Remedy::Punish(_) => Some(Misbehavior::InvalidCompactBlock),
            Remedy::RequestFullBlock | Remedy::Ignore => None,
        }
    }
}

/// The SipHash-2-4 key of one compact block: the first two little-endian `u64`s of the single
/// SHA256 of the 80 header bytes followed by the nonce (8 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortIdKeys {
    pub k0: u64,
    pub k1: u64,
}

impl ShortIdKeys {
    pub fn new(header: &BlockHeader, nonce: u64) -> ShortIdKeys {
        let mut data = [0u8; HEADER_LEN + 8];
        data[..HEADER_LEN].copy_from_slice(&header.to_array());
        data[HEADER_LEN..].copy_from_slice(&nonce.to_le_bytes());
        let h = sha256(&data);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        ShortIdKeys { k0: word(0), k1: word(1) }
    }

    /// The 48-bit short id of `txid` (SipHash-2-4 of its 32 bytes in internal order).
    pub fn short_id_u64(&self, txid: &TxId) -> u64 {
        siphash24(self.k0, self.k1, &txid.0) & SHORT_ID_MASK
    }

    /// The short id as its 6 wire bytes (the 48-bit value, little-endian).
    pub fn short_id(&self, txid: &TxId) -> ShortId {
        to_wire(self.short_id_u64(txid))
    }
}

/// SipHash-2-4 with the key `(k0, k1)`. Provided by `bitcoin_hashes`, already a dependency.
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    bitcoin_hashes::siphash24::Hash::hash_to_u64_with_keys(k0, k1, data)
}

/// A wire short id as its 48-bit value.
pub fn short_id_value(id: &ShortId) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(id);
    u64::from_le_bytes(b)
}

fn to_wire(value: u64) -> ShortId {
    let b = value.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// The compact block of `block` with only the coinbase prefilled, as SV Node and Core send it.
pub fn compact_block(block: &Block, nonce: u64) -> Result<CompactBlock, CompactError> {
    compact_block_with_prefilled(block, nonce, &[])
}

/// The compact block of `block` with the coinbase and the transactions at `prefill` (any order,
/// repeats ignored) sent in full and short ids for the rest.
pub fn compact_block_with_prefilled(
    block: &Block,
    nonce: u64,
    prefill: &[usize],
) -> Result<CompactBlock, CompactError> {
    let count = block.transactions.len();
    if count == 0 {
        return Err(CompactError::EmptyBlock);
    }
    if let Some(&index) = prefill.iter().find(|&&i| i >= count) {
        return Err(CompactError::PrefillOutOfRange { index, count });
    }
    let mut full: Vec<usize> = Vec::with_capacity(prefill.len() + 1);
    full.push(0);
    full.extend_from_slice(prefill);
    full.sort_unstable();
    full.dedup();
    let keys = ShortIdKeys::new(&block.header, nonce);
    let mut prefilled = Vec::with_capacity(full.len());
    let mut short_ids = Vec::with_capacity(count - full.len());
    let mut next_full = full.iter().copied().peekable();
    let mut last: Option<usize> = None;
    for (i, tx) in block.transactions.iter().enumerate() {
        if next_full.peek() == Some(&i) {
            next_full.next();
            let index_delta = match last {
                None => i,
                Some(prev) => i - prev - 1,
            } as u64;
            prefilled.push(PrefilledTx { index_delta, tx: tx.clone() });
            last = Some(i);
        } else {
            short_ids.push(keys.short_id(&tx.txid()));
        }
    }
    Ok(CompactBlock { header: block.header, nonce, short_ids, prefilled })
}

/// Differential encoding of strictly increasing absolute indexes (`getblocktxn` and prefilled
/// transactions): the first as is, each next as its distance from the previous one, minus one.
pub fn encode_indexes(indexes: &[u32]) -> Result<Vec<u64>, CompactError> {
    let mut out = Vec::with_capacity(indexes.len());
    let mut next: u64 = 0;
    for (position, &index) in indexes.iter().enumerate() {
        let delta = u64::from(index).checked_sub(next).ok_or(CompactError::IndexesNotIncreasing { position, index })?;
        out.push(delta);
        next = u64::from(index) + 1;
    }
    Ok(out)
}

/// The absolute indexes of a differentially encoded list, one at a time, failing (and then ending)
/// where one does not fit 32 bits, as SV Node's `BlockTransactionsRequest` decoding does.
pub fn decode_indexes(deltas: &[u64]) -> impl Iterator<Item = Result<u32, CompactError>> + '_ {
    let mut next: u64 = 0;
    let mut failed = false;
    deltas.iter().enumerate().map_while(move |(position, &delta)| {
        if failed {
            return None;
        }
        let index = next.checked_add(delta).and_then(|i| u32::try_from(i).ok());
        match index {
            Some(i) => {
                next = u64::from(i) + 1;
                Some(Ok(i))
            }
            None => {
                failed = true;
                Some(Err(CompactError::IndexOverflow { position }))
            }
        }
    })
}

/// Transactions we hold that may be in a block: the mempool, the orphan pool, recently relayed
/// transactions. Whoever holds them implements this; they need not know about compact blocks.
///
/// A candidate is offered by its txid first and decoded only if its short id matches a slot
/// (`get`): a mempool keeps transactions as bytes, and decoding every one of 200,000 to find the
/// few hundred that are not in the block would cost more than the short ids themselves.
pub trait CandidateTxs {
    /// Calls `visit` with each candidate's txid and a way to get the transaction, until `visit`
    /// returns `ControlFlow::Break`. `get` returns `None` if the transaction is gone meanwhile. A
    /// transaction may be offered more than once (it may sit in several pools).
    fn visit(&self, visit: &mut CandidateVisitor<'_>);
}

/// The visitor's signature, for implementations that forward to another source.
pub type CandidateVisitor<'a> = dyn FnMut(&TxId, &dyn Fn() -> Option<Arc<Transaction>>) -> ControlFlow<()> + 'a;

impl CandidateTxs for [Arc<Transaction>] {
    fn visit(&self, visit: &mut CandidateVisitor<'_>) {
        for tx in self {
            if visit(&tx.txid(), &|| Some(Arc::clone(tx))).is_break() {
                return;
            }
        }
    }
}

impl CandidateTxs for Vec<Arc<Transaction>> {
    fn visit(&self, visit: &mut CandidateVisitor<'_>) {
        self.as_slice().visit(visit)
    }
}

impl<S: std::hash::BuildHasher> CandidateTxs for HashMap<TxId, Arc<Transaction>, S> {
    fn visit(&self, visit: &mut CandidateVisitor<'_>) {
        for (txid, tx) in self {
            if visit(txid, &|| Some(Arc::clone(tx))).is_break() {
                return;
            }
        }
    }
}

impl<T: CandidateTxs + ?Sized> CandidateTxs for &T {
    fn visit(&self, visit: &mut CandidateVisitor<'_>) {
        (**self).visit(visit)
    }
}

/// Two sources searched in order (the mempool, then the orphans and recent relays), the way Core
/// searches its mempool and then its `extra_txn`.
impl<A: CandidateTxs, B: CandidateTxs> CandidateTxs for (A, B) {
    fn visit(&self, visit: &mut CandidateVisitor<'_>) {
        let mut stopped = false;
        self.0.visit(&mut |txid, get| {
            let flow = visit(txid, get);
            stopped = flow.is_break();
            flow
        });
        if !stopped {
            self.1.visit(visit);
        }
    }
}

#[derive(Debug, Clone)]
enum Slot {
    /// Not known yet: it will be requested.
    Missing,
    /// Sent in full in the compact block.
    Prefilled(Arc<Transaction>),
    /// Found among our candidates by its short id.
    Found(Arc<Transaction>),
    /// Two different candidates had this slot's short id: it will be requested.
    Collided,
}

/// How a [`PartialBlock`] was filled, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillStats {
    /// Transactions the compact block carried in full.
    pub prefilled: usize,
    /// Transactions found among our candidates.
    pub found: usize,
    /// Slots two different candidates claimed, left to be requested (Core's behaviour).
    pub collisions: usize,
    /// Transactions still missing (including the collisions).
    pub missing: usize,
}

/// A block being rebuilt from a `cmpctblock`: the transactions we have, and the slots still to be
/// filled by a `blocktxn`.
#[derive(Debug, Clone)]
pub struct PartialBlock {
    header: BlockHeader,
    hash: BlockHash,
    slots: Vec<Slot>,
    stats: FillStats,
}

impl PartialBlock {
    /// Checks `compact` as SV Node's `PartiallyDownloadedBlock::InitData` does and fills its slots
    /// from `candidates`. `max_block_size` is `-excessiveblocksize`.
    ///
    /// Errors whose [`CompactError::remedy`] is `Punish` mean a malformed compact block; a
    /// [`CompactError::DuplicateShortIds`] means the full block must be fetched instead. Two
    /// different candidates with one short id are not an error: that slot is requested, as Core.
    pub fn new(
        compact: CompactBlock,
        candidates: &(impl CandidateTxs + ?Sized),
        max_block_size: u64,
    ) -> Result<PartialBlock, CompactError> {
        if compact.header.bits == 0 {
            return Err(CompactError::NullHeader);
        }
        if compact.short_ids.is_empty() && compact.prefilled.is_empty() {
            return Err(CompactError::NoTransactions);
        }
        let count = compact.short_ids.len() as u64 + compact.prefilled.len() as u64;
        let max = max_block_txs(max_block_size);
        if count > max {
            return Err(CompactError::TooManyTransactions { count, max });
        }
        // `count` is bounded by the decoded message (6 or more bytes per entry), so is `slots`.
        let mut slots = vec![Slot::Missing; compact.short_ids.len() + compact.prefilled.len()];
        let prefilled = compact.prefilled.len();
        let mut next: u64 = 0;
        for (position, p) in compact.prefilled.into_iter().enumerate() {
            if p.tx.inputs.is_empty() && p.tx.outputs.is_empty() {
                return Err(CompactError::NullPrefilledTx { position });
            }
            let index = next
                .checked_add(p.index_delta)
                .filter(|&i| i <= u64::from(u32::MAX))
                .ok_or(CompactError::PrefilledIndexOverflow { position })?;
            // Indexes are strictly increasing, so the n-th prefilled transaction can be at most at
            // (short ids + n): beyond, some slot before it would have neither tx nor short id.
            let limit = compact.short_ids.len() as u64 + position as u64;
            let slot = slots.get_mut(index as usize).filter(|_| index <= limit);
            let Some(slot) = slot else {
                return Err(CompactError::PrefilledIndexOutOfRange { position, index, count });
            };
            *slot = Slot::Prefilled(Arc::new(p.tx));
            next = index + 1;
        }

        // Short ids fill the remaining slots in order. The map's hasher is randomly keyed, so
        // short ids a peer chose cannot crowd one bucket (the attack Core's bucket-size check
        // guards against in its unkeyed map).
        let mut by_short_id: HashMap<u64, u32> = HashMap::with_capacity(compact.short_ids.len());
        let open = slots.iter().enumerate().filter(|(_, s)| matches!(s, Slot::Missing)).map(|(i, _)| i);
        for (id, slot) in compact.short_ids.iter().zip(open) {
            let short_id = short_id_value(id);
            // `slot` < `count` <= u32::MAX + 1 entries was checked above only through the size
            // limit; keep the conversion checked.
            let slot = u32::try_from(slot).map_err(|_| CompactError::TooManyTransactions { count, max })?;
            if by_short_id.insert(short_id, slot).is_some() {
                return Err(CompactError::DuplicateShortIds { short_id });
            }
        }

        let keys = ShortIdKeys::new(&compact.header, compact.nonce);
        let wanted = by_short_id.len();
        let (mut found, mut collisions) = (0usize, 0usize);
        if wanted > 0 {
            candidates.visit(&mut |txid, get| {
                if let Some(&slot) = by_short_id.get(&keys.short_id_u64(txid)) {
                    let slot = &mut slots[slot as usize];
                    match slot {
                        Slot::Missing => {
                            if let Some(tx) = get() {
                                *slot = Slot::Found(tx);
                                found += 1;
                            }
                        }
                        Slot::Found(have) if have.txid() != *txid => {
                            *slot = Slot::Collided;
                            found -= 1;
                            collisions += 1;
                        }
                        Slot::Found(_) | Slot::Collided | Slot::Prefilled(_) => {}
                    }
                }
                // As Core: stop once every slot is filled, at the small risk of not seeing a
                // colliding candidate later on (the merkle check then catches it).
                if found == wanted {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        }
        let stats = FillStats { prefilled, found, collisions, missing: wanted - found };
        let header = compact.header;
        Ok(PartialBlock { hash: header.hash(), header, slots, stats })
    }

    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// Number of transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> FillStats {
        self.stats
    }

    /// Whether every transaction is known, so [`PartialBlock::complete`] will succeed.
    pub fn is_complete(&self) -> bool {
        self.stats.missing == 0
    }

    /// Absolute indexes of the transactions still missing, increasing.
    pub fn missing_indexes(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.stats.missing);
        for (i, slot) in self.slots.iter().enumerate() {
            if matches!(slot, Slot::Missing | Slot::Collided) {
                // Slot counts were checked to fit u32 in `new`.
                out.push(i as u32);
            }
        }
        out
    }

    /// The `getblocktxn` asking for the missing transactions, or `None` when none are missing.
    pub fn request(&self) -> Option<GetBlockTxn> {
        if self.is_complete() {
            return None;
        }
        let index_deltas = encode_indexes(&self.missing_indexes()).expect("missing indexes are strictly increasing");
        Some(GetBlockTxn { block_hash: self.hash, index_deltas })
    }

    /// The whole block, with the missing transactions taken in order from `txn` (SV Node's
    /// `FillBlock`). A count other than the number missing is the peer's fault
    /// ([`CompactError::WrongTxnCount`]). The merkle root is not checked: see [`check_merkle_root`].
    pub fn fill(self, txn: BlockTxn) -> Result<Block, CompactError> {
        if txn.block_hash != self.hash {
            return Err(CompactError::WrongBlock { expected: self.hash, got: txn.block_hash });
        }
        if txn.transactions.len() != self.stats.missing {
            return Err(CompactError::WrongTxnCount { expected: self.stats.missing, got: txn.transactions.len() });
        }
        let mut supplied = txn.transactions.into_iter();
        let mut transactions = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let tx = match slot {
                Slot::Prefilled(tx) | Slot::Found(tx) => Arc::unwrap_or_clone(tx),
                Slot::Missing | Slot::Collided => {
                    // The count was checked equal to the number of such slots above.
                    supplied.next().expect("one supplied transaction per missing slot")
                }
            };
            transactions.push(tx);
        }
        Ok(Block::new(self.header, transactions))
    }

    /// The whole block when nothing is missing (a `fill` with no transactions).
    pub fn complete(self) -> Result<Block, CompactError> {
        let block_hash = self.hash;
        self.fill(BlockTxn { block_hash, transactions: Vec::new() })
    }
}

/// Checks that a rebuilt block's transactions hash to its header's merkle root.
///
/// A mismatch (or a mutated tree) after reconstruction is not by itself an offence of the peer
/// that sent the compact block: a short-id collision among our own candidates puts the wrong
/// transaction in a slot and gives exactly this result. Core and SV Node treat it as
/// `READ_STATUS_FAILED`, fetch the full block, and punish only if that block is invalid; so does
/// [`CompactError::remedy`].
pub fn check_merkle_root(block: &Block) -> Result<(), CompactError> {
    let (computed, mutated) = merkle_root(block.transactions.iter().map(Transaction::txid).collect());
    if computed != block.header.merkle_root {
        return Err(CompactError::MerkleMismatch { expected: block.header.merkle_root, computed });
    }
    if mutated {
        return Err(CompactError::MerkleMutated);
    }
    Ok(())
}

/// The `blocktxn` answering `request` from our copy of the block. An index past the block's end is
/// the offence SV Node scores 100 ("out-of-bound-tx-index", [`Misbehavior::OutOfBoundTxIndex`]);
/// the caller also applies SV Node's depth rule ([`MAX_BLOCKTXN_DEPTH`]) before calling this.
pub fn block_txn(block: &Block, request: &GetBlockTxn) -> Result<BlockTxn, CompactError> {
    let hash = block.hash();
    if request.block_hash != hash {
        return Err(CompactError::WrongBlock { expected: hash, got: request.block_hash });
    }
    let count = block.transactions.len();
    // Indexes are strictly increasing, so more of them than transactions must fail below.
    let mut transactions = Vec::with_capacity(request.index_deltas.len().min(count));
    for index in decode_indexes(&request.index_deltas) {
        let index = index?;
        let tx = block.transactions.get(index as usize).ok_or(CompactError::IndexOutOfRange { index, count })?;
        transactions.push(tx.clone());
    }
    Ok(BlockTxn { block_hash: hash, transactions })
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
