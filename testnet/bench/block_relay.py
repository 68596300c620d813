#!/usr/bin/env python3
"""Block relay through a node in the middle, bsv-relay against SV Node v1.0.13, in the same run.

A line of three fresh regtest nodes: SV Node S -- middle -- SV Node T, where the middle is first a
bsv-relay and then an SV Node (T reaches S only through the middle). `bsv-relay txgen` puts N
independent signed P2PKH transactions into S's mempool; S mines them into one block (`generate 1`)
and the time from `generate` returning to T's best block being that block is measured (T polled
every 10 ms), in two cases:

  (a) relayed: the middle and T were connected while the transactions arrived, so all three
      mempools hold them (waited for) before the block is mined;
  (b) only S: the middle and T connect (and sync the funding blocks) after the transactions are
      in S's mempool, so neither has them when the block comes (SV Node does not announce its
      existing mempool to new peers).

Before the transactions (a) or after the line is up (b), the middle mines one block of its own
(its mempool is empty then), so that T has chosen it as a high-bandwidth compact block peer, as on
a running network.

Fresh nodes for every measurement. Prints a table of medians and each run.

    testnet/bench/block_relay.py [N ...] [--runs R]     (default: 20000 200000, 1 run)

S is fed in batches of txgen runs (at most 25,000 transactions each) until its mempool holds N;
txgen mines its coins at a blocks-only SV Node F connected to S, stopped before the measured block.
The script stops if the block holds fewer than N transactions.

Honours CARGO_TARGET_DIR for the bsv-relay binary (built with `cargo build --release`).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import ROOT, SV_FLAGS, free_port, stop, wait_rpc  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BINARY = TARGET / "release" / "bsv-relay"
DEADLINE = 900


def prepare():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    out = subprocess.run([str(ROOT / "testnet" / "install-svnode")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


class Net:
    def __init__(self, bin_dir, work):
        self.bin_dir, self.work, self.procs = bin_dir, work, []

    def cli(self, rpc, *args):
        out = subprocess.run([str(self.bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u",
                              "-rpcpassword=p", *args], capture_output=True, text=True)
        return out.stdout.strip()

    def sv(self, name, *extra):
        d, p2p, rpc = self.work / name, free_port(), free_port()
        d.mkdir()
        self.procs.append(subprocess.Popen(
            [str(self.bin_dir / "bitcoind"), "-regtest", f"-datadir={d}", f"-port={p2p}", f"-rpcport={rpc}",
             *SV_FLAGS, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_rpc([str(self.bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
        return p2p, rpc

    def ours(self, name, *extra):
        d, p2p, rpc = self.work / name, free_port(), free_port()
        d.mkdir()
        self.metrics = free_port()
        self.procs.append(subprocess.Popen(
            [str(BINARY), "-regtest", f"-datadir={d}", f"-port={p2p}", "-bind=127.0.0.1", f"-rpcport={rpc}",
             "-rpcuser=u", "-rpcpassword=p", f"-metricsbind=127.0.0.1:{self.metrics}", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_rpc([str(self.bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
        return p2p, rpc

    def wait(self, what, cond):
        deadline = time.monotonic() + DEADLINE
        while not cond():
            if time.monotonic() > deadline:
                sys.exit(f"timed out waiting for {what}")
            time.sleep(0.05)


def mempool_size(net, rpc):
    out = net.cli(rpc, "getmempoolinfo")
    try:
        return json.loads(out)["size"]
    except Exception:
        return 0


def stages(port):
    """The middle's view of the last block: seconds from its header to each stage, compact results."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        for prefix, key in (("bsv_relay_block_relay_latency_seconds_sum{stage=", "stage"),
                            ("bsv_relay_compact_blocks_received_total{result=", "result"),
                            ("bsv_relay_compact_block_txs_total{source=", "source")):
            if line.startswith(prefix):
                label, value = line[len(prefix):].split("} ")
                if float(value) > 0:
                    out[label.strip('"')] = round(float(value), 4)
    return out


