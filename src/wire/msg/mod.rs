//! Payload types of the messages that carry more than a list or a number, one file each.

mod compact;
mod locator;
mod protoconf;
mod reject;
mod small;
mod version;

pub use compact::{BlockTxn, CompactBlock, GetBlockTxn, PrefilledTx, ShortId};
pub use locator::{BlockLocator, MAX_LOCATOR_HASHES};
pub use protoconf::{Protoconf, DEFAULT_STREAM_POLICY, MAX_STREAM_POLICIES_LEN};
pub use reject::{reject_code, Reject, MAX_REJECT_MESSAGE_LEN, MAX_REJECT_REASON_LEN};
pub use small::{AuthCh, MempoolRequest, SendCmpct};
pub use version::{Version, MAX_ASSOCIATION_ID_LEN, MAX_USER_AGENT_LEN};
