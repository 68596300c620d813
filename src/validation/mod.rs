//! Transaction and block validation that needs no chain state. So far: the context-free checks
//! of a transaction ([`check_tx::check_transaction`]); script verification lives in
//! [`crate::script`]; block rules and the UTXO set live in [`crate::chain`] (`block_check`, `utxo`).

pub mod block_scripts;
pub mod check_tx;
pub mod coins;
pub mod tx;

pub use block_scripts::ScriptVerifier;
pub use check_tx::{check_transaction, check_transaction_with_max_size, TxCheckError};
pub use coins::{Coin, CoinView, MapCoinView};
pub use tx::{validate_batch, validate_transaction, RejectKind, TxContext, TxReject, ValidatedTx};
