//! Validation of a transaction for the mempool: everything SV Node's `AcceptToMemoryPool` checks
//! that does not depend on the pool itself (conflicts, chains and fees are the pool's).
//!
//! Order, as SV Node: context-free checks; no loose coinbase; standardness (when the network
//! requires it); finality at the next block; inputs exist (else "missing inputs": an orphan, not
//! an offence); coinbase maturity; input and fee ranges; then every input's script, first under
//! the standard flags and, if that fails, again under the mandatory ones alone, which decides
//! whether the failure is consensus (`mandatory-script-verify-flag-failed`, +100) or policy
//! (`non-mandatory-script-verify-flag`, no penalty).
//!
//! Every rejection carries SV Node's reason string, its reject code and the misbehaviour score
//! the sending peer earns (svnode-protocol.md §3.3), so the relay can score a peer and
//! `sendrawtransaction` can answer -26 with the reason.

use super::check_tx::{check_regular, legacy_sigops, TxEra};
use super::coins::CoinView;
use crate::params::{ChainParams, ProtocolEra};
use crate::script::{
    flags_for_height, utxo_flags, verify_script_with_limits, ActivationHeights, ScriptError, ScriptFlags, ScriptLimits,
    SigHashCache, TxSignatureChecker,
};
use crate::wire::Transaction;

pub use super::check_tx::MAX_MONEY;
/// Lock times below this are block heights, above it Unix times (`LOCKTIME_THRESHOLD`).
const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// SV Node's script policy after Genesis, what a loose transaction is checked with (blocks get the
/// consensus limits): numbers of at most 10 kB (`DEFAULT_SCRIPT_NUM_LENGTH_POLICY_AFTER_GENESIS`;
/// consensus 750 kB) and scripts of at most 500 kB (`DEFAULT_MAX_SCRIPT_SIZE_POLICY_AFTER_GENESIS`).
/// Relaying past them would cost us SV Node's score, so they are ours too.
/// After Chronicle the number policy stays 10 kB (`GetMaxScriptNumLength` returns the policy value
/// in every era; consensus grows to 32 MB).
const POLICY_SCRIPT_LIMITS: ScriptLimits = ScriptLimits {
    max_script_num_length: 10_000,
    max_script_num_length_after_chronicle: 10_000,
    max_script_size: 500_000,
    ..ScriptLimits::CONSENSUS
};

/// The longest a loose transaction's scripts may take by default (`-maxnonstdtxvalidationduration`):
/// SV Node's `DEFAULT_MAX_NON_STD_TXN_VALIDATION_DURATION`; past it the transaction is refused as
/// `too-long-validation-time` (not scored). A P2PKH input takes about 30 µs; a script built to
/// burn CPU (hashing megabytes in a loop) would otherwise hold a validation thread for hours.
pub const MAX_TX_VALIDATION_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Pre-Genesis policy sigop limit per transaction (`MAX_TX_SIGOPS_COUNT_POLICY_BEFORE_GENESIS`);
/// the consensus one is [`super::check_tx::MAX_TX_SIGOPS_BEFORE_GENESIS`]; none after Genesis.
const MAX_TX_SIGOPS_POLICY: u64 = 4_000;

/// Reject codes (the subset validation uses).
const REJECT_INVALID: u16 = 0x10;
const REJECT_NONSTANDARD: u16 = 0x40;
const REJECT_INSUFFICIENTFEE: u16 = 0x42;
/// SV Node's `REJECT_HIGHFEE`: internal only (never in a `reject` message, which has one byte).
const REJECT_HIGHFEE: u16 = 0x100;

/// What kind of failure: decides punishment and the RPC error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Breaks a consensus rule.
    Consensus,
    /// Refused by policy only; an honest peer may relay it.
    Policy,
    /// Spends an output we do not know: an orphan (RPC error -25, no penalty).
    MissingInputs,
}

/// Why a transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TxReject {
    /// SV Node's reject reason, as `sendrawtransaction` and `reject` messages show it.
    pub reason: String,
    /// SV Node's reject code (`REJECT_*`; the ones below 256 are what a `reject` message carries).
    pub code: u16,
    /// Misbehaviour score for the peer that sent it (0: none).
    pub score: u32,
    pub kind: RejectKind,
}

impl TxReject {
    fn consensus(reason: impl Into<String>, score: u32) -> TxReject {
        TxReject { reason: reason.into(), code: REJECT_INVALID, score, kind: RejectKind::Consensus }
    }

