//! Signature and lock-time checks against a transaction, and the encoding rules (STRICTENC,
//! DERSIG, LOW_S, FORKID) a signature or key must meet before it is checked.
//!
//! Invariants: ECDSA verification parses signatures laxly (any BER-ish DER OpenSSL once accepted)
//! and normalizes S before verifying, exactly as SV Node's `CPubKey::Verify`; strictness is
//! applied only by the flag-driven encoding checks here, so consensus behaviour for old
//! signatures is unchanged. Nothing here panics on any byte string.

use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, SECP256K1};

use super::error::ScriptError;
use super::flags::ScriptFlags;
use super::sighash::{
    signature_hash, SigHashCache, SIGHASH_ANYONECANPAY, SIGHASH_CHRONICLE, SIGHASH_FORKID, SIGHASH_SINGLE,
};
use crate::wire::TxFields;

/// nLockTime values below this are block heights, at or above it Unix times (BIP65).
pub const LOCKTIME_THRESHOLD: i64 = 500_000_000;
/// A final input's sequence; it disables nLockTime and CLTV for that input.
pub const SEQUENCE_FINAL: u32 = 0xffff_ffff;
/// BIP68: sequence bit that disables relative lock time.
pub const SEQUENCE_LOCKTIME_DISABLE_FLAG: i64 = 1 << 31;
/// BIP68: sequence bit selecting time-based (512 s units) relative lock time.
pub const SEQUENCE_LOCKTIME_TYPE_FLAG: i64 = 1 << 22;
/// BIP68: bits of the sequence holding the relative lock-time value.
pub const SEQUENCE_LOCKTIME_MASK: i64 = 0x0000_ffff;

/// What the interpreter needs from the transaction being verified.
pub trait SignatureChecker {
    /// True if `sig` (DER plus a trailing hash-type byte) is a valid signature by `pubkey` of
    /// this input's digest over `script_code`.
    fn check_sig(&self, sig: &[u8], pubkey: &[u8], script_code: &[u8], flags: ScriptFlags) -> bool;

    /// BIP65: true if the transaction's nLockTime satisfies `lock_time` (non-negative).
    fn check_lock_time(&self, _lock_time: i64) -> bool {
        false
    }

    /// BIP112: true if this input's sequence satisfies `sequence` (non-negative).
    fn check_sequence(&self, _sequence: i64) -> bool {
        false
    }

    /// The spending transaction's version (Chronicle's OP_VER/OP_VERIF and its relaxed rules
    /// for versions above 1); `None` without a transaction.
    fn tx_version(&self) -> Option<i32> {
        None
    }
}

/// A checker with no transaction: every signature and lock-time check fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullChecker;

impl SignatureChecker for NullChecker {
    fn check_sig(&self, _: &[u8], _: &[u8], _: &[u8], _: ScriptFlags) -> bool {
        false
    }
}

/// Checks signatures of input `input_index` of `tx`, which spends an output worth `amount`.
#[derive(Debug, Clone, Copy)]
pub struct TxSignatureChecker<'a> {
    pub tx: &'a TxFields,
    pub input_index: usize,
    pub amount: i64,
    pub cache: &'a SigHashCache,
    /// Signatures already verified, consulted before and filled after each verification.
    pub verified: Option<&'a super::sigcache::SigCache>,
}

impl<'a> TxSignatureChecker<'a> {
    pub fn new(tx: &'a TxFields, input_index: usize, amount: i64, cache: &'a SigHashCache) -> Self {
        TxSignatureChecker { tx, input_index, amount, cache, verified: None }
    }

    /// Uses `verified` to skip signatures verified before.
    pub fn with_sig_cache(mut self, verified: &'a super::sigcache::SigCache) -> Self {
        self.verified = Some(verified);
        self
    }
}

