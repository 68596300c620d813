//! A raw v2 (BIP324) peer for tests, built on the node's own handshake and packet code: the honest
//! client that sends decoys and garbage, and the attacker that sends what it likes after the
//! handshake.

use super::peer::{ReadResult, REGTEST_MAGIC};
use bsv_relay::peer::v2::handshake::{handshake, HandshakeConfig, HandshakeError};
use bsv_relay::peer::v2::stream::{PacketDecoder, PacketEncoder};
use bsv_relay::wire::message::Limits;
use bsv_relay::wire::{encode_frame, Message};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct V2Peer {
    rt: tokio::runtime::Runtime,
    stream: TcpStream,
    pub encoder: PacketEncoder,
    decoder: PacketDecoder,
    buf: BytesMut,
    pub session_id: [u8; 32],
}

/// A handshake config with `garbage` bytes of garbage and `decoys` decoys before the version packet.
pub fn config(garbage: usize, decoys: usize) -> HandshakeConfig {
    HandshakeConfig {
        magic: REGTEST_MAGIC,
        timeout: Duration::from_secs(10),
        garbage_len: garbage,
        decoys,
        decoy_len: 100,
    }
}

impl V2Peer {
    /// Connects to `addr` and runs the v2 handshake as the initiator.
    pub fn connect(addr: SocketAddr, config: &HandshakeConfig) -> Result<V2Peer, HandshakeError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (stream, session) = rt.block_on(async {
            let mut stream = TcpStream::connect(addr).await?;
            let session = handshake(&mut stream, true, BytesMut::new(), config).await?;
            Ok::<_, HandshakeError>((stream, session))
        })?;
        Ok(V2Peer {
            rt,
            stream,
            encoder: PacketEncoder::new(session.sealer),
            decoder: PacketDecoder::new(session.opener, Limits::default(), usize::MAX),
            buf: session.leftover,
            session_id: session.session_id,
        })
    }

    pub fn send(&mut self, msg: &Message) {
        let packets = self.encoder.encode(&encode_frame(REGTEST_MAGIC, msg));
        self.send_raw(&packets);
    }

    pub fn send_decoy(&mut self, len: usize) {
        let packet = self.encoder.decoy(len);
        self.send_raw(&packet);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stream = &mut self.stream;
        let _ = self.rt.block_on(async { stream.write_all(bytes).await });
    }

    /// The next message, or how the wait ended.
    pub fn read(&mut self, timeout: Duration) -> ReadResult {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    return ReadResult::Message(
                        frame.message(&Limits::default()).expect("the node sends valid messages"),
                    )
                }
                Ok(None) => {}
                Err(e) => panic!("the node's stream is broken: {e}"),
            }
            let (stream, buf) = (&mut self.stream, &mut self.buf);
            match self.rt.block_on(async { tokio::time::timeout_at(deadline, stream.read_buf(buf)).await }) {
                Err(_) => return ReadResult::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return ReadResult::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads until a message `want` accepts arrives; panics on close or timeout.
    pub fn expect(&mut self, timeout: Duration, mut want: impl FnMut(&Message) -> bool) -> Message {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.read(left) {
                ReadResult::Message(m) if want(&m) => return m,
                ReadResult::Message(_) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Whether the node closes the connection within `timeout` (messages before it are skipped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.read(left) {
                ReadResult::Closed => return true,
                ReadResult::Timeout => return false,
                ReadResult::Message(_) => {}
            }
        }
    }
}
