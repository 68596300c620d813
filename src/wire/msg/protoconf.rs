//! `protoconf` (BSV): the largest non-block payload the sender accepts, and its stream policies.

use crate::wire::encode::{write_compact_size, write_var_bytes, Decodable, Encodable, Reader};
use crate::wire::error::DecodeError;

/// Longest stream-policy list: SV Node's `LIMITED_STRING` of (64 + 1) × 10 bytes.
pub const MAX_STREAM_POLICIES_LEN: u64 = 650;
/// The only stream policy we support (we do not do multistreams).
pub const DEFAULT_STREAM_POLICY: &str = "Default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protoconf {
    /// How many fields follow; SV Node sends 2. Fields beyond the second are skipped on receipt.
    pub number_of_fields: u64,
    pub max_recv_payload_length: u32,
    /// Present when `number_of_fields >= 2`.
    pub stream_policies: String,
}

impl Protoconf {
    /// What we send: two fields, our receive limit, the "Default" policy.
    pub fn ours(max_recv_payload_length: u32) -> Protoconf {
        Protoconf { number_of_fields: 2, max_recv_payload_length, stream_policies: DEFAULT_STREAM_POLICY.into() }
    }
}

impl Encodable for Protoconf {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        write_compact_size(out, self.number_of_fields);
        out.extend_from_slice(&self.max_recv_payload_length.to_le_bytes());
        if self.number_of_fields >= 2 {
            write_var_bytes(out, self.stream_policies.as_bytes());
        }
    }
}

impl Decodable for Protoconf {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let number_of_fields = r.read_compact_size("protoconf field count")?;
        if number_of_fields == 0 {
            return Err(DecodeError::InvalidValue { what: "protoconf", detail: "zero fields".into() });
        }
        let max_recv_payload_length = r.read_u32_le("protoconf max payload")?;
        let stream_policies = if number_of_fields >= 2 {
            r.read_var_str("protoconf stream policies", MAX_STREAM_POLICIES_LEN)?
        } else {
            String::new()
        };
        // Later fields are unknown to us and ignored, as SV Node does (forward compatibility).
        let rest = r.remaining();
        r.read_bytes(rest, "protoconf extra fields")?;
        Ok(Protoconf { number_of_fields, max_recv_payload_length, stream_policies })
    }
}
