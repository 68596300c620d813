#!/usr/bin/env python3
"""Relay latency: from a transaction arriving at a node to its `inv` reaching the node's other peers.

Starts a fresh regtest bsv-relay and a fresh SV Node v1.0.13 (each alone, SV Node with the flags of
throughput.py). Against each, `bsv-relay txgen` opens one sending connection and 7 listening ones,
so the node has 8 peers, and records for every transaction and every listener the time from writing
the `tx` to that listener's first `inv` of it (loopback adds some tens of microseconds). Two loads
per node, on fresh coins each:

- steady: STEADY_RATE tx/s for 20 s, where the batching interval decides the latency;
- flood: FLOOD_N transactions as fast as the socket takes them, where queueing decides it.

A third fresh node, bsv-relay again, takes the same loads with every connection (the sender's and
the listeners') over the v2 (BIP324) transport, to show what encryption adds to a hop.

    testnet/bench/latency.py [STEADY_RATE] [FLOOD_N]     (default 200 50000)
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BINARY, SV_FLAGS, free_port, prepare, stop, wait_rpc  # noqa: E402

LISTENERS = 7


def txgen(rpc, p2p, rate, count, seed, v2=False):
    out = subprocess.run([str(BINARY), "txgen", "--rpc", f"127.0.0.1:{rpc}", "--rpcuser", "u", "--rpcpassword", "p",
                          "--connect", f"127.0.0.1:{p2p}", "--rate", str(rate), "--count", str(count),
                          "--seed", str(seed), "--observers", str(LISTENERS), "--json", *(["--v2"] if v2 else [])],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"txgen failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    steady_rate = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    flood_n = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    bin_dir = prepare()
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-latency-"))
    procs = []
    rows = []
    try:
        nodes = []
        sv_dir, sv_p2p, sv_rpc = work / "sv", free_port(), free_port()
        sv_dir.mkdir()
        procs.append(subprocess.Popen([str(bin_dir / "bitcoind"), "-regtest", f"-datadir={sv_dir}", f"-port={sv_p2p}",
                                       f"-rpcport={sv_rpc}", *SV_FLAGS],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_rpc([str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={sv_rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
        nodes.append(("SV Node v1.0.13", sv_rpc, sv_p2p))
        for name in ["bsv-relay", "bsv-relay over v2"]:
            ours_dir, p2p, rpc = work / name.replace(" ", "-"), free_port(), free_port()
            ours_dir.mkdir()
            procs.append(subprocess.Popen([str(BINARY), "-regtest", f"-datadir={ours_dir}", f"-port={p2p}",
                                           "-bind=127.0.0.1", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_rpc([str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
            nodes.append((name, rpc, p2p))
        for name, rpc_port, p2p_port in nodes:
            for load, rate, count, seed in [(f"steady {steady_rate} tx/s", steady_rate, steady_rate * 20, 11),
                                            (f"flood {flood_n}", 0, flood_n, 12)]:
                r = txgen(rpc_port, p2p_port, rate, count, seed, v2=name.endswith("v2"))
                lat = r["announce_latency_ms"]
                rows.append((name, load, r["accepted"], count, lat))
                print(f"{name}, {load}: {lat}", file=sys.stderr)
        print(f"\nTime from writing a tx to each of {LISTENERS} other peers' first inv of it (8 peers):")
        print("| node | load | accepted | p50 ms | p90 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|---|")
        for name, load, accepted, count, lat in rows:
            if not lat:
                print(f"| {name} | {load} | {accepted}/{count} | - | - | - | - |")
                continue
            print(f"| {name} | {load} | {accepted}/{count} | {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']} |")
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
