//! Script evaluation: SV Node's `EvalScript` for both eras, selected per input by
//! `UTXO_AFTER_GENESIS`.
//!
//! Bounds that keep hostile scripts cheap: before Genesis the classic limits (10,000-byte
//! scripts, 520-byte pushes, 500 counted opcodes, 1,000 stack elements, 4-byte numbers); after
//! Genesis the [`ScriptLimits`] (consensus values, except the stack memory budget which is ours to
//! choose, as SV Node's `-maxstackmemoryusageconsensus` is). Every operation is linear in its
//! operands except big-number MUL/DIV/MOD, whose operands the number-length limit bounds; every
//! allocation is checked against the stack budget first. Nothing here panics on any input.

use std::borrow::Cow;
use std::time::Instant;

use bitcoin_hashes::{hash160, ripemd160, sha1, sha256d, Hash};
use sha2::{Digest, Sha256};

use super::checker::{
    check_pubkey_encoding, check_signature_encoding, SignatureChecker, SEQUENCE_LOCKTIME_DISABLE_FLAG,
};
use super::error::ScriptError;
use super::flags::ScriptFlags;
use super::num::{
    cast_to_bool, encode_i64, minimally_encode, ScriptNum, LOCKTIME_NUM_LENGTH, MAX_SCRIPT_NUM_LENGTH_AFTER_CHRONICLE,
    MAX_SCRIPT_NUM_LENGTH_AFTER_GENESIS, MAX_SCRIPT_NUM_LENGTH_BEFORE_GENESIS,
};
use super::opcodes::*;
use super::sighash::SIGHASH_FORKID;
use super::stack::{ScriptStack, MAX_STACK_ELEMENTS_BEFORE_GENESIS};

/// Largest script before Genesis (SV Node `MAX_SCRIPT_SIZE_BEFORE_GENESIS`).
pub const MAX_SCRIPT_SIZE_BEFORE_GENESIS: usize = 10_000;
/// Largest push before Genesis (SV Node `MAX_SCRIPT_ELEMENT_SIZE_BEFORE_GENESIS`).
pub const MAX_SCRIPT_ELEMENT_SIZE_BEFORE_GENESIS: usize = 520;
/// Counted opcodes per script before Genesis (SV Node `MAX_OPS_PER_SCRIPT_BEFORE_GENESIS`).
pub const MAX_OPS_PER_SCRIPT_BEFORE_GENESIS: u64 = 500;
/// Keys per CHECKMULTISIG before Genesis (SV Node `MAX_PUBKEYS_PER_MULTISIG_BEFORE_GENESIS`).
pub const MAX_PUBKEYS_PER_MULTISIG_BEFORE_GENESIS: u64 = 20;
/// CHECKMULTISIG's key and signature counts are at most 4-byte numbers in every era.
const MULTISIG_COUNT_NUM_LENGTH: usize = 4;

/// Post-Genesis limits (pre-Genesis ones are fixed consensus constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Longest numeric operand in bytes (consensus 750,000; SV Node v1.0.13 policy 10,000).
    pub max_script_num_length: usize,
    /// Longest numeric operand for post-Chronicle UTXOs (consensus 32 MB).
    pub max_script_num_length_after_chronicle: usize,
    /// Byte budget over stack + altstack, including 32 bytes per element.
    pub max_stack_memory: u64,
    /// Counted opcodes per script (consensus: `u32::MAX`).
    pub max_ops_per_script: u64,
    /// Keys per CHECKMULTISIG (consensus: `i32::MAX`).
    pub max_pubkeys_per_multisig: u64,
    /// Largest script in bytes (consensus: `u32::MAX`; a transaction bounds it anyway).
    pub max_script_size: u64,
    /// Give up with [`ScriptError::TimedOut`] once this instant has passed (checked every
    /// [`DEADLINE_CHECK_INTERVAL`] opcodes, before each big-number multiply or divide, whose
    /// cost grows faster than linearly, and before hashing a large element). SV Node bounds validation time the same way
    /// (`-maxstdtxvalidationduration`).
    pub deadline: Option<Instant>,
}

/// Opcodes between two looks at the clock: a clock read costs about as much as a cheap opcode.
pub const DEADLINE_CHECK_INTERVAL: u64 = 256;
/// A hash over more bytes than this looks at the clock itself (64 kB hash in about 30 µs).
const LARGE_HASH_INPUT: usize = 64 * 1024;

impl ScriptLimits {
    /// SV Node's consensus limits, with the stack budget at SV Node's *policy* default of 100 MB
    /// (`DEFAULT_STACK_MEMORY_USAGE_POLICY_AFTER_GENESIS`): SV Node makes the consensus budget an
    /// operator setting, and an unbounded one would let one script exhaust our memory.
    pub const CONSENSUS: ScriptLimits = ScriptLimits {
        max_script_num_length: MAX_SCRIPT_NUM_LENGTH_AFTER_GENESIS,
        max_script_num_length_after_chronicle: MAX_SCRIPT_NUM_LENGTH_AFTER_CHRONICLE,
        max_stack_memory: 100 * 1_000_000,
        max_ops_per_script: u32::MAX as u64,
        max_pubkeys_per_multisig: i32::MAX as u64,
        max_script_size: u32::MAX as u64,
        deadline: None,
    };

