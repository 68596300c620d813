//! The v2 handshake (BIP324 §Handshake): each side sends its 64-byte ElligatorSwift key and up to
//! 4095 bytes of garbage; once it has the other's key it sends its garbage terminator, any decoy
//! packets and the version packet (the first of them authenticating its garbage); it then looks
//! for the other's terminator within 4095 bytes and reads packets until the version packet.
//!
//! Bounds a hostile peer meets: the whole handshake has one deadline; garbage past 4095 bytes
//! without the terminator ends it; a handshake packet may carry at most [`MAX_HANDSHAKE_PACKET`]
//! bytes (checked before anything is reserved); an unauthentic packet ends it. The version
//! packet's contents are ignored, as BIP324 asks of this version of the protocol.

use super::cipher::{
    shared_secret, AuthError, PacketOpener, PacketSealer, SessionKeys, IGNORE_BIT, LENGTH_LEN, TAG_LEN, TERMINATOR_LEN,
};
use bytes::{Buf, BytesMut};
use secp256k1::ellswift::ElligatorSwift;
use secp256k1::SecretKey;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of an ElligatorSwift public key.
pub const KEY_LEN: usize = 64;
/// Most garbage either side may send before its terminator (BIP324's MAX_GARBAGE_LEN).
pub const MAX_GARBAGE: usize = 4095;
/// Most contents of a decoy or version packet during the handshake. The version packet is empty
/// today; a peer has no reason to send more than a few kilobytes of decoys before it.
pub const MAX_HANDSHAKE_PACKET: usize = 64 * 1024;

/// What this side sends besides its key.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    pub magic: [u8; 4],
    /// The whole handshake must finish within this.
    pub timeout: Duration,
    /// Garbage bytes to send after our key (random bytes; at most [`MAX_GARBAGE`]).
    pub garbage_len: usize,
    /// Decoy packets to send before the version packet (each of `decoy_len` random bytes).
    pub decoys: usize,
    pub decoy_len: usize,
}

impl HandshakeConfig {
    /// Our defaults: a random amount of garbage, as Core sends, and no decoys.
    pub fn new(magic: [u8; 4], timeout: Duration) -> HandshakeConfig {
        HandshakeConfig {
            magic,
            timeout,
            garbage_len: rand::random::<usize>() % (MAX_GARBAGE + 1),
            decoys: 0,
            decoy_len: 0,
        }
    }
}

/// A completed handshake: the ciphers for the rest of the connection.
pub struct Session {
    pub session_id: [u8; 32],
    pub sealer: PacketSealer,
    pub opener: PacketOpener,
    /// Bytes the peer sent after its version packet (the start of its first message).
    pub leftover: BytesMut,
}

/// Why a v2 handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer closed before its key was complete: to an initiator, a peer that does not speak
    /// v2 (the only case that falls back to v1).
    #[error("closed by the peer before its key ({got} of 64 bytes)")]
    ClosedBeforeKey { got: usize },
    #[error("closed by the peer during the handshake")]
    Closed,
    #[error("handshake not finished within {0:?}")]
    Timeout(Duration),
    #[error("no garbage terminator within {MAX_GARBAGE} bytes")]
    NoTerminator,
    #[error("the peer's key is the start of a v1 message")]
    V1Key,
    #[error("handshake packet of {0} bytes is over the limit")]
    PacketTooLong(usize),
    #[error("handshake packet failed authentication")]
    Auth(#[from] AuthError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the handshake on `stream`. `received` holds bytes of the peer's already read (an inbound
/// connection's first bytes, read to tell v1 from v2).
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    initiator: bool,
    received: BytesMut,
    config: &HandshakeConfig,
) -> Result<Session, HandshakeError> {
    match tokio::time::timeout(config.timeout, run(stream, initiator, received, config)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout(config.timeout)),
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    initiator: bool,
    mut buf: BytesMut,
    config: &HandshakeConfig,
) -> Result<Session, HandshakeError> {
    // A key that starts with the network's magic would look like v1 to the responder: draw again
    // (a chance of 2^-32).
    let (secret, ours) = loop {
        let secret = SecretKey::new(&mut rand::thread_rng());
        let ours = ElligatorSwift::from_seckey(secp256k1::SECP256K1, secret, Some(rand::random())).to_array();
        if ours[..4] != config.magic {
            break (secret, ours);
        }
    };
    let garbage: Vec<u8> = (0..config.garbage_len.min(MAX_GARBAGE)).map(|_| rand::random()).collect();
    // The initiator speaks first; a responder answers once it has a whole key, so a v1 peer
    // mistaken for v2 gets nothing but a closed connection.
    if initiator {
        write_key(stream, &ours, &garbage).await?;
    }
    fill(stream, &mut buf, KEY_LEN, |got| HandshakeError::ClosedBeforeKey { got }).await?;
    let theirs: [u8; KEY_LEN] = buf[..KEY_LEN].try_into().expect("filled");
    buf.advance(KEY_LEN);
    if theirs[..4] == config.magic {
        return Err(HandshakeError::V1Key);
    }
    if !initiator {
        write_key(stream, &ours, &garbage).await?;
    }
    let keys = SessionKeys::derive(&shared_secret(&ours, &theirs, &secret, initiator), config.magic);
    let (send_terminator, recv_terminator) = keys.terminators(initiator);
    let (mut sealer, mut opener) = keys.ciphers(initiator);

    let mut out = send_terminator.to_vec();
    let mut aad: &[u8] = &garbage;
    for _ in 0..config.decoys {
        let decoy: Vec<u8> = (0..config.decoy_len).map(|_| rand::random()).collect();
        sealer.seal(IGNORE_BIT, &decoy, aad, &mut out);
        aad = &[];
    }
    sealer.seal(0, &[], aad, &mut out);
    stream.write_all(&out).await?;

    // Their garbage, up to the terminator.
    let their_garbage = loop {
        if let Some(at) = buf.windows(TERMINATOR_LEN).position(|w| w == recv_terminator) {
            if at > MAX_GARBAGE {
                return Err(HandshakeError::NoTerminator);
            }
            let garbage = buf.split_to(at);
            buf.advance(TERMINATOR_LEN);
            break garbage;
        }
        if buf.len() >= MAX_GARBAGE + TERMINATOR_LEN {
            return Err(HandshakeError::NoTerminator);
        }
        read_more(stream, &mut buf).await?;
    };

    // Decoys, then the version packet; the first packet authenticates their garbage.
    let mut aad: &[u8] = &their_garbage;
    loop {
        fill(stream, &mut buf, LENGTH_LEN, |_| HandshakeError::Closed).await?;
        let len = opener.open_length(buf[..LENGTH_LEN].try_into().expect("filled"));
        if len > MAX_HANDSHAKE_PACKET {
            return Err(HandshakeError::PacketTooLong(len));
        }
        let total = LENGTH_LEN + 1 + len + TAG_LEN;
        fill(stream, &mut buf, total, |_| HandshakeError::Closed).await?;
        let mut packet = buf.split_to(total);
        opener.open(&mut packet[LENGTH_LEN..], aad)?;
        aad = &[];
        if packet[LENGTH_LEN] & IGNORE_BIT == 0 {
            break;
        }
    }
    Ok(Session { session_id: keys.session_id, sealer, opener, leftover: buf })
}

