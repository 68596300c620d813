//! The P2P wire protocol: consensus encoding, hashes, messages and framing.
//!
//! This module depends on nothing else in the crate. What it guarantees to the layers above:
//! - decoding never panics and never allocates more than the input justifies (see `encode`);
//! - every limit (per-command payload size at header time, item counts, string lengths) is
//!   SV Node's, checked before allocating, and reported as a typed `DecodeError`;
//! - a transaction's id and a block's hash are computed once from the bytes as received;
//! - a message split across reads decodes the same as one delivered whole (`frame::FrameDecoder`).

pub mod block;
pub mod encode;
pub mod error;
pub mod frame;
pub mod hash;
pub mod inv;
pub mod message;
pub mod msg;
pub mod netaddr;
pub mod tx;

pub use block::{merkle_root, Block, BlockHeader};
pub use encode::{Decodable, Encodable, Reader};
pub use error::DecodeError;
pub use frame::{encode_frame, encode_frame_parts, Frame, FrameDecoder, FrameHeader};
pub use hash::{BlockHash, Hash256, TxId};
pub use inv::{inv_type, InvItem};
pub use message::{Command, Limits, Message};
pub use netaddr::{NetAddress, TimedAddress};
pub use tx::{OutPoint, Transaction, TxFields, TxIn, TxOut};
