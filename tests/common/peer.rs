//! A raw P2P peer for tests: speaks our own codec over a plain `std::net::TcpStream`, and can also
//! write arbitrary bytes, so one type serves both as the honest peer and as the attacker.

use bsv_relay::wire::frame::{frame_bytes, FrameDecoder};
use bsv_relay::wire::message::Limits;
use bsv_relay::wire::msg::Version;
use bsv_relay::wire::{encode_frame, Command, Hash256, Message, NetAddress};
use bytes::BytesMut;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Regtest network magic.
pub const REGTEST_MAGIC: [u8; 4] = [0xda, 0xb5, 0xbf, 0xfa];

pub struct RawPeer {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    buf: BytesMut,
}

/// How a read attempt ended.
#[derive(Debug)]
pub enum ReadResult {
    Message(Message),
    /// The node closed the connection.
    Closed,
    /// Nothing arrived before the deadline.
    Timeout,
}

impl RawPeer {
    pub fn connect(addr: SocketAddr) -> RawPeer {
        Self::connect_from(addr, None)
    }

    /// Connects from a chosen local address (e.g. 127.0.0.2, so bans do not hit 127.0.0.1).
    pub fn connect_from(addr: SocketAddr, local: Option<std::net::IpAddr>) -> RawPeer {
        let stream = match local {
            None => TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"),
            Some(ip) => {
                let domain = if ip.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
                let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket");
                s.bind(&SocketAddr::new(ip, 0).into()).expect("bind local");
                s.connect_timeout(&addr.into(), Duration::from_secs(5)).expect("connect");
                s.into()
            }
        };
        stream.set_nodelay(true).ok();
        RawPeer { stream, decoder: FrameDecoder::new(REGTEST_MAGIC, Limits::default()), buf: BytesMut::new() }
    }

    /// Wraps a stream accepted from a listener (the node dialled us).
    pub fn from_stream(stream: TcpStream) -> RawPeer {
        stream.set_nodelay(true).ok();
        RawPeer { stream, decoder: FrameDecoder::new(REGTEST_MAGIC, Limits::default()), buf: BytesMut::new() }
    }

    /// Leaves a gap in what we send: part of an attack's shape (a header split across TCP
    /// segments), never a way to wait for the node.
    pub fn gap(&self, d: Duration) {
        std::thread::sleep(d);
    }

    pub fn send(&mut self, msg: &Message) {
        let frame = encode_frame(REGTEST_MAGIC, msg);
        self.send_raw(&frame);
    }

    /// Writes bytes as they are; errors (the node hung up) are ignored.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// A frame with an arbitrary command and payload and a correct checksum.
    pub fn send_command(&mut self, command: &str, payload: &[u8]) {
        let frame = frame_bytes(
            REGTEST_MAGIC,
            Command::new(command).expect("valid test command"),
            payload,
            Hash256::sha256d(payload).checksum(),
        );
        self.send_raw(&frame);
    }

