//! Peers: the per-connection protocol, offences and their scores, connections and their limits.
//!
//! Depends on `wire` only. The protocol decisions live in `protocol` as plain code driven by
//! `(now, event)`; the tokio tasks in `connection` and `manager` only move bytes and carry out
//! the decisions.

pub mod misbehavior;
pub mod protocol;
#[cfg(test)]
#[path = "protocol_tests.rs"]
mod protocol_tests;

pub use misbehavior::{BanScore, Misbehavior};
pub use protocol::{Context, Direction, DisconnectReason, Output, PeerProtocol, ProtocolConfig};
