//! NAT-PMP (RFC 6886), the IPv4-only predecessor PCP falls back to: ask the gateway for its
//! external address, then map one TCP port.

use super::PortMapError;
use std::net::Ipv4Addr;

const VERSION: u8 = 0;
const OP_EXTERNAL_ADDRESS: u8 = 0;
const OP_MAP_TCP: u8 = 2;
const RESPONSE: u8 = 0x80;

/// "What is your external address?" (2 bytes).
pub fn external_address_request() -> [u8; 2] {
    [VERSION, OP_EXTERNAL_ADDRESS]
}

/// Map TCP `port` to the same external port for `lifetime` seconds (0 deletes).
pub fn map_request(port: u16, lifetime: u32) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[1] = OP_MAP_TCP;
    m[4..6].copy_from_slice(&port.to_be_bytes());
    m[6..8].copy_from_slice(&port.to_be_bytes());
    m[8..12].copy_from_slice(&lifetime.to_be_bytes());
    m
}

/// RFC 6886 §3.5 result codes.
pub fn result_name(code: u16) -> &'static str {
    match code {
        1 => "Unsupported Version",
        2 => "Not Authorized/Refused",
        3 => "Network Failure",
        4 => "Out of resources",
        5 => "Unsupported opcode",
        _ => "unknown result",
    }
}

fn header(b: &[u8], op: u8, need: usize) -> Result<(), PortMapError> {
    if b.len() < 4 {
        return Err(PortMapError::Truncated { len: b.len(), need });
    }
    if b[0] != VERSION {
        return Err(PortMapError::WrongVersion(b[0]));
    }
    if b[1] != RESPONSE | op {
        return Err(PortMapError::WrongOpcode(b[1]));
    }
    let code = u16::from_be_bytes([b[2], b[3]]);
    if code != 0 {
        return Err(PortMapError::Refused { code, name: result_name(code) });
    }
    if b.len() < need {
        return Err(PortMapError::Truncated { len: b.len(), need });
    }
    Ok(())
}

/// The gateway's external address (a 12-byte answer).
pub fn parse_external_address(b: &[u8]) -> Result<Ipv4Addr, PortMapError> {
    header(b, OP_EXTERNAL_ADDRESS, 12)?;
    Ok(Ipv4Addr::new(b[8], b[9], b[10], b[11]))
}

/// The mapped external port and lifetime (a 16-byte answer) for our `port`.
pub fn parse_map(b: &[u8], port: u16) -> Result<(u16, u32), PortMapError> {
    header(b, OP_MAP_TCP, 16)?;
    if u16::from_be_bytes([b[8], b[9]]) != port {
        return Err(PortMapError::OtherMapping);
    }
    Ok((u16::from_be_bytes([b[10], b[11]]), u32::from_be_bytes([b[12], b[13], b[14], b[15]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_are_rfc_6886s() {
        assert_eq!(external_address_request(), [0, 0]);
        assert_eq!(map_request(8333, 7200), [0, 2, 0, 0, 0x20, 0x8d, 0x20, 0x8d, 0, 0, 0x1c, 0x20]);
        let ext = [0, 128, 0, 0, 0, 0, 0, 5, 203, 0, 113, 9];
        assert_eq!(parse_external_address(&ext), Ok(Ipv4Addr::new(203, 0, 113, 9)));
        assert_eq!(parse_external_address(&ext[..11]), Err(PortMapError::Truncated { len: 11, need: 12 }));
        let map = [0, 130, 0, 0, 0, 0, 0, 5, 0x20, 0x8d, 0x20, 0x8e, 0, 0, 0x0e, 0x10];
        assert_eq!(parse_map(&map, 8333), Ok((8334, 3600)));
        assert_eq!(parse_map(&map, 8334), Err(PortMapError::OtherMapping));
        assert_eq!(
            parse_map(&[0, 130, 0, 2], 8333),
            Err(PortMapError::Refused { code: 2, name: "Not Authorized/Refused" })
        );
        assert_eq!(parse_map(&[2, 130, 0, 0], 8333), Err(PortMapError::WrongVersion(2)));
        assert_eq!(parse_map(&ext, 8333), Err(PortMapError::WrongOpcode(128)));
    }
}
