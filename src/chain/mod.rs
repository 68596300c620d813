//! The chain: network parameters now; the header tree, block validation and the UTXO set later.
//!
//! Depends only on `wire`.

pub mod params;

pub use params::{ChainParams, Network};