impl SignatureChecker for TxSignatureChecker<'_> {
    fn check_sig(&self, sig: &[u8], pubkey: &[u8], script_code: &[u8], flags: ScriptFlags) -> bool {
        let Some((&hash_type, der)) = sig.split_last() else {
            return false;
        };
        let Ok(pubkey) = PublicKey::from_slice(pubkey) else {
            return false;
        };
        let Ok(mut signature) = Signature::from_der_lax(der) else {
            return false;
        };
        signature.normalize_s();
        let digest = signature_hash(
            self.tx,
            self.input_index,
            script_code,
            self.amount,
            u32::from(hash_type),
            flags,
            self.cache,
        );
        let key = self
            .verified
            .map(|_| super::sigcache::SigCache::key(&digest, &pubkey.serialize(), &signature.serialize_compact()));
        if let (Some(cache), Some(key)) = (self.verified, &key) {
            if cache.contains(key) {
                return true;
            }
        }
        let ok = SECP256K1.verify_ecdsa(&Message::from_digest(digest), &signature, &pubkey).is_ok();
        if let (true, Some(cache), Some(key)) = (ok, self.verified, key) {
            cache.insert(key);
        }
        ok
    }

    fn tx_version(&self) -> Option<i32> {
        Some(self.tx.version)
    }

    fn check_lock_time(&self, lock_time: i64) -> bool {
        let tx_lock_time = i64::from(self.tx.lock_time);
        // Height-based and time-based lock times are not comparable.
        if (tx_lock_time < LOCKTIME_THRESHOLD) != (lock_time < LOCKTIME_THRESHOLD) {
            return false;
        }
        if lock_time > tx_lock_time {
            return false;
        }
        // A final input would let the transaction be mined regardless of nLockTime.
        self.tx.inputs.get(self.input_index).is_some_and(|i| i.sequence != SEQUENCE_FINAL)
    }

    fn check_sequence(&self, sequence: i64) -> bool {
        let Some(input) = self.tx.inputs.get(self.input_index) else {
            return false;
        };
        let tx_sequence = i64::from(input.sequence);
        // BIP68 applies only from version 2 (compared as unsigned, as SV Node does).
        if (self.tx.version as u32) < 2 {
            return false;
        }
        if tx_sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            return false;
        }
        let mask = SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK;
        let (tx_masked, masked) = (tx_sequence & mask, sequence & mask);
        if (tx_masked < SEQUENCE_LOCKTIME_TYPE_FLAG) != (masked < SEQUENCE_LOCKTIME_TYPE_FLAG) {
            return false;
        }
        masked <= tx_masked
    }
}

/// BIP66 strict DER (with the trailing hash-type byte): SV Node's `IsValidSignatureEncoding`.
pub fn is_valid_signature_encoding(sig: &[u8]) -> bool {
    // 0x30 len 0x02 rlen r 0x02 slen s hashtype; 9..=73 bytes.
    if sig.len() < 9 || sig.len() > 73 {
        return false;
    }
    if sig[0] != 0x30 || sig[1] as usize != sig.len() - 3 {
        return false;
    }
    let len_r = sig[3] as usize;
    if 5 + len_r >= sig.len() {
        return false;
    }
    let len_s = sig[5 + len_r] as usize;
    if len_r + len_s + 7 != sig.len() {
        return false;
    }
    if sig[2] != 0x02 || len_r == 0 || sig[4] & 0x80 != 0 {
        return false;
    }
    if len_r > 1 && sig[4] == 0 && sig[5] & 0x80 == 0 {
        return false;
    }
    if sig[len_r + 4] != 0x02 || len_s == 0 || sig[len_r + 6] & 0x80 != 0 {
        return false;
    }
    if len_s > 1 && sig[len_r + 6] == 0 && sig[len_r + 7] & 0x80 == 0 {
        return false;
    }
    true
}

/// True if the (strict-DER) signature's S is at most half the group order.
fn is_low_s(sig: &[u8]) -> bool {
    let Some((_, der)) = sig.split_last() else {
        return false;
    };
    match Signature::from_der_lax(der) {
        Ok(s) => {
            let mut normalized = s;
            normalized.normalize_s();
            normalized == s
        }
        Err(_) => false,
    }
}

/// Whether a hash type is defined: base ALL/NONE/SINGLE with only CHRONICLE, FORKID and
/// ANYONECANPAY as extra bits (SV Node 1.2's `SigHashType::isDefined`, in every era: a CHRONICLE
/// bit before Chronicle is [`ScriptError::IllegalChronicle`] instead).
pub fn is_defined_hash_type(hash_type: u32) -> bool {
    let extra = SIGHASH_CHRONICLE | SIGHASH_FORKID | SIGHASH_ANYONECANPAY;
    (1..=SIGHASH_SINGLE).contains(&(hash_type & !extra))
}