    /// These limits, giving up at `deadline`.
    pub fn with_deadline(self, deadline: Instant) -> Self {
        ScriptLimits { deadline: Some(deadline), ..self }
    }

    #[inline]
    fn check_deadline(&self) -> Result<(), ScriptError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(ScriptError::TimedOut),
            _ => Ok(()),
        }
    }
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self::CONSENSUS
    }
}

/// True if the script is only pushes (opcodes up to OP_16) and parses completely.
pub fn is_push_only(script: &[u8]) -> bool {
    instructions(script).all(|i| matches!(i, Ok(ins) if ins.opcode <= OP_16))
}

/// BIP16 pattern: `OP_HASH160 <20 bytes> OP_EQUAL`.
pub fn is_p2sh(script: &[u8]) -> bool {
    script.len() == 23 && script[0] == OP_HASH160 && script[1] == 0x14 && script[22] == OP_EQUAL
}

/// SV Node's `CheckMinimalPush`: `data` pushed by `opcode` uses the shortest form.
fn check_minimal_push(data: &[u8], opcode: u8) -> bool {
    match data.len() {
        0 => opcode == OP_0,
        1 if (1..=16).contains(&data[0]) => false,
        1 if data[0] == 0x81 => false,
        n if n <= 75 => opcode as usize == n,
        n if n <= 255 => opcode == OP_PUSHDATA1,
        n if n <= 65_535 => opcode == OP_PUSHDATA2,
        _ => true,
    }
}

/// The push encoding of `data` as `CScript() << data` writes it (FindAndDelete's pattern).
fn push_encoding(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5);
    match data.len() {
        n if n < OP_PUSHDATA1 as usize => out.push(n as u8),
        n if n <= 0xff => out.extend_from_slice(&[OP_PUSHDATA1, n as u8]),
        n if n <= 0xffff => {
            out.push(OP_PUSHDATA2);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        n => {
            out.push(OP_PUSHDATA4);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(data);
    out
}

/// SV Node's `FindAndDelete`: removes every occurrence of `pattern` that starts on an
/// instruction boundary.
pub fn find_and_delete<'a>(script: &'a [u8], pattern: &[u8]) -> Cow<'a, [u8]> {
    if pattern.is_empty() || script.len() < pattern.len() {
        return Cow::Borrowed(script);
    }
    let mut result: Option<Vec<u8>> = None;
    let mut pc = 0;
    let mut kept_from = 0;
    loop {
        let mut cut = pc;
        while script.len() - cut >= pattern.len() && script[cut..].starts_with(pattern) {
            cut += pattern.len();
        }
        if cut != pc {
            let r = result.get_or_insert_with(|| Vec::with_capacity(script.len()));
            r.extend_from_slice(&script[kept_from..pc]);
            kept_from = cut;
            pc = cut;
        }
        match read_op(script, &mut pc) {
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    match result {
        Some(mut r) => {
            r.extend_from_slice(&script[kept_from..]);
            Cow::Owned(r)
        }
        None => Cow::Borrowed(script),
    }
}

/// The script code a signature signs: the script from the last OP_CODESEPARATOR, with the
/// signature itself removed unless it is a FORKID signature verified under SIGHASH_FORKID.
fn cleanup_script_code<'a>(code: Cow<'a, [u8]>, sig: &[u8], flags: ScriptFlags) -> Cow<'a, [u8]> {
    let forkid = sig.last().is_some_and(|&h| u32::from(h) & SIGHASH_FORKID != 0);
    if flags.contains(ScriptFlags::SIGHASH_FORKID) && forkid {
        return code;
    }
    let pattern = push_encoding(sig);
    match find_and_delete(&code, &pattern) {
        Cow::Borrowed(_) => code,
        Cow::Owned(v) => Cow::Owned(v),
    }
}

/// Bit-shift of a byte string read as one big-endian bit string; length is kept.
fn shift_bytes(data: &mut [u8], n: &ScriptNum, left: bool) {
    let len = data.len();
    let total_bits = (len as u64).saturating_mul(8);
    let n = n.to_i64_saturating().max(0) as u64;
    if n >= total_bits {
        data.iter_mut().for_each(|b| *b = 0);
        return;
    }
    let byte_shift = (n / 8) as usize;
    let bit_shift = (n % 8) as u32;
    let src = data.to_vec();
    let get = |i: isize| -> u8 {
        if i < 0 || i as usize >= len {
            0
        } else {
            src[i as usize]
        }
    };
    for (i, out) in data.iter_mut().enumerate() {
        let i = i as isize;
        let bs = byte_shift as isize;
        *out = if left {
            let hi = get(i + bs);
            let lo = get(i + bs + 1);
            if bit_shift == 0 {
                hi
            } else {
                (hi << bit_shift) | (lo >> (8 - bit_shift))
            }
        } else {
            let lo = get(i - bs);
            let hi = get(i - bs - 1);
            if bit_shift == 0 {
                lo
            } else {
                (lo >> bit_shift) | (hi << (8 - bit_shift))
            }
        };
    }
}