def txgen(rpc, p2p, n, seed):
    """`bsv-relay txgen`: mines its coins at `rpc`, sends n transactions to `p2p`, counts them
    accepted by the node's `inv`s and keeps its connections open until all are or 10 s pass."""
    out = subprocess.run([str(BINARY), "txgen", "--rpc", f"127.0.0.1:{rpc}", "--rpcuser", "u", "--rpcpassword", "p",
                          "--connect", f"127.0.0.1:{p2p}", "--rate", "0", "--count", str(n), "--seed", str(seed),
                          "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"txgen failed: {out.stderr[-2000:]}")


# Transactions per txgen run: what S takes within txgen's 10 s settle time on the shared 2-core
# machine (S took ~3,900 tx/s there). What S has not taken when txgen disconnects it drops, and
# the next batch makes up for it.
BATCH = 25_000


# Seconds without any of the nodes taking one more transaction after which `settle` gives up.
STALL = 20


def settle(net, rpcs, want):
    """Waits until every node in rpcs holds want transactions, or none of them has taken one more
    for STALL seconds (announcements were lost then: at 200,000 some are); returns their sizes."""
    deadline = time.monotonic() + DEADLINE
    last, moved = None, time.monotonic()
    while (sizes := [mempool_size(net, r) for r in rpcs]) and min(sizes) < want:
        if sizes != last:
            last, moved = sizes, time.monotonic()
        elif time.monotonic() - moved > STALL:
            break
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {want} transactions: {sizes}")
        time.sleep(0.2)
    return sizes


def feed(net, f_rpc, s_rpc, s_p2p, n, after_batch=None):
    """Fills S's mempool with at least n transactions, in batches of txgen runs, until S's
    `getmempoolinfo.size` reaches n (deadline DEADLINE). txgen mines its coins at F, a blocks-only
    SV Node connected to S, so that its funding blocks do not take the batches already in S's
    mempool (blocks mined at S would), and S learns of the coins from F's blocks."""
    deadline = time.monotonic() + DEADLINE
    seed = 7
    started = time.monotonic()
    while (have := mempool_size(net, s_rpc)) < n:
        if time.monotonic() > deadline:
            sys.exit(f"timed out feeding S: {have} of {n} transactions in its mempool")
        txgen(f_rpc, s_p2p, min(BATCH, n - have), seed)
        seed += 1
        if after_batch:
            after_batch(mempool_size(net, s_rpc))
    print(f"  S's mempool: {mempool_size(net, s_rpc)} transactions after {seed - 7} txgen run(s),"
          f" {time.monotonic() - started:.0f} s", flush=True)


def one(bin_dir, n, middle, case):
    """One measurement on fresh nodes; returns seconds from S's block to T's tip."""
    work = Path(tempfile.mkdtemp(prefix="bsv-relay-blockbench-"))
    net = Net(bin_dir, work)
    try:
        # S mines every mempool transaction into the block: the legacy assembler reads the
        # mempool itself (the default journaling one may lag behind a burst), and no size cap.
        # A mempool of 200,000 transactions of ~191 bytes is ~40 MB of raw bytes, within the default
        # -maxmempool (1000 MB); the transactions are independent (no ancestor limits).
        s_p2p, s_rpc = net.sv("s", "-blockassembler=legacy", "-blockmaxsize=1000000000")
        # F: txgen's miner (see feed); stopped before the measured block.
        f = len(net.procs)
        f_p2p, f_rpc = net.sv("f", f"-connect=127.0.0.1:{s_p2p}", "-blocksonly=1")

        def start_line():
            if middle == "bsv-relay":
                m_p2p, m_rpc = net.ours("m", f"-connect=127.0.0.1:{s_p2p}", "-listen=1")
            else:
                m_p2p, m_rpc = net.sv("m", f"-connect=127.0.0.1:{s_p2p}")
            t_p2p, t_rpc = net.sv("t", f"-connect=127.0.0.1:{m_p2p}")
            net.wait("T to sync", lambda: net.cli(t_rpc, "getbestblockhash") == net.cli(s_rpc, "getbestblockhash"))
            # Steady state before measuring: one block mined at the middle (its mempool is empty)
            # lets T pick the middle as a high-bandwidth peer, as it would on a running network
            # (SV Node picks only outside initial block download, when a new block arrives).
            net.cli(m_rpc, "generatetoaddress", "1", net.cli(s_rpc, "getnewaddress"))
            tip = net.cli(m_rpc, "getbestblockhash")
            net.wait("the warm-up block at S and T",
                     lambda: net.cli(s_rpc, "getbestblockhash") == tip and net.cli(t_rpc, "getbestblockhash") == tip)
            return m_rpc, t_rpc

        if case == "a":
            net.cli(s_rpc, "generate", "1")  # out of initial block download before the others join
            m_rpc, t_rpc = start_line()
            # After each batch, until the middle and T hold what S holds (the relay keeps pace).
            feed(net, f_rpc, s_rpc, s_p2p, n, lambda want: settle(net, [m_rpc, t_rpc], want))
            want = mempool_size(net, s_rpc)
            held = settle(net, [m_rpc, t_rpc], want)
            if min(held) < want:
                print(f"  note: of S's {want} transactions the middle holds {held[0]}, T {held[1]}", flush=True)
        else:
            feed(net, f_rpc, s_rpc, s_p2p, n)
            m_rpc, t_rpc = start_line()
            leaked = (mempool_size(net, m_rpc), mempool_size(net, t_rpc))
            if max(leaked) > n // 100:
                print(f"  note: the middle and T already held {leaked} of the transactions", flush=True)
        tip = net.cli(s_rpc, "getbestblockhash")
        net.wait("F at S's tip", lambda: net.cli(f_rpc, "getbestblockhash") == tip)
        net.procs[f].terminate()
        net.procs[f].wait(timeout=60)
        in_mempool = mempool_size(net, s_rpc)
        net.cli(s_rpc, "generate", "1")
        start = time.monotonic()
        tip = net.cli(s_rpc, "getbestblockhash")
        net.wait("T at S's new tip", lambda: net.cli(t_rpc, "getbestblockhash") == tip)
        elapsed = time.monotonic() - start
        count = len(json.loads(net.cli(s_rpc, "getblock", tip, "1"))["tx"])
        print(f"  block {tip[:16]}… holds {count} transactions ({in_mempool} were in S's mempool)", flush=True)
        if count < n:
            sys.exit(f"the block holds {count} transactions, fewer than {n}")
        if middle == "bsv-relay":
            net.wait("the middle's metrics", lambda: stages(net.metrics).get("validated", 0) > 0)
            print(f"  middle: {stages(net.metrics)}", flush=True)
        if os.environ.get("BLOCK_BENCH_VERBOSE"):
            peers = json.loads(net.cli(t_rpc, "getpeerinfo"))
            print(f"  T received: {peers[0]['bytesrecv_per_msg']}", flush=True)
        return elapsed
    finally:
        stop(net.procs, work)


def main():
    args = sys.argv[1:]
    runs = 1
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    sizes = [int(a) for a in args] or [20_000, 200_000]
    bin_dir = prepare()
    rows = []
    for n in sizes:
        for case in os.environ.get("BLOCK_BENCH_CASES", "ab"):
            times = {"bsv-relay": [], "SV Node": []}
            for _ in range(runs):
                # Alternate the middles so drift of the machine hits both alike.
                for middle in os.environ.get("BLOCK_BENCH_MIDDLES", "bsv-relay,SV Node").split(","):
                    t = one(bin_dir, n, middle, case)
                    times[middle].append(t)
                    print(f"n={n} case={case} middle={middle}: {t:.3f} s", flush=True)
            ours, theirs = statistics.median(times["bsv-relay"] or [0]), statistics.median(times["SV Node"] or [1])
            rows.append((n, case, ours, theirs, times))
    print(f"\nS mines a block of N transactions; time until T (reached only through the middle) has it,"
          f" median of {runs} run(s), {os.cpu_count()} cores:")
    print("| N | case | bsv-relay in the middle | SV Node in the middle | ratio |")
    print("|---|---|---|---|---|")
    for n, case, ours, theirs, _ in rows:
        label = "(a) already relayed" if case == "a" else "(b) only S had them"
        print(f"| {n:,} | {label} | {ours:.3f} s | {theirs:.3f} s | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
