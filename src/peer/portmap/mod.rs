//! Port mapping (`-natpmp`): asks the default gateways to forward our P2P port, with PCP
//! (RFC 6887) and, on an IPv4 gateway that only speaks it, NAT-PMP (RFC 6886); on IPv6 the same
//! PCP MAP opens a firewall pinhole for each of our global addresses. Mappings are renewed at half
//! their granted lifetime and deleted (lifetime 0) at shutdown; the external addresses granted are
//! published on a watch channel, which the node adds to its own addresses.
//!
//! A gateway that does not answer, answers garbage or refuses costs a log line and a retry later
//! (doubling from 1 minute to an hour): nothing else. Answers are read only from the gateway we
//! asked (the socket is connected), must carry our nonce (PCP) and our port, and are bounded
//! datagrams: nothing a gateway sends allocates beyond one 1100-byte buffer.
//!
//! The codecs are our own, from the RFCs (small, and no crate covers PCP and NAT-PMP for tokio).

pub mod natpmp;
pub mod pcp;

use crate::shutdown::Shutdown;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info};

/// The PCP and NAT-PMP server port.
pub const GATEWAY_PORT: u16 = 5351;
/// Lifetime we ask for (Core asks for 20 minutes too).
pub const DEFAULT_LIFETIME: u32 = 20 * 60;
/// Largest answer we read (PCP's maximum message size, RFC 6887 §7).
const MAX_DATAGRAM: usize = 1100;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortMapError {
    #[error("the gateway did not answer")]
    Timeout,
    #[error("answer of {len} bytes, {need} needed")]
    Truncated { len: usize, need: usize },
    #[error("answer of protocol version {0}")]
    WrongVersion(u8),
    #[error("the gateway speaks NAT-PMP, not PCP")]
    UnsupportedVersion,
    #[error("answer to another request (opcode {0:#04x})")]
    WrongOpcode(u8),
    #[error("answer with another nonce")]
    WrongNonce,
    #[error("answer about another mapping")]
    OtherMapping,
    #[error("refused: {name} ({code})")]
    Refused { code: u16, name: &'static str },
    #[error("no usable client address for this gateway")]
    NoClientAddress,
    #[error("socket: {0}")]
    Io(String),
}

impl From<std::io::Error> for PortMapError {
    fn from(e: std::io::Error) -> Self {
        PortMapError::Io(e.to_string())
    }
}

/// A default gateway (an IPv6 one is usually link-local, so it comes with its interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    pub ip: IpAddr,
    pub scope_id: u32,
}

/// What to map and where.
#[derive(Debug, Clone)]
pub struct PortMapConfig {
    pub gateways: Vec<Gateway>,
    /// Our global IPv6 addresses: each gets a pinhole at each IPv6 gateway.
    pub local_v6: Vec<Ipv6Addr>,
    /// The P2P port.
    pub port: u16,
    /// [`GATEWAY_PORT`]; another in tests.
    pub gateway_port: u16,
    /// How long to wait for an answer.
    pub timeout: Duration,
    pub lifetime: u32,
    /// First retry delay after a failure (doubles up to an hour).
    pub retry: Duration,
}

impl PortMapConfig {
    pub fn new(gateways: Vec<Gateway>, local_v6: Vec<Ipv6Addr>, port: u16) -> PortMapConfig {
        PortMapConfig {
            gateways,
            local_v6,
            port,
            gateway_port: GATEWAY_PORT,
            timeout: Duration::from_secs(2),
            lifetime: DEFAULT_LIFETIME,
            retry: Duration::from_secs(60),
        }
    }
}

/// The mapping sessions the task keeps: one per IPv4 gateway, one per (IPv6 gateway, address).
fn sessions(cfg: &PortMapConfig) -> Vec<(Gateway, Option<Ipv6Addr>)> {
    let mut out = Vec::new();
    for gw in &cfg.gateways {
        match gw.ip {
            IpAddr::V4(_) => out.push((*gw, None)),
            IpAddr::V6(_) => out.extend(cfg.local_v6.iter().map(|a| (*gw, Some(*a)))),
        }
    }
    out
}