    fn policy(reason: impl Into<String>, code: u16) -> TxReject {
        TxReject { reason: reason.into(), code, score: 0, kind: RejectKind::Policy }
    }
}

/// What validation learnt about an accepted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedTx {
    /// Inputs minus outputs, in satoshis.
    pub fee: i64,
    pub size: usize,
}

/// The chain context a transaction is validated in.
pub struct TxContext<'a> {
    pub params: &'a ChainParams,
    /// SV Node's `fRequireStandard`: true on main, false on test, stn and regtest.
    pub require_standard: bool,
    /// Signatures verified before (shared with block validation).
    pub sig_cache: Option<&'a crate::script::SigCache>,
    /// `sendrawtransaction`'s guard (`-maxtxfee`): a fee above this is refused as
    /// `absurdly-high-fee`. `None` for peers' transactions and `allowhighfees`.
    pub max_fee: Option<i64>,
    /// The mempool's current minimum fee rate (sat/kB, 0 while it has room): checked before the
    /// scripts, so a full pool does not verify signatures it would refuse anyway.
    pub min_fee_rate: u64,
    /// The script time budget ([`MAX_TX_VALIDATION_TIME`] unless configured).
    pub max_validation_time: std::time::Duration,
}

impl<'a> TxContext<'a> {
    pub fn new(params: &'a ChainParams) -> TxContext<'a> {
        TxContext {
            params,
            require_standard: params.network == crate::params::Network::Main,
            sig_cache: None,
            max_fee: None,
            min_fee_rate: 0,
            max_validation_time: MAX_TX_VALIDATION_TIME,
        }
    }

    pub fn with_sig_cache(mut self, cache: &'a crate::script::SigCache) -> TxContext<'a> {
        self.sig_cache = Some(cache);
        self
    }

    pub(crate) fn heights(&self) -> ActivationHeights {
        ActivationHeights::from(&self.params.activations)
    }
}

/// Validates `tx` for inclusion in the block after `view.best_height()`, in SV Node's order
/// (`TxnValidation`): consensus checks of the transaction alone (scored), standardness, finality,
/// inputs present, BIP68, the sigop policy, fees, then the inputs' maturity and amounts (scored)
/// and last the scripts, the expensive part. A transaction that fails a policy check is never
/// scored for a consensus failure found later.
pub fn validate_transaction(
    tx: &Transaction,
    view: &dyn CoinView,
    ctx: &TxContext<'_>,
) -> Result<ValidatedTx, TxReject> {
    let height = view.best_height() + 1;
    let genesis = height >= ctx.params.activations.genesis;
    // A coinbase fails here as `bad-tx-coinbase`.
    check_regular(tx, TxEra::consensus(genesis)).map_err(|e| TxReject::consensus(e.reject_reason(), e.score()))?;
    if ctx.require_standard {
        check_standard(tx, ctx.params.activations.era(height))?;
    }
    // Not final: never scored, as it may become valid (SV Node keeps post-Genesis ones in a
    // separate pool, which we do not have).
    if !is_final(tx, height, view.median_time_past()) {
        let reason = if genesis { "non-final" } else { "bad-txns-nonfinal" };
        return Err(TxReject::policy(reason, REJECT_NONSTANDARD));
    }
    let mut coins = Vec::with_capacity(tx.inputs.len());
    for input in &tx.inputs {
        match view.coin(&input.prev_out) {
            Some(c) => coins.push(c),
            None => {
                return Err(TxReject {
                    reason: "missing-inputs".into(),
                    code: REJECT_INVALID,
                    score: 0,
                    kind: RejectKind::MissingInputs,
                })
            }
        }
    }
    if height >= ctx.params.activations.csv && !sequence_locks_satisfied(tx, &coins, height, view) {
        return Err(TxReject::policy("non-BIP68-final", REJECT_NONSTANDARD));
    }
    if !genesis {
        check_sigops(tx, &coins, height >= ctx.params.activations.p2sh, height)?;
    }
    // The fee as SV Node computes it here, before the amounts are checked (i128: no overflow).
    let value_in: i128 = coins.iter().map(|c| i128::from(c.value)).sum();
    let value_out: i128 = tx.outputs.iter().map(|o| i128::from(o.value)).sum();
    let claimed_fee = value_in - value_out;
    if ctx.max_fee.is_some_and(|max| claimed_fee > i128::from(max)) {
        return Err(TxReject::policy("absurdly-high-fee", REJECT_HIGHFEE));
    }
    if ctx.min_fee_rate > 0 && claimed_fee * 1000 < i128::from(ctx.min_fee_rate) * tx.size() as i128 {
        return Err(TxReject::policy("mempool min fee not met", REJECT_INSUFFICIENTFEE));
    }
    let mut total_in: i64 = 0;
    for coin in &coins {
        if coin.is_coinbase && height.saturating_sub(coin.height) < ctx.params.coinbase_maturity {
            return Err(TxReject {
                reason: "bad-txns-premature-spend-of-coinbase".into(),
                code: REJECT_INVALID,
                score: 0,
                kind: RejectKind::Policy,
            });
        }
        if !(0..=MAX_MONEY).contains(&coin.value) {
            return Err(TxReject::consensus("bad-txns-inputvalues-outofrange", 100));
        }
        total_in = total_in.saturating_add(coin.value);
        if total_in > MAX_MONEY {
            return Err(TxReject::consensus("bad-txns-inputvalues-outofrange", 100));
        }
    }
    let total_out: i64 = tx.outputs.iter().map(|o| o.value).sum();
    if total_in < total_out {
        return Err(TxReject::consensus("bad-txns-in-belowout", 100));
    }
    let fee = total_in - total_out;

    let heights = ctx.heights();
    let block_flags = flags_for_height(i32::try_from(height).unwrap_or(i32::MAX), &heights);
    let grace = ctx.params.activations.in_chronicle_grace(height) && height >= ctx.params.activations.genesis;
    let deadline = std::time::Instant::now() + ctx.max_validation_time;
    let scripts = ScriptRun { tx, coins: &coins, ctx, heights, deadline, grace };
    if let Err(reject) = scripts.check(block_flags) {
        // SV Node's TxnValidation: inside the Chronicle grace window, a transaction that passes,
        // or fails less seriously, under the other era's flags is refused as `flexible-…` with
        // the lesser score, so a peer a few blocks behind or ahead is not banned for it.
        if !grace || reject.reason == TOO_LONG {
            return Err(reject);
        }
        let other_era = if block_flags.contains(ScriptFlags::CHRONICLE) {
            block_flags.without(ScriptFlags::CHRONICLE)
        } else {
            block_flags | ScriptFlags::CHRONICLE
        };
        let lesser = match scripts.check(other_era) {
            Ok(()) => Some(0),
            Err(other) if other.reason != TOO_LONG && other.score < reject.score => Some(other.score),
            Err(_) => None,
        };
        return Err(match lesser {
            Some(score) => TxReject {
                reason: format!("flexible-{}", reject.reason),
                code: REJECT_NONSTANDARD,
                score,
                kind: if score == 0 { RejectKind::Policy } else { RejectKind::Consensus },
            },
            None => reject,
        });
    }
    Ok(ValidatedTx { fee, size: tx.size() })
}

/// SV Node's reason for a script run out of time (never scored).
const TOO_LONG: &str = "too-long-validation-time";

/// One transaction's scripts against its spent coins, as SV Node's `CheckInputScripts` runs them.
struct ScriptRun<'a> {
    tx: &'a Transaction,
    coins: &'a [super::coins::Coin],
    ctx: &'a TxContext<'a>,
    heights: ActivationHeights,
    deadline: std::time::Instant,
    /// The spend height is inside the Chronicle grace window.
    grace: bool,
}

impl ScriptRun<'_> {
    /// Every input under the standard flags; the first failure is then classified by running
    /// that input again under the mandatory flags alone: consensus (`mandatory-…`, 100) or policy
    /// (`non-mandatory-…`, 0); in the grace window a failure that the UTXO's other era would
    /// pass is `chronicle-script-verify-flag-failed`, 0. As SV Node, the reason quotes the error
    /// of the first (standard) run.
    fn check(&self, block_flags: ScriptFlags) -> Result<(), TxReject> {
        let cache = SigHashCache::new();
        let policy_limits = POLICY_SCRIPT_LIMITS.with_deadline(self.deadline);
        let consensus_limits = ScriptLimits::CONSENSUS.with_deadline(self.deadline);
        let too_long = || TxReject::policy(TOO_LONG, REJECT_NONSTANDARD);
        for (index, (input, coin)) in self.tx.inputs.iter().zip(self.coins).enumerate() {
            let coin_height = i32::try_from(coin.height).unwrap_or(i32::MAX);
            let era = utxo_flags(coin_height, &self.heights);
            let mut checker = TxSignatureChecker::new(self.tx, index, coin.value, &cache);
            if let Some(verified) = self.ctx.sig_cache {
                checker = checker.with_sig_cache(verified);
            }
            let run = |flags: ScriptFlags, limits: &ScriptLimits| {
                verify_script_with_limits(&input.script_sig, &coin.script_pubkey, flags, &checker, limits)
            };
            let Err(err) = run(block_flags | ScriptFlags::STANDARD | era, &policy_limits) else {
                continue;
            };
            if err == ScriptError::TimedOut {
                return Err(too_long());
            }
            let text = script_error_text(&err);
            return Err(match run(block_flags | era, &consensus_limits) {
                Err(ScriptError::TimedOut) => too_long(),
                // SV Node scores a number over the policy length 10 under its own name (not in a
                // grace window).
                Ok(()) if err == ScriptError::ScriptNumOverflow && !self.grace => {
                    TxReject::consensus(format!("max-script-num-length-policy-limit-violated ({text})"), 10)
                }
                Ok(()) => TxReject::policy(format!("non-mandatory-script-verify-flag ({text})"), REJECT_NONSTANDARD),
                Err(_)
                    if self.grace && run(block_flags | self.other_utxo_era(coin_height), &consensus_limits).is_ok() =>
                {
                    TxReject::policy(format!("chronicle-script-verify-flag-failed ({text})"), REJECT_NONSTANDARD)
                }
                Err(_) => TxReject::consensus(format!("mandatory-script-verify-flag-failed ({text})"), 100),
            });
        }
        Ok(())
    }

