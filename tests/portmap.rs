//! Port mapping against a scripted gateway (as Core's PCP tests do): a UDP socket in the test that
//! records every request and answers as its script says. PCP on IPv4 and the IPv6 pinhole,
//! renewal, deletion at shutdown, a silent gateway, a refusal, malformed answers, the NAT-PMP
//! fallback; and end to end, a node with `-natpmp=1` in a network namespace whose default gateway
//! runs the script on UDP 5351 lists the mapped address in `getnetworkinfo.localaddresses`.

mod common;

use bsv_relay::peer::portmap::{self, Gateway, PortMapConfig};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

const PORT: u16 = 18444;

/// What the gateway answers to one request (each element one datagram).
type Script = Arc<dyn Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync>;

struct ScriptedGateway {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ScriptedGateway {
    async fn start(bind: &str, script: Script) -> ScriptedGateway {
        let socket = UdpSocket::bind(bind).await.expect("bind gateway");
        let addr = socket.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                seen.lock().unwrap().push(buf[..n].to_vec());
                for answer in script(&buf[..n]) {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        ScriptedGateway { addr, requests }
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }
}

fn config(gw: &ScriptedGateway, local_v6: Vec<Ipv6Addr>) -> PortMapConfig {
    PortMapConfig {
        gateways: vec![Gateway { ip: gw.addr.ip(), scope_id: 0 }],
        local_v6,
        port: PORT,
        gateway_port: gw.addr.port(),
        timeout: Duration::from_millis(300),
        lifetime: 3600,
        retry: Duration::from_millis(100),
    }
}

/// A PCP MAP answer to `req` with `result`, external address `external`, `lifetime`.
fn pcp_answer(req: &[u8], result: u8, external: IpAddr, lifetime: u32) -> Vec<u8> {
    let mut r = vec![0u8; 60];
    r[0] = 2;
    r[1] = 0x81;
    r[3] = result;
    r[4..8].copy_from_slice(&lifetime.to_be_bytes());
    r[24..44].copy_from_slice(&req[24..44]);
    let v6 = match external {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    r[44..60].copy_from_slice(&v6.octets());
    r
}

fn lifetime_of(req: &[u8]) -> u32 {
    u32::from_be_bytes([req[4], req[5], req[6], req[7]])
}

/// Polls `f` every 10 ms until it holds; panics after `secs`.
async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ext(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn pcp_maps_the_port_renews_it_and_deletes_it_at_shutdown() {
    let gw = ScriptedGateway::start(
        "127.0.0.1:0",
        Arc::new(|req: &[u8]| vec![pcp_answer(req, 0, "203.0.113.5".parse().unwrap(), 2)]),
    )
    .await;
    let (shutdown, complete) = bsv_relay::shutdown::channel();
    let mapped = portmap::spawn(config(&gw, vec![]), shutdown.clone());
    let trigger = shutdown.trigger_handle();
    drop(shutdown);
    until("the mapping", 10, || *mapped.borrow() == [ext("203.0.113.5:18444")]).await;
    let first = gw.requests()[0].clone();
    assert_eq!(first.len(), 60);
    assert_eq!((first[0], first[1]), (2, 1), "PCP version 2, MAP");
    assert_eq!(lifetime_of(&first), 3600);
    assert_eq!(&first[8..24], &"::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets(), "our address");
    assert_eq!(first[36], 6, "TCP");
    assert_eq!(u16::from_be_bytes([first[40], first[41]]), PORT);

    // Granted 2 s: renewed at half, with the same nonce.
    until("a renewal", 10, || gw.requests().len() >= 2).await;
    assert_eq!(gw.requests()[1][24..36], first[24..36]);
    assert_eq!(*mapped.borrow(), [ext("203.0.113.5:18444")]);

    // Shutdown deletes it: the same request with lifetime 0, then nothing is published.
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), complete.wait()).await.expect("the task finishes");
    let last = gw.requests().last().cloned().unwrap();
    assert_eq!(lifetime_of(&last), 0);
    assert_eq!(last[24..36], first[24..36]);
    assert!(mapped.borrow().is_empty());
}

#[tokio::test]
async fn pcp_opens_an_ipv6_pinhole_for_our_address() {
    let gw = ScriptedGateway::start(
        "[::1]:0",
        Arc::new(|req: &[u8]| {
            let mut ours = [0u8; 16];
            ours.copy_from_slice(&req[44..60]);
            vec![pcp_answer(req, 0, IpAddr::V6(Ipv6Addr::from(ours)), 3600)]
        }),
    )
    .await;
    let (shutdown, _complete) = bsv_relay::shutdown::channel();
    let mapped = portmap::spawn(config(&gw, vec![Ipv6Addr::LOCALHOST]), shutdown.clone());
    until("the pinhole", 10, || *mapped.borrow() == [ext("[::1]:18444")]).await;
    let req = gw.requests()[0].clone();
    assert_eq!(&req[8..24], &Ipv6Addr::LOCALHOST.octets(), "client address");
    assert_eq!(&req[44..60], &Ipv6Addr::LOCALHOST.octets(), "the pinhole is for ourselves");
    shutdown.trigger();
}

#[tokio::test]
async fn a_silent_or_refusing_gateway_costs_nothing_but_retries() {
    let silent = ScriptedGateway::start("127.0.0.1:0", Arc::new(|_: &[u8]| vec![])).await;
    let refusing = ScriptedGateway::start(
        "127.0.0.1:0",
        Arc::new(|req: &[u8]| vec![pcp_answer(req, 2, "203.0.113.5".parse().unwrap(), 0)]),
    )
    .await;
    let (shutdown, _complete) = bsv_relay::shutdown::channel();
    let a = portmap::spawn(config(&silent, vec![]), shutdown.clone());
    let b = portmap::spawn(config(&refusing, vec![]), shutdown.clone());
    // A silent gateway gets the request three times per attempt, then again after the retry delay.
    until("retries to the silent gateway", 10, || silent.requests().len() >= 4).await;
    // A refusal ends the attempt at once; it is tried again later.
    until("a second attempt at the refusing gateway", 10, || refusing.requests().len() >= 2).await;
    assert!(a.borrow().is_empty() && b.borrow().is_empty());
    shutdown.trigger();
}

#[tokio::test]
async fn malformed_answers_are_ignored_and_a_valid_one_still_counts() {
    let gw = ScriptedGateway::start(
        "127.0.0.1:0",
        Arc::new(|req: &[u8]| {
            let good = pcp_answer(req, 0, "203.0.113.6".parse().unwrap(), 3600);
            let mut wrong_nonce = good.clone();
            wrong_nonce[24] ^= 1;
            let mut wrong_opcode = good.clone();
            wrong_opcode[1] = 0x82;
            let mut other_port = good.clone();
            other_port[41] ^= 1;
            vec![vec![], vec![0xff; 3], good[..59].to_vec(), wrong_nonce, wrong_opcode, other_port, vec![0xaa; 1500]]
        }),
    )
    .await;
    let (shutdown, _complete) = bsv_relay::shutdown::channel();
    let mapped = portmap::spawn(config(&gw, vec![]), shutdown.clone());
    until("several attempts", 10, || gw.requests().len() >= 4).await;
    assert!(mapped.borrow().is_empty(), "none of those is a mapping");
    drop(mapped);

    // The same garbage followed by the real answer: the real one is taken.
    let gw = ScriptedGateway::start(
        "127.0.0.1:0",
        Arc::new(|req: &[u8]| {
            let good = pcp_answer(req, 0, "203.0.113.6".parse().unwrap(), 3600);
            let mut wrong_nonce = good.clone();
            wrong_nonce[30] ^= 1;
            vec![vec![1, 2, 3], wrong_nonce, good]
        }),
    )
    .await;
    let mapped = portmap::spawn(config(&gw, vec![]), shutdown.clone());
    until("the mapping", 10, || *mapped.borrow() == [ext("203.0.113.6:18444")]).await;
    shutdown.trigger();
}

#[tokio::test]
async fn a_nat_pmp_gateway_is_spoken_to_in_nat_pmp() {
    let gw = ScriptedGateway::start(
        "127.0.0.1:0",
        Arc::new(|req: &[u8]| match (req.first(), req.get(1)) {
            // PCP: NAT-PMP's "unsupported version" (RFC 6887 §9).
            (Some(2), _) => vec![vec![0, 0x81, 0, 1, 0, 0, 0, 9]],
            (Some(0), Some(0)) => vec![vec![0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 9]],
            (Some(0), Some(2)) => {
                let mut r = vec![0, 130, 0, 0, 0, 0, 0, 9];
                r.extend_from_slice(&req[4..6]);
                r.extend_from_slice(&req[6..8]);
                r.extend_from_slice(&req[8..12]);
                vec![r]
            }
            _ => vec![],
        }),
    )
    .await;
    let (shutdown, complete) = bsv_relay::shutdown::channel();
    let mapped = portmap::spawn(config(&gw, vec![]), shutdown.clone());
    let trigger = shutdown.trigger_handle();
    drop(shutdown);
    until("the NAT-PMP mapping", 10, || *mapped.borrow() == [ext("203.0.113.9:18444")]).await;
    let reqs = gw.requests();
    assert_eq!(reqs[1], [0, 0]);
    assert_eq!(reqs[2], [0, 2, 0, 0, 0x48, 0x0c, 0x48, 0x0c, 0, 0, 0x0e, 0x10]);
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), complete.wait()).await.expect("the task finishes");
    // Deleted in NAT-PMP too: a mapping request with lifetime 0.
    let last = gw.requests().last().cloned().unwrap();
    assert_eq!((last[1], &last[8..12]), (2, &[0u8, 0, 0, 0][..]));
}

/// End to end: node A's default gateway is host G, which runs the scripted PCP gateway on UDP
/// 5351 (a thread inside G's namespace); A with `-natpmp=1` lists the mapped address.
#[test]
fn a_node_lists_the_address_its_gateway_mapped() {
    use common::netns::Lan;
    use common::{wait_for, TestNode, DEADLINE};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    let lan = Lan::new();
    let gateway = lan.host(&["198.51.100.1/24"]);
    let host = lan.host(&["198.51.100.20/24"]);
    let route = std::process::Command::new("ip")
        .args(["-n", host.name(), "route", "add", "default", "via", "198.51.100.1"])
        .status()
        .expect("ip route");
    assert!(route.success());

    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ns_path = format!("/run/netns/{}", gateway.name());
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        let ns = std::fs::File::open(&ns_path).expect("namespace file");
        // SAFETY: setns on this thread only, with a valid namespace fd.
        assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        let socket = std::net::UdpSocket::bind("198.51.100.1:5351").expect("bind 5351 in the gateway");
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 1100];
        let mut seen = 0usize;
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                if n == 60 && buf[0] == 2 {
                    seen += 1;
                    let _ = socket.send_to(&pcp_answer(&buf[..n], 0, "203.0.113.50".parse().unwrap(), 3600), from);
                }
            }
        }
        seen
    });
    ready_rx.recv().expect("gateway ready");

    let node = TestNode::start_in_netns(host.name(), &["-listen=1", "-port=18444", "-natpmp=1"]);
    let listed = |node: &TestNode| -> Vec<(String, u64, u64)> {
        node.cli(&["getnetworkinfo"]).json()["localaddresses"]
            .as_array()
            .expect("localaddresses")
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_u64().expect(k);
                (a["address"].as_str().expect("address").to_string(), s("port"), s("score"))
            })
            .collect()
    };
    wait_for("the mapped address in localaddresses", DEADLINE, || {
        listed(&node).iter().any(|(a, _, _)| a == "203.0.113.50").then_some(())
    });
    let mut got = listed(&node);
    got.sort();
    assert_eq!(got, [("198.51.100.20".to_string(), 18444, 1), ("203.0.113.50".to_string(), 18444, 3)]);
    drop(node);
    stop.store(true, Ordering::Relaxed);
    assert!(thread.join().expect("gateway thread") >= 1);
    drop((host, gateway, lan));
}
