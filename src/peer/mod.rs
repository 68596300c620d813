//! Peers: the per-connection protocol, offences and their scores, the registry of live
//! connections, the ban list and IP subnets.
//!
//! Depends on `wire` only; never on `rpc`, `node` or `config`. The protocol decisions live in
//! `protocol` as plain code driven by `(now, event)`; the tokio tasks only move bytes and carry out
//! those decisions. The registry holds what connection tasks publish for the operator surface.

pub mod addrbook;
pub mod anchors;
pub mod bans;
pub mod connection;
pub mod eviction;
pub mod local;
pub mod manager;
pub mod misbehavior;
pub mod portmap;
pub mod protocol;
#[cfg(test)]
#[path = "protocol_tests.rs"]
mod protocol_tests;
pub mod registry;
pub mod reputation;
pub mod subnet;
pub mod transport;
pub mod v2;

pub use bans::{BanDuration, BanEntry, BanError, BanList, BanReason};
pub use misbehavior::{BanScore, Misbehavior};
pub use protocol::{Context, Direction, DisconnectReason, Output, PeerProtocol, ProtocolConfig};
pub use registry::{ConnectRequest, PeerCommand, PeerCommands, PeerId, PeerInfo, PeerRegistry, RegistryError};
pub use subnet::{Subnet, SubnetError};
