//! A running v2 connection's two directions: [`PacketDecoder`] turns received bytes into frames
//! the way `wire::frame::FrameDecoder` does for v1 (fed a growing buffer, split anywhere), and
//! [`PacketEncoder`] turns the v1 frames of the send queue into packets.
//!
//! A packet's length is decrypted before it is authenticated, so it is bounded before anything is
//! reserved for it: at most [`MAX_CONTENTS`] (what 3 bytes can say) and never more than the
//! largest message our limits allow; the buffer then grows only with bytes that arrive.

use super::cipher::{AuthError, PacketOpener, PacketSealer, IGNORE_BIT, LENGTH_LEN, MAX_CONTENTS, TAG_LEN};
use super::messages::{message_prefix, seal_message, split_v1_frame, Assembler, MessageError};
use crate::wire::frame::Frame;
use crate::wire::Limits;
use bytes::{Bytes, BytesMut};

/// Why a v2 stream cannot go on; each ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("packet length {len} is over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Decrypts packets and reassembles messages for one connection.
pub struct PacketDecoder {
    opener: PacketOpener,
    limits: Limits,
    max_packet: usize,
    /// The decrypted length of the packet being received, once its 3 bytes are in.
    pending: Option<usize>,
    assembler: Assembler,
}

impl PacketDecoder {
    /// A decoder that takes packets of at most `max_packet` content bytes (see
    /// [`PacketDecoder::set_max_packet`]).
    pub fn new(opener: PacketOpener, limits: Limits, max_packet: usize) -> PacketDecoder {
        PacketDecoder {
            opener,
            limits,
            max_packet: max_packet.min(MAX_CONTENTS),
            pending: None,
            assembler: Assembler::default(),
        }
    }

    /// Changes the largest packet taken: a connection allows small packets until the peer's
    /// `version` handshake is complete (as v1 bounds a body before the handshake), then any a
    /// 3-byte length can say.
    pub fn set_max_packet(&mut self, max_packet: usize) {
        self.max_packet = max_packet.min(MAX_CONTENTS);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether a packet or a large message is part-way in (for the message deadline).
    pub fn in_progress(&self, buf: &BytesMut) -> bool {
        !buf.is_empty() || self.pending.is_some() || self.assembler.in_progress()
    }

    /// How many more bytes the packet in progress needs (at least 1).
    pub fn bytes_wanted(&self, buf: &BytesMut) -> usize {
        let total = match self.pending {
            Some(len) => LENGTH_LEN + 1 + len + TAG_LEN,
            None => LENGTH_LEN,
        };
        total.saturating_sub(buf.len()).max(1)
    }

    /// Takes the next complete message off the front of `buf`, or `Ok(None)` if more bytes are
    /// needed. Decoys and messages of unknown type are consumed and skipped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, StreamError> {
        loop {
            let len = match self.pending {
                Some(len) => len,
                None => {
                    if buf.len() < LENGTH_LEN {
                        return Ok(None);
                    }
                    let len = self.opener.open_length([buf[0], buf[1], buf[2]]);
                    if len > self.max_packet {
                        return Err(StreamError::TooLong { len, max: self.max_packet });
                    }
                    self.pending = Some(len);
                    len
                }
            };
            let total = LENGTH_LEN + 1 + len + TAG_LEN;
            if buf.len() < total {
                return Ok(None);
            }
            self.pending = None;
            let mut packet = buf.split_to(total);
            self.opener.open(&mut packet[LENGTH_LEN..], &[])?;
            if packet[LENGTH_LEN] & IGNORE_BIT != 0 {
                continue;
            }
            let contents = packet.freeze().slice(LENGTH_LEN + 1..LENGTH_LEN + 1 + len);
            match self.assembler.take(contents, &self.limits)? {
                Some(received) => match received.command {
                    Some(command) => return Ok(Some(Frame { command, payload: received.payload, payload_hash: None })),
                    None => continue,
                },
                None => continue,
            }
        }
    }
}

/// Encrypts the frames of one connection's send queue.
pub struct PacketEncoder {
    sealer: PacketSealer,
}

impl PacketEncoder {
    pub fn new(sealer: PacketSealer) -> PacketEncoder {
        PacketEncoder { sealer }
    }

    /// The packet(s) carrying one queued v1 frame (its header is dropped: v2 has its own type,
    /// length and authentication).
    pub fn encode(&mut self, frame: &[u8]) -> Vec<u8> {
        let (command, payload) = split_v1_frame(frame);
        let mut out = Vec::new();
        seal_message(&mut self.sealer, command, payload, &mut out);
        out
    }

