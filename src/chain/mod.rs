//! The chain: proof of work, the header tree, block checks, the UTXO set and the chain state.
//!
//! Depends on `wire`, `params` (re-exported here as [`params`]) and `validation`'s transaction
//! rules and `CoinView` interface; script verification plugs into block connection through
//! [`crate::validation::InputVerifier`]. Everything here is plain code over values: no I/O,
//! no clock (callers pass the adjusted time), so every rule is tested with hand-made chains and a
//! fake clock. The one exception is [`utxo::UtxoSet`]: shared state behind locks, read by
//! validation threads while one writer connects blocks.
//!
//! - [`params`]: each network's constants (SV Node's chainparams), a layer of its own below;
//! - [`uint256`]: the 256-bit arithmetic targets and chain work need;
//! - [`pow`]: compact targets, block work, and the nBits each network requires of the next header;
//! - [`headers`]: the header tree, best chain, reorganisations and headers-first sync helpers;
//! - [`presync`]: two-pass sync of a chain below the minimum chain work, so it is never stored cheaply;
//! - [`utxo`]: the UTXO set with block undo data, over [`coins_cache`] (the bounded write-back
//!   cache) and [`coins_db`] (its table on disk);
//! - [`outpoint_hash`]: the keyed hasher of the set's maps;
//! - [`undo`]: the coins a block spent, to disconnect it;
//! - [`block_check`]: block rules that need no scripts, and connecting/disconnecting blocks.

pub mod block_check;
pub mod coins_cache;
pub mod coins_db;
pub mod headers;
pub mod outpoint_hash;
pub use crate::params;
pub mod pow;
pub mod presync;
pub mod state;
pub mod store;
pub mod uint256;
pub mod undo;
pub mod utxo;

pub use crate::validation::{InputVerifier, NoScriptCheck};
pub use block_check::{check_block, check_finality, connect_block, disconnect_block, is_final_tx, BlockError};
pub use headers::{AcceptedHeader, BlockRef, HeaderEntry, HeaderError, HeaderStatus, HeaderTree, TipChange};
pub use params::{ChainParams, Network};
pub use pow::{block_work, check_proof_of_work, next_work_required, ChainView, HeaderInfo};
pub use presync::{HeadersSync, SyncError, SyncProgress};
pub use state::{
    ChainError, ChainOptions, ChainState, ChainTip, ChainUpdate, CoinsCacheStats, SharedHeaders, TipStatus,
};
pub use uint256::U256;
pub use utxo::{BlockUndo, ConnectError, StagedBlock, UtxoSet, UtxoStats};
