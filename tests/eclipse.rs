//! Eclipse resistance (issue #16), in network namespaces with documentation-range addresses on
//! hosts this test creates, so network groups differ as on the internet.
//!
//! Four honest nodes, one in each network group the documentation ranges give (198.51/16,
//! 203.0/16, 192.0/16 and 2001:db8::/32); a victim that knows them; and one attacker host with
//! 120 addresses spread over the same four groups, listening on all of them (it completes the
//! handshake of any connection, so a slot it wins stays taken). The attacker opens an inbound
//! connection from each of its addresses and floods `addr`: 1000 addresses per connection, 120,000
//! in all, every one of them its own. Then the victim restarts.
//!
//! Shown: the flood fills only the few new-table buckets its groups map to (a few hundred
//! entries, not 120,000); after the restart the victim dials its two anchors (honest, from
//! before) first, its outbound peers are in pairwise distinct groups, so the attacker holds at most
//! the two groups the anchors do not, and honest peers keep at least half the outbound slots.

mod common;

use bsv_relay::wire::{Message, NetAddress, TimedAddress};
use common::netns::Lan;
use common::peer::RawPeer;
use common::{wait_for, TestNode, DEADLINE};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

const PORT: u16 = 18444;
const ATTACKER_PORT: u16 = 18555;

const HONEST: [&str; 4] = ["198.51.100.1", "203.0.113.1", "192.0.2.2", "2001:db8:2::1"];

/// Runs `f` on a thread inside network namespace `ns`: sockets it creates live there.
fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: setns on a file descriptor we own, affecting only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

fn attacker_ips() -> Vec<IpAddr> {
    let mut v = Vec::new();
    for i in 100..130u8 {
        v.push(format!("198.51.100.{i}").parse().unwrap());
        v.push(format!("203.0.113.{i}").parse().unwrap());
        v.push(format!("192.0.2.{i}").parse().unwrap());
        v.push(format!("2001:db8:bad::{i}").parse().unwrap());
    }
    v
}

fn group(ip: &str) -> String {
    let ip: IpAddr = ip.parse().expect("ip");
    match ip {
        IpAddr::V4(v4) => format!("{}.{}", v4.octets()[0], v4.octets()[1]),
        IpAddr::V6(v6) => format!("{:x}:{:x}", v6.segments()[0], v6.segments()[1]),
    }
}

/// The victim's outbound peers' IPs.
fn outbound(node: &TestNode) -> Vec<String> {
    node.cli(&["getpeerinfo"])
        .json()
        .as_array()
        .expect("peers")
        .iter()
        .filter(|p| p["inbound"] == Value::Bool(false) && p["version"].as_u64().unwrap_or(0) > 0)
        .map(|p| p["addr"].as_str().expect("addr").parse::<SocketAddr>().expect("socket addr").ip().to_string())
        .collect()
}

