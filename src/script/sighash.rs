//! The two signature digests SV Node signs (svnode-protocol.md §7): the FORKID digest (BIP143
//! layout, fork id 0) and the original digest, including its historic SIGHASH_SINGLE result of
//! `1` when the input has no matching output.
//!
//! Invariants: digests are computed by streaming into SHA-256 — the transaction is never
//! re-serialized into a buffer — and the three per-transaction BIP143 hashes are computed at most
//! once per [`SigHashCache`], which every input of one transaction shares.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::flags::ScriptFlags;
use super::opcodes::{read_op, OP_CODESEPARATOR};
use crate::wire::{TxFields, TxOut};

/// Sign all outputs.
pub const SIGHASH_ALL: u32 = 0x01;
/// Sign no outputs.
pub const SIGHASH_NONE: u32 = 0x02;
/// Sign the output at the input's index.
pub const SIGHASH_SINGLE: u32 = 0x03;
/// Chronicle (SV Node 1.2): with FORKID, selects the original digest again ("OTDA").
pub const SIGHASH_CHRONICLE: u32 = 0x20;
/// Selects the FORKID digest when SIGHASH_FORKID is enabled by flags (UAHF).
pub const SIGHASH_FORKID: u32 = 0x40;
/// Sign only this input.
pub const SIGHASH_ANYONECANPAY: u32 = 0x80;
/// Bits of the hash type that select ALL/NONE/SINGLE (SV Node `GetBaseType`).
pub const SIGHASH_BASE_MASK: u32 = 0x1f;

/// The original digest's answer for an input with no matching SIGHASH_SINGLE output (or an
/// out-of-range input): the number one, as a little-endian `uint256`.
pub const SIGHASH_ONE: [u8; 32] = {
    let mut one = [0u8; 32];
    one[0] = 1;
    one
};

/// SHA-256d in progress.
struct Hasher(Sha256);

impl Hasher {
    fn new() -> Self {
        Hasher(Sha256::new())
    }
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    #[inline]
    fn put_compact_size(&mut self, n: u64) {
        let mut buf = [0u8; 9];
        let len = match n {
            0..=0xfc => {
                buf[0] = n as u8;
                1
            }
            0xfd..=0xffff => {
                buf[0] = 0xfd;
                buf[1..3].copy_from_slice(&(n as u16).to_le_bytes());
                3
            }
            0x1_0000..=0xffff_ffff => {
                buf[0] = 0xfe;
                buf[1..5].copy_from_slice(&(n as u32).to_le_bytes());
                5
            }
            _ => {
                buf[0] = 0xff;
                buf[1..9].copy_from_slice(&n.to_le_bytes());
                9
            }
        };
        self.0.update(&buf[..len]);
    }
    fn put_output(&mut self, out: &TxOut) {
        self.put(&out.value.to_le_bytes());
        self.put_compact_size(out.script_pubkey.len() as u64);
        self.put(&out.script_pubkey);
    }
    fn finish(self) -> [u8; 32] {
        let first = self.0.finalize();
        Sha256::digest(first).into()
    }
}

/// The per-transaction BIP143 hashes, computed on first use. Share one cache between all the
/// inputs of one transaction (and between threads verifying them); never reuse it for another
/// transaction — it does not know which transaction it was filled from.
#[derive(Debug, Default)]
pub struct SigHashCache {
    prevouts: OnceLock<[u8; 32]>,
    sequences: OnceLock<[u8; 32]>,
    outputs: OnceLock<[u8; 32]>,
}

impl SigHashCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn hash_prevouts(&self, tx: &TxFields) -> &[u8; 32] {
        self.prevouts.get_or_init(|| {
            let mut h = Hasher::new();
            for input in &tx.inputs {
                h.put(&input.prev_out.txid.0);
                h.put(&input.prev_out.vout.to_le_bytes());
            }
            h.finish()
        })
    }

    fn hash_sequences(&self, tx: &TxFields) -> &[u8; 32] {
        self.sequences.get_or_init(|| {
            let mut h = Hasher::new();
            for input in &tx.inputs {
                h.put(&input.sequence.to_le_bytes());
            }
            h.finish()
        })
    }

    fn hash_outputs(&self, tx: &TxFields) -> &[u8; 32] {
        self.outputs.get_or_init(|| {
            let mut h = Hasher::new();
            for out in &tx.outputs {
                h.put_output(out);
            }
            h.finish()
        })
    }
}

