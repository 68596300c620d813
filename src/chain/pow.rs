//! Proof of work: targets, block work, and the nBits every network requires of the next header.
//!
//! A port of SV Node's `src/pow.cpp` (svnode-protocol.md §2.5), rule for rule:
//! - regtest (`no_retargeting`): the previous block's nBits, always;
//! - before the DAA height: the legacy 2016-block retarget, timespan clamped to [¼, 4×] two weeks,
//!   and between retargets the Emergency Difficulty Adjustment (target += ¼ when the last six blocks
//!   took 12 h or more by median time), or on testnet the 20-minute minimum-difficulty rule;
//! - from the DAA height: cw-144, the work of the last 144 blocks over their (clamped) timespan.
//!
//! Everything is a pure function of a [`ChainView`] (the ancestors of the block being extended) and
//! the new header's timestamp, so the rules are tested on synthetic chains without mining.
//! Nothing here panics on peer-controlled values: a chain too short for a rule's look-back gets the
//! previous nBits instead of SV Node's assertion failure.

use super::params::ChainParams;
use super::uint256::U256;
use crate::wire::Hash256;

/// Blocks between legacy retargets: two weeks of ten-minute blocks (`DifficultyAdjustmentInterval`).
pub const RETARGET_INTERVAL: u32 = 2016;

/// The cw-144 window: one day of blocks (`GetNextCashWorkRequired`, src/pow.cpp).
pub const DAA_WINDOW: u32 = 144;

/// The EDA trigger: six blocks taking at least 12 hours by median time past (src/pow.cpp:70-92).
pub const EDA_SIX_BLOCK_SECS: i64 = 12 * 3600;

/// What the difficulty rules need to know about one block of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    pub time: u32,
    pub bits: u32,
    /// Cumulative work up to and including this block.
    pub chain_work: U256,
}

/// A chain of blocks from genesis (height 0) to a tip, as the difficulty rules see it.
pub trait ChainView {
    /// Height of the block being extended.
    fn tip_height(&self) -> u32;
    /// The tip's ancestor at `height` (`height <= tip_height()`).
    fn at(&self, height: u32) -> HeaderInfo;

    /// Median of the timestamps of the 11 blocks ending at `height` (fewer near genesis).
    fn median_time_past(&self, height: u32) -> u32 {
        let mut times = [0u32; MEDIAN_TIME_SPAN];
        let n = (height as usize + 1).min(MEDIAN_TIME_SPAN);
        for (i, t) in times[..n].iter_mut().enumerate() {
            *t = self.at(height - i as u32).time;
        }
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }
}

/// Blocks in the median-time-past window (`nMedianTimeSpan`, src/chain.h).
pub const MEDIAN_TIME_SPAN: usize = 11;

/// A chain held as a slice, genesis first: the simplest `ChainView`, used by tests.
impl ChainView for [HeaderInfo] {
    fn tip_height(&self) -> u32 {
        self.len().saturating_sub(1) as u32
    }
    fn at(&self, height: u32) -> HeaderInfo {
        self[height as usize]
    }
}

/// The target nBits encodes, if it is a valid target for these parameters: not negative, not
/// zero, no overflow, at most the proof-of-work limit.
pub fn target_from_bits(bits: u32, params: &ChainParams) -> Option<U256> {
    let c = U256::from_compact(bits);
    if c.negative || c.overflow || c.value.is_zero() || c.value > pow_limit(params) {
        return None;
    }
    Some(c.value)
}

/// The highest target a network allows. SV Node keeps the limit as a full 256-bit value
/// (0x00000000ffff…ff on main); we keep the value its compact form decodes to (0x00000000ffff00…00).
/// No compact target lies between the two, and every result is rounded down to a compact, so the
/// answers are the same.
pub fn pow_limit(params: &ChainParams) -> U256 {
    U256::from_compact(params.pow_limit_bits).value
}

/// `CheckProofOfWork`: the hash, read as a little-endian number, is at most the target nBits
/// encodes, and that target is valid for the network.
pub fn check_proof_of_work(hash: &Hash256, bits: u32, params: &ChainParams) -> bool {
    match target_from_bits(bits, params) {
        Some(target) => U256::from_le_bytes(&hash.0) <= target,
        None => false,
    }
}

/// Expected number of hashes to meet nBits: 2^256 / (target + 1), or 0 for an invalid nBits
/// (`GetBlockProof`, src/block_index.cpp:114-127).
pub fn block_work(bits: u32) -> U256 {
    let c = U256::from_compact(bits);
    if c.negative || c.overflow || c.value.is_zero() {
        return U256::ZERO;
    }
    // 2^256 does not fit; 2^256 / (t+1) == (2^256 - t - 1) / (t+1) + 1 == ~t / (t+1) + 1.
    (!c.value).div_rem(c.value + U256::ONE).0 + U256::ONE
}

/// The nBits a header extending `chain` with timestamp `new_time` must carry
/// (`GetNextWorkRequired`, src/pow.cpp:95-117).
pub fn next_work_required<C: ChainView + ?Sized>(chain: &C, new_time: u32, params: &ChainParams) -> u32 {
    let prev_height = chain.tip_height();
    let prev = chain.at(prev_height);
    if params.no_retargeting {
        return prev.bits;
    }
    if prev_height >= params.activations.daa {
        cash_work_required(chain, new_time, params)
    } else {
        legacy_work_required(chain, new_time, params)
    }
}

