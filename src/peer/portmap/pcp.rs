//! PCP (RFC 6887) MAP requests and responses, the parts a node needs: map one TCP port (on IPv4
//! through the NAT, on IPv6 as a firewall pinhole) and delete the mapping (lifetime 0).

use super::PortMapError;
use std::net::{IpAddr, Ipv6Addr};

pub const VERSION: u8 = 2;
pub const OPCODE_MAP: u8 = 1;
/// The R bit: set on responses.
const RESPONSE: u8 = 0x80;
/// Header (24) + MAP opcode data (36).
pub const MAP_LEN: usize = 60;
/// IANA protocol number of TCP.
const TCP: u8 = 6;

/// PCP result codes (RFC 6887 §7.4).
pub fn result_name(code: u8) -> &'static str {
    match code {
        0 => "SUCCESS",
        1 => "UNSUPP_VERSION",
        2 => "NOT_AUTHORIZED",
        3 => "MALFORMED_REQUEST",
        4 => "UNSUPP_OPCODE",
        5 => "UNSUPP_OPTION",
        6 => "MALFORMED_OPTION",
        7 => "NETWORK_FAILURE",
        8 => "NO_RESOURCES",
        9 => "UNSUPP_PROTOCOL",
        10 => "USER_EX_QUOTA",
        11 => "CANNOT_PROVIDE_EXTERNAL",
        12 => "ADDRESS_MISMATCH",
        13 => "EXCESSIVE_REMOTE_PEERS",
        _ => "unknown result",
    }
}

/// IPv4 addresses travel as IPv4-mapped IPv6 (RFC 6887 §5).
fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn from_v6(ip: Ipv6Addr) -> IpAddr {
    ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
}

/// A MAP request for TCP `port` from `client` (our address towards the gateway). For IPv4 the
/// suggested external address is the all-zero IPv4-mapped address, for IPv6 our own (a pinhole).
pub fn map_request(nonce: [u8; 12], client: IpAddr, port: u16, lifetime: u32) -> [u8; MAP_LEN] {
    let mut m = [0u8; MAP_LEN];
    m[0] = VERSION;
    m[1] = OPCODE_MAP;
    m[4..8].copy_from_slice(&lifetime.to_be_bytes());
    m[8..24].copy_from_slice(&to_v6(client).octets());
    m[24..36].copy_from_slice(&nonce);
    m[36] = TCP;
    m[40..42].copy_from_slice(&port.to_be_bytes());
    m[42..44].copy_from_slice(&port.to_be_bytes());
    let suggested = match client {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    m[44..60].copy_from_slice(&suggested.octets());
    m
}

/// A granted mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub external_ip: IpAddr,
    pub external_port: u16,
    pub lifetime: u32,
}

/// Reads a MAP response to the request with `nonce` for `port`. A NAT-PMP gateway answers a PCP
/// request with its own version 0 and UNSUPP_VERSION: that is [`PortMapError::UnsupportedVersion`].
pub fn parse_map_response(b: &[u8], nonce: [u8; 12], port: u16) -> Result<Mapping, PortMapError> {
    if b.len() >= 4 && b[0] == 0 && b[3] == 1 {
        return Err(PortMapError::UnsupportedVersion);
    }
    if b.len() < MAP_LEN {
        return Err(PortMapError::Truncated { len: b.len(), need: MAP_LEN });
    }
    if b[0] != VERSION {
        return Err(PortMapError::WrongVersion(b[0]));
    }
    if b[1] != RESPONSE | OPCODE_MAP {
        return Err(PortMapError::WrongOpcode(b[1]));
    }
    if b[3] != 0 {
        return Err(PortMapError::Refused { code: u16::from(b[3]), name: result_name(b[3]) });
    }
    if b[24..36] != nonce {
        return Err(PortMapError::WrongNonce);
    }
    let internal = u16::from_be_bytes([b[40], b[41]]);
    if b[36] != TCP || internal != port {
        return Err(PortMapError::OtherMapping);
    }
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[44..60]);
    Ok(Mapping {
        external_ip: from_v6(Ipv6Addr::from(ip)),
        external_port: u16::from_be_bytes([b[42], b[43]]),
        lifetime: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway's answer to `req` (the test side of the codec).
    fn answer(req: &[u8; MAP_LEN], result: u8, external: IpAddr, lifetime: u32) -> [u8; MAP_LEN] {
        let mut r = [0u8; MAP_LEN];
        r[0] = VERSION;
        r[1] = RESPONSE | OPCODE_MAP;
        r[3] = result;
        r[4..8].copy_from_slice(&lifetime.to_be_bytes());
        r[24..44].copy_from_slice(&req[24..44]);
        r[44..60].copy_from_slice(&to_v6(external).octets());
        r
    }

    #[test]
    fn map_request_layout_is_rfc_6887s() {
        let req = map_request([7; 12], "192.168.1.5".parse().unwrap(), 8333, 3600);
        assert_eq!(&req[..8], &[2, 1, 0, 0, 0, 0, 0x0e, 0x10]);
        assert_eq!(&req[8..24], &"::ffff:192.168.1.5".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&req[24..36], &[7; 12]);
        assert_eq!(&req[36..44], &[6, 0, 0, 0, 0x20, 0x8d, 0x20, 0x8d]);
        assert_eq!(&req[44..60], &"::ffff:0.0.0.0".parse::<Ipv6Addr>().unwrap().octets());
        let v6 = map_request([7; 12], "2001:db8::5".parse().unwrap(), 8333, 0);
        assert_eq!(&v6[44..60], &"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets(), "a pinhole for ourselves");
    }

    #[test]
    fn responses_are_checked_field_by_field() {
        let req = map_request([9; 12], "10.0.0.2".parse().unwrap(), 18444, 1200);
        let ok = answer(&req, 0, "203.0.113.7".parse().unwrap(), 600);
        assert_eq!(
            parse_map_response(&ok, [9; 12], 18444),
            Ok(Mapping { external_ip: "203.0.113.7".parse().unwrap(), external_port: 18444, lifetime: 600 })
        );
        assert_eq!(parse_map_response(&ok, [8; 12], 18444), Err(PortMapError::WrongNonce));
        assert_eq!(parse_map_response(&ok, [9; 12], 1), Err(PortMapError::OtherMapping));
        assert_eq!(parse_map_response(&ok[..59], [9; 12], 18444), Err(PortMapError::Truncated { len: 59, need: 60 }));
        let refused = answer(&req, 2, "203.0.113.7".parse().unwrap(), 0);
        assert_eq!(
            parse_map_response(&refused, [9; 12], 18444),
            Err(PortMapError::Refused { code: 2, name: "NOT_AUTHORIZED" })
        );
        let mut wrong = ok;
        wrong[1] = 0x82;
        assert_eq!(parse_map_response(&wrong, [9; 12], 18444), Err(PortMapError::WrongOpcode(0x82)));
        assert_eq!(
            parse_map_response(&[0, 0x81, 0, 1, 0, 0, 0, 0], [9; 12], 18444),
            Err(PortMapError::UnsupportedVersion)
        );
    }
}
