//! Which transport a connection speaks, decided before its first message: v2 (BIP324, encrypted)
//! or v1 (SV Node's plaintext framing), and the decoder for the rest of the connection.
//!
//! - Inbound, with `-v2transport`: a v1 peer starts with the network's magic, or (of another
//!   network) with `version` after 4 bytes; anything else is the start of a v2 key (see
//!   [`detect`]). Both are served on one port, and we read only as many bytes as it takes to tell.
//! - Outbound: v2 only to an address known to advertise NODE_P2P_V2 (or that an operator named
//!   with `addnode … v2transport`), never on a guess: SV Node bans any address that sends it
//!   bytes that are not its magic. A v2 attempt the peer closes before sending its key is
//!   reported as [`NegotiationError::Fallback`]: the caller dials again with v1 and remembers it.
//!   Any later failure is a failure.

use super::misbehavior::Misbehavior;
use super::protocol::{Direction, DisconnectReason};
use super::v2::handshake::{handshake, HandshakeConfig, HandshakeError, Session};
use super::v2::stream::{PacketDecoder, StreamError};
use crate::wire::frame::{Frame, FrameDecoder, FrameHeader};
use crate::wire::{DecodeError, Limits};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Bytes that tell a v1 peer from a v2 one: magic (4) and the command `version` (12).
const V1_PREFIX_LEN: usize = 16;
/// Largest v2 packet taken before the peer's `version` handshake is complete: the largest message
/// allowed before it (SV Node's legacy 1 MB limit) with its type.
pub const PRE_HANDSHAKE_MAX_PACKET: usize = 1024 * 1024 + 13;

/// A negotiated transport.
pub enum Negotiated {
    V1 { received: BytesMut },
    V2(Box<Session>),
}

/// Why no transport was agreed.
#[derive(Debug)]
pub enum NegotiationError {
    /// Our v2 attempt was closed before the peer's key: it does not speak v2; dial again with v1.
    Fallback,
    /// The connection ends; `offence` is the peer's, when it is one; `label` names a failed v2
    /// handshake (none when the peer left or stalled before it was known to speak v2).
    Failed { reason: DisconnectReason, offence: Option<Misbehavior>, label: Option<&'static str> },
}

/// Decides the transport on a fresh connection. `try_v2` is the outbound decision; inbound peers
/// are detected when `accept_v2`.
pub async fn negotiate(
    stream: &mut TcpStream,
    direction: Direction,
    try_v2: bool,
    accept_v2: bool,
    magic: [u8; 4],
    timeout: Duration,
) -> Result<Negotiated, NegotiationError> {
    let config = HandshakeConfig::new(magic, timeout);
    match direction {
        Direction::Outbound if try_v2 => match handshake(stream, true, BytesMut::new(), &config).await {
            Ok(session) => Ok(Negotiated::V2(Box::new(session))),
            Err(HandshakeError::ClosedBeforeKey { .. }) => Err(NegotiationError::Fallback),
            Err(err) => Err(failure(&err)),
        },
        Direction::Outbound => Ok(Negotiated::V1 { received: BytesMut::new() }),
        Direction::Inbound if !accept_v2 => Ok(Negotiated::V1 { received: BytesMut::new() }),
        Direction::Inbound => {
            let mut received = BytesMut::with_capacity(V1_PREFIX_LEN);
            let reading = async {
                while let Detected::NotYet = detect(&received, magic) {
                    // Never past the 16 bytes, so nothing beyond what tells the transports apart is taken.
                    let mut chunk = vec![0u8; V1_PREFIX_LEN - received.len()];
                    match stream.read(&mut chunk).await {
                        Ok(0) => return Err(DisconnectReason::PeerClosed),
                        Ok(n) => received.extend_from_slice(&chunk[..n]),
                        Err(_) => return Err(DisconnectReason::IoError),
                    }
                }
                Ok(())
            };
            let detected = tokio::time::timeout(timeout, reading).await;
            match detected {
                Err(_) => {
                    return Err(NegotiationError::Failed {
                        reason: DisconnectReason::HandshakeTimeout,
                        offence: None,
                        label: None,
                    })
                }
                Ok(Err(reason)) => return Err(NegotiationError::Failed { reason, offence: None, label: None }),
                Ok(Ok(())) => {}
            }
            if detect(&received, magic) == Detected::V1 {
                return Ok(Negotiated::V1 { received });
            }
            match handshake(stream, false, received, &config).await {
                Ok(session) => Ok(Negotiated::V2(Box::new(session))),
                Err(err) => Err(failure(&err)),
            }
        }
    }
}

/// What an inbound peer's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detected {
    V1,
    V2,
    NotYet,
}

/// v1 if the first bytes are our magic (any command: SV Node's rules then judge the messages), or
/// any 4 bytes followed by the command `version` (a v1 peer of another network: the frame decoder
/// refuses its magic at once, as before v2). Anything else is the start of a v2 key. Our own v2
/// keys never start with the magic, and a key whose bytes 4–16 spell `version` and its padding
/// has a chance of 2^-96.
fn detect(received: &[u8], magic: [u8; 4]) -> Detected {
    const VERSION: &[u8; 12] = b"version\0\0\0\0\0";
    let head = &received[..received.len().min(4)];
    if head.len() == 4 && head == magic {
        return Detected::V1;
    }
    if !magic.starts_with(head) || received.len() > 4 {
        let command = &received[received.len().min(4)..];
        if !VERSION.starts_with(command) {
            return Detected::V2;
        }
        if received.len() == V1_PREFIX_LEN {
            return Detected::V1;
        }
    }
    Detected::NotYet
}

