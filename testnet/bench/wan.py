#!/usr/bin/env python3
"""Transaction and block propagation across a WAN-like network built from network namespaces.

Regions are router namespaces joined to a core router; each region's hosts sit on a bridge in its
router. A packet between two regions is held in the core for the sum of the two regions' delays
(10-75 ms each, so 20-150 ms one way between regions) and dropped with 1 % probability. This
kernel has no `tc netem`, so the core queues forwarded packets to user space (the iptables NFQUEUE
target, see wan_delay.py) and releases each after its delay. Hosts are IPv4-only, IPv6-only or dual-stack, addressed only from the
documentation ranges (198.51.100.0/24 and 2001:db8::/32 for hosts, 203.0.113.0/24 and
2001:db8:ff::/48 for router links); each runs one bsv-relay that dials 4 random others it shares
a family with (dual-stack nodes join the two families). Measured as propagation.py does: for
transactions (generator at a steady rate) the time from first seen anywhere to 50/90/100 % of the
nodes, and for blocks (mined on a random node, some carrying those transactions) the time until
every node's tip is the block; then 20 % of the nodes are killed with SIGKILL and both are measured
again. Every transaction and block must reach every surviving node that still has a peer.

Everything it creates is named `bsvrw<pid>-…` and removed in `finally`, on SIGINT/SIGTERM, and by
the next run if this one was killed outright (leftovers whose pid is gone). Needs root.

    testnet/bench/wan.py [N] [TXS_PER_PHASE] [RATE] [--short] [--json FILE]

BSV_RELAY_BIN selects the binary (default: target/release/bsv-relay, built first); WAN_KEEP_LOGS=DIR
keeps the nodes' folders (logs) there.
"""

import ctypes
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import base64
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"bsvrw{os.getpid()}-"
AUTH = "Basic " + base64.b64encode(b"u:p").decode()
P2P, RPC = 18444, 18443
ADDRESS = "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8"
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def enter(ns):
    """Moves the calling thread into namespace `ns` (network namespaces are per thread)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def rpc_here(method, *params, timeout=30):
    body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{RPC}/", data=body,
                                 headers={"Authorization": AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["result"]


def rpc(ns, method, *params, timeout=30):
    """One RPC to the node in `ns`, from a thread that enters it."""
    out = {}

    def call():
        try:
            enter(ns)
            out["r"] = rpc_here(method, *params, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            out["e"] = e

    t = threading.Thread(target=call)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["r"]


def sweep():
    """Removes namespaces of earlier runs whose process is gone."""
    for line in sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"bsvrw(\d+)-", name)
        if m and int(m.group(1)) != os.getpid() and not Path(f"/proc/{m.group(1)}").exists():
            sh("ip", "netns", "del", name, check=False)


class Net:
    """The namespaces and links; `close` removes them all."""

    def __init__(self):
        self.namespaces = []

    def ns(self, name):
        full = PREFIX + name
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def link(self, a, a_if, b, b_if):
        sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b)
        sh("ip", "-n", a, "link", "set", a_if, "up")
        sh("ip", "-n", b, "link", "set", b_if, "up")

    def close(self):
        for ns in reversed(self.namespaces):
            # Processes left in it die with their parent's kill below; the namespace goes here.
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()


def addr(ns, dev, cidr):
    if ":" in cidr:
        sh("ip", "-n", ns, "-6", "addr", "add", cidr, "dev", dev, "nodad")
    else:
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev)


def forwarding(ns):
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")


def region_of(ip):
    """The region of a host address (198.51.100.32k+i, 2001:db8:k+1::i), or None."""
    if ip is None:
        return None
    if ip.startswith("198.51.100."):
        return int(ip.rsplit(".", 1)[1]) // 32
    m = re.match(r"2001:db8:([0-9a-f]+)::", ip)
    return int(m.group(1), 16) - 1 if m and m.group(1) != "ff" else None


def impair(core, delays, loss):
    """Delays and drops what the core forwards, through NFQUEUE."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from wan_delay import Delayer  # noqa: E402

    def delay_ms(src, dst):
        a, b = region_of(src), region_of(dst)
        return (delays[a] if a is not None else 0) + (delays[b] if b is not None else 0)

    delayer = Delayer(enter, core, delay_ms, loss)
    delayer.start()
    delayer.ready.wait(10)
    if delayer.error:
        raise RuntimeError(f"NFQUEUE unavailable: {delayer.error}")
    # The xtables NFQUEUE target (this kernel has it, not nftables' own queue expression).
    for tool in ("iptables", "ip6tables"):
        sh("ip", "netns", "exec", core, tool, "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0")
    return delayer


