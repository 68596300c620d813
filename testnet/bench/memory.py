#!/usr/bin/env python3
"""Resident memory of bsv-relay holding N mempool transactions.

Starts a fresh regtest bsv-relay and runs `bsv-relay txgen` against it: the generator mines and fans
out N coins (so the node's UTXO set grows by N coins before any measurement), signs N independent
1-input 1-output P2PKH transactions of about 191 bytes, then sends them at --rate (default 20,000
tx/s: fast, but without queueing a million transactions at once, so what is measured is the pool,
not a transient validation queue). The node's resident size (VmRSS) is sampled when the generator
starts signing (chain and coins in place, mempool empty) and again when every transaction is in
the mempool; the difference is what N transactions cost, compared with their raw bytes.

    testnet/bench/memory.py [N] [RATE]     (default 1000000 20000)
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BINARY, free_port, prepare, rss_kb, stop, wait_rpc  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    bin_dir = prepare()
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-memory-"))
    procs = []
    try:
        p2p, rpc = free_port(), free_port()
        node = subprocess.Popen([str(BINARY), "-regtest", f"-datadir={work}", f"-port={p2p}", "-bind=127.0.0.1",
                                 f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(node)
        cli = [str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"]
        wait_rpc(cli, [])
        rss_start = rss_kb(node.pid)
        gen = subprocess.Popen([str(BINARY), "txgen", "--rpc", f"127.0.0.1:{rpc}", "--rpcuser", "u", "--rpcpassword",
                                "p", "--connect", f"127.0.0.1:{p2p}", "--rate", str(rate), "--count", str(n),
                                "--fanout", "2000", "--json", "--accept-by-mempool"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(gen)
        rss_before = None
        for line in gen.stderr:
            if rss_before is None and "signing" in line:
                rss_before = rss_kb(node.pid)
            print(line.rstrip(), file=sys.stderr)
        summary = json.loads(gen.stdout.read().strip().splitlines()[-1])
        gen.wait()
        rss_after = rss_kb(node.pid)
        pool = json.loads(subprocess.run([*cli, "getmempoolinfo"], capture_output=True, text=True).stdout)
        grown = (rss_after - rss_before) * 1024
        raw = pool["bytes"]
        print(f"\n{n} transactions sent at {rate}/s; {summary['accepted']} in the mempool "
              f"({pool['size']} txs, {raw} raw bytes, {raw / max(pool['size'], 1):.0f} B each)")
        print(f"resident size: {rss_start / 1024:.0f} MB at start, {rss_before / 1024:.0f} MB with the chain and "
              f"coins, {rss_after / 1024:.0f} MB with the mempool")
        print(f"mempool cost: {grown / 1e6:.1f} MB = {grown / max(raw, 1):.2f}x the raw bytes "
              f"({grown / max(pool['size'], 1):.0f} B per transaction); getmempoolinfo usage "
              f"{pool['usage'] / 1e6:.1f} MB; whole process {rss_after * 1024 / max(raw, 1):.2f}x")
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
