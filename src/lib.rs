//! bsv-relay: a transaction and block relay node for the BSV network.
//!
//! The architecture essay grows with the node; see README.md for the overview.
//!
//! Operator surface: `main` parses the [`config`] and starts [`node::run`], the composition root. It
//! takes the data-directory lock, builds the shared state ([`peer::PeerRegistry`], [`peer::BanList`],
//! [`metrics::Metrics`]) once and hands `Arc`s to the tasks it spawns: the `/metrics` listener and the
//! JSON-RPC server ([`rpc`]). Shutdown is one [`shutdown`] channel; the node waits for every task.

pub mod chain;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod relay;
pub mod rpc;
pub mod script;
pub mod shutdown;
pub mod validation;
pub mod wire;
