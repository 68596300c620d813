//! IP subnets as operators write them: `1.2.3.4`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `::1`, `fe80::/10`.
//!
//! Used by `setban`, `-whitelist` and `-rpcallowip`. A subnet is always stored normalised (host bits
//! cleared), so two spellings of the same network compare equal and display the same way SV Node does
//! (`1.2.3.4/32`, `10.0.0.0/8`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a subnet string was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error("invalid IP address in {input:?}")]
    BadAddress { input: String },
    #[error("invalid prefix length or netmask in {input:?}")]
    BadPrefix { input: String },
}

/// An IPv4 or IPv6 network: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

fn max_prefix(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn to_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
        all & !((1u128 << (width - prefix)) - 1) & all
    }
}

fn from_bits(bits: u128, like: &IpAddr) -> IpAddr {
    match like {
        // Truncation is intended: IPv4 bits occupy the low 32 bits.
        IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}

impl Subnet {
    /// The subnet holding exactly one address.
    pub fn single(ip: IpAddr) -> Self {
        Self { network: canonical(ip), prefix: max_prefix(&canonical(ip)) }
    }

    /// `ip/prefix` with host bits cleared; `None` if the prefix is longer than the address.
    pub fn new(ip: IpAddr, prefix: u8) -> Option<Self> {
        let ip = canonical(ip);
        let width = max_prefix(&ip);
        if prefix > width {
            return None;
        }
        let network = from_bits(to_bits(&ip) & mask(prefix, width), &ip);
        Some(Self { network, prefix })
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this subnet (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let width = max_prefix(&ip);
        to_bits(&ip) & mask(self.prefix, width) == to_bits(&self.network)
    }
}

/// `::ffff:1.2.3.4` is the IPv4 address 1.2.3.4 for every purpose here (bans, allow lists).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad_addr = || SubnetError::BadAddress { input: s.to_owned() };
        let bad_prefix = || SubnetError::BadPrefix { input: s.to_owned() };
        let (addr, suffix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = addr.parse().map_err(|_| bad_addr())?;
        let Some(suffix) = suffix else {
            return Ok(Self::single(ip));
        };
        let prefix = if let Ok(n) = suffix.parse::<u8>() {
            n
        } else {
            // Netmask form, as SV Node accepts: it must be contiguous ones.
            let m: IpAddr = suffix.parse().map_err(|_| bad_prefix())?;
            let m = canonical(m);
            let ip = canonical(ip);
            if m.is_ipv4() != ip.is_ipv4() {
                return Err(bad_prefix());
            }
            let width = max_prefix(&m);
            let bits = to_bits(&m);
            let ones = if width == 32 { (bits as u32).leading_ones() } else { bits.leading_ones() };
            let ones = u8::try_from(ones).map_err(|_| bad_prefix())?;
            if mask(ones, width) != bits {
                return Err(bad_prefix());
            }
            ones
        };
        Self::new(ip, prefix).ok_or_else(bad_prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = SubnetError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn parses_the_forms_operators_write() {
        assert_eq!("1.2.3.4".parse::<Subnet>().map(|s| s.to_string()), Ok("1.2.3.4/32".into()));
        assert_eq!("10.1.2.3/8".parse::<Subnet>().map(|s| s.to_string()), Ok("10.0.0.0/8".into()));
        assert_eq!("10.1.2.3/255.255.0.0".parse::<Subnet>().map(|s| s.to_string()), Ok("10.1.0.0/16".into()));
        assert_eq!("::1".parse::<Subnet>().map(|s| s.to_string()), Ok("::1/128".into()));
        assert_eq!("fe80::1/10".parse::<Subnet>().map(|s| s.to_string()), Ok("fe80::/10".into()));
        assert_eq!("::ffff:1.2.3.4".parse::<Subnet>().map(|s| s.to_string()), Ok("1.2.3.4/32".into()));
        assert_eq!("0.0.0.0/0".parse::<Subnet>().map(|s| s.to_string()), Ok("0.0.0.0/0".into()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!("bad".parse::<Subnet>(), Err(SubnetError::BadAddress { .. })));
        assert!(matches!("1.2.3.4/33".parse::<Subnet>(), Err(SubnetError::BadPrefix { .. })));
        assert!(matches!("1.2.3.4/255.0.255.0".parse::<Subnet>(), Err(SubnetError::BadPrefix { .. })));
        assert!(matches!("1.2.3.4/x".parse::<Subnet>(), Err(SubnetError::BadPrefix { .. })));
    }

    #[test]
    fn containment() {
        let net: Subnet = "192.168.0.0/16".parse().expect("subnet");
        assert!(net.contains(ip("192.168.44.1")));
        assert!(net.contains(ip("::ffff:192.168.0.9")));
        assert!(!net.contains(ip("192.169.0.1")));
        assert!(!net.contains(ip("::1")));
        let all: Subnet = "0.0.0.0/0".parse().expect("subnet");
        assert!(all.contains(ip("8.8.8.8")));
        let v6: Subnet = "2001:db8::/32".parse().expect("subnet");
        assert!(v6.contains(ip("2001:db8::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
    }
}
