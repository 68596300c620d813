//! A small wallet for tests and tools (the load generator, regtest mining): keys, addresses,
//! standard output scripts and FORKID signatures.
//!
//! Not a user wallet: keys live in memory, derived from seeds the caller chooses so that runs
//! reproduce.

use crate::script::{signature_hash_forkid, signature_hash_original, SigHashCache};
use crate::wire::TxFields;
use bitcoin_hashes::{hash160, Hash};
use secp256k1::{PublicKey, SecretKey, SECP256K1};
use thiserror::Error;

/// SIGHASH_ALL | SIGHASH_FORKID: what SV Node's wallet signs with.
pub const SIGHASH_ALL_FORKID: u32 = 0x41;
/// Base58check version byte of P2PKH addresses on test, stn and regtest.
pub const REGTEST_P2PKH_VERSION: u8 = 0x6f;

const OP_DUP: u8 = 0x76;
const OP_HASH160: u8 = 0xa9;
const OP_EQUALVERIFY: u8 = 0x88;
const OP_CHECKSIG: u8 = 0xac;
const OP_CHECKMULTISIG: u8 = 0xae;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WalletError {
    #[error("not a base58check address: {0}")]
    BadAddress(String),
    #[error("address version {got:#04x}, expected {expected:#04x}")]
    WrongVersion { got: u8, expected: u8 },
}

/// A key pair.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub secret: SecretKey,
    pub public: PublicKey,
}

impl Key {
    /// A key derived from a seed: sha256 of the seed, retried until it is a valid scalar.
    pub fn from_seed(seed: &[u8]) -> Key {
        let mut digest = crate::wire::hash::sha256(seed);
        loop {
            if let Ok(secret) = SecretKey::from_slice(&digest) {
                return Key { secret, public: PublicKey::from_secret_key(SECP256K1, &secret) };
            }
            digest = crate::wire::hash::sha256(&digest);
        }
    }

    /// The 33-byte compressed public key.
    pub fn pubkey(&self) -> [u8; 33] {
        self.public.serialize()
    }

    pub fn pubkey_hash(&self) -> [u8; 20] {
        hash160::Hash::hash(&self.pubkey()).to_byte_array()
    }

    /// `OP_DUP OP_HASH160 <hash> OP_EQUALVERIFY OP_CHECKSIG`.
    pub fn p2pkh_script(&self) -> Vec<u8> {
        p2pkh_script(&self.pubkey_hash())
    }

    /// `<pubkey> OP_CHECKSIG`.
    pub fn p2pk_script(&self) -> Vec<u8> {
        let mut s = vec![33];
        s.extend_from_slice(&self.pubkey());
        s.push(OP_CHECKSIG);
        s
    }

    /// The base58check P2PKH address with `version` (0x6f on regtest).
    pub fn address(&self, version: u8) -> String {
        let mut payload = vec![version];
        payload.extend_from_slice(&self.pubkey_hash());
        base58check_encode(&payload)
    }

    /// A DER signature with the hash type appended, over the FORKID digest of input `index`.
    pub fn sign(&self, tx: &TxFields, index: usize, script_code: &[u8], amount: i64, hash_type: u32) -> Vec<u8> {
        let digest = signature_hash_forkid(tx, index, script_code, amount, hash_type, &SigHashCache::new());
        self.sign_digest(digest, hash_type)
    }

    /// A DER signature with the hash type appended, over the original digest of input `index`:
    /// Chronicle's "OTDA" signatures (FORKID|CHRONICLE, 0x61 for ALL) and pre-UAHF ones.
    pub fn sign_original(&self, tx: &TxFields, index: usize, script_code: &[u8], hash_type: u32) -> Vec<u8> {
        self.sign_digest(signature_hash_original(tx, index, script_code, hash_type), hash_type)
    }