    /// The per-input flags of a coin of the other side of Chronicle (`GetInverseProtocolEra`).
    fn other_utxo_era(&self, coin_height: i32) -> ScriptFlags {
        let era = utxo_flags(coin_height, &self.heights);
        if era.contains(ScriptFlags::UTXO_AFTER_CHRONICLE) {
            era.without(ScriptFlags::UTXO_AFTER_CHRONICLE)
        } else {
            era | ScriptFlags::UTXO_AFTER_CHRONICLE
        }
    }
}

/// Pre-Genesis sigop count as SV Node does it: legacy counts of every scriptSig and scriptPubKey,
/// plus (with `p2sh`) the accurate count of each P2SH redeem script; `coins` are the spent outputs
/// in input order (none for a coinbase).
pub fn tx_sigops(tx: &Transaction, coins: &[super::coins::Coin], p2sh: bool) -> u64 {
    sigops_counting_p2sh_of(tx, coins, |_| p2sh)
}

/// [`tx_sigops`], counting the redeem scripts only of the coins `p2sh_of` selects.
fn sigops_counting_p2sh_of(
    tx: &Transaction,
    coins: &[super::coins::Coin],
    p2sh_of: impl Fn(&super::coins::Coin) -> bool,
) -> u64 {
    use crate::script::count_sigops;
    let mut sigops = legacy_sigops(tx);
    for (input, coin) in tx.inputs.iter().zip(coins) {
        if p2sh_of(coin) && crate::script::is_p2sh(&coin.script_pubkey) {
            if let Some(redeem) = last_push(&input.script_sig) {
                sigops += count_sigops(&redeem, true);
            }
        }
    }
    sigops
}

