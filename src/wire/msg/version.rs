//! `version`: the first message of every connection.
//!
//! Everything after `addr_recv` is optional on receipt (SV Node reads a field only if bytes remain).
//! SV Node appends an association ID; we parse it but never send one (an echoed ID would make SV
//! Node open extra streams to us).

use crate::wire::encode::{write_var_bytes, Decodable, Encodable, Reader};
use crate::wire::error::DecodeError;
use crate::wire::netaddr::NetAddress;
use bytes::Bytes;

/// Longest user agent accepted: SV Node's `MAX_SUBVERSION_LENGTH` (src/net/net.h:94).
pub const MAX_USER_AGENT_LEN: u64 = 256;
/// Longest association ID: SV Node's `LIMITED_BYTE_VEC(…, 129)` (type byte + up to 128 bytes).
pub const MAX_ASSOCIATION_ID_LEN: u64 = 129;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: i32,
    pub services: u64,
    pub timestamp: i64,
    pub receiver: NetAddress,
    pub sender: NetAddress,
    pub nonce: u64,
    pub user_agent: String,
    pub start_height: i32,
    /// Absent on old peers, which means "relay" (BIP37).
    pub relay: bool,
    /// SV Node's association ID, when the peer sent one. We never send one.
    pub association_id: Option<Bytes>,
}

impl Encodable for Version {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.services.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        self.receiver.consensus_encode(out);
        self.sender.consensus_encode(out);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        write_var_bytes(out, self.user_agent.as_bytes());
        out.extend_from_slice(&self.start_height.to_le_bytes());
        out.push(u8::from(self.relay));
        if let Some(id) = &self.association_id {
            write_var_bytes(out, id);
        }
    }
}

impl Decodable for Version {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.read_i32_le("version")?;
        let services = r.read_u64_le("services")?;
        let timestamp = r.read_i64_le("timestamp")?;
        let receiver = NetAddress::consensus_decode(r)?;
        let mut msg = Version {
            version,
            services,
            timestamp,
            receiver,
            sender: NetAddress::unspecified(0),
            nonce: 0,
            user_agent: String::new(),
            start_height: 0,
            relay: true,
            association_id: None,
        };
        if r.remaining() == 0 {
            return Ok(msg);
        }
        msg.sender = NetAddress::consensus_decode(r)?;
        msg.nonce = r.read_u64_le("nonce")?;
        if r.remaining() == 0 {
            return Ok(msg);
        }
        msg.user_agent = r.read_var_str("user agent", MAX_USER_AGENT_LEN)?;
        if r.remaining() == 0 {
            return Ok(msg);
        }
        msg.start_height = r.read_i32_le("start height")?;
        if r.remaining() == 0 {
            return Ok(msg);
        }
        msg.relay = r.read_bool("relay")?;
        if r.remaining() == 0 {
            return Ok(msg);
        }
        msg.association_id = Some(r.read_var_bytes("association id", MAX_ASSOCIATION_ID_LEN)?);
        Ok(msg)
    }
}
