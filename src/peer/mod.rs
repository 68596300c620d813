//! Peers: the registry of live connections, the ban list and IP subnets.
//!
//! The connection actor, handshake and scoring join this module later; what exists now is the state the
//! operator surface (RPC, metrics) reads and the commands it sends. Depends only on `wire` (and nothing
//! of it yet); never on `rpc`, `node` or `config`.

pub mod bans;
pub mod registry;
pub mod subnet;

pub use bans::{BanDuration, BanEntry, BanError, BanList, BanReason};
pub use registry::{ConnectRequest, PeerCommand, PeerCommands, PeerId, PeerInfo, PeerRegistry, RegistryError};
pub use subnet::{Subnet, SubnetError};