/// Pre-Genesis sigop limit of a block of `size` bytes: 20,000 per started megabyte (SV Node
/// `GetMaxBlockSigOpsCount` with `MAX_BLOCK_SIGOPS_PER_MB`).
pub fn max_block_sigops(size: u64) -> u64 {
    const PER_MB: u64 = 20_000;
    const ONE_MEGABYTE: u64 = 1_000_000;
    PER_MB * (1 + size.saturating_sub(1) / ONE_MEGABYTE)
}

/// The mempool's sigop limit (SV Node's `GetMaxTxSigOpsCountPolicy`): policy only, never scored;
/// the consensus limit on the legacy count was checked by `check_regular`. As in SV Node's
/// `GetP2SHSigOpCount`, the redeem scripts spending unconfirmed outputs (the pool's, at the next
/// block's `height`) are not counted: it takes their `MEMPOOL_HEIGHT` for post-Genesis coins.
fn check_sigops(tx: &Transaction, coins: &[super::coins::Coin], p2sh: bool, height: u32) -> Result<(), TxReject> {
    let sigops = sigops_counting_p2sh_of(tx, coins, |coin| p2sh && coin.height < height);
    if sigops > MAX_TX_SIGOPS_POLICY {
        return Err(TxReject::policy("bad-txns-too-many-sigops", REJECT_NONSTANDARD));
    }
    Ok(())
}

