#!/usr/bin/env python3
"""Transaction propagation across a random graph of bsv-relay nodes on loopback.

Starts N bsv-relay nodes (default 50), each dialling 4 random others (so about 8 peers each), mines
the coins on node 0, and lets the load generator submit transactions at a steady rate to random
nodes. One poller thread per node records when each transaction first appears in that node's
mempool (`getrawmempool` every 20 ms); the time for a transaction to reach 50 %, 90 % and 100 % of
the nodes is measured from its first appearance anywhere. Then 20 % of the nodes are killed with
SIGKILL and a second batch is sent: every transaction must still reach every surviving node.

    testnet/bench/propagation.py [N] [TXS_PER_PHASE] [RATE]
"""

import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BINARY, ROOT, free_port, stop  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"u:p").decode()


def spawn(node, addnodes, extra=()):
    """Starts a bsv-relay node (`node`: dict with p2p, rpc, dir) on 127.0.0.1 with `extra` options
    and `-addnode` to each port in `addnodes`; its output goes to dir/node.log."""
    node["dir"].mkdir()
    args = [str(BINARY), "-regtest", f"-datadir={node['dir']}", f"-port={node['p2p']}", "-bind=127.0.0.1",
            f"-rpcport={node['rpc']}", "-rpcuser=u", "-rpcpassword=p", "-listen=1", *extra,
            *[f"-addnode=127.0.0.1:{p}" for p in addnodes]]
    log = open(node["dir"] / "node.log", "wb")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def wait_up(nodes, seconds=60):
    """Waits until every node answers RPC; exits with the tail of a node's log if one does not."""
    for node in nodes:
        deadline = time.monotonic() + seconds
        while True:
            try:
                rpc(node["rpc"], "getnetworkinfo")
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("a node did not start: " + (node["dir"] / "node.log").read_text()[-2000:])
                time.sleep(0.2)


def rpc(port, method, *params, timeout=30):
    body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body,
                                 headers={"Authorization": AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["result"]


class Poller(threading.Thread):
    def __init__(self, port, seen):
        super().__init__(daemon=True)
        self.port, self.seen, self.alive = port, seen, True

    def run(self):
        while self.alive:
            try:
                now = time.monotonic()
                for txid in rpc(self.port, "getrawmempool", timeout=5):
                    self.seen.setdefault(txid, now)
            except OSError:
                if not self.alive:
                    return
            time.sleep(0.02)


def percentiles(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def phase(name, nodes, live, pollers, txgen_args, count, seed):
    ids_file = Path(tempfile.mktemp(prefix="txids-"))
    sent = subprocess.run([*txgen_args, "--connect", f"127.0.0.1:{random.choice([nodes[i]['p2p'] for i in live])}",
                           "--count", str(count), "--seed", str(seed), "--no-listen", "--json",
                           "--txids-out", str(ids_file)], capture_output=True, text=True)
    if sent.returncode != 0:
        sys.exit(f"txgen failed: {sent.stderr[-2000:]}")
    wanted = set(ids_file.read_text().split())
    ids_file.unlink()
    # The spends are the transactions seen by the node txgen sent to, minus the funding ones.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(wanted <= set(pollers[i].seen) for i in live):
            break
        time.sleep(0.2)
    union = wanted
    missing = {t: [i for i in live if t not in pollers[i].seen] for t in union}
    missing = {t: v for t, v in missing.items() if v}
    reach = {50: [], 90: [], 100: []}
    for t in union:
        times = sorted(pollers[i].seen[t] for i in live if t in pollers[i].seen)
        if not times:
            continue
        first = times[0]
        for pct in reach:
            k = max(1, -(-len(live) * pct // 100))
            if len(times) >= k:
                reach[pct].append(times[k - 1] - first)
    never = sum(1 for t in union if all(t not in pollers[i].seen for i in live))
    print(f"\n{name}: {len(live)} nodes, {len(union)} transactions ({never} seen nowhere); every transaction at every node: "
          f"{'yes' if not missing else f'NO ({len(missing)} missing somewhere)'}")
    for pct, xs in reach.items():
        if xs:
            p50, p99 = percentiles(xs)
            print(f"  reach {pct:>3} % of nodes: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    return not missing


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    per_phase = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    random.seed(1)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-prop-"))
    procs, nodes = [], []
    try:
        # Consecutive ports below the ephemeral range (32768+), where outgoing connections cannot take them.
        base = int(os.environ.get("BSV_RELAY_PROP_PORT", "24000"))
        for i in range(n):
            nodes.append({"p2p": base + 2 * i, "rpc": base + 2 * i + 1, "dir": work / f"n{i}"})
        for i, node in enumerate(nodes):
            peers = random.sample([j for j in range(n) if j != i], 4)
            procs.append(spawn(node, [nodes[j]["p2p"] for j in peers]))
        wait_up(nodes)
        peers = [rpc(node["rpc"], "getconnectioncount") for node in nodes]
        print(f"{n} nodes up; peers per node: min {min(peers)}, median {statistics.median(peers)}, max {max(peers)}")
        rpc(nodes[0]["rpc"], "generatetoaddress", 1, "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8")
        live = list(range(n))
        pollers = [Poller(node["rpc"], {}) for node in nodes]
        for p in pollers:
            p.start()
        txgen = [str(BINARY), "txgen", "--rpc", f"127.0.0.1:{nodes[0]['rpc']}", "--rpcuser", "u", "--rpcpassword", "p",
                 "--rate", str(rate), "--fanout", str(per_phase)]
        ok1 = phase("before failures", nodes, live, pollers, txgen, per_phase, 1)
        dead = random.sample(range(1, n), n // 5)
        for i in dead:
            procs[i].send_signal(signal.SIGKILL)
            pollers[i].alive = False
        live = [i for i in range(n) if i not in dead]
        # A clean slate: the first batch is mined, and every survivor's mempool empties.
        rpc(nodes[live[0]]["rpc"], "generatetoaddress", 1, "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(rpc(nodes[i]["rpc"], "getrawmempool") for i in live):
            time.sleep(0.2)
        for p in pollers:
            p.seen.clear()
        # Nodes whose every peer died are cut off; the rest must still get everything.
        isolated = [i for i in live if rpc(nodes[i]["rpc"], "getconnectioncount") == 0]
        live = [i for i in live if i not in isolated]
        print(f"\nkilled {len(dead)} nodes without warning: {sorted(dead)}; isolated by it: {isolated}")
        ok2 = phase("after failures", nodes, live, pollers, txgen, per_phase, 2)
        sys.exit(0 if ok1 and ok2 else 1)
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