    /// The packets carrying a frame queued as pieces (its header first, then the payload's pieces),
    /// made one at a time as [`PartsPackets::next_packet`] is called: a big block is never joined or
    /// encrypted whole, only one packet's contents (at most 16 MiB) beside the pieces it shares.
    /// The packets are the same as [`Self::encode`] makes from the joined frame.
    pub fn encode_parts(&mut self, mut parts: Vec<Bytes>) -> PartsPackets<'_> {
        let (command, _) = split_v1_frame(&parts[0]);
        let payload_len: usize = parts[1..].iter().map(Bytes::len).sum();
        let prefix = message_prefix(command, payload_len);
        let remaining = prefix.len() + payload_len;
        parts[0] = Bytes::from(prefix);
        PartsPackets { sealer: &mut self.sealer, parts, next: 0, offset: 0, remaining }
    }

    /// A decoy packet of `len` random bytes, which the peer ignores.
    pub fn decoy(&mut self, len: usize) -> Vec<u8> {
        let junk: Vec<u8> = (0..len).map(|_| rand::random()).collect();
        let mut out = Vec::new();
        self.sealer.seal(IGNORE_BIT, &junk, &[], &mut out);
        out
    }
}

/// The packets of one frame queued as pieces, made on demand (see [`PacketEncoder::encode_parts`]).
pub struct PartsPackets<'a> {
    sealer: &'a mut PacketSealer,
    /// The message prefix, then the payload's pieces.
    parts: Vec<Bytes>,
    next: usize,
    offset: usize,
    remaining: usize,
}

impl PartsPackets<'_> {
    /// The next packet, or `None` when the frame is all sealed.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        if self.remaining == 0 {
            return None;
        }
        let len = self.remaining.min(MAX_CONTENTS);
        let mut contents = Vec::with_capacity(len);
        while contents.len() < len {
            let part = &self.parts[self.next];
            let take = (part.len() - self.offset).min(len - contents.len());
            contents.extend_from_slice(&part[self.offset..self.offset + take]);
            self.offset += take;
            if self.offset == part.len() {
                // Written pieces are let go at once: a slow peer does not keep them alive.
                self.parts[self.next] = Bytes::new();
                self.next += 1;
                self.offset = 0;
            }
        }
        self.remaining -= len;
        let mut out = Vec::new();
        self.sealer.seal(0, &contents, &[], &mut out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cipher::SessionKeys;
    use super::*;
    use crate::wire::{encode_frame, Message};

    fn pair() -> (PacketEncoder, PacketDecoder) {
        let keys = SessionKeys::derive(&[9; 32], [0xda, 0xb5, 0xbf, 0xfa]);
        let (sealer, _) = keys.ciphers(true);
        let (_, opener) = keys.ciphers(false);
        (PacketEncoder::new(sealer), PacketDecoder::new(opener, Limits::default(), MAX_CONTENTS))
    }

    #[test]
    fn frames_cross_split_at_every_byte_with_decoys_between() {
        let (mut enc, mut dec) = pair();
        let magic = [0xda, 0xb5, 0xbf, 0xfa];
        let msgs = [Message::Ping(7), Message::Verack, Message::Pong(9), Message::GetAddr];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend(enc.decoy(5));
            wire.extend(enc.encode(&encode_frame(magic, m)));
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.extend_from_slice(&[byte]);
            while let Some(frame) = dec.decode(&mut buf).expect("valid") {
                got.push(frame.message(dec.limits()).expect("decodes"));
            }
        }
        assert_eq!(got, msgs);
        assert!(!dec.in_progress(&buf));
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_the_packet_arrives() {
        let keys = SessionKeys::derive(&[9; 32], [0xda, 0xb5, 0xbf, 0xfa]);
        let (mut sealer, _) = keys.ciphers(true);
        let (_, opener) = keys.ciphers(false);
        let mut dec = PacketDecoder::new(opener, Limits::default(), 100_000);
        let mut out = Vec::new();
        sealer.seal(0, &vec![1u8; 200_000], &[], &mut out);
        let mut buf = BytesMut::from(&out[..3]);
        assert!(matches!(dec.decode(&mut buf), Err(StreamError::TooLong { len: 200_000, .. })));
    }

    #[test]
    fn a_frame_sealed_from_pieces_gives_the_packets_of_the_joined_frame() {
        let magic = [0xda, 0xb5, 0xbf, 0xfa];
        let small: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
        let large: Vec<u8> = (0..MAX_CONTENTS * 2 + 777).map(|i| (i % 253) as u8).collect();
        for (command, payload) in [("block", &small), ("blocktxn", &large), ("block", &Vec::new())] {
            let cmd = crate::wire::Command::new(command).expect("command");
            // Pieces of uneven sizes, some empty, cutting across packet boundaries.
            let mut pieces = Vec::new();
            let mut at = 0;
            for size in [0, 1, 13, 4096, MAX_CONTENTS - 5, 0, 1 << 20].iter().cycle() {
                if at >= payload.len() {
                    break;
                }
                let end = (at + size).min(payload.len());
                pieces.push(Bytes::copy_from_slice(&payload[at..end]));
                at = end;
            }
            let parts = crate::wire::frame::frame_parts(magic, cmd, pieces, false);
            let joined = crate::wire::frame::frame_bytes(magic, cmd, payload, 0);
            let (mut a, _) = pair();
            let (mut b, _) = pair();
            let mut packets = a.encode_parts(parts);
            let mut from_parts = Vec::new();
            while let Some(p) = packets.next_packet() {
                from_parts.extend_from_slice(&p);
            }
            assert!(from_parts == b.encode(&joined), "{command} of {} bytes", payload.len());
        }
    }
}
