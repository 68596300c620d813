//! The generator's P2P side: a blocking connection that completes the handshake, sends `tx`
//! messages, and (as a listener) collects the txids a node announces.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::peer::transport::Decoder;
use crate::peer::v2::handshake::{handshake, HandshakeConfig};
use crate::peer::v2::stream::{PacketDecoder, PacketEncoder};
use crate::wire::frame::FrameDecoder;
use crate::wire::msg::Version;
use crate::wire::{encode_frame, inv_type, Limits, Message, NetAddress, TxId};

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("connection to {addr} failed: {detail}")]
    Broken { addr: SocketAddr, detail: String },
}

pub struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    decoder: Decoder,
    /// Encrypts what we send on a v2 connection.
    encoder: Option<PacketEncoder>,
    buf: BytesMut,
    magic: [u8; 4],
}

impl Conn {
    /// Connects and completes the handshake; with `v2`, over the v2 (BIP324) transport.
    pub fn connect(addr: SocketAddr, magic: [u8; 4], v2: bool) -> Result<Conn, P2pError> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|source| P2pError::Connect { addr, source })?;
        stream.set_nodelay(true).ok();
        let mut c = Conn {
            addr,
            stream,
            decoder: Decoder::V1(FrameDecoder::new(magic, Limits::default())),
            encoder: None,
            buf: BytesMut::new(),
            magic,
        };
        if v2 {
            c.v2_handshake()?;
        }
        c.handshake()?;
        Ok(c)
    }

    /// The v2 key exchange, on a tokio runtime of its own over a duplicate of the socket.
    fn v2_handshake(&mut self) -> Result<(), P2pError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| self.broken(e))?;
        let dup = self.stream.try_clone().map_err(|e| self.broken(e))?;
        dup.set_nonblocking(true).map_err(|e| self.broken(e))?;
        let config = HandshakeConfig::new(self.magic, Duration::from_secs(10));
        let session = rt.block_on(async {
            let mut s = tokio::net::TcpStream::from_std(dup)?;
            handshake(&mut s, true, BytesMut::new(), &config).await.map_err(std::io::Error::other)
        });
        // The duplicate shares the socket's flags.
        self.stream.set_nonblocking(false).ok();
        let session = session.map_err(|e| self.broken(format!("v2 handshake: {e}")))?;
        self.decoder = Decoder::V2(Box::new(PacketDecoder::new(session.opener, Limits::default(), usize::MAX)));
        self.encoder = Some(PacketEncoder::new(session.sealer));
        self.buf = session.leftover;
        Ok(())
    }

    fn broken(&self, detail: impl ToString) -> P2pError {
        P2pError::Broken { addr: self.addr, detail: detail.to_string() }
    }

    pub fn send(&mut self, msg: &Message) -> Result<(), P2pError> {
        let frame = encode_frame(self.magic, msg);
        self.send_frames(&[frame], &mut Vec::new())
    }

    /// Writes many frames in one call (encrypted on v2), using `out` as the buffer.
    pub fn send_frames(&mut self, frames: &[Vec<u8>], out: &mut Vec<u8>) -> Result<(), P2pError> {
        out.clear();
        for f in frames {
            match &mut self.encoder {
                Some(e) => out.extend_from_slice(&e.encode(f)),
                None => out.extend_from_slice(f),
            }
        }
        self.stream.write_all(out).map_err(|e| self.broken(e))
    }

    fn read(&mut self, until: Instant) -> Result<Option<Message>, P2pError> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if let Ok(m) = frame.message(&Limits::default()) {
                        return Ok(Some(m));
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => return Err(self.broken("undecodable stream")),
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(200)))).ok();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(self.broken("closed by the node")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(self.broken(e)),
            }
        }
    }

    fn handshake(&mut self) -> Result<(), P2pError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.send(&Message::Version(Version {
            version: 70016,
            services: 0,
            timestamp: now as i64,
            receiver: NetAddress::unspecified(0),
            sender: NetAddress::unspecified(0),
            nonce: rand::random(),
            user_agent: format!("/bsv-relay-txgen:{}/", env!("CARGO_PKG_VERSION")),
            start_height: 0,
            relay: true,
            association_id: None,
        }))?;
        let until = Instant::now() + Duration::from_secs(10);
        let (mut version, mut verack) = (false, false);
        while !(version && verack) {
            match self.read(until)? {
                Some(Message::Version(_)) => {
                    version = true;
                    self.send(&Message::Verack)?;
                }
                Some(Message::Verack) => verack = true,
                Some(_) => {}
                None => return Err(self.broken("no handshake within 10 s")),
            }
        }
        Ok(())
    }

    /// Reads forever, answering pings and recording when each txid was first announced (a listener).
    pub fn listen(mut self, seen: Arc<Mutex<HashMap<TxId, Instant>>>) {
        loop {
            match self.read(Instant::now() + Duration::from_secs(1)) {
                Ok(Some(Message::Ping(n))) => {
                    let _ = self.send(&Message::Pong(n));
                }
                Ok(Some(Message::Inv(items))) => {
                    let now = Instant::now();
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for item in items.iter().filter(|i| i.kind == inv_type::TX) {
                        s.entry(item.hash).or_insert(now);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Closes gracefully: stop writing, then read until the node closes (or 2 s). Closing with unread
    /// input would make the kernel reset the connection, and the node could lose the last batch.
    pub fn finish(mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if self.read(until).is_err() {
                return;
            }
        }
    }

    /// Reads and answers pings without blocking the sender for long (call between batches).
    pub fn drain(&mut self) -> Result<(), P2pError> {
        self.stream.set_nonblocking(true).ok();
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.stream.set_nonblocking(false).ok();
                    return Err(self.broken("closed by the node"));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        self.stream.set_nonblocking(false).ok();
        while let Ok(Some(frame)) = self.decoder.decode(&mut self.buf) {
            if let Ok(Message::Ping(n)) = frame.message(&Limits::default()) {
                self.send(&Message::Pong(n))?;
            }
        }
        Ok(())
    }
}