/// The legacy retarget with the EDA, or testnet's minimum-difficulty rule (`GetNextEDAWorkRequired`).
pub fn legacy_work_required<C: ChainView + ?Sized>(chain: &C, new_time: u32, params: &ChainParams) -> u32 {
    let prev_height = chain.tip_height();
    let prev = chain.at(prev_height);
    let height = prev_height + 1;
    if height % RETARGET_INTERVAL == 0 {
        let first = chain.at(height - RETARGET_INTERVAL);
        return retarget(prev, first.time, params);
    }
    let limit_bits = params.pow_limit_bits;
    if params.allow_min_difficulty_blocks {
        // Testnet: a block more than 20 minutes after its parent may use the minimum difficulty…
        if new_time as i64 > prev.time as i64 + 2 * params.target_spacing_secs as i64 {
            return limit_bits;
        }
        // …otherwise it has the bits of the last block not mined under that exception.
        let mut h = prev_height;
        let mut bits = prev.bits;
        while h > 0 && h % RETARGET_INTERVAL != 0 && bits == limit_bits {
            h -= 1;
            bits = chain.at(h).bits;
        }
        return bits;
    }
    if prev.bits == limit_bits || prev_height < 6 {
        return prev.bits;
    }
    // EDA: if the last six blocks took 12 hours or more, lower the difficulty by 20 %.
    let mtp6 = chain.median_time_past(prev_height) as i64 - chain.median_time_past(prev_height - 6) as i64;
    if mtp6 < EDA_SIX_BLOCK_SECS {
        return prev.bits;
    }
    let target = U256::from_compact(prev.bits).value;
    let eased = target + (target >> 2);
    eased.min(pow_limit(params)).to_compact()
}

/// `CalculateNextWorkRequired`: scale the previous target by the actual timespan of the period,
/// clamped to [¼, 4×] the two-week target.
pub fn retarget(prev: HeaderInfo, first_time: u32, params: &ChainParams) -> u32 {
    let timespan = params.target_timespan_secs as i64;
    let actual = (prev.time as i64 - first_time as i64).clamp(timespan / 4, timespan * 4);
    let target = U256::from_compact(prev.bits).value;
    let scaled = target.wrapping_mul_u64(actual as u64).div_rem_u64(timespan as u64).0;
    scaled.min(pow_limit(params)).to_compact()
}

/// The cw-144 difficulty adjustment (`GetNextCashWorkRequired`, src/pow.cpp:256-297).
pub fn cash_work_required<C: ChainView + ?Sized>(chain: &C, new_time: u32, params: &ChainParams) -> u32 {
    let prev_height = chain.tip_height();
    let prev = chain.at(prev_height);
    if params.allow_min_difficulty_blocks && new_time as i64 > prev.time as i64 + 2 * params.target_spacing_secs as i64
    {
        return params.pow_limit_bits;
    }
    // SV Node asserts this; a chain configured to reach the DAA before it is possible keeps its bits.
    if prev_height < RETARGET_INTERVAL {
        return prev.bits;
    }
    let last = suitable_block(chain, prev_height);
    let first = suitable_block(chain, prev_height - DAA_WINDOW);
    let target = compute_target(&first, &last, params);
    target.min(pow_limit(params)).to_compact()
}

/// The median by timestamp of the block at `height` and its two predecessors, chosen by SV Node's
/// sorting network (`GetSuitableBlock`) so that ties pick the same block.
fn suitable_block<C: ChainView + ?Sized>(chain: &C, height: u32) -> HeaderInfo {
    let mut b = [chain.at(height - 2), chain.at(height - 1), chain.at(height)];
    if b[0].time > b[2].time {
        b.swap(0, 2);
    }
    if b[0].time > b[1].time {
        b.swap(0, 1);
    }
    if b[1].time > b[2].time {
        b.swap(1, 2);
    }
    b[1]
}

/// `ComputeTarget`: the target that would have produced the work between `first` and `last` in ten
/// minutes per block, with the timespan clamped to [72, 288] blocks' worth.
fn compute_target(first: &HeaderInfo, last: &HeaderInfo, params: &ChainParams) -> U256 {
    let spacing = params.target_spacing_secs as i64;
    let work = (last.chain_work - first.chain_work).wrapping_mul_u64(spacing as u64);
    let timespan = (last.time as i64 - first.time as i64).clamp(72 * spacing, 288 * spacing);
    let work = work.div_rem_u64(timespan as u64).0;
    if work.is_zero() {
        // Unreachable with valid headers (every block has work); the easiest target is the answer.
        return U256::MAX;
    }
    work.wrapping_neg().div_rem(work).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::params::{MAIN, REGTEST};

    #[test]
    fn block_work_of_known_bits() {
        // Regtest: 2 per block, so 116 blocks give the 0xe8 RPC shows at height 115.
        assert_eq!(block_work(0x207fffff), U256::from_u64(2));
        // Difficulty 1: 0x100010001 hashes (SV Node's chainwork for block 1 is 0x200020002).
        assert_eq!(block_work(0x1d00ffff), U256::from_u64(0x1_0001_0001));
        assert_eq!(block_work(0), U256::ZERO);
        assert_eq!(block_work(0x01fedcba), U256::ZERO, "negative");
    }

    #[test]
    fn pow_check_rejects_invalid_targets() {
        let zero = Hash256::ZERO;
        assert!(check_proof_of_work(&zero, 0x1d00ffff, &MAIN));
        assert!(!check_proof_of_work(&zero, 0x207fffff, &MAIN), "above the mainnet limit");
        assert!(check_proof_of_work(&zero, 0x207fffff, &REGTEST));
        assert!(!check_proof_of_work(&zero, 0, &REGTEST), "zero target");
        assert!(!check_proof_of_work(&zero, 0x04923456, &REGTEST), "negative");
        assert!(!check_proof_of_work(&zero, 0xff123456, &REGTEST), "overflow");
    }
}