/// The data of the last push of a push-only script (a P2SH redeem script).
fn last_push(script: &[u8]) -> Option<Vec<u8>> {
    let mut last = None;
    let mut i = 0;
    while i < script.len() {
        let op = script[i];
        let (len, skip) = match op {
            0x01..=0x4b => (op as usize, 1),
            0x4c => (*script.get(i + 1)? as usize, 2),
            0x4d => (u16::from_le_bytes([*script.get(i + 1)?, *script.get(i + 2)?]) as usize, 3),
            0x4e => (
                u32::from_le_bytes([*script.get(i + 1)?, *script.get(i + 2)?, *script.get(i + 3)?, *script.get(i + 4)?])
                    as usize,
                5,
            ),
            0x00 | 0x4f | 0x51..=0x60 => {
                last = Some(Vec::new());
                i += 1;
                continue;
            }
            _ => return None,
        };
        let data = script.get(i + skip..i + skip + len)?;
        last = Some(data.to_vec());
        i += skip + len;
    }
    last
}

/// SV Node's wording: `mandatory-script-verify-flag-failed (<error>)` or
/// `non-mandatory-script-verify-flag (<error>)`, the error as `ScriptErrorString` prints it.
/// The script error in SV Node's words: our message with its first letter capitalised.
fn script_error_text(err: &ScriptError) -> String {
    let s = err.to_string();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

/// Validates many independent transactions on every core: each thread takes the next unvalidated
/// transaction from a shared counter, so one slow transaction does not hold up a whole chunk.
/// Results come back in input order.
pub fn validate_batch(
    txs: &[Transaction],
    view: &dyn CoinView,
    ctx: &TxContext<'_>,
) -> Vec<Result<ValidatedTx, TxReject>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(txs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<ValidatedTx, TxReject>>>> = txs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tx) = txs.get(i) else { break };
                let r = validate_transaction(tx, view, ctx);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every index was taken by a thread"))
        .collect()
}

/// BIP68 relative lock times (SV Node's `CheckSequenceLocks` for the mempool): for a version 2+
/// transaction, each input whose sequence does not have the disable bit waits that many blocks
/// (or that many 512-second units, with the type bit) after the block that created its coin.
pub fn sequence_locks_satisfied<T: super::coins::ChainTimes + ?Sized>(
    tx: &Transaction,
    coins: &[super::coins::Coin],
    height: u32,
    times: &T,
) -> bool {
    const DISABLE: u32 = 1 << 31;
    const TYPE_TIME: u32 = 1 << 22;
    const MASK: u32 = 0x0000_ffff;
    if tx.version < 2 {
        return true;
    }
    let (mut min_height, mut min_time): (i64, i64) = (-1, -1);
    for (input, coin) in tx.inputs.iter().zip(coins) {
        if input.sequence & DISABLE != 0 {
            continue;
        }
        let coin_height = i64::from(coin.height);
        let value = i64::from(input.sequence & MASK);
        if input.sequence & TYPE_TIME != 0 {
            // The median time past of the block *before* the coin's block.
            let at = coin.height.saturating_sub(1);
            let Some(coin_time) = times.median_time_past_at(at) else { return false };
            min_time = min_time.max(coin_time + (value << 9) - 1);
        } else {
            min_height = min_height.max(coin_height + value - 1);
        }
    }
    i64::from(height) > min_height && times.median_time_past() > min_time
}

/// `IsFinalTx`: lock time 0, or below the next height / the median time past, or every input's
/// sequence final.
pub fn is_final(tx: &Transaction, height: u32, median_time_past: i64) -> bool {
    if tx.lock_time == 0 {
        return true;
    }
    let limit = if tx.lock_time < LOCKTIME_THRESHOLD { i64::from(height) } else { median_time_past };
    if i64::from(tx.lock_time) < limit {
        return true;
    }
    tx.inputs.iter().all(|i| i.sequence == u32::MAX)
}

/// Largest standard transaction: SV Node's policy, 99,999 bytes before Genesis and
/// `-maxtxsizepolicy` (10 MB) after (src/policy/policy.h:68-70).
const MAX_STANDARD_TX_SIZE_BEFORE_GENESIS: usize = 99_999;
const MAX_STANDARD_TX_SIZE_AFTER_GENESIS: usize = 10_000_000;
/// Longest standard scriptSig before Genesis (`MAX_STANDARD_SCRIPTSIG_SIZE`... 1650 bytes).
const MAX_STANDARD_SCRIPTSIG_SIZE_BEFORE_GENESIS: usize = 1650;

