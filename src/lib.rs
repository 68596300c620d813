//! bsv-relay: a transaction and block relay node for the BSV network.
//!
//! # Tasks and data flow
//!
//! `main` parses the [`config`] and runs [`node::run`], the composition root. It takes the
//! data-directory lock, builds the shared state once — [`peer::PeerRegistry`], [`peer::BanList`],
//! the address book, [`metrics::Metrics`], the [`chain::ChainState`], the mempool — and hands `Arc`s to the tasks it
//! spawns:
//!
//! - [`peer::manager`]: one accept loop per listener and one dialler per `-connect`/`-addnode`
//!   peer or free outbound slot. Every admitted socket is registered in the registry before its
//!   task starts, so connection limits and eviction see bursts exactly.
//! - [`peer::connection`]: per peer, first the transport ([`peer::transport`]: v1, or the
//!   encrypted BIP324 v2 of [`peer::v2`], told apart by an inbound peer's first bytes), then a
//!   reader task (bytes → [`wire::FrameDecoder`], or v2 packets → frames → [`wire::Message`] →
//!   the [`peer::protocol`] state machine) and a writer task draining a byte-bounded queue of v1
//!   frames (encrypted into packets on v2). The state machine decides everything SV Node's rules decide — handshake,
//!   message order, ping, timeouts, offences and bans — as plain code over `(now, event)`.
//! - [`relay`]: one task that owns the relay state and receives every delivered message through a
//!   bounded channel (a busy relay slows reading, it never buffers without limit): address
//!   gossip, headers-first sync of the [`chain::HeaderTree`], the block download schedule,
//!   transaction announcements and requests ([`relay::txrelay`]), answers to
//!   `getheaders`/`getblocks`/`getdata`.
//! - [`mempool::accept`]: one validation thread per core, fed by a bounded queue; each validates a
//!   transaction against the UTXO set plus the mempool and inserts it into the concurrent
//!   [`mempool::Mempool`] itself; outcomes go back to the relay on a bounded channel.
//! - [`relay::block_processor`]: one thread that connects blocks (from peers, `submitblock` and the
//!   regtest miner) to the [`chain::ChainState`] in arrival order, with the mempool held still
//!   through an exclusive gate while the UTXO set and the mempool change together; the chain state
//!   keeps blocks, undo data and the UTXO set in one redb file (blocks of 16 MiB or more in files
//!   of their own beside it, so redb never buffers a second copy), the coins behind a write-back
//!   cache bounded by `-dbcache` and flushed with their tip in one transaction.
//! - [`rpc`] (JSON-RPC for `bitcoin-cli`) and the `/metrics` listener read the shared state; RPC
//!   submissions go through the same queues as peers' messages.
//!
//! Shutdown is one [`shutdown`] channel: listeners close, connections flush what is queued,
//! the ban list and address book are written, the chain database is flushed, and the node waits
//! for every task.
//!
//! # Layers
//!
//! Dependencies point one way, each layer using only those before it (`tests/layering.rs` fails
//! on an arrow pointing back):
//!
//! 1. [`wire`] (codec, hashes, limits), [`http`], [`logging`], [`shutdown`]: depend on nothing inside;
//! 2. [`params`]: the networks' constants, read by every layer above;
//! 3. [`script`]: interpreter, sighash, signature checks and their cache;
//! 4. [`validation`]: transaction rules, the [`validation::CoinView`] interface and the script
//!    engine as block validation's [`validation::InputVerifier`]; [`wallet`]: keys and signing;
//! 5. [`chain`]: header tree, proof of work, block rules, the UTXO set, the chain state;
//! 6. [`peer`]: connections, handshake, scores and bans;
//! 7. [`mempool`]: the pool, orphans and the validation pipeline;
//! 8. [`mining`]; 9. [`relay`], [`txgen`]; 10. [`config`]; 11. [`rpc`]; 12. [`node`].
//!
//! [`metrics`] is the one cross-cutting module: every layer records into it, and its label sets
//! come from the enums of the layers it counts.
//!
//! # Limits
//!
//! Every input from a peer is bounded before it is allocated: payload size per command at header
//! time, item counts, string lengths, a per-message completion deadline, byte-bounded send queues,
//! a bounded event channel, bounded address book and orphan pool, bounded validation and block
//! queues, bounded per-peer known-inventory sets and in-flight requests. See the module docs of
//! [`wire::encode`], [`wire::frame`] and [`peer::connection`].

pub mod chain;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod mempool;
pub mod metrics;
pub mod mining;
pub mod node;
pub mod params;
pub mod peer;
pub mod relay;
pub mod rpc;
pub mod script;
pub mod shutdown;
pub mod txgen;
pub mod validation;
pub mod wallet;
pub mod wire;