async fn write_key<S: AsyncWrite + Unpin>(stream: &mut S, key: &[u8; KEY_LEN], garbage: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(KEY_LEN + garbage.len());
    out.extend_from_slice(key);
    out.extend_from_slice(garbage);
    stream.write_all(&out).await
}

/// Reads until `buf` holds at least `want` bytes.
async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    want: usize,
    closed: impl Fn(usize) -> HandshakeError,
) -> Result<(), HandshakeError> {
    while buf.len() < want {
        buf.reserve(want - buf.len());
        if stream.read_buf(buf).await? == 0 {
            return Err(closed(buf.len()));
        }
    }
    Ok(())
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> Result<(), HandshakeError> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(HandshakeError::Closed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

    fn config(garbage_len: usize, decoys: usize) -> HandshakeConfig {
        HandshakeConfig { magic: MAGIC, timeout: Duration::from_secs(5), garbage_len, decoys, decoy_len: 300 }
    }

    #[tokio::test]
    async fn both_sides_agree_on_the_session_with_garbage_and_decoys() {
        for (garbage, decoys) in [(0, 0), (MAX_GARBAGE, 3), (17, 1)] {
            let (mut a, mut b) = tokio::io::duplex(1 << 20);
            let (ca, cb) = (config(garbage, decoys), config(garbage / 2, 0));
            let (x, y) = tokio::join!(
                handshake(&mut a, true, BytesMut::new(), &ca),
                handshake(&mut b, false, BytesMut::new(), &cb)
            );
            let (mut x, mut y) = (x.expect("initiator"), y.expect("responder"));
            assert_eq!(x.session_id, y.session_id);
            let mut out = Vec::new();
            x.sealer.seal(0, b"after", &[], &mut out);
            let len = y.opener.open_length(out[..3].try_into().expect("3"));
            assert_eq!(len, 5);
            y.opener.open(&mut out[3..], &[]).expect("authentic");
        }
    }

    #[tokio::test]
    async fn a_peer_closing_before_its_key_is_told_apart_from_a_later_close() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let peer = tokio::spawn(async move {
            let mut first = [0u8; 64];
            b.read_exact(&mut first).await.expect("our key");
            drop(b);
        });
        let err = handshake(&mut a, true, BytesMut::new(), &config(0, 0)).await.err().expect("fails");
        assert!(matches!(err, HandshakeError::ClosedBeforeKey { got: 0 }), "{err}");
        peer.await.expect("peer");
    }

    #[tokio::test]
    async fn garbage_without_a_terminator_and_silence_end_the_handshake() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let flood = tokio::spawn(async move {
            let junk = vec![0x55u8; KEY_LEN + MAX_GARBAGE + TERMINATOR_LEN + 10];
            let _ = b.write_all(&junk).await;
            b
        });
        let err = handshake(&mut a, false, BytesMut::new(), &config(0, 0)).await.err().expect("fails");
        assert!(matches!(err, HandshakeError::NoTerminator), "{err}");
        drop(flood.await);

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(&[0x42; KEY_LEN]).await.expect("key");
        let quick = HandshakeConfig { timeout: Duration::from_millis(200), ..config(0, 0) };
        let err = handshake(&mut a, false, BytesMut::new(), &quick).await.err().expect("fails");
        assert!(matches!(err, HandshakeError::Timeout(_)), "{err}");
    }
}
