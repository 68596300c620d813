//! The script interpreter: every opcode of BSV script in both eras (pre- and post-Genesis), the
//! two signature digests, and signature checking with secp256k1.
//!
//! What it owns: deciding whether a scriptSig satisfies a scriptPubKey under a set of
//! [`ScriptFlags`] (SV Node's `VerifyScript`), and the per-height choice of those flags. What it
//! must not do: look up UTXOs, check amounts or lock times of the transaction as a whole, or
//! know about blocks — callers give it the spent output's script and amount via a
//! [`SignatureChecker`].
//!
//! Invariants:
//! - No input panics, and every evaluation is bounded: pre-Genesis by SV Node's classic limits,
//!   post-Genesis by [`ScriptLimits`] (operand length, stack memory, opcode count).
//! - Errors are [`ScriptError`] values whose [`ScriptError::name`] is SV Node's spelling.
//! - The hot path (P2PKH) allocates only the stack elements; the per-transaction BIP143 hashes
//!   live in a [`SigHashCache`] shared by all inputs of a transaction.
//! - Chronicle (SV Node 1.2) rules are implemented from svnode-protocol.md §7.3 and the v1.2.2
//!   vectors: restored/new opcodes for `UTXO_AFTER_CHRONICLE` UTXOs (OP_VER, OP_VERIF,
//!   OP_VERNOTIF, OP_2MUL, OP_2DIV, OP_SUBSTR, OP_LEFT, OP_RIGHT, OP_LSHIFTNUM, OP_RSHIFTNUM) and,
//!   under `CHRONICLE`, SIGHASH_CHRONICLE (original digest), selective malleability for tx
//!   versions above 1 and scriptSig signatures covering the scriptPubKey. The vectors pin the
//!   opcodes except LSHIFTNUM/RSHIFTNUM (implemented as sign-preserving magnitude shifts).

#[doc(hidden)]
pub mod asm;
pub mod checker;
pub mod error;
pub mod flags;
pub mod interpreter;
pub mod num;
pub mod opcodes;
pub mod sigcache;
pub mod sighash;
pub mod stack;

pub use checker::{NullChecker, SignatureChecker, TxSignatureChecker};
pub use error::ScriptError;
pub use flags::{flags_for_height, utxo_flags, ActivationHeights, FlagsError, ScriptFlags};
pub use interpreter::{eval_script, eval_script_signing, is_p2sh, is_push_only, ScriptLimits};
pub use sigcache::SigCache;
pub use sighash::{signature_hash, signature_hash_forkid, signature_hash_original, SigHashCache};

use num::cast_to_bool;
use opcodes::{instructions, OP_1, OP_16, OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY, OP_CHECKSIG, OP_CHECKSIGVERIFY};
use stack::ScriptStack;

/// Sigops a bare CHECKMULTISIG counts for when its key count is not known (legacy counting).
pub const MAX_PUBKEYS_PER_MULTISIG_LEGACY_COUNT: u64 = 20;

/// Verifies that `script_sig` satisfies `script_pubkey` under `flags`, with SV Node's consensus
/// limits ([`ScriptLimits::CONSENSUS`]).
pub fn verify_script<C: SignatureChecker + ?Sized>(
    script_sig: &[u8],
    script_pubkey: &[u8],
    flags: ScriptFlags,
    checker: &C,
) -> Result<(), ScriptError> {
    verify_script_with_limits(script_sig, script_pubkey, flags, checker, &ScriptLimits::CONSENSUS)
}

/// [`verify_script`] with explicit post-Genesis limits (policy or consensus).
pub fn verify_script_with_limits<C: SignatureChecker + ?Sized>(
    script_sig: &[u8],
    script_pubkey: &[u8],
    flags: ScriptFlags,
    checker: &C,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    let flags = relax_for_chronicle(flags, checker);
    if flags.contains(ScriptFlags::SIGPUSHONLY) && !is_push_only(script_sig) {
        return Err(ScriptError::SigPushOnly);
    }
    let after_genesis = flags.contains(ScriptFlags::UTXO_AFTER_GENESIS);
    // Pre-Genesis stacks are bounded by 1,000 elements of at most 520 bytes instead.
    let memory = if after_genesis { limits.max_stack_memory } else { u64::MAX };
    let mut stack = ScriptStack::new(memory);

    // Post-Chronicle, a signature checked in the scriptSig signs the scriptPubKey as well.
    let suffix = if flags.contains(ScriptFlags::CHRONICLE) { script_pubkey } else { &[] };
    eval_script_signing(&mut stack, script_sig, suffix, flags, checker, limits)?;
    // BIP16 (pre-Genesis UTXOs only): keep the scriptSig's result to evaluate the redeem script.
    let p2sh = flags.contains(ScriptFlags::P2SH) && !after_genesis && is_p2sh(script_pubkey);
    let saved = if p2sh { Some(stack.snapshot()) } else { None };

    eval_script(&mut stack, script_pubkey, flags, checker, limits)?;
    if !stack.elements().last().is_some_and(|top| cast_to_bool(top)) {
        return Err(ScriptError::EvalFalse);
    }

    if let Some(saved) = saved {
        if !is_push_only(script_sig) {
            return Err(ScriptError::SigPushOnly);
        }
        stack.restore(saved)?;
        let redeem_script = stack.pop()?;
        eval_script(&mut stack, &redeem_script, flags, checker, limits)?;
        if !stack.elements().last().is_some_and(|top| cast_to_bool(top)) {
            return Err(ScriptError::EvalFalse);
        }
    }

    if flags.contains(ScriptFlags::CLEANSTACK) && stack.len() != 1 {
        return Err(ScriptError::CleanStack);
    }
    Ok(())
}