/// The FORKID (BIP143-style) digest of input `input_index` spending `amount` satoshis, signing
/// `script_code` with the full 32-bit `hash_type`. `input_index` must be a valid input index;
/// out-of-range indexes return [`SIGHASH_ONE`] rather than panic.
pub fn signature_hash_forkid(
    tx: &TxFields,
    input_index: usize,
    script_code: &[u8],
    amount: i64,
    hash_type: u32,
    cache: &SigHashCache,
) -> [u8; 32] {
    let Some(input) = tx.inputs.get(input_index) else {
        return SIGHASH_ONE;
    };
    let base = hash_type & SIGHASH_BASE_MASK;
    let anyone_can_pay = hash_type & SIGHASH_ANYONECANPAY != 0;
    const ZERO: [u8; 32] = [0; 32];

    let hash_prevouts = if anyone_can_pay { &ZERO } else { cache.hash_prevouts(tx) };
    let hash_sequence =
        if anyone_can_pay || base == SIGHASH_SINGLE || base == SIGHASH_NONE { &ZERO } else { cache.hash_sequences(tx) };
    let single_output;
    let hash_outputs = if base != SIGHASH_SINGLE && base != SIGHASH_NONE {
        cache.hash_outputs(tx)
    } else if base == SIGHASH_SINGLE && input_index < tx.outputs.len() {
        let mut h = Hasher::new();
        h.put_output(&tx.outputs[input_index]);
        single_output = h.finish();
        &single_output
    } else {
        &ZERO
    };

    let mut h = Hasher::new();
    h.put(&tx.version.to_le_bytes());
    h.put(hash_prevouts);
    h.put(hash_sequence);
    h.put(&input.prev_out.txid.0);
    h.put(&input.prev_out.vout.to_le_bytes());
    h.put_compact_size(script_code.len() as u64);
    h.put(script_code);
    h.put(&amount.to_le_bytes());
    h.put(&input.sequence.to_le_bytes());
    h.put(hash_outputs);
    h.put(&tx.lock_time.to_le_bytes());
    h.put(&hash_type.to_le_bytes());
    h.finish()
}

/// The original digest of input `input_index` signing `script_code` (whose OP_CODESEPARATORs
/// are left out, as SV Node's serializer does) with the full 32-bit `hash_type`.
pub fn signature_hash_original(tx: &TxFields, input_index: usize, script_code: &[u8], hash_type: u32) -> [u8; 32] {
    let base = hash_type & SIGHASH_BASE_MASK;
    if input_index >= tx.inputs.len() || (base == SIGHASH_SINGLE && input_index >= tx.outputs.len()) {
        return SIGHASH_ONE;
    }
    let anyone_can_pay = hash_type & SIGHASH_ANYONECANPAY != 0;

    let mut h = Hasher::new();
    h.put(&tx.version.to_le_bytes());

    let n_inputs = if anyone_can_pay { 1 } else { tx.inputs.len() };
    h.put_compact_size(n_inputs as u64);
    for i in 0..n_inputs {
        let n = if anyone_can_pay { input_index } else { i };
        let input = &tx.inputs[n];
        h.put(&input.prev_out.txid.0);
        h.put(&input.prev_out.vout.to_le_bytes());
        if n == input_index {
            put_script_without_codeseparators(&mut h, script_code);
        } else {
            h.put_compact_size(0);
        }
        let sequence =
            if n != input_index && (base == SIGHASH_SINGLE || base == SIGHASH_NONE) { 0 } else { input.sequence };
        h.put(&sequence.to_le_bytes());
    }

    let n_outputs = match base {
        SIGHASH_NONE => 0,
        SIGHASH_SINGLE => input_index + 1,
        _ => tx.outputs.len(),
    };
    h.put_compact_size(n_outputs as u64);
    for (n, out) in tx.outputs.iter().enumerate().take(n_outputs) {
        if base == SIGHASH_SINGLE && n != input_index {
            // A blanked output: value -1, empty script (`CTxOut()`).
            h.put(&(-1i64).to_le_bytes());
            h.put_compact_size(0);
        } else {
            h.put_output(out);
        }
    }
    h.put(&tx.lock_time.to_le_bytes());
    h.put(&hash_type.to_le_bytes());
    h.finish()
}

/// Writes `script` as var-bytes with every OP_CODESEPARATOR seen before any parse failure removed.
fn put_script_without_codeseparators(h: &mut Hasher, script: &[u8]) {
    let mut seps = 0usize;
    let mut pc = 0;
    while let Some(Ok(ins)) = read_op(script, &mut pc) {
        if ins.opcode == OP_CODESEPARATOR {
            seps += 1;
        }
    }
    h.put_compact_size((script.len() - seps) as u64);
    if seps == 0 {
        h.put(script);
        return;
    }
    let mut pc = 0;
    let mut start = 0;
    while let Some(Ok(ins)) = read_op(script, &mut pc) {
        if ins.opcode == OP_CODESEPARATOR {
            h.put(&script[start..pc - 1]);
            start = pc;
        }
    }
    h.put(&script[start..]);
}

/// Selects the digest as SV Node's `SignatureHash` does: the FORKID digest when SIGHASH_FORKID
/// is enabled by `flags` and set in `hash_type` — unless Chronicle is enabled and the type also
/// has [`SIGHASH_CHRONICLE`], which selects the original digest ("OTDA") — and the original
/// digest otherwise.
pub fn signature_hash(
    tx: &TxFields,
    input_index: usize,
    script_code: &[u8],
    amount: i64,
    hash_type: u32,
    flags: ScriptFlags,
    cache: &SigHashCache,
) -> [u8; 32] {
    let forkid = flags.contains(ScriptFlags::SIGHASH_FORKID) && hash_type & SIGHASH_FORKID != 0;
    let otda = flags.contains(ScriptFlags::CHRONICLE) && hash_type & SIGHASH_CHRONICLE != 0;
    if forkid && !otda {
        signature_hash_forkid(tx, input_index, script_code, amount, hash_type, cache)
    } else {
        signature_hash_original(tx, input_index, script_code, hash_type)
    }
}