/// SV Node's `CheckSignatureEncoding`. The empty signature is always acceptable (it is the
/// compact way to fail a CHECKSIG on purpose).
pub fn check_signature_encoding(sig: &[u8], flags: ScriptFlags) -> Result<(), ScriptError> {
    let Some(&hash_type) = sig.last() else {
        return Ok(());
    };
    let strict = flags.contains(ScriptFlags::DERSIG)
        || flags.contains(ScriptFlags::LOW_S)
        || flags.contains(ScriptFlags::STRICTENC);
    if strict && !is_valid_signature_encoding(sig) {
        return Err(ScriptError::SigDer);
    }
    if flags.contains(ScriptFlags::LOW_S) && !is_low_s(sig) {
        return Err(ScriptError::SigHighS);
    }
    if flags.contains(ScriptFlags::STRICTENC) {
        let hash_type = u32::from(hash_type);
        if !is_defined_hash_type(hash_type) {
            return Err(ScriptError::SigHashType);
        }
        let uses_forkid = hash_type & SIGHASH_FORKID != 0;
        let forkid_enabled = flags.contains(ScriptFlags::SIGHASH_FORKID);
        if uses_forkid && !forkid_enabled {
            return Err(ScriptError::IllegalForkId);
        }
        if hash_type & SIGHASH_CHRONICLE != 0 && !flags.contains(ScriptFlags::CHRONICLE) {
            return Err(ScriptError::IllegalChronicle);
        }
        if !uses_forkid && forkid_enabled {
            return Err(ScriptError::MustUseForkId);
        }
    }
    Ok(())
}

/// SV Node's `CheckPubKeyEncoding`.
pub fn check_pubkey_encoding(pubkey: &[u8], flags: ScriptFlags) -> Result<(), ScriptError> {
    if flags.contains(ScriptFlags::STRICTENC) && !is_compressed_or_uncompressed(pubkey) {
        return Err(ScriptError::PubkeyType);
    }
    if flags.contains(ScriptFlags::COMPRESSED_PUBKEYTYPE) && !is_compressed(pubkey) {
        return Err(ScriptError::NonCompressedPubkey);
    }
    Ok(())
}

fn is_compressed(pubkey: &[u8]) -> bool {
    pubkey.len() == 33 && (pubkey[0] == 0x02 || pubkey[0] == 0x03)
}

