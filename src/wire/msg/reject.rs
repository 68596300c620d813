//! `reject`: still sent by SV Node when it refuses a message; only logged on receipt.

use crate::wire::encode::{write_var_bytes, Decodable, Encodable, Reader};
use crate::wire::error::DecodeError;
use crate::wire::hash::Hash256;

/// Longest rejected-command field: a command name (12 bytes).
pub const MAX_REJECT_MESSAGE_LEN: u64 = 12;
/// Longest reason SV Node sends (`MAX_REJECT_MESSAGE_LENGTH`, src/validation.h:155).
pub const MAX_REJECT_REASON_LEN: u64 = 111;

/// Reject codes (SV Node src/consensus/validation.h and src/net/net_types.h).
pub mod reject_code {
    pub const MALFORMED: u8 = 0x01;
    pub const INVALID: u8 = 0x10;
    pub const OBSOLETE: u8 = 0x11;
    pub const DUPLICATE: u8 = 0x12;
    pub const NONSTANDARD: u8 = 0x40;
    pub const DUST: u8 = 0x41;
    pub const INSUFFICIENT_FEE: u8 = 0x42;
    pub const CHECKPOINT: u8 = 0x43;
    pub const TOO_BUSY: u8 = 0x44;
    pub const STREAM_SETUP: u8 = 0x60;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub message: String,
    pub code: u8,
    pub reason: String,
    /// The rejected transaction's or block's hash, when the reject is about one.
    pub hash: Option<Hash256>,
}

impl Encodable for Reject {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        write_var_bytes(out, self.message.as_bytes());
        out.push(self.code);
        write_var_bytes(out, self.reason.as_bytes());
        if let Some(hash) = &self.hash {
            out.extend_from_slice(&hash.0);
        }
    }
}

impl Decodable for Reject {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message = r.read_var_str("reject message", MAX_REJECT_MESSAGE_LEN)?;
        let code = r.read_u8("reject code")?;
        let reason = r.read_var_str("reject reason", MAX_REJECT_REASON_LEN)?;
        let hash = if r.remaining() >= 32 { Some(Hash256(r.read_array("reject hash")?)) } else { None };
        Ok(Reject { message, code, reason, hash })
    }
}
