//! Framing: the 24-byte message header, the 44-byte `extmsg` header, and a streaming decoder.
//!
//! `FrameDecoder::decode` is fed a growing buffer as bytes arrive and returns a frame once one is
//! complete, so a message split anywhere across reads decodes the same as one delivered whole. The
//! header is checked as soon as it is complete (magic after the first four bytes, then command,
//! then the payload length against that command's limit), before any byte of the payload is read
//! or any space is reserved for it: an oversized or wrong-magic frame is refused at once.
//! `bytes_wanted` tells the caller how much more to read, and is never more than what the
//! already-validated header promised.

use super::error::DecodeError;
use super::hash::{sha256d, sha256d_parts, Hash256};
use super::message::{Command, Limits, Message};
use bytes::{Bytes, BytesMut};

/// Size of the basic header: magic (4) + command (12) + length (4) + checksum (4).
pub const HEADER_LEN: usize = 24;
/// Size of the extended header: basic header + real command (12) + 64-bit length (8).
pub const EXT_HEADER_LEN: usize = 44;
/// The command that introduces an extended header (SV Node, protocol ≥ 70016).
pub const EXTMSG: &str = "extmsg";
/// Payloads above this size need the extended header.
pub const MAX_BASIC_PAYLOAD: u64 = u32::MAX as u64;

/// A validated header whose payload may not have arrived yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// `None` when the command bytes are invalid: the frame is still read whole (within the
    /// default limit) so the stream stays aligned, then reported as `InvalidCommand`, the way SV
    /// Node drops such a message without disconnecting.
    pub command: Option<Command>,
    pub command_bytes: [u8; 12],
    pub payload_len: u64,
    pub checksum: u32,
    /// Read from an `extmsg` header (its checksum is not verified, as in SV Node).
    pub extended: bool,
}

impl FrameHeader {
    pub fn header_len(&self) -> usize {
        if self.extended {
            EXT_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
}

/// A complete frame: its command and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub payload: Bytes,
    /// sha256d of the payload, when it was computed to check the checksum.
    pub payload_hash: Option<Hash256>,
}

impl Frame {
    /// Decodes the payload into a message.
    pub fn message(&self, limits: &Limits) -> Result<Message, DecodeError> {
        Message::decode(self.command, &self.payload, self.payload_hash, limits)
    }

    /// Size of the frame on the wire.
    pub fn wire_len(&self) -> usize {
        self.payload.len() + if self.payload.len() as u64 > MAX_BASIC_PAYLOAD { EXT_HEADER_LEN } else { HEADER_LEN }
    }
}

/// Decodes frames from a byte stream for one connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    magic: [u8; 4],
    limits: Limits,
    pending: Option<FrameHeader>,
}

impl FrameDecoder {
    pub fn new(magic: [u8; 4], limits: Limits) -> FrameDecoder {
        FrameDecoder { magic, limits, pending: None }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The header of the frame being received, if its header is complete but its payload is not.
    pub fn pending(&self) -> Option<&FrameHeader> {
        self.pending.as_ref()
    }

    /// How many more bytes the frame in progress needs (at least 1), given what `buf` holds.
    pub fn bytes_wanted(&self, buf: &BytesMut) -> usize {
        let total = match &self.pending {
            Some(h) => h.payload_len as usize,
            None if buf.len() >= HEADER_LEN && buf[4..16].starts_with(EXTMSG.as_bytes()) => EXT_HEADER_LEN,
            None => HEADER_LEN,
        };
        total.saturating_sub(buf.len()).max(1)
    }

    /// Takes one complete frame off the front of `buf`, or returns `Ok(None)` if more bytes are
    /// needed. After `BadChecksum` or `InvalidCommand` the whole frame has been consumed and decoding
    /// may go on (SV Node drops such a message without disconnecting); after `BadMagic` or
    /// `Oversized` the stream position is lost and the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let header = match self.pending {
            Some(h) => h,
            None => match self.decode_header(buf)? {
                Some(h) => {
                    let _ = buf.split_to(h.header_len());
                    self.pending = Some(h);
                    h
                }
                None => return Ok(None),
            },
        };
        if (buf.len() as u64) < header.payload_len {
            return Ok(None);
        }
        self.pending = None;
        let payload = buf.split_to(header.payload_len as usize).freeze();
        let Some(command) = header.command else {
            return Err(DecodeError::InvalidCommand { bytes: header.command_bytes });
        };
        let payload_hash = if header.extended {
            None
        } else {
            let hash = Hash256(sha256d(&payload));
            if hash.checksum() != header.checksum {
                return Err(DecodeError::BadChecksum {
                    command: command.to_string(),
                    expected: header.checksum,
                    actual: hash.checksum(),
                });
            }
            Some(hash)
        };
        Ok(Some(Frame { command, payload, payload_hash }))
    }

    /// Call when the stream has ended: leftover bytes are a truncated frame.
    pub fn finish(&self, buf: &BytesMut) -> Result<(), DecodeError> {
        if buf.is_empty() && self.pending.is_none() {
            return Ok(());
        }
        Err(DecodeError::Truncated { what: "frame", needed: self.bytes_wanted(buf) as u64 })
    }

    fn decode_header(&self, buf: &BytesMut) -> Result<Option<FrameHeader>, DecodeError> {
        if buf.len() >= 4 && buf[..4] != self.magic {
            let got = [buf[0], buf[1], buf[2], buf[3]];
            return Err(DecodeError::BadMagic { got, expected: self.magic });
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut command_bytes = [0u8; 12];
        command_bytes.copy_from_slice(&buf[4..16]);
        let mut command = Command::from_wire(command_bytes).ok();
        let mut payload_len = u64::from(u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]));
        let checksum = u32::from_le_bytes([buf[20], buf[21], buf[22], buf[23]]);
        let extended = command.is_some_and(|c| c.as_str() == EXTMSG);
        if extended {
            if buf.len() < EXT_HEADER_LEN {
                return Ok(None);
            }
            command_bytes.copy_from_slice(&buf[24..36]);
            command = Command::from_wire(command_bytes).ok();
            let mut len = [0u8; 8];
            len.copy_from_slice(&buf[36..44]);
            payload_len = u64::from_le_bytes(len);
        }
        // An invalid command gets the limit of "everything else".
        let name = command.as_ref().map_or("", Command::as_str);
        let max = self.limits.max_payload(name);
        if payload_len > max {
            let shown = String::from_utf8_lossy(&command_bytes).trim_end_matches('\0').to_string();
            return Err(DecodeError::Oversized { command: shown, len: payload_len, max });
        }
        Ok(Some(FrameHeader { command, command_bytes, payload_len, checksum, extended }))
    }
}

