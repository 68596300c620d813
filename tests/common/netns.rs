//! Test hosts in network namespaces: each [`Host`] is a namespace with its own loopback and one
//! interface (`eth0`) on a [`Lan`], a bridge in a hub namespace. Addresses come only from the
//! documentation ranges (2001:db8::/32, 198.51.100.0/24, 203.0.113.0/24), on hosts the test creates,
//! so network groups differ as on the internet without touching any real network.
//!
//! Everything is removed on drop (deleting a namespace deletes its end of each veth pair), and a
//! new [`Lan`] first removes what an earlier test process left behind (`bsvr-t<pid>-…` names whose
//! pid is gone), so an interrupted run does not accumulate namespaces. Needs root, as CI has.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "bsvr-t";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn must(args: &[&str]) {
    ip(args).unwrap_or_else(|e| panic!("{e} (these tests need root and iproute2)"));
}

/// Removes namespaces of test processes that no longer run.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let pid: u32 = rest.split('-').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Names unique in this process (namespaces and, shorter, interface names of at most 15 bytes).
fn next_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A namespace, deleted on drop.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    fn create(role: &str) -> Namespace {
        let name = format!("{PREFIX}{}-{}{}", std::process::id(), role, next_id());
        must(&["netns", "add", &name]);
        let ns = Namespace { name };
        must(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A bridge in its own namespace that hosts join.
pub struct Lan {
    hub: Namespace,
}

impl Lan {
    pub fn new() -> Lan {
        remove_stale();
        let hub = Namespace::create("hub");
        must(&["-n", &hub.name, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &hub.name, "link", "set", "br0", "up"]);
        Lan { hub }
    }

    /// A new host on this LAN with `addrs` (CIDR: `2001:db8::1/64`, `198.51.100.1/24`) on `eth0`.
    pub fn host(&self, addrs: &[&str]) -> Host {
        let ns = Namespace::create("h");
        let id = next_id();
        let (inner, outer) =
            (format!("bvi{}-{id}", std::process::id() % 10_000), format!("bvo{}-{id}", std::process::id() % 10_000));
        must(&["link", "add", &inner, "type", "veth", "peer", "name", &outer]);
        must(&["link", "set", &inner, "netns", &ns.name]);
        must(&["link", "set", &outer, "netns", &self.hub.name]);
        must(&["-n", &self.hub.name, "link", "set", &outer, "master", "br0"]);
        must(&["-n", &self.hub.name, "link", "set", &outer, "up"]);
        must(&["-n", &ns.name, "link", "set", &inner, "name", "eth0"]);
        for addr in addrs {
            if addr.contains(':') {
                // No duplicate address detection: the address is usable at once.
                must(&["-n", &ns.name, "-6", "addr", "add", addr, "dev", "eth0", "nodad"]);
            } else {
                must(&["-n", &ns.name, "addr", "add", addr, "dev", "eth0"]);
            }
        }
        must(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        Host { ns }
    }
}

impl Default for Lan {
    fn default() -> Self {
        Self::new()
    }
}

/// One test host: a namespace with an interface on a [`Lan`].
pub struct Host {
    pub ns: Namespace,
}

impl Host {
    pub fn name(&self) -> &str {
        &self.ns.name
    }
}
