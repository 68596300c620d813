//! Small fixed-layout payloads: `sendcmpct`, `authch`, `mempool`.

use crate::wire::encode::{Decodable, Encodable, Reader};
use crate::wire::error::DecodeError;
use bytes::Bytes;

/// `sendcmpct`: whether to announce new blocks as compact blocks, and the compact-block version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendCmpct {
    pub announce: bool,
    pub version: u64,
}

impl Encodable for SendCmpct {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.announce));
        out.extend_from_slice(&self.version.to_le_bytes());
    }
}

impl Decodable for SendCmpct {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SendCmpct { announce: r.read_bool("sendcmpct announce")?, version: r.read_u64_le("sendcmpct version")? })
    }
}

/// Longest authch challenge we read; SV Node sends 32 bytes.
const MAX_AUTHCH_MSG_LEN: u64 = 1024;

/// `authch` (miner-ID authenticated connections): decoded so it is recognised, then ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCh {
    pub version: u32,
    pub challenge: Bytes,
}

impl Encodable for AuthCh {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.challenge.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.challenge);
    }
}

impl Decodable for AuthCh {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.read_u32_le("authch version")?;
        let len = u64::from(r.read_u32_le("authch length")?);
        if len > MAX_AUTHCH_MSG_LEN {
            return Err(DecodeError::TooLong { what: "authch challenge", len, max: MAX_AUTHCH_MSG_LEN });
        }
        Ok(AuthCh { version, challenge: r.read_slice(len as usize, "authch challenge")? })
    }
}

/// `mempool`: legacy (empty) or SV Node's extended form with an optional age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolRequest {
    /// `None` for the legacy empty payload; `Some(None)` for an extended request without an age.
    pub age: Option<Option<i64>>,
}

impl Encodable for MempoolRequest {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        match self.age {
            None => {}
            Some(None) => out.push(0),
            Some(Some(age)) => {
                out.push(1);
                out.extend_from_slice(&age.to_le_bytes());
            }
        }
    }
}

impl Decodable for MempoolRequest {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.remaining() == 0 {
            return Ok(MempoolRequest { age: None });
        }
        let age = if r.read_bool("mempool has age")? { Some(r.read_i64_le("mempool age")?) } else { None };
        Ok(MempoolRequest { age: Some(age) })
    }
}