/// One sample of the victim's `/metrics`, read from inside its namespace (its metrics listen on
/// the namespace's loopback).
fn ns_metric(ns: &str, port: u16, key: &str) -> f64 {
    let body = in_namespace(ns, move || {
        common::http_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").2
    });
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(k, _)| *k == key).and_then(|(_, v)| v.parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn an_addr_flood_from_a_few_groups_does_not_eclipse_the_node_after_a_restart() {
    let lan = Lan::new();
    let honest_hosts: Vec<_> = HONEST
        .iter()
        .map(|ip| lan.host(&[&if ip.contains(':') { format!("{ip}/32") } else { format!("{ip}/16") }]))
        .collect();
    let victim_host = lan.host(&["192.0.2.1/16", "2001:db8:1::1/32", "198.51.0.1/16", "203.0.0.1/16"]);
    let cidrs: Vec<String> =
        attacker_ips().iter().map(|ip| if ip.is_ipv6() { format!("{ip}/32") } else { format!("{ip}/16") }).collect();
    let attacker_host = lan.host(&cidrs.iter().map(String::as_str).collect::<Vec<_>>());
    let honest: Vec<TestNode> = HONEST
        .iter()
        .zip(&honest_hosts)
        .map(|(ip, h)| {
            let bind = if ip.contains(':') { format!("-bind=[{ip}]:{PORT}") } else { format!("-bind={ip}:{PORT}") };
            TestNode::start_in_netns(h.name(), &["-listen=1", &format!("-port={PORT}"), &bind])
        })
        .collect();
    let metrics_port = common::free_port();
    let metrics = format!("-metricsbind=127.0.0.1:{metrics_port}");
    let victim = TestNode::start_in_netns(
        victim_host.name(),
        &["-listen=1", &format!("-port={PORT}"), "-bind=192.0.2.1:18444", "-bind=[2001:db8:1::1]:18444", &metrics],
    );
    // The victim meets the honest nodes (they go to its tried table) and fills its slots with them.
    for ip in HONEST {
        let target = if ip.contains(':') { format!("[{ip}]:{PORT}") } else { format!("{ip}:{PORT}") };
        assert!(victim.cli(&["addnode", &target, "onetry"]).success());
    }
    wait_for("four honest outbound peers", DEADLINE, || (outbound(&victim).len() == 4).then_some(()));

    // The attacker listens on all its addresses and completes every handshake.
    let listener = in_namespace(attacker_host.name(), || {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).expect("socket");
        s.set_only_v6(false).expect("dual stack");
        s.set_reuse_address(true).expect("reuse");
        s.bind(&SocketAddr::from(([0u16; 8], ATTACKER_PORT)).into()).expect("bind");
        s.listen(128).expect("listen");
        TcpListener::from(s)
    });
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut peer = RawPeer::from_stream(stream);
                if peer.try_handshake() {
                    while !peer.closed_within(Duration::from_secs(3600)) {}
                }
            });
        }
    });
    // The flood: one inbound connection per attacker address, each sending 1000 of its own
    // addresses (an inbound peer is believed only about itself), 120,000 in all.
    let victim_v4: SocketAddr = format!("192.0.2.1:{PORT}").parse().unwrap();
    let victim_v6: SocketAddr = format!("[2001:db8:1::1]:{PORT}").parse().unwrap();
    let flooders: Vec<RawPeer> = in_namespace(attacker_host.name(), move || {
        attacker_ips()
            .into_iter()
            .map(|ip| {
                let mut p = RawPeer::connect_from(if ip.is_ipv6() { victim_v6 } else { victim_v4 }, Some(ip));
                p.handshake();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
                let list: Vec<TimedAddress> = (0..1000u16)
                    .map(|port| TimedAddress {
                        time: now,
                        addr: NetAddress::new(
                            SocketAddr::new(ip, if port == 0 { ATTACKER_PORT } else { 20000 + port }),
                            1,
                        ),
                    })
                    .collect();
                p.send(&Message::Addr(list));
                p
            })
            .collect()
    });
    let ns = victim_host.name().to_string();
    let entries =
        |table: &str| ns_metric(&ns, metrics_port, &format!("bsv_relay_addrbook_table_entries{{table=\"{table}\"}}"));
    // The book's tables are published every ten seconds; wait for the flood to show.
    wait_for("the flood in the new table", DEADLINE, || (entries("new") >= 64.0).then_some(()));
    let new = entries("new");
    eprintln!("120,000 flooded addresses: {new} entries in the new table, {} in tried", entries("tried"));
    assert!(new <= 16.0 * 64.0, "120,000 flooded addresses took {new} new-table slots");
    assert!(entries("tried") >= 4.0, "the honest nodes stay in the tried table");
    assert_eq!(outbound(&victim).len(), 4, "outbound slots are not taken by the flood");
    drop(flooders);

    // Restart: anchors are dialled first, and the slots fill with distinct groups.
    let victim = victim.restart();
    let peers = wait_for("the outbound slots filled again", DEADLINE, || {
        let peers = outbound(&victim);
        (peers.len() >= 4).then_some(peers)
    });
    eprintln!("outbound peers after the restart: {peers:?}");
    let groups: std::collections::HashSet<String> = peers.iter().map(|ip| group(ip)).collect();
    assert_eq!(groups.len(), peers.len(), "outbound peers in distinct groups: {peers:?}");
    let honest_out = peers.iter().filter(|ip| HONEST.contains(&ip.as_str())).count();
    assert!(honest_out >= 2, "the anchors (honest) are among the outbound peers: {peers:?}");
    let log = victim.output();
    let anchors: Vec<&str> = log.lines().filter(|l| l.contains("dialling anchor")).collect();
    assert_eq!(anchors.len(), 2, "two anchors dialled: {anchors:?}");
    assert!(anchors.iter().all(|l| HONEST.iter().any(|h| l.contains(h))), "anchors are honest: {anchors:?}");
    drop(honest);
}