/// Starts one task per mapping; the receiver always holds the external addresses granted now.
pub fn spawn(cfg: PortMapConfig, shutdown: Shutdown) -> watch::Receiver<Vec<SocketAddr>> {
    let (tx, rx) = watch::channel(Vec::new());
    let tx = Arc::new(tx);
    let cfg = Arc::new(cfg);
    for (gw, client) in sessions(&cfg) {
        tokio::spawn(keep_mapped(cfg.clone(), gw, client, tx.clone(), shutdown.clone()));
    }
    rx
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Pcp,
    NatPmp,
}

/// One gateway (and, on IPv6, one of our addresses): map, renew, and delete at shutdown.
async fn keep_mapped(
    cfg: Arc<PortMapConfig>,
    gw: Gateway,
    client: Option<Ipv6Addr>,
    published: Arc<watch::Sender<Vec<SocketAddr>>>,
    mut shutdown: Shutdown,
) {
    let nonce: [u8; 12] = rand::random();
    let mut protocol = Protocol::Pcp;
    let mut retry = cfg.retry;
    let mut ours: Option<SocketAddr> = None;
    loop {
        let wait = match map_once(&cfg, gw, client, nonce, &mut protocol, cfg.lifetime).await {
            Ok(granted) => {
                retry = cfg.retry;
                if ours != Some(granted.0) {
                    info!(gateway = %gw.ip, external = %granted.0, lifetime = granted.1, ?protocol, "port mapped");
                    set(&published, ours, Some(granted.0));
                    ours = Some(granted.0);
                }
                Duration::from_secs(u64::from(granted.1.max(2) / 2))
            }
            Err(err) => {
                info!(gateway = %gw.ip, %err, retry_in = ?retry, "port mapping failed");
                set(&published, ours.take(), None);
                let wait = retry;
                retry = (retry * 2).min(Duration::from_secs(3600));
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => break,
        }
    }
    if ours.is_some() {
        // Delete: the same request with lifetime 0 (PCP needs the same nonce).
        let mut p = protocol;
        match map_once(&cfg, gw, client, nonce, &mut p, 0).await {
            Ok(_) | Err(PortMapError::OtherMapping) => debug!(gateway = %gw.ip, "port mapping removed"),
            Err(err) => debug!(gateway = %gw.ip, %err, "port mapping not removed"),
        }
        set(&published, ours, None);
    }
}

fn set(published: &watch::Sender<Vec<SocketAddr>>, old: Option<SocketAddr>, new: Option<SocketAddr>) {
    published.send_modify(|v| {
        v.retain(|a| Some(*a) != old);
        if let Some(n) = new {
            if !v.contains(&n) {
                v.push(n);
            }
        }
    });
}

/// One request and its answer: the external address and granted lifetime.
async fn map_once(
    cfg: &PortMapConfig,
    gw: Gateway,
    client: Option<Ipv6Addr>,
    nonce: [u8; 12],
    protocol: &mut Protocol,
    lifetime: u32,
) -> Result<(SocketAddr, u32), PortMapError> {
    let socket = match (gw.ip, client) {
        (IpAddr::V4(_), _) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?,
        (IpAddr::V6(_), Some(ours)) => UdpSocket::bind(SocketAddrV6::new(ours, 0, 0, 0)).await?,
        (IpAddr::V6(_), None) => return Err(PortMapError::NoClientAddress),
    };
    let target = match gw.ip {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), cfg.gateway_port),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, cfg.gateway_port, 0, gw.scope_id)),
    };
    socket.connect(target).await?;
    let local = socket.local_addr()?.ip();
    if *protocol == Protocol::Pcp {
        let request = pcp::map_request(nonce, local, cfg.port, lifetime);
        match exchange(&socket, &request, cfg.timeout, |b| pcp::parse_map_response(b, nonce, cfg.port)).await {
            Ok(m) => return Ok((SocketAddr::new(m.external_ip, m.external_port), m.lifetime)),
            Err(PortMapError::UnsupportedVersion) if gw.ip.is_ipv4() => *protocol = Protocol::NatPmp,
            Err(e) => return Err(e),
        }
    }
    let external =
        exchange(&socket, &natpmp::external_address_request(), cfg.timeout, natpmp::parse_external_address).await?;
    let (port, granted) =
        exchange(&socket, &natpmp::map_request(cfg.port, lifetime), cfg.timeout, |b| natpmp::parse_map(b, cfg.port))
            .await?;
    Ok((SocketAddr::new(IpAddr::V4(external), port), granted))
}

