//! Network addresses as they appear in `version` and `addr`.
//!
//! The IP is always 16 bytes (IPv4 as `::ffff:a.b.c.d`) and the port is big-endian, unlike every
//! other integer on the wire.

use super::encode::{Decodable, Encodable, Reader};
use super::error::DecodeError;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Encoded size of a `NetAddress`: services (8) + IP (16) + port (2).
pub const NET_ADDRESS_LEN: usize = 26;
/// Encoded size of a `TimedAddress`: time (4) + `NetAddress`.
pub const TIMED_ADDRESS_LEN: usize = 30;

/// Services, IP and port, without a timestamp (the form inside `version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetAddress {
    pub services: u64,
    pub ip: Ipv6Addr,
    pub port: u16,
}

impl NetAddress {
    pub fn new(addr: SocketAddr, services: u64) -> NetAddress {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        NetAddress { services, ip, port: addr.port() }
    }

    /// The all-zero address SV Node puts in `addr_from`.
    pub const fn unspecified(services: u64) -> NetAddress {
        NetAddress { services, ip: Ipv6Addr::UNSPECIFIED, port: 0 }
    }

    /// The socket address, with IPv4-mapped addresses shown as IPv4.
    pub fn socket_addr(&self) -> SocketAddr {
        let ip = match self.ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(self.ip),
        };
        SocketAddr::new(ip, self.port)
    }
}

impl Encodable for NetAddress {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.services.to_le_bytes());
        out.extend_from_slice(&self.ip.octets());
        out.extend_from_slice(&self.port.to_be_bytes());
    }
}

impl Decodable for NetAddress {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(NetAddress {
            services: r.read_u64_le("address services")?,
            ip: Ipv6Addr::from(r.read_array::<16>("address ip")?),
            port: r.read_u16_be("address port")?,
        })
    }
}

/// An address with the time it was last seen (the form inside `addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimedAddress {
    pub time: u32,
    pub addr: NetAddress,
}

impl Encodable for TimedAddress {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.time.to_le_bytes());
        self.addr.consensus_encode(out);
    }
}

impl Decodable for TimedAddress {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TimedAddress { time: r.read_u32_le("address time")?, addr: NetAddress::consensus_decode(r)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_mapped_and_port_is_big_endian() {
        let a = NetAddress::new("127.0.0.1:18444".parse().unwrap(), 0x21);
        let bytes = a.to_bytes();
        assert_eq!(bytes.len(), NET_ADDRESS_LEN);
        assert_eq!(&bytes[8..24], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
        assert_eq!(&bytes[24..], &18444u16.to_be_bytes());
        assert_eq!(a.socket_addr(), "127.0.0.1:18444".parse().unwrap());
        let v6 = NetAddress::new("[::1]:8333".parse().unwrap(), 1);
        assert_eq!(v6.socket_addr(), "[::1]:8333".parse().unwrap());
    }
}
