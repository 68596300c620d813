//! The `Message` enum: every message SV Node v1.0.13 speaks, and the limits that apply to each.
//!
//! Decoding a payload takes the `Limits` in force on the connection, so item counts are checked
//! against what we advertised (our protoconf) before any vector is allocated. Commands we do not
//! know decode to `Message::Unknown` with their name and size; the payload is not kept.

use super::block::{Block, BlockHeader};
use super::encode::{read_vec, write_compact_size, write_vec, Decodable, Encodable, Reader};
use super::error::DecodeError;
use super::hash::Hash256;
use super::inv::{max_inv_items, InvItem, INV_ITEM_LEN};
use super::msg::{
    AuthCh, BlockLocator, BlockTxn, CompactBlock, GetBlockTxn, MempoolRequest, Protoconf, Reject, SendCmpct, Version,
};
use super::netaddr::{TimedAddress, TIMED_ADDRESS_LEN};
use super::tx::Transaction;
use bytes::Bytes;
use std::fmt;

/// Most headers in one `headers` message: SV Node and Core both send at most 2000 per reply
/// (`MAX_HEADERS_RESULTS`, src/validation.h:127).
pub const MAX_HEADERS: u64 = 2000;
/// Most addresses in one `addr` message (SV Node: more is `Misbehaving(20, "oversized-addr")`).
pub const MAX_ADDR: u64 = 1000;
/// Our default largest non-block payload, advertised in our protoconf: SV Node's
/// `DEFAULT_MAX_PROTOCOL_RECV_PAYLOAD_LENGTH` (2 MiB, src/protocol.h:33).
pub const DEFAULT_MAX_RECV_PAYLOAD: u64 = 2 * 1024 * 1024;
/// The payload limit assumed for a peer until its protoconf arrives, and the fixed limit of the
/// `protoconf` message itself: `LEGACY_MAX_PROTOCOL_PAYLOAD_LENGTH` (1 MiB, src/protocol.h:40).
pub const LEGACY_MAX_PAYLOAD: u64 = 1024 * 1024;
/// Largest transaction after Genesis: `MAX_TX_SIZE_CONSENSUS_AFTER_GENESIS` (1 GB, src/consensus/consensus.h:29).
pub const MAX_TX_SIZE: u64 = 1_000_000_000;
/// Our default maximum block size when the operator sets none. SV Node's chain default is
/// unlimited; a relay must hold a block in memory, so we pick 4 GB and let `-excessiveblocksize` raise it.
pub const DEFAULT_MAX_BLOCK_SIZE: u64 = 4_000_000_000;

/// Receive limits in force on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest non-block payload we accept (what our protoconf advertised).
    pub max_recv_payload: u64,
    /// Largest block we accept (`-excessiveblocksize`).
    pub max_block_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_recv_payload: DEFAULT_MAX_RECV_PAYLOAD, max_block_size: DEFAULT_MAX_BLOCK_SIZE }
    }
}

impl Limits {
    /// Largest payload a message with this command may have, checked as soon as the header is read
    /// (SV Node's `NetMsgType::GetMaxMessageLength`, src/protocol.cpp:63-99).
    pub fn max_payload(&self, command: &str) -> u64 {
        match command {
            "protoconf" => LEGACY_MAX_PAYLOAD,
            "tx" | "datareftx" => MAX_TX_SIZE,
            // Each requested index is at most a 6-byte CompactSize and a transaction is at least
            // 215 bytes in SV Node's estimate; plus the block hash and the count.
            "getblocktxn" => self.max_block_size / 215 * 6 + 32 + 9,
            "block" | "cmpctblock" | "blocktxn" | "hdrsen" => self.max_block_size,
            _ => self.max_recv_payload,
        }
    }

    /// Most items an inv, getdata or notfound may carry under our receive limit.
    pub fn max_inv_items(&self) -> u64 {
        max_inv_items(self.max_recv_payload)
    }
}

/// A command name: printable ASCII, NUL-padded to 12 bytes, as validated by SV Node's
/// `CheckCommandFormat`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Command {
    bytes: [u8; 12],
    len: u8,
}

impl Command {
    /// Validates the 12 command bytes of a header.
    pub fn from_wire(bytes: [u8; 12]) -> Result<Command, DecodeError> {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(12);
        let printable = bytes[..len].iter().all(|b| (0x20..=0x7E).contains(b));
        let padded = bytes[len..].iter().all(|&b| b == 0);
        if !printable || !padded {
            return Err(DecodeError::InvalidCommand { bytes });
        }
        Ok(Command { bytes, len: len as u8 })
    }

