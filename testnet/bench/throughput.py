#!/usr/bin/env python3
"""Transaction acceptance throughput, bsv-relay against SV Node v1.0.13, in the same run.

Starts a fresh regtest SV Node and a fresh bsv-relay (each alone), and for each runs
`bsv-relay txgen --rate 0 --count N --accept-by-mempool`: the generator mines and fans out coins on
that node, pre-signs N independent 1-input 1-output P2PKH transactions (and encodes their frames),
pushes them over one P2P connection and counts acceptance by the growth of the node's
`getmempoolinfo.size` (polled every 20 ms), not by announcements, which SV Node trickles slowly.
Prints accepted tx/s for both and the ratio. A second fresh bsv-relay then takes the same load with
the generator speaking the v2 (BIP324) transport (every transaction decrypted by the node, every
announcement encrypted), so the cost of encryption is measured in the same run.

    testnet/bench/throughput.py [N] [--no-v2]     (default 50000)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "bsv-relay"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_rpc(cli, args):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run([*cli, *args, "getnetworkinfo"], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    sys.exit("node did not start")


# SV Node v1.0.13 on regtest for benchmarks, as svnode-regtest.md describes: the three mandatory
# options, consistency checks off (they make acceptance quadratic), loopback only.
SV_FLAGS = ["-excessiveblocksize=1000000000", "-maxstackmemoryusageconsensus=100000000",
            "-minminingtxfee=0.00000500", "-checkmempool=0", "-checkblockindex=0", "-discover=0", "-dnsseed=0",
            "-printtoconsole=0", "-whitelist=127.0.0.1", "-listen=1", "-server=1", "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1", "-rpcuser=u", "-rpcpassword=p", "-bind=127.0.0.1"]


def prepare():
    """Builds the release binary and installs SV Node; returns SV Node's bin folder."""
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    out = subprocess.run([str(ROOT / "testnet" / "install-svnode")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def stop(procs, work):
    """Stops the benchmark's processes (gracefully, then by force) and removes its folder."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def histogram_quantiles(port, name):
    """p50 and p99 upper bucket bounds of each `stage` of a histogram on /metrics."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            labels, value = line[len(name) + 8:].rsplit("} ", 1)
            fields = dict(kv.split("=", 1) for kv in labels.split(","))
            stage, le = fields["stage"].strip('"'), fields["le"].strip('"')
            buckets.setdefault(stage, []).append((float("inf") if le == "+Inf" else float(le), float(value)))
    out = {}
    for stage, bs in buckets.items():
        bs.sort()
        total = bs[-1][1]
        if total == 0:
            continue
        q = lambda p: next(le for le, c in bs if c >= p * total)
        out[stage] = (q(0.5), q(0.99))
    return out


def txgen(rpc, p2p, n, seed, v2=False):
    out = subprocess.run([str(BINARY), "txgen", "--rpc", f"127.0.0.1:{rpc}", "--rpcuser", "u", "--rpcpassword", "p",
                          "--connect", f"127.0.0.1:{p2p}", "--rate", "0", "--count", str(n), "--seed", str(seed),
                          "--json", "--accept-by-mempool", *(["--v2"] if v2 else [])], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"txgen failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_ours(work, name):
    """A fresh bsv-relay with its defaults; returns (process, rpc port, p2p port, metrics port, cli)."""
    d, p2p, rpc, metrics = work / name, free_port(), free_port(), free_port()
    d.mkdir()
    proc = subprocess.Popen([str(BINARY), "-regtest", f"-datadir={d}", f"-port={p2p}", "-bind=127.0.0.1",
                             f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p", f"-metricsbind=127.0.0.1:{metrics}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, rpc, p2p, metrics


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 50_000
    bin_dir = prepare()
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-bench-"))
    procs = []
    try:
        results = {}
        # SV Node, as svnode-regtest.md describes (consistency checks off).
        sv_dir, sv_p2p, sv_rpc = work / "sv", free_port(), free_port()
        sv_dir.mkdir()
        procs.append(subprocess.Popen([str(bin_dir / "bitcoind"), "-regtest", f"-datadir={sv_dir}", f"-port={sv_p2p}",
                                       f"-rpcport={sv_rpc}", *SV_FLAGS],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cli = [str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={sv_rpc}", "-rpcuser=u", "-rpcpassword=p"]
        wait_rpc(cli, [])
        results["SV Node v1.0.13"] = txgen(sv_rpc, sv_p2p, n, 1)
        # bsv-relay with its defaults.
        ours, rpc, p2p, metrics = start_ours(work, "ours")
        procs.append(ours)
        cli = [str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"]
        wait_rpc(cli, [])
        rss_before = rss_kb(ours.pid)
        results["bsv-relay"] = txgen(rpc, p2p, n, 1)
        rss_after = rss_kb(ours.pid)
        pool = json.loads(subprocess.run([*cli, "getmempoolinfo"], capture_output=True, text=True).stdout)
        latency = histogram_quantiles(metrics, "bsv_relay_tx_relay_latency_seconds")
        if "--no-v2" not in sys.argv:
            # The same load over the v2 transport, on a fresh node.
            v2node, v2rpc, v2p2p, _ = start_ours(work, "ours-v2")
            procs.append(v2node)
            wait_rpc([str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={v2rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
            results["bsv-relay over v2"] = txgen(v2rpc, v2p2p, n, 1, v2=True)
        print(f"\n{n} transactions over one P2P connection, {os.cpu_count()} cores:")
        print("| node | accepted | seconds | accepted tx/s |")
        print("|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['accepted']} | {r['seconds']:.2f} | {r['accepted_per_second']:.0f} |")
        ratio = results["bsv-relay"]["accepted_per_second"] / max(results["SV Node v1.0.13"]["accepted_per_second"], 1e-9)
        print(f"\nratio bsv-relay / SV Node: {ratio:.2f}x")
        if "bsv-relay over v2" in results:
            v2 = results["bsv-relay over v2"]["accepted_per_second"] / max(results["bsv-relay"]["accepted_per_second"], 1e-9)
            print(f"v2 / v1 acceptance throughput: {v2:.3f} (cost of encryption {100 * (1 - v2):.1f} %)")
        grown = (rss_after - rss_before) * 1024
        print(f"bsv-relay memory: mempool {pool['size']} txs, {pool['bytes']} raw bytes; resident size grew "
              f"{grown / 1e6:.1f} MB = {grown / max(pool['bytes'], 1):.2f}x the raw bytes")
        for stage, q in latency.items():
            print(f"bsv-relay relay latency {stage}: p50 {q[0] * 1000:.1f} ms, p99 {q[1] * 1000:.1f} ms (histogram bucket bounds)")
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