/// Sends `request` (again after a third of the timeout, as UDP may lose it) and returns the first
/// answer `parse` accepts; answers it refuses are skipped, and the last refusal is returned when
/// time runs out (a definite refusal at once).
async fn exchange<T>(
    socket: &UdpSocket,
    request: &[u8],
    timeout: Duration,
    parse: impl Fn(&[u8]) -> Result<T, PortMapError>,
) -> Result<T, PortMapError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last = PortMapError::Timeout;
    for attempt in 0..3u32 {
        socket.send(request).await?;
        // The last attempt waits for whatever time is left.
        let until = if attempt == 2 { deadline } else { (tokio::time::Instant::now() + timeout / 3).min(deadline) };
        loop {
            let n = match tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
                Err(_) => break,
                // ICMP port unreachable and the like: the gateway is not there.
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(n)) => n,
            };
            match parse(&buf[..n]) {
                Ok(v) => return Ok(v),
                Err(e @ (PortMapError::Refused { .. } | PortMapError::UnsupportedVersion)) => return Err(e),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// The default routes' gateways, from `/proc/net/route` and `/proc/net/ipv6_route`.
pub fn default_gateways() -> Vec<Gateway> {
    let mut out = std::fs::read_to_string("/proc/net/route").map(|t| parse_route_v4(&t)).unwrap_or_default();
    out.extend(std::fs::read_to_string("/proc/net/ipv6_route").map(|t| parse_route_v6(&t)).unwrap_or_default());
    out
}

/// `Iface Destination Gateway Flags …` with little-endian hex addresses; the default route has
/// destination 0.
pub fn parse_route_v4(text: &str) -> Vec<Gateway> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gw) = (u32::from_str_radix(f.get(1)?, 16).ok()?, u32::from_str_radix(f.get(2)?, 16).ok()?);
            (dest == 0 && gw != 0).then(|| Gateway { ip: IpAddr::V4(Ipv4Addr::from(gw.to_le_bytes())), scope_id: 0 })
        })
        .collect()
}

/// `dest plen src plen nexthop metric refcnt use flags iface`; the default route is `::/0`.
pub fn parse_route_v6(text: &str) -> Vec<Gateway> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[0].chars().any(|c| c != '0') || f[1] != "00" {
                return None;
            }
            let hop = u128::from_str_radix(f[4], 16).ok().filter(|h| *h != 0)?;
            let name = std::ffi::CString::new(f[9]).ok()?;
            // SAFETY: `name` is a valid NUL-terminated string for the call's duration.
            let scope_id = unsafe { libc::if_nametoindex(name.as_ptr()) };
            Some(Gateway { ip: IpAddr::V6(Ipv6Addr::from(hop)), scope_id })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_are_read_from_procfs_text() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n\
                  eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(parse_route_v4(v4), [Gateway { ip: "192.0.2.1".parse().unwrap(), scope_id: 0 }]);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 lo\n\
                  fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 lo\n";
        let gws = parse_route_v6(v6);
        assert_eq!(gws.len(), 1);
        assert_eq!(gws[0].ip, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(gws[0].scope_id, 1, "lo is interface 1");
        for garbage in ["", "x", "Iface\n\u{0}\u{0}", "eth0 zz zz", "0000 00 0 0 0 0 0 0 0"] {
            assert!(parse_route_v4(garbage).is_empty() && parse_route_v6(garbage).is_empty(), "{garbage:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_answer_makes_the_parsers_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = pcp::parse_map_response(&b, [0; 12], 1);
            let _ = natpmp::parse_external_address(&b);
            let _ = natpmp::parse_map(&b, 1);
        }
    }
}