    fn sign_digest(&self, digest: [u8; 32], hash_type: u32) -> Vec<u8> {
        let sig = SECP256K1.sign_ecdsa(&secp256k1::Message::from_digest(digest), &self.secret);
        let mut out = sig.serialize_der().to_vec();
        out.push(hash_type as u8);
        out
    }
}

/// `OP_DUP OP_HASH160 <hash> OP_EQUALVERIFY OP_CHECKSIG`.
pub fn p2pkh_script(hash: &[u8; 20]) -> Vec<u8> {
    let mut s = vec![OP_DUP, OP_HASH160, 20];
    s.extend_from_slice(hash);
    s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
    s
}

/// Bare `m`-of-n multisig: `OP_m <pubkeys…> OP_n OP_CHECKMULTISIG`.
pub fn multisig_script(m: u8, keys: &[Key]) -> Vec<u8> {
    let mut s = vec![0x50 + m];
    for k in keys {
        s.push(33);
        s.extend_from_slice(&k.pubkey());
    }
    s.push(0x50 + keys.len() as u8);
    s.push(OP_CHECKMULTISIG);
    s
}

/// A script that pushes each item (all shorter than 76 bytes: signatures and keys).
pub fn push_all(items: &[&[u8]]) -> Vec<u8> {
    let mut s = Vec::new();
    for item in items {
        debug_assert!(item.len() < 0x4c);
        s.push(item.len() as u8);
        s.extend_from_slice(item);
    }
    s
}

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Base58 with a 4-byte sha256d checksum.
pub fn base58check_encode(payload: &[u8]) -> String {
    let mut data = payload.to_vec();
    data.extend_from_slice(&crate::wire::hash::sha256d(payload)[..4]);
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    // Repeated division of the big-endian number by 58.
    let mut digits: Vec<u8> = Vec::new();
    for &byte in &data {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char));
    out
}

/// Decodes a base58check string, checking its checksum.
pub fn base58check_decode(s: &str) -> Result<Vec<u8>, WalletError> {
    let bad = || WalletError::BadAddress(s.chars().take(100).collect());
    let zeros = s.bytes().take_while(|&b| b == b'1').count();
    let mut bytes: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c).ok_or_else(bad)? as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut data = vec![0u8; zeros];
    data.extend(bytes.iter().rev());
    if data.len() < 4 {
        return Err(bad());
    }
    let (payload, checksum) = data.split_at(data.len() - 4);
    if crate::wire::hash::sha256d(payload)[..4] != *checksum {
        return Err(bad());
    }
    Ok(payload.to_vec())
}

/// The P2PKH script of a base58check address with the expected version byte.
pub fn address_script(address: &str, version: u8) -> Result<Vec<u8>, WalletError> {
    let payload = base58check_decode(address)?;
    if payload.len() != 21 {
        return Err(WalletError::BadAddress(address.to_string()));
    }
    if payload[0] != version {
        return Err(WalletError::WrongVersion { got: payload[0], expected: version });
    }
    let mut hash = [0u8; 20];
    hash.copy_from_slice(&payload[1..]);
    Ok(p2pkh_script(&hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58check_round_trips_and_matches_a_known_address() {
        // The well-known address of hash160 = 0 on mainnet.
        let mut payload = vec![0u8];
        payload.extend_from_slice(&[0u8; 20]);
        assert_eq!(base58check_encode(&payload), "1111111111111111111114oLvT2");
        assert_eq!(base58check_decode("1111111111111111111114oLvT2").unwrap(), payload);
        assert!(base58check_decode("1111111111111111111114oLvT3").is_err());
        let key = Key::from_seed(b"seed");
        let addr = key.address(REGTEST_P2PKH_VERSION);
        assert!(addr.starts_with('m') || addr.starts_with('n'));
        assert_eq!(address_script(&addr, REGTEST_P2PKH_VERSION).unwrap(), key.p2pkh_script());
        assert!(matches!(address_script(&addr, 0), Err(WalletError::WrongVersion { .. })));
    }
}
