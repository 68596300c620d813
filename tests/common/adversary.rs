//! The adversarial fixture (operators-and-robustness.md §5.4): a node whitelisting 127.0.0.1, an
//! honest peer on 127.0.0.1 pinging it for the whole attack, and attackers connecting from
//! 127.0.0.2 (loopback is not exempt from bans).

use super::peer::{HonestPeer, RawPeer};
use super::{wait_for, TestNode, DEADLINE};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The honest peer's pong deadline while an attack runs.
pub const LIVENESS: Duration = Duration::from_secs(2);
/// Short timeouts so the timeout rows run in seconds (the defaults are 60 s and 20 min).
pub const SHORT: [&str; 2] = ["-p2phandshaketimeout=3", "-p2ptimeout=4"];

pub struct Fixture {
    pub node: TestNode,
    honest: Option<HonestPeer>,
}

impl Fixture {
    pub fn start(extra: &[&str]) -> Fixture {
        let metrics = format!("-metricsbind=127.0.0.1:{}", super::free_port());
        let mut args = vec!["-whitelist=127.0.0.1", metrics.as_str()];
        args.extend_from_slice(extra);
        let node = TestNode::start(&args);
        let honest = Some(HonestPeer::start(node.p2p_addr()));
        Fixture { node, honest }
    }

    pub fn attacker(&self) -> RawPeer {
        RawPeer::connect_from(self.node.p2p_addr(), Some(ATTACKER))
    }

    pub fn attacker_after_handshake(&self) -> RawPeer {
        let mut a = self.attacker();
        a.handshake();
        a
    }

    /// The honest peer got every pong within 2 s while the attack ran.
    pub fn assert_alive(&mut self) {
        let worst = self.honest.take().expect("checked once").finish();
        assert!(worst < LIVENESS, "honest peer's worst ping was {worst:?}");
    }

    pub fn metric(&self, name: &str, label: &str) -> f64 {
        self.node.metric(name, label)
    }

    pub fn wait_metric(&self, name: &str, label: &str, at_least: f64) {
        wait_for(&format!("{name}{{{label}}} >= {at_least}"), DEADLINE, || {
            (self.metric(name, label) >= at_least).then_some(())
        });
    }

    pub fn attacker_banscore(&self) -> Option<u64> {
        let peers = self.node.cli(&["getpeerinfo"]).json();
        peers.as_array()?.iter().find(|p| p["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.2:")))?["banscore"]
            .as_u64()
    }
}