/// Evaluates one script on `stack` (SV Node's `EvalScript`). The altstack starts empty.
pub fn eval_script<C: SignatureChecker + ?Sized>(
    stack: &mut ScriptStack,
    script: &[u8],
    flags: ScriptFlags,
    checker: &C,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    eval_script_signing(stack, script, &[], flags, checker, limits)
}

/// [`eval_script`] where signature checks sign the script code followed by `code_suffix`
/// (post-Chronicle, a CHECKSIG in a scriptSig signs the scriptPubKey too).
pub fn eval_script_signing<C: SignatureChecker + ?Sized>(
    stack: &mut ScriptStack,
    script: &[u8],
    code_suffix: &[u8],
    flags: ScriptFlags,
    checker: &C,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    stack.clear_alt();
    let after_genesis = flags.contains(ScriptFlags::UTXO_AFTER_GENESIS);
    let after_chronicle = after_genesis && flags.contains(ScriptFlags::UTXO_AFTER_CHRONICLE);
    let (max_num_len, max_ops, max_pubkeys, max_script_size) = if after_genesis {
        (
            if after_chronicle { limits.max_script_num_length_after_chronicle } else { limits.max_script_num_length },
            limits.max_ops_per_script,
            limits.max_pubkeys_per_multisig,
            limits.max_script_size,
        )
    } else {
        (
            MAX_SCRIPT_NUM_LENGTH_BEFORE_GENESIS,
            MAX_OPS_PER_SCRIPT_BEFORE_GENESIS,
            MAX_PUBKEYS_PER_MULTISIG_BEFORE_GENESIS,
            MAX_SCRIPT_SIZE_BEFORE_GENESIS as u64,
        )
    };
    if script.len() as u64 > max_script_size {
        return Err(ScriptError::ScriptSize);
    }
    let minimal = flags.contains(ScriptFlags::MINIMALDATA);
    let discourage_nops = flags.contains(ScriptFlags::DISCOURAGE_UPGRADABLE_NOPS);
    let num = |e: &[u8]| ScriptNum::decode(e, minimal, max_num_len);

    let mut pc = 0usize;
    let mut code_start = 0usize;
    let mut op_count = 0u64;
    let mut steps = 0u64;
    // vfExec / vfElse of SV Node, plus a count of `false` entries so "executing?" is O(1).
    let mut exec: Vec<bool> = Vec::new();
    let mut else_seen: Vec<bool> = Vec::new();
    let mut false_count = 0usize;
    // Post-Genesis OP_RETURN inside an executed IF: stop executing, keep checking the IF grammar.
    let mut returned_in_branch = false;

    while pc < script.len() {
        let executing = false_count == 0 && !returned_in_branch;
        steps += 1;
        if steps % DEADLINE_CHECK_INTERVAL == 0 {
            limits.check_deadline()?;
        }
        let Some(Ok(Instruction { opcode, data })) = read_op(script, &mut pc) else {
            return Err(ScriptError::BadOpcode);
        };
        if !after_genesis && data.len() > MAX_SCRIPT_ELEMENT_SIZE_BEFORE_GENESIS {
            return Err(ScriptError::PushSize);
        }
        if opcode > OP_16 {
            op_count += 1;
            if op_count > max_ops {
                return Err(ScriptError::OpCount);
            }
        }
        if (opcode == OP_2MUL || opcode == OP_2DIV) && !after_chronicle && (!after_genesis || executing) {
            return Err(ScriptError::DisabledOpcode);
        }
        if returned_in_branch && opcode == OP_RETURN && exec.is_empty() {
            return Ok(());
        }

        // Post-Genesis, VERIF/VERNOTIF are plain unknown opcodes: harmless unless executed.
        if !executing && after_genesis && !after_chronicle && (opcode == OP_VERIF || opcode == OP_VERNOTIF) {
            continue;
        }

        if executing && opcode <= OP_PUSHDATA4 {
            if minimal && !check_minimal_push(data, opcode) {
                return Err(ScriptError::MinimalData);
            }
            stack.push_slice(data)?;
        } else if executing || (OP_IF..=OP_ENDIF).contains(&opcode) {
            match opcode {
                OP_1NEGATE | OP_1..=OP_16 => {
                    stack.push(encode_i64(i64::from(opcode) - i64::from(OP_1 - 1)))?;
                }
                OP_NOP => {}
                OP_CHECKLOCKTIMEVERIFY => {
                    if !flags.contains(ScriptFlags::CHECKLOCKTIMEVERIFY) || after_genesis {
                        if discourage_nops {
                            return Err(ScriptError::DiscourageUpgradableNops);
                        }
                    } else {
                        let lock_time = ScriptNum::decode(stack.top(0)?, minimal, LOCKTIME_NUM_LENGTH)?;
                        if lock_time.is_negative() {
                            return Err(ScriptError::NegativeLocktime);
                        }
                        if !checker.check_lock_time(lock_time.to_i64_saturating()) {
                            return Err(ScriptError::UnsatisfiedLocktime);
                        }
                    }
                }
                OP_CHECKSEQUENCEVERIFY => {
                    if !flags.contains(ScriptFlags::CHECKSEQUENCEVERIFY) || after_genesis {
                        if discourage_nops {
                            return Err(ScriptError::DiscourageUpgradableNops);
                        }
                    } else {
                        let sequence = ScriptNum::decode(stack.top(0)?, minimal, LOCKTIME_NUM_LENGTH)?;
                        if sequence.is_negative() {
                            return Err(ScriptError::NegativeLocktime);
                        }
                        let sequence = sequence.to_i64_saturating();
                        // With the disable bit set, CSV is a NOP (room for future soft forks).
                        if sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG == 0 && !checker.check_sequence(sequence) {
                            return Err(ScriptError::UnsatisfiedLocktime);
                        }
                    }
                }
                OP_VER if after_chronicle => {
                    let version = checker.tx_version().ok_or(ScriptError::BadOpcode)?;
                    stack.push(version.to_le_bytes().to_vec())?;
                }
                OP_VERIF | OP_VERNOTIF if after_chronicle => {
                    let mut value = false;
                    if executing {
                        let version = checker.tx_version().ok_or(ScriptError::BadOpcode)?;
                        let top = stack.top(0).map_err(|_| ScriptError::UnbalancedConditional)?;
                        value = (top.as_slice() == version.to_le_bytes()) == (opcode == OP_VERIF);
                        stack.drop_top()?;
                    }
                    exec.push(value);
                    else_seen.push(false);
                    if !value {
                        false_count += 1;
                    }
                }
                OP_2MUL | OP_2DIV if after_chronicle => {
                    let n = num(stack.top(0)?)?;
                    let two = ScriptNum::Small(2);
                    let r = if opcode == OP_2MUL { n.mul(&two) } else { n.div(&two).ok_or(ScriptError::DivByZero)? };
                    stack.drop_top()?;
                    stack.push(r.encode())?;
                }
                OP_SUBSTR if after_chronicle => {
                    need(stack, 3)?;
                    let len = num(stack.top(0)?)?.to_i64_saturating();
                    let begin = num(stack.top(1)?)?.to_i64_saturating();
                    let size = stack.top(2)?.len() as i64;
                    if begin < 0 || len < 0 || begin.saturating_add(len) > size {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stack.drop_top()?;
                    stack.drop_top()?;
                    let (begin, len) = (begin as usize, len as usize);
                    stack.modify_top(0, |e| {
                        e.truncate(begin + len);
                        e.drain(..begin);
                    })?;
                }
                OP_LEFT | OP_RIGHT if after_chronicle => {
                    need(stack, 2)?;
                    let n = num(stack.top(0)?)?.to_i64_saturating();
                    let size = stack.top(1)?.len() as i64;
                    if n < 0 || n > size {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stack.drop_top()?;
                    let n = n as usize;
                    stack.modify_top(0, |e| {
                        if opcode == OP_LEFT {
                            e.truncate(n);
                        } else {
                            e.drain(..e.len() - n);
                        }
                    })?;
                }
                OP_LSHIFTNUM | OP_RSHIFTNUM if after_chronicle => {
                    need(stack, 2)?;
                    let a = num(stack.top(1)?)?;
                    let n = num(stack.top(0)?)?;
                    if n.is_negative() {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    let bits = n.to_i64_saturating() as u64;
                    if opcode == OP_LSHIFTNUM && !a.is_zero() {
                        // The result needs about bits/8 more bytes: refuse before allocating them.
                        stack.reserve((bits / 8).saturating_add(stack.top(1)?.len() as u64 + 1))?;
                        limits.check_deadline()?;
                    }
                    let r = a.shift(bits, opcode == OP_LSHIFTNUM);
                    stack.drop_top()?;
                    stack.drop_top()?;
                    stack.push(r.encode())?;
                }
                OP_NOP1 | OP_NOP4..=OP_NOP10 => {
                    if discourage_nops {
                        return Err(ScriptError::DiscourageUpgradableNops);
                    }
                }
                OP_IF | OP_NOTIF => {
                    let mut value = false;
                    if executing {
                        let top = stack.top(0).map_err(|_| ScriptError::UnbalancedConditional)?;
                        if flags.contains(ScriptFlags::MINIMALIF) && (top.len() > 1 || (top.len() == 1 && top[0] != 1))
                        {
                            return Err(ScriptError::MinimalIf);
                        }
                        value = cast_to_bool(top) == (opcode == OP_IF);
                        stack.drop_top()?;
                    }
                    exec.push(value);
                    else_seen.push(false);
                    if !value {
                        false_count += 1;
                    }
                }
                OP_ELSE => {
                    let (Some(value), Some(seen)) = (exec.last_mut(), else_seen.last_mut()) else {
                        return Err(ScriptError::UnbalancedConditional);
                    };
                    // Post-Genesis an IF has at most one ELSE.
                    if *seen && after_genesis {
                        return Err(ScriptError::UnbalancedConditional);
                    }
                    if *value {
                        false_count += 1;
                    } else {
                        false_count -= 1;
                    }
                    *value = !*value;
                    *seen = true;
                }
                OP_ENDIF => {
                    let Some(value) = exec.pop() else {
                        return Err(ScriptError::UnbalancedConditional);
                    };
                    else_seen.pop();
                    if !value {
                        false_count -= 1;
                    }
                }
                OP_VERIFY => {
                    if !cast_to_bool(stack.top(0)?) {
                        return Err(ScriptError::Verify);
                    }
                    stack.drop_top()?;
                }
                OP_RETURN => {
                    if !after_genesis {
                        return Err(ScriptError::OpReturn);
                    }
                    if exec.is_empty() {
                        // Post-Genesis top-level OP_RETURN ends evaluation; the rest is not parsed.
                        return Ok(());
                    }
                    returned_in_branch = true;
                }

                // Stack operations.
                OP_TOALTSTACK => stack.to_alt()?,
                OP_FROMALTSTACK => stack.from_alt()?,
                OP_2DROP => {
                    need(stack, 2)?;
                    stack.drop_top()?;
                    stack.drop_top()?;
                }
                OP_2DUP => {
                    need(stack, 2)?;
                    stack.dup(1)?;
                    stack.dup(1)?;
                }
                OP_3DUP => {
                    need(stack, 3)?;
                    stack.dup(2)?;
                    stack.dup(2)?;
                    stack.dup(2)?;
                }
                OP_2OVER => {
                    need(stack, 4)?;
                    stack.dup(3)?;
                    stack.dup(3)?;
                }
                OP_2ROT => {
                    need(stack, 6)?;
                    let a = stack.remove(5)?;
                    let b = stack.remove(4)?;
                    stack.push(a)?;
                    stack.push(b)?;
                }
                OP_2SWAP => {
                    need(stack, 4)?;
                    stack.swap(3, 1)?;
                    stack.swap(2, 0)?;
                }
                OP_IFDUP => {
                    if cast_to_bool(stack.top(0)?) {
                        stack.dup(0)?;
                    }
                }
                OP_DEPTH => {
                    let depth = stack.len() as i64;
                    stack.push(encode_i64(depth))?;
                }
                OP_DROP => stack.drop_top()?,
                OP_DUP => stack.dup(0)?,
                OP_NIP => {
                    need(stack, 2)?;
                    stack.remove(1)?;
                }
                OP_OVER => {
                    need(stack, 2)?;
                    stack.dup(1)?;
                }
                OP_PICK | OP_ROLL => {
                    need(stack, 2)?;
                    let n = num(stack.top(0)?)?.to_i64_saturating();
                    stack.drop_top()?;
                    if n < 0 || n >= stack.len() as i64 {
                        return Err(ScriptError::InvalidStackOperation);
                    }
                    let n = n as usize;
                    if opcode == OP_PICK {
                        stack.dup(n)?;
                    } else {
                        let e = stack.remove(n)?;
                        stack.push(e)?;
                    }
                }
                OP_ROT => {
                    need(stack, 3)?;
                    stack.swap(2, 1)?;
                    stack.swap(1, 0)?;
                }
                OP_SWAP => {
                    need(stack, 2)?;
                    stack.swap(0, 1)?;
                }
                OP_TUCK => {
                    need(stack, 2)?;
                    let top = stack.top(0)?.clone();
                    stack.insert(2, top)?;
                }
                OP_SIZE => {
                    let size = stack.top(0)?.len() as i64;
                    stack.push(encode_i64(size))?;
                }

                // Byte-string operations.
                OP_CAT => {
                    need(stack, 2)?;
                    let total = stack.top(0)?.len() + stack.top(1)?.len();
                    if !after_genesis && total > MAX_SCRIPT_ELEMENT_SIZE_BEFORE_GENESIS {
                        return Err(ScriptError::PushSize);
                    }
                    let tail = stack.pop()?;
                    stack.reserve(tail.len() as u64)?;
                    stack.modify_top(0, |e| e.extend_from_slice(&tail))?;
                }
                OP_SPLIT => {
                    need(stack, 2)?;
                    let position = num(stack.top(0)?)?.to_i64_saturating();
                    let len = stack.top(1)?.len();
                    if position < 0 || position as u64 > len as u64 {
                        return Err(ScriptError::InvalidSplitRange);
                    }
                    stack.drop_top()?;
                    let tail = stack.modify_top(0, |e| e.split_off(position as usize))?;
                    stack.push(tail)?;
                }
                OP_NUM2BIN => {
                    need(stack, 2)?;
                    let size = num(stack.top(0)?)?.to_i64_saturating();
                    if size < 0 || (!after_genesis && size > MAX_SCRIPT_ELEMENT_SIZE_BEFORE_GENESIS as i64) {
                        return Err(ScriptError::PushSize);
                    }
                    let size = size as u64;
                    stack.drop_top()?;
                    let raw = minimally_encode(stack.pop()?);
                    if raw.len() as u64 > size {
                        return Err(ScriptError::ImpossibleEncoding);
                    }
                    stack.reserve(size)?;
                    let mut out = raw;
                    if out.len() as u64 != size {
                        let sign = match out.last_mut() {
                            Some(l) => {
                                let s = *l & 0x80;
                                *l &= 0x7f;
                                s
                            }
                            None => 0,
                        };
                        out.resize(size as usize - 1, 0);
                        out.push(sign);
                    }
                    stack.push(out)?;
                }
                OP_BIN2NUM => {
                    let e = stack.pop()?;
                    let n = minimally_encode(e);
                    if n.len() > max_num_len {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stack.push(n)?;
                }
                OP_INVERT => {
                    stack.modify_top(0, |e| e.iter_mut().for_each(|b| *b = !*b))?;
                }
                OP_AND | OP_OR | OP_XOR => {
                    need(stack, 2)?;
                    if stack.top(0)?.len() != stack.top(1)?.len() {
                        return Err(ScriptError::InvalidOperandSize);
                    }
                    let b = stack.pop()?;
                    stack.modify_top(0, |a| {
                        for (x, y) in a.iter_mut().zip(&b) {
                            match opcode {
                                OP_AND => *x &= y,
                                OP_OR => *x |= y,
                                _ => *x ^= y,
                            }
                        }
                    })?;
                }
                OP_LSHIFT | OP_RSHIFT => {
                    need(stack, 2)?;
                    let n = num(stack.top(0)?)?;
                    if n.is_negative() {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stack.drop_top()?;
                    stack.modify_top(0, |e| shift_bytes(e, &n, opcode == OP_LSHIFT))?;
                }
                OP_EQUAL | OP_EQUALVERIFY => {
                    need(stack, 2)?;
                    let equal = stack.top(0)? == stack.top(1)?;
                    stack.drop_top()?;
                    stack.drop_top()?;
                    if opcode == OP_EQUALVERIFY {
                        if !equal {
                            return Err(ScriptError::EqualVerify);
                        }
                    } else {
                        stack.push_bool(equal)?;
                    }
                }

                // Numeric operations.
                OP_1ADD | OP_1SUB | OP_NEGATE | OP_ABS | OP_NOT | OP_0NOTEQUAL => {
                    let n = num(stack.top(0)?)?;
                    let r = match opcode {
                        OP_1ADD => n.add(&ScriptNum::Small(1)),
                        OP_1SUB => n.sub(&ScriptNum::Small(1)),
                        OP_NEGATE => n.neg(),
                        OP_ABS => n.abs(),
                        OP_NOT => ScriptNum::Small(i64::from(n.is_zero())),
                        _ => ScriptNum::Small(i64::from(!n.is_zero())),
                    };
                    stack.drop_top()?;
                    stack.push(r.encode())?;
                }
                OP_ADD
                | OP_SUB
                | OP_MUL
                | OP_DIV
                | OP_MOD
                | OP_BOOLAND
                | OP_BOOLOR
                | OP_NUMEQUAL
                | OP_NUMEQUALVERIFY
                | OP_NUMNOTEQUAL
                | OP_LESSTHAN
                | OP_GREATERTHAN
                | OP_LESSTHANOREQUAL
                | OP_GREATERTHANOREQUAL
                | OP_MIN
                | OP_MAX => {
                    need(stack, 2)?;
                    let a = num(stack.top(1)?)?;
                    let b = num(stack.top(0)?)?;
                    if matches!(a, ScriptNum::Big(_)) || matches!(b, ScriptNum::Big(_)) {
                        limits.check_deadline()?;
                    }
                    let flag = |v: bool| ScriptNum::Small(i64::from(v));
                    let r = match opcode {
                        OP_ADD => a.add(&b),
                        OP_SUB => a.sub(&b),
                        OP_MUL => a.mul(&b),
                        OP_DIV => a.div(&b).ok_or(ScriptError::DivByZero)?,
                        OP_MOD => a.rem(&b).ok_or(ScriptError::ModByZero)?,
                        OP_BOOLAND => flag(!a.is_zero() && !b.is_zero()),
                        OP_BOOLOR => flag(!a.is_zero() || !b.is_zero()),
                        OP_NUMEQUAL | OP_NUMEQUALVERIFY => flag(a == b),
                        OP_NUMNOTEQUAL => flag(a != b),
                        OP_LESSTHAN => flag(a < b),
                        OP_GREATERTHAN => flag(a > b),
                        OP_LESSTHANOREQUAL => flag(a <= b),
                        OP_GREATERTHANOREQUAL => flag(a >= b),
                        OP_MIN => a.min(b),
                        _ => a.max(b),
                    };
                    stack.drop_top()?;
                    stack.drop_top()?;
                    if opcode == OP_NUMEQUALVERIFY {
                        if r.is_zero() {
                            return Err(ScriptError::NumEqualVerify);
                        }
                    } else {
                        stack.push(r.encode())?;
                    }
                }
                OP_WITHIN => {
                    need(stack, 3)?;
                    let x = num(stack.top(2)?)?;
                    let min = num(stack.top(1)?)?;
                    let max = num(stack.top(0)?)?;
                    let within = min <= x && x < max;
                    for _ in 0..3 {
                        stack.drop_top()?;
                    }
                    stack.push_bool(within)?;
                }

                // Crypto.
                OP_RIPEMD160 | OP_SHA1 | OP_SHA256 | OP_HASH160 | OP_HASH256 => {
                    let e = stack.pop()?;
                    // Hashing megabytes takes milliseconds: look at the clock first.
                    if e.len() > LARGE_HASH_INPUT {
                        limits.check_deadline()?;
                    }
                    let digest: Vec<u8> = match opcode {
                        OP_RIPEMD160 => ripemd160::Hash::hash(&e).to_byte_array().to_vec(),
                        OP_SHA1 => sha1::Hash::hash(&e).to_byte_array().to_vec(),
                        OP_SHA256 => Sha256::digest(&e).to_vec(),
                        OP_HASH160 => hash160::Hash::hash(&e).to_byte_array().to_vec(),
                        _ => sha256d::Hash::hash(&e).to_byte_array().to_vec(),
                    };
                    stack.push(digest)?;
                }
                OP_CODESEPARATOR => code_start = pc,
                OP_CHECKSIG | OP_CHECKSIGVERIFY => {
                    need(stack, 2)?;
                    // A signature check hashes the whole script code: look at the clock each time.
                    limits.check_deadline()?;
                    let ok = {
                        let sig = stack.top(1)?;
                        let pubkey = stack.top(0)?;
                        let code = cleanup_script_code(script_code(script, code_start, code_suffix), sig, flags);
                        check_signature_encoding(sig, flags)?;
                        check_pubkey_encoding(pubkey, flags)?;
                        let ok = !sig.is_empty() && checker.check_sig(sig, pubkey, &code, flags);
                        if !ok && flags.contains(ScriptFlags::NULLFAIL) && !sig.is_empty() {
                            return Err(ScriptError::SigNullFail);
                        }
                        ok
                    };
                    stack.drop_top()?;
                    stack.drop_top()?;
                    if opcode == OP_CHECKSIGVERIFY {
                        if !ok {
                            return Err(ScriptError::CheckSigVerify);
                        }
                    } else {
                        stack.push_bool(ok)?;
                    }
                }
                OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
                    let ok = check_multisig(
                        stack,
                        script_code(script, code_start, code_suffix),
                        flags,
                        checker,
                        limits,
                        OpBudget { max_pubkeys, max_ops, op_count: &mut op_count },
                    )?;
                    if opcode == OP_CHECKMULTISIGVERIFY {
                        if !ok {
                            return Err(ScriptError::CheckMultisigVerify);
                        }
                    } else {
                        stack.push_bool(ok)?;
                    }
                }
                _ => return Err(ScriptError::BadOpcode),
            }
        }

        if !after_genesis && stack.total_len() > MAX_STACK_ELEMENTS_BEFORE_GENESIS {
            return Err(ScriptError::StackSize);
        }
    }
    if !exec.is_empty() {
        return Err(ScriptError::UnbalancedConditional);
    }
    Ok(())
}

/// The script from the last OP_CODESEPARATOR to the end, followed by `suffix`.
fn script_code<'a>(script: &'a [u8], code_start: usize, suffix: &[u8]) -> Cow<'a, [u8]> {
    let code = &script[code_start..];
    if suffix.is_empty() {
        Cow::Borrowed(code)
    } else {
        Cow::Owned([code, suffix].concat())
    }
}

#[inline]
fn need(stack: &ScriptStack, n: usize) -> Result<(), ScriptError> {
    if stack.len() < n {
        Err(ScriptError::InvalidStackOperation)
    } else {
        Ok(())
    }
}

/// The era's multisig key limit and the script's opcode count, which CHECKMULTISIG adds its keys to.
struct OpBudget<'a> {
    max_pubkeys: u64,
    max_ops: u64,
    op_count: &'a mut u64,
}

/// OP_CHECKMULTISIG(VERIFY) up to pushing its result; consumes its arguments and the dummy.
fn check_multisig<C: SignatureChecker + ?Sized>(
    stack: &mut ScriptStack,
    code: Cow<'_, [u8]>,
    flags: ScriptFlags,
    checker: &C,
    limits: &ScriptLimits,
    budget: OpBudget<'_>,
) -> Result<bool, ScriptError> {
    let OpBudget { max_pubkeys, max_ops, op_count } = budget;
    let minimal = flags.contains(ScriptFlags::MINIMALDATA);
    // Positions are 1-based depths, as in SV Node (`stacktop(-i)`).
    let mut i = 1usize;
    need(stack, i)?;
    let n_keys = ScriptNum::decode(stack.top(i - 1)?, minimal, MULTISIG_COUNT_NUM_LENGTH)?.to_i64_saturating();
    if n_keys < 0 || n_keys as u64 > max_pubkeys {
        return Err(ScriptError::PubkeyCount);
    }
    let mut n_keys = n_keys as usize;
    *op_count += n_keys as u64;
    if *op_count > max_ops {
        return Err(ScriptError::OpCount);
    }
    i += 1;
    let mut ikey = i;
    // Depth of the last key: with NULLFAIL, every item deeper than it (the signatures) must be
    // empty if the check fails.
    let mut ikey2 = n_keys + 2;
    i += n_keys;
    need(stack, i)?;
    let n_sigs = ScriptNum::decode(stack.top(i - 1)?, minimal, MULTISIG_COUNT_NUM_LENGTH)?.to_i64_saturating();
    if n_sigs < 0 || n_sigs as usize > n_keys {
        return Err(ScriptError::SigCount);
    }
    let mut n_sigs = n_sigs as usize;
    i += 1;
    let mut isig = i;
    i += n_sigs;
    need(stack, i)?;

    let mut script_code = code;
    for k in 0..n_sigs {
        script_code = cleanup_script_code(script_code, stack.top(isig + k - 1)?, flags);
    }

    let mut success = true;
    while success && n_sigs > 0 {
        limits.check_deadline()?;
        let sig = stack.top(isig - 1)?;
        let pubkey = stack.top(ikey - 1)?;
        check_signature_encoding(sig, flags)?;
        check_pubkey_encoding(pubkey, flags)?;
        if !sig.is_empty() && checker.check_sig(sig, pubkey, &script_code, flags) {
            isig += 1;
            n_sigs -= 1;
        }
        ikey += 1;
        n_keys -= 1;
        // More signatures left than keys: it cannot succeed any more.
        if n_sigs > n_keys {
            success = false;
        }
    }

    while i > 1 {
        i -= 1;
        if !success && flags.contains(ScriptFlags::NULLFAIL) && ikey2 == 0 && !stack.top(0)?.is_empty() {
            return Err(ScriptError::SigNullFail);
        }
        ikey2 = ikey2.saturating_sub(1);
        stack.drop_top()?;
    }
    // The historic extra argument; NULLDUMMY requires it empty.
    if flags.contains(ScriptFlags::NULLDUMMY) && !stack.top(0)?.is_empty() {
        return Err(ScriptError::SigNullDummy);
    }
    stack.drop_top()?;
    Ok(success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_delete_matches_on_boundaries_only() {
        assert_eq!(&*find_and_delete(&[0x01, 0x02, 0x01, 0x02], &[0x01, 0x02]), &[] as &[u8]);
        // 0x02 0x01 0x02 is one push; the pattern inside it is not on a boundary.
        assert_eq!(&*find_and_delete(&[0x02, 0x01, 0x02], &[0x01, 0x02]), &[0x02, 0x01, 0x02]);
        assert_eq!(&*find_and_delete(&[0x61, 0x00, 0x61], &[0x00]), &[0x61, 0x61]);
    }

    #[test]
    fn shifts() {
        let mut v = vec![0x80, 0x01];
        shift_bytes(&mut v, &ScriptNum::Small(1), true);
        assert_eq!(v, vec![0x00, 0x02]);
        let mut v = vec![0x80, 0x01];
        shift_bytes(&mut v, &ScriptNum::Small(9), false);
        assert_eq!(v, vec![0x00, 0x40]);
        let mut v = vec![0xff];
        shift_bytes(&mut v, &ScriptNum::Small(100), false);
        assert_eq!(v, vec![0]);
    }
}
