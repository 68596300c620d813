//! bsv-relay: a transaction and block relay node for the BSV network.
//!
//! The architecture essay grows with the node; see README.md for the overview.

pub mod chain;
#[doc(hidden)]
pub mod fuzzing;
pub mod peer;
pub mod wire;
