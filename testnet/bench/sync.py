#!/usr/bin/env python3
"""Initial block download, bsv-relay against SV Node v1.0.13, in the same run.

SV Node A mines N blocks (default 2000, coinbase only). Then a fresh bsv-relay and a fresh second
SV Node each sync the chain from A, one after the other; each is timed from its start until its
`getblockcount` reaches N (and its best block hash equals A's). Prints both times and the ratio.

    testnet/bench/sync.py [N]
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BINARY, SV_FLAGS, free_port, prepare, stop, wait_rpc  # noqa: E402



def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    bin_dir = prepare()
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-sync-"))
    procs = []

    def cli(port, *args):
        out = subprocess.run([str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={port}", "-rpcuser=u",
                              "-rpcpassword=p", *args], capture_output=True, text=True)
        return out.stdout.strip()

    def sv(name, *extra):
        d, p2p, rpc = work / name, free_port(), free_port()
        d.mkdir()
        procs.append(subprocess.Popen([str(bin_dir / "bitcoind"), "-regtest", f"-datadir={d}", f"-port={p2p}",
                                       f"-rpcport={rpc}", *SV_FLAGS, *extra],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_rpc([str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
        return p2p, rpc

    def timed_sync(rpc_port, start):
        tip = cli(source_rpc, "getbestblockhash")
        while cli(rpc_port, "getbestblockhash") != tip:
            time.sleep(0.01)
        return time.monotonic() - start

    try:
        source_p2p, source_rpc = sv("source")
        address = cli(source_rpc, "getnewaddress")
        for _ in range(0, n, 500):
            cli(source_rpc, "generatetoaddress", "500", address)
        start = time.monotonic()
        d, p2p, rpc = work / "ours", free_port(), free_port()
        d.mkdir()
        procs.append(subprocess.Popen([str(BINARY), "-regtest", f"-datadir={d}", f"-port={p2p}", f"-rpcport={rpc}",
                                       "-rpcuser=u", "-rpcpassword=p", f"-connect=127.0.0.1:{source_p2p}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ours = timed_sync(rpc, start)
        start = time.monotonic()
        _, rpc2 = sv("second", f"-connect=127.0.0.1:{source_p2p}")
        theirs = timed_sync(rpc2, start)
        print(f"\nsyncing {n} regtest blocks from a local SV Node (process start to best block):")
        print(f"| node | seconds |\n|---|---|\n| bsv-relay | {ours:.2f} |\n| SV Node v1.0.13 | {theirs:.2f} |")
        print(f"\nratio SV Node / bsv-relay time: {theirs / ours:.2f}x")
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