/// What a failed handshake costs the peer, from the one offence table.
fn failure(err: &HandshakeError) -> NegotiationError {
    let (reason, offence, label) = match err {
        HandshakeError::ClosedBeforeKey { .. } | HandshakeError::Closed => {
            (DisconnectReason::PeerClosed, None, "closed")
        }
        HandshakeError::Io(_) => (DisconnectReason::IoError, None, "io_error"),
        HandshakeError::Timeout(_) => {
            (DisconnectReason::HandshakeTimeout, Some(Misbehavior::V2HandshakeTimeout), "timeout")
        }
        HandshakeError::NoTerminator | HandshakeError::V1Key => {
            (DisconnectReason::StreamError, Some(Misbehavior::V2NoTerminator), "no_terminator")
        }
        HandshakeError::PacketTooLong(_) => (DisconnectReason::Oversized, Some(Misbehavior::V2Oversized), "oversized"),
        HandshakeError::Auth(_) => (DisconnectReason::StreamError, Some(Misbehavior::V2BadPacket), "bad_packet"),
    };
    NegotiationError::Failed { reason, offence, label: Some(label) }
}

/// Labels of handshake failures, for metric pre-registration.
pub const FAILURE_LABELS: [&str; 6] = ["closed", "io_error", "timeout", "no_terminator", "oversized", "bad_packet"];

/// A running connection's decoder, v1 or v2.
pub enum Decoder {
    V1(FrameDecoder),
    V2(Box<PacketDecoder>),
}

/// A decode failure of either transport.
pub enum DecodeFailure {
    /// A v1 error, handled by the protocol as before.
    V1(DecodeError),
    /// The v2 stream is broken: disconnect, with this offence.
    V2(StreamError),
}

impl DecodeFailure {
    /// The offence and disconnect reason of a broken v2 stream.
    pub fn v2_offence(err: &StreamError) -> (Misbehavior, DisconnectReason) {
        match err {
            StreamError::TooLong { .. } => (Misbehavior::V2Oversized, DisconnectReason::Oversized),
            StreamError::Auth(_) => (Misbehavior::V2BadPacket, DisconnectReason::StreamError),
            StreamError::Message(super::v2::messages::MessageError::Oversized { .. }) => {
                (Misbehavior::V2Oversized, DisconnectReason::Oversized)
            }
            StreamError::Message(_) => (Misbehavior::V2BadPacket, DisconnectReason::StreamError),
        }
    }
}

impl Decoder {
    pub fn limits(&self) -> &Limits {
        match self {
            Decoder::V1(d) => d.limits(),
            Decoder::V2(d) => d.limits(),
        }
    }

    pub fn bytes_wanted(&self, buf: &BytesMut) -> usize {
        match self {
            Decoder::V1(d) => d.bytes_wanted(buf),
            Decoder::V2(d) => d.bytes_wanted(buf),
        }
    }

    /// The v1 header of the frame in progress (for error labels); none on v2.
    pub fn pending(&self) -> Option<&FrameHeader> {
        match self {
            Decoder::V1(d) => d.pending(),
            Decoder::V2(_) => None,
        }
    }

    pub fn in_progress(&self, buf: &BytesMut) -> bool {
        match self {
            Decoder::V1(d) => !buf.is_empty() || d.pending().is_some(),
            Decoder::V2(d) => d.in_progress(buf),
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeFailure> {
        match self {
            Decoder::V1(d) => d.decode(buf).map_err(DecodeFailure::V1),
            Decoder::V2(d) => d.decode(buf).map_err(DecodeFailure::V2),
        }
    }

    /// The peer's `version` handshake is complete: v2 packets may now be as large as any message.
    pub fn handshake_complete(&mut self) {
        if let Decoder::V2(d) = self {
            d.set_max_packet(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

    #[test]
    fn first_bytes_tell_v1_from_v2() {
        let mut ours_v1 = MAGIC.to_vec();
        ours_v1.extend_from_slice(b"ping\0\0\0\0\0\0\0\0");
        let mut other_net = vec![0xff; 4];
        other_net.extend_from_slice(b"version\0\0\0\0\0");
        let key: Vec<u8> = (1..=16).collect();
        for (bytes, want) in [
            (&ours_v1[..4], Detected::V1),
            (&ours_v1[..2], Detected::NotYet),
            (&other_net[..], Detected::V1),
            (&other_net[..9], Detected::NotYet),
            (&other_net[..4], Detected::NotYet),
            (&key[..1], Detected::NotYet),
            (&key[..5], Detected::V2),
            (&key[..], Detected::V2),
            (&[0xda, 0xb5, 0x00][..], Detected::NotYet),
            (&[0xff, 0xff, 0xff, 0xff, b'v', b'x'][..], Detected::V2),
        ] {
            assert_eq!(detect(bytes, MAGIC), want, "{bytes:?}");
        }
    }
}
