//! `getheaders` and `getblocks`: a version, a block locator and a stop hash.

use crate::wire::encode::{read_vec, write_vec, Decodable, Encodable, Reader};
use crate::wire::error::DecodeError;
use crate::wire::hash::Hash256;

impl Encodable for Hash256 {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decodable for Hash256 {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Hash256(r.read_array("hash")?))
    }
}

/// Most locator hashes we accept: Core's `MAX_LOCATOR_SZ`. SV Node has no limit but the payload
/// size; a locator built the usual way (10 single steps, then doubling) has about 10 + log2(height)
/// entries, about 40 for any real chain, so 101 refuses only locators built to make us work.
pub const MAX_LOCATOR_HASHES: u64 = 101;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLocator {
    pub version: u32,
    /// Newest first, ending with genesis.
    pub hashes: Vec<Hash256>,
    /// Stop after this block (zero: send as many as allowed).
    pub stop: Hash256,
}

impl Encodable for BlockLocator {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        write_vec(out, &self.hashes);
        out.extend_from_slice(&self.stop.0);
    }
}

impl Decodable for BlockLocator {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.read_u32_le("locator version")?;
        let hashes = read_vec(r, "locator hashes", MAX_LOCATOR_HASHES, 32)?;
        let stop = Hash256(r.read_array("stop hash")?);
        Ok(BlockLocator { version, hashes, stop })
    }
}