    /// A command from a name of at most 12 printable characters.
    pub fn new(name: &str) -> Option<Command> {
        if name.len() > 12 {
            return None;
        }
        let mut bytes = [0u8; 12];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Command::from_wire(bytes).ok()
    }

    pub fn as_str(&self) -> &str {
        // Validated as printable ASCII in `from_wire`.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    pub fn to_wire(self) -> [u8; 12] {
        self.bytes
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded P2P message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Version(Version),
    Verack,
    Ping(u64),
    Pong(u64),
    Addr(Vec<TimedAddress>),
    GetAddr,
    Inv(Vec<InvItem>),
    GetData(Vec<InvItem>),
    NotFound(Vec<InvItem>),
    Tx(Transaction),
    Block(Block),
    Headers(Vec<BlockHeader>),
    GetHeaders(BlockLocator),
    GetBlocks(BlockLocator),
    SendHeaders,
    SendCmpct(SendCmpct),
    CmpctBlock(CompactBlock),
    GetBlockTxn(GetBlockTxn),
    BlockTxn(BlockTxn),
    /// Minimum fee rate in satoshis per 1000 bytes.
    FeeFilter(i64),
    Reject(Reject),
    Mempool(MempoolRequest),
    Protoconf(Protoconf),
    AuthCh(AuthCh),
    /// A command we do not handle; its payload was read (within limits) and dropped.
    Unknown {
        command: Command,
        payload_len: u64,
    },
}

/// Every command `Message` decodes, for metric label sets. `Unknown` is counted as "other".
pub const COMMANDS: [&str; 24] = [
    "version",
    "verack",
    "ping",
    "pong",
    "addr",
    "getaddr",
    "inv",
    "getdata",
    "notfound",
    "tx",
    "block",
    "headers",
    "getheaders",
    "getblocks",
    "sendheaders",
    "sendcmpct",
    "cmpctblock",
    "getblocktxn",
    "blocktxn",
    "feefilter",
    "reject",
    "mempool",
    "protoconf",
    "authch",
];

impl Message {
    /// The command name on the wire.
    pub fn command(&self) -> &str {
        match self {
            Message::Version(_) => "version",
            Message::Verack => "verack",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::Addr(_) => "addr",
            Message::GetAddr => "getaddr",
            Message::Inv(_) => "inv",
            Message::GetData(_) => "getdata",
            Message::NotFound(_) => "notfound",
            Message::Tx(_) => "tx",
            Message::Block(_) => "block",
            Message::Headers(_) => "headers",
            Message::GetHeaders(_) => "getheaders",
            Message::GetBlocks(_) => "getblocks",
            Message::SendHeaders => "sendheaders",
            Message::SendCmpct(_) => "sendcmpct",
            Message::CmpctBlock(_) => "cmpctblock",
            Message::GetBlockTxn(_) => "getblocktxn",
            Message::BlockTxn(_) => "blocktxn",
            Message::FeeFilter(_) => "feefilter",
            Message::Reject(_) => "reject",
            Message::Mempool(_) => "mempool",
            Message::Protoconf(_) => "protoconf",
            Message::AuthCh(_) => "authch",
            Message::Unknown { command, .. } => command.as_str(),
        }
    }

    /// The command as a metric label: one of `COMMANDS`, or "other".
    pub fn command_label(&self) -> &'static str {
        let cmd = self.command();
        COMMANDS.iter().copied().find(|c| *c == cmd).unwrap_or("other")
    }