/// SV Node's `IsStandardTx` (src/script/standard.cpp:427-500), for networks that require it:
/// version 1 or 2, size, scriptSig size and push-only, standard output templates, no dust.
fn check_standard(tx: &Transaction, era: ProtocolEra) -> Result<(), TxReject> {
    let after_genesis = era >= ProtocolEra::PostGenesis;
    // Chronicle lifts the version range (SV Node 1.2.2's IsStandardTx): versions above 1 select
    // its relaxed script rules, so they must be relayable.
    let chronicle = era >= ProtocolEra::PostChronicle;
    if !chronicle && !(1..=2).contains(&tx.version) {
        return Err(TxReject::policy("version", REJECT_NONSTANDARD));
    }
    let max_size = if after_genesis { MAX_STANDARD_TX_SIZE_AFTER_GENESIS } else { MAX_STANDARD_TX_SIZE_BEFORE_GENESIS };
    if tx.size() > max_size {
        return Err(TxReject::policy("tx-size", REJECT_NONSTANDARD));
    }
    for input in &tx.inputs {
        if !after_genesis && input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE_BEFORE_GENESIS {
            return Err(TxReject::policy("scriptsig-size", REJECT_NONSTANDARD));
        }
        if !chronicle && !crate::script::is_push_only(&input.script_sig) {
            return Err(TxReject::policy("scriptsig-not-pushonly", REJECT_NONSTANDARD));
        }
    }
    for output in &tx.outputs {
        let kind = classify(&output.script_pubkey, after_genesis);
        if kind == OutputKind::NonStandard {
            return Err(TxReject::policy("scriptpubkey", REJECT_NONSTANDARD));
        }
        // Dust: below 1 satoshi, unless it is a data output nobody can spend.
        if output.value < 1 && kind != OutputKind::Data {
            return Err(TxReject::policy("dust", 0x41));
        }
    }
    Ok(())
}

/// Standard output templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    PubKeyHash,
    PubKey,
    Multisig,
    ScriptHash,
    Data,
    NonStandard,
}

fn classify(s: &[u8], after_genesis: bool) -> OutputKind {
    match s {
        [0x76, 0xa9, 20, .., 0x88, 0xac] if s.len() == 25 => OutputKind::PubKeyHash,
        [33, .., 0xac] if s.len() == 35 => OutputKind::PubKey,
        [65, .., 0xac] if s.len() == 67 => OutputKind::PubKey,
        [0xa9, 20, .., 0x87] if s.len() == 23 && !after_genesis => OutputKind::ScriptHash,
        [0x6a, ..] | [0x00, 0x6a, ..] => OutputKind::Data,
        [m @ 0x51..=0x60, .., n @ 0x51..=0x60, 0xae] if m <= n && is_multisig_keys(&s[1..s.len() - 2], n - 0x50) => {
            OutputKind::Multisig
        }
        _ => OutputKind::NonStandard,
    }
}

/// `count` pushes of 33- or 65-byte keys and nothing else.
fn is_multisig_keys(mut keys: &[u8], count: u8) -> bool {
    for _ in 0..count {
        match keys.first() {
            Some(&len @ (33 | 65)) if keys.len() > len as usize => keys = &keys[1 + len as usize..],
            _ => return false,
        }
    }
    keys.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_output_templates() {
        let key = crate::wallet::Key::from_seed(b"k");
        let key2 = crate::wallet::Key::from_seed(b"k2");
        assert_eq!(classify(&key.p2pkh_script(), false), OutputKind::PubKeyHash);
        assert_eq!(classify(&key.p2pk_script(), false), OutputKind::PubKey);
        assert_eq!(classify(&crate::wallet::multisig_script(1, &[key, key2]), false), OutputKind::Multisig);
        assert_eq!(classify(&[0x00, 0x6a, 3, 1, 2, 3], true), OutputKind::Data);
        let p2sh = [&[0xa9u8, 20][..], &[0; 20], &[0x87]].concat();
        assert_eq!(classify(&p2sh, false), OutputKind::ScriptHash);
        assert_eq!(classify(&p2sh, true), OutputKind::NonStandard, "no P2SH after Genesis");
        assert_eq!(classify(&[0x51], false), OutputKind::NonStandard);
        assert_eq!(classify(&[0x52, 33], false), OutputKind::NonStandard, "truncated multisig");
    }
}
