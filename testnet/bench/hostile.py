#!/usr/bin/env python3
"""Transaction propagation with hostile peers, reputation on and off, in one run (issue #16).

For each configuration — no attackers; 20 % and 40 % of the network hostile, each with
`-peerreputation=1` and `=0` — starts N honest bsv-relay nodes on loopback (each dialling 4
random others), starts `hostile_peers.py` playing H hostile nodes (withholders, laggards and
invalid-data senders in equal numbers, each connected to LINKS honest nodes, re-announcing every
transaction at once so they are often first), and sends transactions with `bsv-relay txgen` to a
random honest node. A warm-up batch (200 transactions, 10 s at 20/s) lets reputations form; the measured batch
follows. For each
transaction, the time from its first appearance at any honest node to its appearance at *every*
honest node is recorded (`getrawmempool` polled every 50 ms); p50 and p99 are reported, and
every transaction must reach every honest node.

    testnet/bench/hostile.py [N=30] [TXS=200] [RATE=20] [LINKS=6]

Environment: BSV_RELAY_HOSTILE_PORT (first port, default 25000), HOSTILE_CONFIGS (e.g. "0:1,40:1").
"""

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import Poller, percentiles, rpc, spawn, wait_up  # noqa: E402
from throughput import BINARY, ROOT, stop  # noqa: E402

HERE = Path(__file__).resolve().parent
MINER = "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8"
WARMUP = int(os.environ.get("HOSTILE_WARMUP", "200"))


def start_network(n, base, reputation, work):
    nodes, procs = [], []
    for i in range(n):
        nodes.append({"p2p": base + 2 * i, "rpc": base + 2 * i + 1, "metrics": base + 2 * n + i, "dir": work / f"n{i}"})
    rng = random.Random(7)  # the same honest graph for every configuration
    for i, node in enumerate(nodes):
        peers = rng.sample([j for j in range(n) if j != i], 4)
        extra = [f"-peerreputation={1 if reputation else 0}", f"-metricsbind=127.0.0.1:{node['metrics']}"]
        procs.append(spawn(node, [nodes[j]["p2p"] for j in peers], extra))
    wait_up(nodes)
    return nodes, procs


def batch(nodes, pollers, txgen, count, seed):
    """Sends `count` transactions; returns (times to reach every node, all delivered)."""
    ids_file = Path(tempfile.mktemp(prefix="txids-"))
    target = random.choice(nodes)["p2p"]
    sent = subprocess.run([*txgen, "--connect", f"127.0.0.1:{target}", "--count", str(count), "--seed", str(seed),
                           "--no-listen", "--json", "--txids-out", str(ids_file)], capture_output=True, text=True)
    if sent.returncode != 0:
        sys.exit(f"txgen failed: {sent.stderr[-2000:]}")
    wanted = set(ids_file.read_text().split())
    ids_file.unlink()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not all(wanted <= set(p.seen) for p in pollers):
        time.sleep(0.2)
    reach = []
    for t in wanted:
        times = [p.seen[t] for p in pollers if t in p.seen]
        if len(times) == len(pollers):
            reach.append(max(times) - min(times))
    return reach, len(reach) == len(wanted)


def run_config(n, frac, reputation, count, rate, links, base):
    hostile = round(n * frac / (100 - frac)) if frac else 0
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-hostile-"))
    procs, attacker = [], None
    try:
        nodes, procs = start_network(n, base, reputation, work)
        rpc(nodes[0]["rpc"], "generatetoaddress", 1, MINER)
        txgen = [str(BINARY), "txgen", "--rpc", f"127.0.0.1:{nodes[0]['rpc']}", "--rpcuser", "u", "--rpcpassword", "p",
                 "--rate", str(rate), "--fanout", str(count + WARMUP + 50)]
        if hostile:
            targets = ",".join(str(node["p2p"]) for node in nodes)
            attacker = subprocess.Popen([sys.executable, str(HERE / "hostile_peers.py"), "--targets", targets,
                                         "--nodes", str(hostile), "--links", str(links)])
        pollers = [Poller(node["rpc"], {}) for node in nodes]
        for p in pollers:
            p.start()
        # Warm-up: funding, fan-out and a first batch, while reputations form (a peer becomes a
        # suspect after three withheld or late requests, each costing a timeout of up to 5 s).
        warm, warm_ok = batch(nodes, pollers, txgen, WARMUP, 11)
        reach, ok = batch(nodes, pollers, txgen, count, 12)
        for p in pollers:
            p.alive = False
        peers = [rpc(node["rpc"], "getconnectioncount") for node in nodes]
        banned = sum(len(rpc(node["rpc"], "listbanned")) for node in nodes)
        return {"hostile": hostile, "reach": reach, "ok": ok and warm_ok, "warm": warm,
                "peers": sorted(peers)[len(peers) // 2], "banned": banned}
    finally:
        if attacker:
            attacker.kill()
            attacker.wait()
        stop(procs, work)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    links = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    base = int(os.environ.get("BSV_RELAY_HOSTILE_PORT", "25000"))
    configs = [(0, True), (20, True), (20, False), (40, True), (40, False)]
    if os.environ.get("HOSTILE_CONFIGS"):
        configs = [(int(f), r == "1") for f, r in (c.split(":") for c in os.environ["HOSTILE_CONFIGS"].split(","))]
    random.seed(1)
    if not os.environ.get("BSV_RELAY_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    print(f"{n} honest nodes, {count} measured transactions at {rate}/s after {WARMUP} warm-up ones; "
          f"each hostile node has {links} links")
    print("| hostile | reputation | hostile nodes | median peers | bans | warm-up p50 / p99 | p50 to all honest | p99 to all honest | every tx everywhere |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for frac, rep in configs:
        r = run_config(n, frac, rep, count, rate, links, base)
        results.append(r)
        p50, p99 = percentiles(r["reach"]) if r["reach"] else (float("nan"),) * 2
        w50, w99 = percentiles(r["warm"]) if r["warm"] else (float("nan"),) * 2
        print(f"| {frac} % | {'on' if rep else 'off'} | {r['hostile']} | {r['peers']} | {r['banned']} "
              f"| {w50 * 1000:.0f} / {w99 * 1000:.0f} ms | {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms "
              f"| {'yes' if r['ok'] else 'NO'} |", flush=True)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
