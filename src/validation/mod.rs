//! Transaction rules and what block validation needs of them: the context-free checks
//! ([`check_tx`]), coins and the [`CoinView`] interface ([`coins`]), mempool acceptance against a
//! coin view ([`tx`]), and the script engine as the [`InputVerifier`] of block inputs
//! ([`block_scripts`]). Depends on `wire`, `params` and `script`; the block rules and the UTXO set
//! in [`crate::chain`] build on this module, never the reverse.

pub mod block_scripts;
pub mod check_tx;
pub mod coins;
pub mod tx;

pub use block_scripts::{InputVerifier, NoScriptCheck, ScriptVerifier};
pub use check_tx::{
    check_coinbase, check_regular, check_transaction, check_transaction_with_max_size, TxCheckError, TxEra,
};
pub use coins::{ChainTimes, Coin, CoinView, MapCoinView};
pub use tx::{validate_batch, validate_transaction, RejectKind, TxContext, TxReject, ValidatedTx};