fn is_compressed_or_uncompressed(pubkey: &[u8]) -> bool {
    is_compressed(pubkey) || (pubkey.len() == 65 && pubkey[0] == 0x04)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_checks_never_panic_on_short_input() {
        for len in 0..80 {
            let sig = vec![0x30; len];
            let _ = check_signature_encoding(&sig, ScriptFlags::STRICTENC | ScriptFlags::LOW_S);
            let _ = check_pubkey_encoding(&sig, ScriptFlags::STRICTENC);
        }
    }

    use crate::script::{verify_script, NullChecker};
    use crate::wire::{Hash256, OutPoint, TxIn, TxOut};
    use bitcoin_hashes::{hash160, Hash};
    use bytes::Bytes;
    use secp256k1::SecretKey;

    /// A P2PKH spend signed with `hash_type`, its digest chosen under `sign_flags`.
    fn p2pkh_spend(hash_type: u8, sign_flags: ScriptFlags, version: i32) -> (TxFields, Vec<u8>) {
        let secret = SecretKey::from_slice(&[7; 32]).expect("valid key");
        let pubkey = PublicKey::from_secret_key(SECP256K1, &secret).serialize();
        let mut script_pubkey = vec![0x76, 0xa9, 20];
        script_pubkey.extend_from_slice(&hash160::Hash::hash(&pubkey).to_byte_array());
        script_pubkey.extend_from_slice(&[0x88, 0xac]);
        let mut tx = TxFields {
            version,
            inputs: vec![TxIn {
                prev_out: OutPoint { txid: Hash256([9; 32]), vout: 1 },
                script_sig: Bytes::new(),
                sequence: 0xffff_fffe,
            }],
            outputs: vec![TxOut { value: 900, script_pubkey: Bytes::from_static(&[0x51]) }],
            lock_time: 0,
        };
        let digest =
            signature_hash(&tx, 0, &script_pubkey, 1000, u32::from(hash_type), sign_flags, &SigHashCache::new());
        let sig = SECP256K1.sign_ecdsa(&Message::from_digest(digest), &secret);
        let mut push = sig.serialize_der().to_vec();
        push.push(hash_type);
        let mut script_sig = vec![push.len() as u8];
        script_sig.extend_from_slice(&push);
        script_sig.push(33);
        script_sig.extend_from_slice(&pubkey);
        tx.inputs[0].script_sig = Bytes::from(script_sig);
        (tx, script_pubkey)
    }

    fn verify(tx: &TxFields, script_pubkey: &[u8], flags: ScriptFlags, amount: i64) -> Result<(), ScriptError> {
        let cache = SigHashCache::new();
        verify_script(&tx.inputs[0].script_sig, script_pubkey, flags, &TxSignatureChecker::new(tx, 0, amount, &cache))
    }

    #[test]
    fn signatures_verify_end_to_end() {
        let forkid = ScriptFlags::MANDATORY;
        let (tx, spk) = p2pkh_spend(0x41, forkid, 1);
        assert_eq!(verify(&tx, &spk, forkid, 1000), Ok(()));
        // The FORKID digest commits to the amount.
        assert_eq!(verify(&tx, &spk, forkid, 1001), Err(ScriptError::SigNullFail));
        assert_eq!(
            verify(&tx, &spk, ScriptFlags::P2SH | ScriptFlags::STRICTENC, 1000),
            Err(ScriptError::IllegalForkId)
        );
        assert_eq!(verify_script(&tx.inputs[0].script_sig, &spk, forkid, &NullChecker), Err(ScriptError::SigNullFail));

        // Chronicle OTDA: FORKID|CHRONICLE signs the original digest, only once Chronicle is on.
        let chronicle = forkid | ScriptFlags::CHRONICLE;
        let (tx, spk) = p2pkh_spend(0x61, chronicle, 1);
        assert_eq!(verify(&tx, &spk, chronicle, 1000), Ok(()));
        assert_eq!(verify(&tx, &spk, forkid, 1000), Err(ScriptError::IllegalChronicle));

        // Pre-UAHF legacy signature.
        let legacy = ScriptFlags::P2SH | ScriptFlags::STRICTENC | ScriptFlags::DERSIG;
        let (tx, spk) = p2pkh_spend(0x01, legacy, 1);
        assert_eq!(verify(&tx, &spk, legacy, 0), Ok(()));
        assert_eq!(verify(&tx, &spk, forkid, 0), Err(ScriptError::MustUseForkId));
    }

    #[test]
    fn chronicle_relaxes_malleability_rules_for_version_2() {
        // A signature-free script leaving two items: CLEANSTACK fails unless relaxed.
        let flags = ScriptFlags::P2SH | ScriptFlags::CLEANSTACK | ScriptFlags::CHRONICLE;
        let (mut tx, _) = p2pkh_spend(0x41, ScriptFlags::MANDATORY, 1);
        tx.inputs[0].script_sig = Bytes::from_static(&[0x51]);
        assert_eq!(verify(&tx, &[0x51], flags, 0), Err(ScriptError::CleanStack));
        tx.version = 2;
        assert_eq!(verify(&tx, &[0x51], flags, 0), Ok(()));
        assert_eq!(verify(&tx, &[0x51], flags.without(ScriptFlags::CHRONICLE), 0), Err(ScriptError::CleanStack));
    }

    #[test]
    fn hash_types() {
        assert!(is_defined_hash_type(0x41));
        assert!(is_defined_hash_type(0xc3));
        assert!(is_defined_hash_type(0x21));
        assert!(is_defined_hash_type(0x61));
        assert!(!is_defined_hash_type(0x04));
        assert!(!is_defined_hash_type(0x24));
        assert!(!is_defined_hash_type(0));
    }
}
