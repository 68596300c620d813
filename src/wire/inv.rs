//! Inventory items: what `inv`, `getdata` and `notfound` carry.
//!
//! The type is kept as the raw number: SV Node disconnects a peer whose `inv` carries a type other
//! than 1 or 2, and that is the peer layer's decision, so the codec must be able to represent it.

use super::encode::{Decodable, Encodable, Reader};
use super::error::DecodeError;
use super::hash::Hash256;

/// Encoded size of an inventory item: type (4) + hash (32). SV Node's `CInv::estimateMaxInvElements`.
pub const INV_ITEM_LEN: usize = 36;

/// Inventory types (SV Node src/protocol.h:531-542).
pub mod inv_type {
    pub const ERROR: u32 = 0;
    pub const TX: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const FILTERED_BLOCK: u32 = 3;
    pub const CMPCT_BLOCK: u32 = 4;
    pub const DATAREF_TX: u32 = 5;
}

/// One inventory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvItem {
    pub kind: u32,
    pub hash: Hash256,
}

impl InvItem {
    pub const fn tx(hash: Hash256) -> InvItem {
        InvItem { kind: inv_type::TX, hash }
    }

    pub const fn block(hash: Hash256) -> InvItem {
        InvItem { kind: inv_type::BLOCK, hash }
    }
}

impl Encodable for InvItem {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.hash.0);
    }
}

impl Decodable for InvItem {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(InvItem { kind: r.read_u32_le("inv type")?, hash: Hash256(r.read_array("inv hash")?) })
    }
}

/// How many inventory items fit in a payload of `max_payload` bytes: SV Node's
/// `(max_payload - 8) / 36` (8 bytes of slack for the count), `CInv::estimateMaxInvElements`.
pub const fn max_inv_items(max_payload: u64) -> u64 {
    max_payload.saturating_sub(8) / INV_ITEM_LEN as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inv_limits_match_sv_node() {
        // svnode-protocol.md §1.7: 1 MiB before protoconf ⇒ 29,126; 2 MiB ⇒ 58,254.
        assert_eq!(max_inv_items(1_048_576), 29_126);
        assert_eq!(max_inv_items(2_097_152), 58_254);
    }
}