/// Encodes `msg` as one frame for a network with `magic`, using the extended header only when the
/// payload exceeds 4 GiB. A `tx`'s checksum is taken from its txid instead of hashing it again.
pub fn encode_frame(magic: [u8; 4], msg: &Message) -> Vec<u8> {
    let mut payload = Vec::new();
    msg.encode_payload(&mut payload);
    let checksum = match msg {
        Message::Tx(tx) => tx.txid().checksum(),
        _ => Hash256(sha256d(&payload)).checksum(),
    };
    let command = Command::new(msg.command()).expect("message commands are valid command names");
    frame_bytes(magic, command, &payload, checksum)
}

/// Encodes a frame from its parts.
pub fn frame_bytes(magic: [u8; 4], command: Command, payload: &[u8], checksum: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXT_HEADER_LEN + payload.len());
    write_header(&mut out, magic, command, payload.len() as u64, checksum);
    out.extend_from_slice(payload);
    out
}

/// The header of a frame whose payload of `len` bytes is sent separately (see [`encode_frame_parts`]).
pub fn frame_header(magic: [u8; 4], command: Command, len: u64, checksum: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(EXT_HEADER_LEN);
    write_header(&mut out, magic, command, len, checksum);
    out
}

fn write_header(out: &mut Vec<u8>, magic: [u8; 4], command: Command, len: u64, checksum: u32) {
    out.extend_from_slice(&magic);
    if len > MAX_BASIC_PAYLOAD {
        out.extend_from_slice(&Command::new(EXTMSG).expect("valid").to_wire());
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&command.to_wire());
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.extend_from_slice(&command.to_wire());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&checksum.to_le_bytes());
    }
}

/// Encodes a message that carries whole transactions (`block`, `blocktxn`) as the pieces of its
/// frame: the header, then payload pieces that are the transactions' own buffers, so a block is
/// sent to any number of peers without a copy of its bytes. `None` for any other message (encode
/// it with [`encode_frame`]). With `checksum` false the header's checksum is left zero (a v2
/// connection drops the v1 header and authenticates its packets itself).
pub fn encode_frame_parts(magic: [u8; 4], msg: &Message, checksum: bool) -> Option<Vec<Bytes>> {
    let payload = msg.payload_parts()?;
    Some(frame_parts(
        magic,
        Command::new(msg.command()).expect("message commands are valid command names"),
        payload,
        checksum,
    ))
}

/// A frame as its header followed by `payload`'s pieces (see [`encode_frame_parts`]).
pub fn frame_parts(magic: [u8; 4], command: Command, mut payload: Vec<Bytes>, checksum: bool) -> Vec<Bytes> {
    let len: u64 = payload.iter().map(|p| p.len() as u64).sum();
    let checksum = if checksum { Hash256(sha256d_parts(payload.iter().map(|p| &p[..]))).checksum() } else { 0 };
    payload.insert(0, Bytes::from(frame_header(magic, command, len, checksum)));
    payload
}