    /// Reads the next message, waiting at most until `deadline`.
    pub fn read(&mut self, timeout: Duration) -> ReadResult {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => match frame.message(&Limits::default()) {
                    Ok(m) => return ReadResult::Message(m),
                    Err(_) => continue,
                },
                Ok(None) => {}
                Err(e) => panic!("the node sent an undecodable frame: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ReadResult::Timeout;
            }
            self.stream.set_read_timeout(Some(left.min(Duration::from_millis(200)))).ok();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return ReadResult::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return ReadResult::Closed,
            }
        }
    }

    /// Reads until a message matching `want` arrives, answering pings on the way.
    pub fn expect(&mut self, timeout: Duration, mut want: impl FnMut(&Message) -> bool) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left) {
                ReadResult::Message(m) if want(&m) => return m,
                ReadResult::Message(Message::Ping(n)) => self.send(&Message::Pong(n)),
                ReadResult::Message(_) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// True if the node closes the connection within `timeout` (other traffic is drained).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left) {
                ReadResult::Closed => return true,
                ReadResult::Timeout => return false,
                ReadResult::Message(Message::Ping(n)) => self.send(&Message::Pong(n)),
                ReadResult::Message(_) => {}
            }
        }
    }

    /// Completes the handshake as an outbound peer of the node.
    pub fn handshake(&mut self) {
        self.send(&version_msg(rand_nonce()));
        self.expect(Duration::from_secs(5), |m| matches!(m, Message::Version(_)));
        self.expect(Duration::from_secs(5), |m| matches!(m, Message::Verack));
        self.send(&Message::Verack);
        self.expect(Duration::from_secs(5), |m| matches!(m, Message::FeeFilter(_)));
    }

    /// Like `handshake`, but false instead of a panic when the node closes or stays silent.
    pub fn try_handshake(&mut self) -> bool {
        self.send(&version_msg(rand_nonce()));
        let mut got = (false, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(got.0 && got.1) {
            match self.read(deadline.saturating_duration_since(Instant::now())) {
                ReadResult::Message(Message::Version(_)) => got.0 = true,
                ReadResult::Message(Message::Verack) => got.1 = true,
                ReadResult::Message(_) => {}
                _ => return false,
            }
        }
        self.send(&Message::Verack);
        loop {
            match self.read(deadline.saturating_duration_since(Instant::now())) {
                ReadResult::Message(Message::FeeFilter(_)) => return true,
                ReadResult::Message(_) => {}
                _ => return false,
            }
        }
    }

    /// Sends a ping and returns the round-trip time of its pong.
    pub fn ping_rtt(&mut self, timeout: Duration) -> Duration {
        self.try_ping(timeout).expect("pong before the deadline")
    }

    /// Like `ping_rtt`, but `None` if the pong does not come or the connection closes.
    pub fn try_ping(&mut self, timeout: Duration) -> Option<Duration> {
        let nonce = rand_nonce();
        let start = Instant::now();
        self.send(&Message::Ping(nonce));
        let deadline = start + timeout;
        loop {
            match self.read(deadline.saturating_duration_since(Instant::now())) {
                ReadResult::Message(Message::Pong(n)) if n == nonce => return Some(start.elapsed()),
                ReadResult::Message(Message::Ping(n)) => self.send(&Message::Pong(n)),
                ReadResult::Message(_) => {}
                ReadResult::Closed | ReadResult::Timeout => return None,
            }
        }
    }
}

pub fn rand_nonce() -> u64 {
    rand::random::<u64>() | 1
}

pub fn version_msg(nonce: u64) -> Message {
    Message::Version(Version {
        version: 70016,
        services: 0x21,
        timestamp: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
        receiver: NetAddress::unspecified(0),
        sender: NetAddress::unspecified(0x21),
        nonce,
        user_agent: "/raw-test-peer:0.1/".into(),
        start_height: 0,
        relay: true,
        association_id: None,
    })
}

/// An honest peer pinging the node from its own thread every 250 ms, recording the worst
/// round-trip time, so liveness is watched for the whole of an attack.
pub struct HonestPeer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<Duration, String>>>,
}

impl HonestPeer {
    pub fn start(addr: SocketAddr) -> HonestPeer {
        let mut peer = RawPeer::connect(addr);
        peer.handshake();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut pings = 0u32;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) || pings == 0 {
                match peer.try_ping(Duration::from_secs(2)) {
                    Some(rtt) => worst = worst.max(rtt),
                    None => return Err(format!("no pong within 2 s after {pings} pings")),
                }
                pings += 1;
                // Pacing between pings, not synchronisation.
                std::thread::sleep(Duration::from_millis(250));
            }
            Ok(worst)
        });
        HonestPeer { stop, thread: Some(thread) }
    }

    /// Stops pinging and returns the worst round trip; fails if any pong was missed.
    pub fn finish(mut self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let result = self.thread.take().expect("running").join().expect("honest peer thread");
        result.unwrap_or_else(|e| panic!("honest peer: {e}"))
    }
}
