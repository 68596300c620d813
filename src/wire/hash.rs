//! 256-bit hashes: sha256d, and the byte-reversed hex form RPC shows.
//!
//! Hashes are kept in internal (wire) byte order. `Display` and `FromStr` use the reversed order that
//! SV Node's RPC and block explorers print, so `genesis.to_string()` reads `0f9188f1…2206` on regtest.
//! sha256d runs on the `sha2` crate, which picks the SHA-NI instructions at run time where the CPU has
//! them (every x86-64 machine we target does).

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A 32-byte hash in wire byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash256(pub [u8; 32]);

/// A transaction id: sha256d of the transaction's bytes.
pub type TxId = Hash256;
/// A block hash: sha256d of the 80-byte header.
pub type BlockHash = Hash256;

impl Hash256 {
    /// The all-zero hash (the previous-block hash of a genesis block, a coinbase's prevout).
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// sha256d of `data`.
    pub fn sha256d(data: &[u8]) -> Hash256 {
        Hash256(sha256d(data))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// The frame checksum of a payload with this hash: its first four bytes, little-endian.
    pub fn checksum(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

/// sha256 applied twice, the hash of every consensus object.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// sha256d of the concatenation of `parts`, without concatenating them (the checksum of a frame
/// sent as pieces that share the buffers of the transactions it carries).
pub fn sha256d_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut first = Sha256::new();
    for part in parts {
        first.update(part);
    }
    Sha256::digest(first.finalize()).into()
}

/// Single sha256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reversed = self.0;
        reversed.reverse();
        f.write_str(&hex::encode(reversed))
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

/// Why a hex string is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 64-digit hex hash: {0:?}")]
pub struct ParseHashError(pub String);

impl FromStr for Hash256 {
    type Err = ParseHashError;

    /// Parses the reversed (RPC) form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 {
            return Err(ParseHashError(s.chars().take(80).collect()));
        }
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHashError(s.chars().take(80).collect()))?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_input() {
        // Known value: sha256d("") = 5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456.
        assert_eq!(hex::encode(sha256d(b"")), "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456");
    }

    #[test]
    fn display_is_byte_reversed_and_parses_back() {
        let mut raw = [0u8; 32];
        raw[0] = 0x01;
        raw[31] = 0xff;
        let h = Hash256(raw);
        let shown = h.to_string();
        assert!(shown.starts_with("ff"));
        assert!(shown.ends_with("01"));
        assert_eq!(shown.parse::<Hash256>().unwrap(), h);
        assert!("zz".parse::<Hash256>().is_err());
        assert!("g".repeat(64).parse::<Hash256>().is_err());
    }
}