def build(net, n, regions):
    """Builds the network; returns the hosts: ns, region, family kinds, addresses."""
    core = net.ns("core")
    forwarding(core)
    delays = [10 + (65 * k) // max(1, regions - 1) for k in range(regions)]
    routers = []
    for k in range(regions):
        r = net.ns(f"r{k}")
        forwarding(r)
        net.link(r, "up0", core, f"down{k}")
        addr(r, "up0", f"203.0.113.{4 * k + 2}/30")
        addr(core, f"down{k}", f"203.0.113.{4 * k + 1}/30")
        addr(r, "up0", f"2001:db8:ff:{k}::2/64")
        addr(core, f"down{k}", f"2001:db8:ff:{k}::1/64")
        sh("ip", "-n", r, "route", "add", "default", "via", f"203.0.113.{4 * k + 1}")
        sh("ip", "-n", r, "-6", "route", "add", "default", "via", f"2001:db8:ff:{k}::1")
        sh("ip", "-n", core, "route", "add", f"198.51.100.{32 * k}/27", "via", f"203.0.113.{4 * k + 2}")
        sh("ip", "-n", core, "-6", "route", "add", f"2001:db8:{k + 1}::/64", "via", f"2001:db8:ff:{k}::2")
        sh("ip", "-n", r, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", r, "link", "set", "br0", "up")
        addr(r, "br0", f"198.51.100.{32 * k + 1}/27")
        addr(r, "br0", f"2001:db8:{k + 1}::1/64")
        routers.append(r)
    hosts = []
    for i in range(n):
        k = i % regions
        # Node 0 is dual-stack; then IPv4-only, IPv6-only, dual in turn, shifted per round so each
        # region gets a mix.
        kind = ["dual", "ipv4", "ipv6"][(i + i // regions) % 3] if i else "dual"
        h = net.ns(f"h{i}")
        net.link(h, "eth0", routers[k], f"p{i}")
        sh("ip", "-n", routers[k], "link", "set", f"p{i}", "master", "br0")
        host = {"ns": h, "region": k, "kind": kind, "v4": None, "v6": None}
        local_index = i // regions + 2
        if kind in ("dual", "ipv4"):
            host["v4"] = f"198.51.100.{32 * k + local_index}"
            addr(h, "eth0", host["v4"] + "/27")
            sh("ip", "-n", h, "route", "add", "default", "via", f"198.51.100.{32 * k + 1}")
        if kind in ("dual", "ipv6"):
            host["v6"] = f"2001:db8:{k + 1}::{local_index:x}"
            addr(h, "eth0", host["v6"] + "/64")
            sh("ip", "-n", h, "-6", "route", "add", "default", "via", f"2001:db8:{k + 1}::1")
        hosts.append(host)
    return hosts, delays, core


def endpoint(host, other):
    """How `host` dials `other`: over a family both have (IPv6 first), or None."""
    if host["v6"] and other["v6"]:
        return f"[{other['v6']}]:{P2P}"
    if host["v4"] and other["v4"]:
        return f"{other['v4']}:{P2P}"
    return None


class Poller(threading.Thread):
    """Records when each transaction and each tip first shows at one node."""

    def __init__(self, ns):
        super().__init__(daemon=True)
        self.ns, self.alive = ns, True
        self.txs, self.tips = {}, {}

    def run(self):
        enter(self.ns)
        while self.alive:
            try:
                now = time.monotonic()
                for txid in rpc_here("getrawmempool", timeout=5):
                    self.txs.setdefault(txid, now)
                self.tips.setdefault(rpc_here("getbestblockhash", timeout=5), now)
            except OSError:
                if not self.alive:
                    return
            time.sleep(0.02)


def percentiles(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def tx_phase(name, binary, hosts, live, pollers, count, rate, seed, report):
    src = hosts[random.choice(live)]
    target = f"{src['v4']}:{P2P}" if src["v4"] else f"[{src['v6']}]:{P2P}"
    ids_file = Path(f"/tmp/{PREFIX}txids-{seed}")
    sent = subprocess.run(["ip", "netns", "exec", src["ns"], str(binary), "txgen", "--rpc", f"127.0.0.1:{RPC}",
                           "--rpcuser", "u", "--rpcpassword", "p", "--connect", target, "--rate", str(rate),
                           "--fanout", str(count), "--count", str(count), "--seed", str(seed), "--no-listen",
                           "--json", "--txids-out", str(ids_file)], capture_output=True, text=True)
    if sent.returncode != 0:
        raise RuntimeError(f"txgen failed: {sent.stderr[-2000:]}")
    wanted = set(ids_file.read_text().split())
    ids_file.unlink()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(wanted <= set(pollers[i].txs) for i in live):
        time.sleep(0.2)
    missing = {t for t in wanted if any(t not in pollers[i].txs for i in live)}
    reach = {50: [], 90: [], 100: []}
    for t in wanted:
        times = sorted(pollers[i].txs[t] for i in live if t in pollers[i].txs)
        for pct in reach:
            k = max(1, -(-len(live) * pct // 100))
            if len(times) >= k:
                reach[pct].append(times[k - 1] - times[0])
    print(f"\n{name}: {len(live)} nodes, {len(wanted)} transactions; every transaction at every node: "
          f"{'yes' if not missing else f'NO ({len(missing)} missing somewhere)'}")
    for t in sorted(missing):
        print(f"  missing {t} at nodes {[i for i in live if t not in pollers[i].txs]}")
    out = {}
    for pct, xs in reach.items():
        if xs:
            p50, p99 = percentiles(xs)
            out[f"tx_reach_{pct}"] = {"p50_ms": round(p50 * 1000), "p99_ms": round(p99 * 1000)}
            print(f"  transactions reach {pct:>3} % of nodes: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    report[name] = out
    return not missing


def block_phase(name, hosts, live, pollers, blocks, report):
    times, ok = [], True
    for b in range(blocks):
        miner = random.choice(live)
        mined = rpc(hosts[miner]["ns"], "generatetoaddress", 1, ADDRESS)[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(mined in pollers[i].tips for i in live):
            time.sleep(0.05)
        if not all(mined in pollers[i].tips for i in live):
            ok = False
            continue
        first = pollers[miner].tips[mined]
        times.append(max(pollers[i].tips[mined] for i in live) - first)
    print(f"  every block at every node: {'yes' if ok else 'NO'} ({blocks} blocks)")
    if times:
        p50, worst = statistics.median(times), max(times)
        report[name]["block_all_nodes"] = {"p50_ms": round(p50 * 1000), "max_ms": round(worst * 1000)}
        print(f"  blocks reach 100 % of nodes: median {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms")
    return ok


def wait_empty_mempools(hosts, live):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(rpc(hosts[i]["ns"], "getrawmempool") for i in live):
        time.sleep(0.2)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    short = "--short" in sys.argv
    json_out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    if json_out in args:
        args.remove(json_out)
    n = int(args[0]) if args else (6 if short else 24)
    per_phase = int(args[1]) if len(args) > 1 else (30 if short else 200)
    rate = int(args[2]) if len(args) > 2 else 20
    regions = 3 if short or n < 12 else 4
    blocks = 2 if short else 5
    random.seed(1)
    binary = os.environ.get("BSV_RELAY_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = ROOT / "target" / "release" / "bsv-relay"
    sweep()
    net, procs, pollers, dials = Net(), [], [], []

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    work = Path(f"/tmp/{PREFIX}data")
    try:
        hosts, delays, core = build(net, n, regions)
        delayer = impair(core, delays, 0.01)
        kinds = {k: sum(1 for h in hosts if h["kind"] == k) for k in ("dual", "ipv4", "ipv6")}
        print(f"{n} hosts in {regions} regions (one-way delay to the core {delays} ms, 1 % loss between regions): "
              f"{kinds['dual']} dual-stack, {kinds['ipv4']} IPv4-only, {kinds['ipv6']} IPv6-only")
        for i, h in enumerate(hosts):
            reachable = [j for j in range(n) if j != i and endpoint(h, hosts[j])]
            # One earlier node first (the graph is connected: node 0 is dual-stack), then random others.
            earlier = [j for j in reachable if j < i]
            peers = ([random.choice(earlier)] if earlier else []) + random.sample(reachable, min(3, len(reachable)))
            d = work / f"n{i}"
            d.mkdir(parents=True)
            binds = [f"-bind={h['v4']}:{P2P}"] if h["v4"] else []
            binds += [f"-bind=[{h['v6']}]:{P2P}"] if h["v6"] else []
            argv = ["ip", "netns", "exec", h["ns"], str(binary), "-regtest", f"-datadir={d}", f"-port={P2P}",
                    f"-rpcport={RPC}", "-rpcuser=u", "-rpcpassword=p", "-listen=1", *binds, *os.environ.get("WAN_NODE_ARGS", "").split(),
                    *[f"-addnode={endpoint(h, hosts[j])}" for j in sorted(set(peers))]]
            procs.append(subprocess.Popen(argv, stdout=open(d / "node.log", "wb"), stderr=subprocess.STDOUT))
            dials.append(sorted(set(peers)))
        for i, h in enumerate(hosts):
            deadline = time.monotonic() + 60
            while True:
                try:
                    rpc(h["ns"], "getnetworkinfo", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"node {i} did not start: " + (work / f"n{i}" / "node.log").read_text()[-2000:])
                    time.sleep(0.2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(rpc(h["ns"], "getconnectioncount") == 0 for h in hosts):
            time.sleep(0.2)
        # Every node's -addnode connections up, and (with v2 on) on v2: a node first reaches a peer
        # it only knows from -addnode over v1 and dials it again over v2 once the peer's version
        # shows the bit, and a peer that was not listening yet is retried with backoff. Measuring
        # during that churn would lose a transaction announced on a closing connection and
        # announced by no other peer (see the README's limits).
        want = "v1" if "-v2transport=0" in os.environ.get("WAN_NODE_ARGS", "") else "v2"

        def settled(i):
            mine = {p["addr"]: p["transport_protocol_type"] for p in rpc(hosts[i]["ns"], "getpeerinfo")
                    if not p["inbound"] and p.get("version", 0) > 0}
            return all(mine.get(endpoint(hosts[i], hosts[j])) == want for j in dials[i])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(settled(i) for i in range(n)):
            time.sleep(0.2)
        peers = [rpc(h["ns"], "getconnectioncount") for h in hosts]
        print(f"nodes up; peers per node: min {min(peers)}, median {statistics.median(peers)}, max {max(peers)}",
              flush=True)
        pollers = [Poller(h["ns"]) for h in hosts]
        for p in pollers:
            p.start()
        live = list(range(n))
        report = {"nodes": n, "regions": regions, "delays_ms": delays, "kinds": kinds}
        ok = tx_phase("before failures", binary, hosts, live, pollers, per_phase, rate, 1, report)
        ok &= block_phase("before failures", hosts, live, pollers, blocks, report)
        wait_empty_mempools(hosts, live)
        dead = random.sample(range(1, n), max(1, n // 5))
        for i in dead:
            procs[i].send_signal(signal.SIGKILL)
            pollers[i].alive = False
        live = [i for i in range(n) if i not in dead]
        for p in pollers:
            p.txs.clear()
        isolated = [i for i in live if rpc(hosts[i]["ns"], "getconnectioncount") == 0]
        live = [i for i in live if i not in isolated]
        print(f"\nkilled {len(dead)} nodes without warning: {sorted(dead)}; isolated by it: {isolated}")
        ok &= tx_phase("after failures", binary, hosts, live, pollers, per_phase, rate, 2, report)
        ok &= block_phase("after failures", hosts, live, pollers, blocks, report)
        print(f"\ncore forwarded {delayer.packets} packets, dropped {delayer.dropped}")
        report["packets"], report["dropped"] = delayer.packets, delayer.dropped
        if json_out:
            Path(json_out).write_text(json.dumps(report, indent=1))
        print("\nall transactions and blocks reached every connected node" if ok else "\nSOME DID NOT ARRIVE")
        sys.exit(0 if ok else 1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for p in pollers:
            p.alive = False
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        net.close()
        if os.environ.get("WAN_KEEP_LOGS"):
            subprocess.run(["cp", "-r", str(work), os.environ["WAN_KEEP_LOGS"]])
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