/// Chronicle's "selective malleability": with the CHRONICLE flag and a transaction version above
/// 1, the anti-malleability rules are not enforced (svnode-protocol.md §7.3).
fn relax_for_chronicle<C: SignatureChecker + ?Sized>(flags: ScriptFlags, checker: &C) -> ScriptFlags {
    if flags.contains(ScriptFlags::CHRONICLE) && checker.tx_version().is_some_and(|v| v > 1) {
        flags.without(ScriptFlags::MALLEABILITY_RULES)
    } else {
        flags
    }
}

/// Legacy signature-operation count of a script (SV Node's `GetSigOpCount`), used for the
/// pre-Genesis per-transaction and per-block limits. With `accurate`, a CHECKMULTISIG preceded by
/// OP_1..OP_16 counts that many; otherwise 20. Counting stops at a truncated push.
pub fn count_sigops(script: &[u8], accurate: bool) -> u64 {
    let mut count = 0u64;
    let mut last = None;
    for ins in instructions(script) {
        let Ok(ins) = ins else { break };
        match ins.opcode {
            OP_CHECKSIG | OP_CHECKSIGVERIFY => count += 1,
            OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
                count += match last {
                    Some(op) if accurate && (OP_1..=OP_16).contains(&op) => u64::from(op - OP_1 + 1),
                    _ => MAX_PUBKEYS_PER_MULTISIG_LEGACY_COUNT,
                }
            }
            _ => {}
        }
        last = Some(ins.opcode);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigop_counting() {
        assert_eq!(count_sigops(&[0x76, 0xa9, 0xac], true), 1);
        assert_eq!(count_sigops(&[0x52, 0xae], true), 2);
        assert_eq!(count_sigops(&[0x52, 0xae], false), 20);
        assert_eq!(count_sigops(&[0xac, 0x4c], true), 1);
    }

    #[test]
    fn never_panics_on_arbitrary_scripts() {
        // A deterministic sweep of short byte strings through both eras and common flags.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let mut script = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 24) {
                script.push((seed >> (k % 8 * 8)) as u8 ^ (k as u8).wrapping_mul(37));
            }
            for flags in [ScriptFlags::STANDARD, ScriptFlags::STANDARD | ScriptFlags::UTXO_AFTER_GENESIS] {
                let _ = verify_script(&script, &script, flags, &NullChecker);
                let _ = verify_script(&[], &script, flags, &NullChecker);
            }
        }
    }

    #[test]
    fn deadline_stops_long_scripts() {
        use std::time::Instant;
        // 4,000 x (1 DROP) with a deadline already passed.
        let script: Vec<u8> = std::iter::repeat_n([0x51, 0x75], 4000).flatten().chain([0x51]).collect();
        let flags = ScriptFlags::UTXO_AFTER_GENESIS;
        assert_eq!(verify_script(&[], &script, flags, &NullChecker), Ok(()));
        let limits = ScriptLimits::CONSENSUS.with_deadline(Instant::now());
        assert_eq!(verify_script_with_limits(&[], &script, flags, &NullChecker, &limits), Err(ScriptError::TimedOut));
    }

    #[test]
    fn chronicle_numeric_shifts() {
        let flags = ScriptFlags::UTXO_AFTER_GENESIS | ScriptFlags::UTXO_AFTER_CHRONICLE;
        let run = |text: &str| verify_script(&[], &asm::parse(text).expect("test script parses"), flags, &NullChecker);
        assert_eq!(run("3 2 LSHIFTNUM 12 EQUAL"), Ok(()));
        assert_eq!(run("-3 2 LSHIFTNUM -12 EQUAL"), Ok(()));
        assert_eq!(run("13 2 RSHIFTNUM 3 EQUAL"), Ok(()));
        assert_eq!(run("-13 2 RSHIFTNUM -3 EQUAL"), Ok(()));
        assert_eq!(run("1 100 RSHIFTNUM 0 EQUAL"), Ok(()));
        assert_eq!(run("1 -1 LSHIFTNUM"), Err(ScriptError::InvalidNumberRange));
        // A shift that would need ~256 MB is refused before allocating.
        assert_eq!(run("1 0x04 0x00000070 LSHIFTNUM"), Err(ScriptError::StackSize));
        // Without the Chronicle UTXO flag they are NOPs.
        let genesis = ScriptFlags::UTXO_AFTER_GENESIS | ScriptFlags::DISCOURAGE_UPGRADABLE_NOPS;
        let script = asm::parse("1 2 LSHIFTNUM").expect("parses");
        assert_eq!(verify_script(&[], &script, genesis, &NullChecker), Err(ScriptError::DiscourageUpgradableNops));
    }

    #[test]
    fn hostile_growth_is_bounded_after_genesis() {
        // 1 DUP CAT DUP CAT ... would double a buffer per pair; the stack budget stops it.
        let mut script = vec![0x51];
        for _ in 0..64 {
            script.extend_from_slice(&[0x76, 0x7e]);
        }
        let flags = ScriptFlags::UTXO_AFTER_GENESIS;
        assert_eq!(verify_script(&[], &script, flags, &NullChecker), Err(ScriptError::StackSize));
    }
}