    /// Appends the payload encoding to `out`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Message::Version(v) => v.consensus_encode(out),
            Message::Verack | Message::GetAddr | Message::SendHeaders => {}
            Message::Ping(n) | Message::Pong(n) => out.extend_from_slice(&n.to_le_bytes()),
            Message::Addr(a) => write_vec(out, a),
            Message::Inv(i) | Message::GetData(i) | Message::NotFound(i) => write_vec(out, i),
            Message::Tx(tx) => tx.consensus_encode(out),
            Message::Block(b) => b.consensus_encode(out),
            Message::Headers(headers) => {
                write_compact_size(out, headers.len() as u64);
                for h in headers {
                    h.consensus_encode(out);
                    // The transaction count that follows each header; SV Node writes 0.
                    out.push(0);
                }
            }
            Message::GetHeaders(l) | Message::GetBlocks(l) => l.consensus_encode(out),
            Message::SendCmpct(s) => s.consensus_encode(out),
            Message::CmpctBlock(c) => c.consensus_encode(out),
            Message::GetBlockTxn(g) => g.consensus_encode(out),
            Message::BlockTxn(b) => b.consensus_encode(out),
            Message::FeeFilter(rate) => out.extend_from_slice(&rate.to_le_bytes()),
            Message::Reject(r) => r.consensus_encode(out),
            Message::Mempool(m) => m.consensus_encode(out),
            Message::Protoconf(p) => p.consensus_encode(out),
            Message::AuthCh(a) => a.consensus_encode(out),
            Message::Unknown { .. } => {}
        }
    }

    /// The payload of a message that carries whole transactions (`block`, `blocktxn`) as pieces
    /// sharing the transactions' buffers ([`Block::payload_parts`]); `None` for the others, whose
    /// payloads are small or built fresh anyway.
    pub fn payload_parts(&self) -> Option<Vec<Bytes>> {
        match self {
            Message::Block(b) => Some(b.payload_parts()),
            Message::BlockTxn(t) => {
                let mut head = Vec::with_capacity(32 + 9);
                head.extend_from_slice(&t.block_hash.0);
                write_compact_size(&mut head, t.transactions.len() as u64);
                let mut parts = Vec::with_capacity(1 + t.transactions.len());
                parts.push(Bytes::from(head));
                parts.extend(t.transactions.iter().map(|tx| tx.raw().clone()));
                Some(parts)
            }
            _ => None,
        }
    }

    /// Decodes the payload of a message with this command. `payload_hash`, if known, is sha256d of
    /// the whole payload, reused as the txid of a `tx` message. The payload must be consumed exactly,
    /// except by the messages whose trailing fields are optional or forward-compatible.
    pub fn decode(
        command: Command,
        payload: &Bytes,
        payload_hash: Option<Hash256>,
        limits: &Limits,
    ) -> Result<Message, DecodeError> {
        let r = &mut Reader::new(payload);
        let name = command.as_str();
        let msg = match name {
            "version" => Message::Version(Version::consensus_decode(r)?),
            "verack" => Message::Verack,
            "ping" => Message::Ping(r.read_u64_le("ping nonce")?),
            "pong" => Message::Pong(r.read_u64_le("pong nonce")?),
            "addr" => Message::Addr(read_vec(r, "addr entries", MAX_ADDR, TIMED_ADDRESS_LEN)?),
            "getaddr" => Message::GetAddr,
            "inv" => Message::Inv(read_vec(r, "inv items", limits.max_inv_items(), INV_ITEM_LEN)?),
            "getdata" => Message::GetData(read_vec(r, "getdata items", limits.max_inv_items(), INV_ITEM_LEN)?),
            "notfound" => Message::NotFound(read_vec(r, "notfound items", limits.max_inv_items(), INV_ITEM_LEN)?),
            "tx" => Message::Tx(Transaction::decode_with_id(r, payload_hash)?),
            "block" => Message::Block(Block::consensus_decode(r)?),
            "headers" => {
                let count = r.read_count("headers", MAX_HEADERS, 81)?;
                let mut headers = Vec::with_capacity(count);
                for _ in 0..count {
                    headers.push(BlockHeader::consensus_decode(r)?);
                    // SV Node ignores the value; it must still be a valid CompactSize.
                    r.read_compact_size("header tx count")?;
                }
                Message::Headers(headers)
            }
            "getheaders" => Message::GetHeaders(BlockLocator::consensus_decode(r)?),
            "getblocks" => Message::GetBlocks(BlockLocator::consensus_decode(r)?),
            "sendheaders" => Message::SendHeaders,
            "sendcmpct" => Message::SendCmpct(SendCmpct::consensus_decode(r)?),
            "cmpctblock" => Message::CmpctBlock(CompactBlock::consensus_decode(r)?),
            "getblocktxn" => Message::GetBlockTxn(GetBlockTxn::consensus_decode(r)?),
            "blocktxn" => Message::BlockTxn(BlockTxn::consensus_decode(r)?),
            "feefilter" => Message::FeeFilter(r.read_i64_le("fee rate")?),
            "reject" => Message::Reject(Reject::consensus_decode(r)?),
            "mempool" => Message::Mempool(MempoolRequest::consensus_decode(r)?),
            "protoconf" => Message::Protoconf(Protoconf::consensus_decode(r)?),
            "authch" => Message::AuthCh(AuthCh::consensus_decode(r)?),
            _ => return Ok(Message::Unknown { command, payload_len: payload.len() as u64 }),
        };
        // Messages that end in optional or ignored data accept trailing bytes; the rest must not
        // carry any, or a tx's id would no longer be the hash of exactly its bytes.
        if !matches!(name, "version" | "reject" | "verack" | "getaddr" | "sendheaders" | "protoconf") {
            r.finish(command_static(name))?;
        }
        Ok(msg)
    }
}

fn command_static(name: &str) -> &'static str {
    COMMANDS.iter().copied().find(|c| *c == name).unwrap_or("message")
}
