#!/usr/bin/env python3
"""Block relay through a node in the middle, bsv-relay against SV Node v1.0.13, in the same run.

A line of three fresh regtest nodes: SV Node S -- middle -- SV Node T, where the middle is first a
bsv-relay and then an SV Node (T reaches S only through the middle). `bsv-relay txgen` puts N
independent signed P2PKH transactions into S's mempool; S mines them into one block (`generate 1`)
and the time from `generate` returning to T's best block being that block is measured (T polled
every 50 ms, each poll a `bitcoin-cli` call), in two cases:

  (a) relayed: the middle and T were connected while the transactions arrived, so all three
      mempools hold them (waited for) before the block is mined;
  (b) only S: the middle and T connect (and sync the funding blocks) after the transactions are
      in S's mempool, so neither has them when the block comes (SV Node does not announce its
      existing mempool to new peers).

Before the transactions (a) or after the line is up (b), the middle mines one block of its own
(its mempool is empty then), meant to let T choose it as a high-bandwidth compact block peer, as on
a running network. SV Node v1.0.13 never makes that choice with one peer (its
`BlockDownloadTracker::BlockChecked` requires the checked block to be still in flight, but
`MarkBlockAsReceived` took it out before validation), so T always learns of a block by `headers`
and asks for it (`--breakdown` shows this per run); for the same reason an SV Node middle never
asks S for high-bandwidth announcements, while bsv-relay does, and S (SV Node) then sends it the
`cmpctblock` before S's own ConnectBlock, up to a second before `generate` returns.

Fresh nodes for every measurement. Prints a table of medians and each run.

    testnet/bench/block_relay.py [N ...] [--runs R] [--breakdown]   (default: 20000 200000, 1 run)
    testnet/bench/block_relay.py --parse DIR ...    (the --breakdown tables again, from kept logs)

--breakdown runs S, the middle and T with debug logs (SV Node: -debug=bench,cmpctblock,net and
-logtimemicros; bsv-relay: -debug=net), keeps them with the middle's metrics under
$BLOCK_BENCH_LOGS (default /tmp/block-bench-logs), and prints per run and as medians where the
time went, from S's "Accepted block" line (t0: S announces to its high-bandwidth peers from there,
before its own ConnectBlock): S -> middle, the middle fetching the transactions, the middle having
them until T hears of the block (its own validation when it announces only after), T fetching the
transactions, T validating; the end-to-end total from t0, next to the benchmark's own time from
`generate` returning. The logs share one clock (one machine). BLOCK_BENCH_NO_BUILD=1 skips the
`cargo build`; BLOCK_BENCH_CASES (a, b) and BLOCK_BENCH_MIDDLES pick what runs.

S is fed in batches of txgen runs (at most 25,000 transactions each) until its mempool holds N;
txgen mines its coins at a blocks-only SV Node F connected to S, stopped before the measured block.
The script stops if the block holds fewer than N transactions.

Honours CARGO_TARGET_DIR for the bsv-relay binary (built with `cargo build --release`).
"""

import json
import os
import re
import shutil
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

# --breakdown: debug logs with microsecond timestamps at S, the middle and T, kept under LOGS, and
# a per-stage table of where the time went (see `breakdown`).
BREAKDOWN = False
LOGS = Path(os.environ.get("BLOCK_BENCH_LOGS", "/tmp/block-bench-logs"))
SV_DEBUG = {"s": ["-debug=bench", "-debug=cmpctblock", "-logtimemicros=1"],
            "m": ["-debug=bench", "-debug=cmpctblock", "-debug=net", "-logtimemicros=1"],
            "t": ["-debug=bench", "-debug=cmpctblock", "-debug=net", "-logtimemicros=1"]}


def prepare():
    if not os.environ.get("BLOCK_BENCH_NO_BUILD"):
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
             *SV_FLAGS, *(SV_DEBUG.get(name, []) if BREAKDOWN else []), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_rpc([str(self.bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpc}", "-rpcuser=u", "-rpcpassword=p"], [])
        return p2p, rpc

    def ours(self, name, *extra):
        d, p2p, rpc = self.work / name, free_port(), free_port()
        d.mkdir()
        self.metrics = free_port()
        self.procs.append(subprocess.Popen(
            [str(BINARY), "-regtest", f"-datadir={d}", f"-port={p2p}", "-bind=127.0.0.1", f"-rpcport={rpc}",
             "-rpcuser=u", "-rpcpassword=p", f"-metricsbind=127.0.0.1:{self.metrics}",
             *(["-debug=net"] if BREAKDOWN else []), *extra],
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
        if BREAKDOWN and middle == "bsv-relay":
            import urllib.request
            metrics_before = urllib.request.urlopen(f"http://127.0.0.1:{net.metrics}/metrics", timeout=5).read().decode()
        before = time.time()
        net.cli(s_rpc, "generate", "1")
        start, generated = time.monotonic(), time.time()
        tip = net.cli(s_rpc, "getbestblockhash")
        net.wait("T at S's new tip", lambda: net.cli(t_rpc, "getbestblockhash") == tip)
        elapsed = time.monotonic() - start
        if BREAKDOWN:
            # The middle may still be validating (bsv-relay forwards before): let it finish.
            net.wait("the middle at S's new tip", lambda: net.cli(m_rpc, "getbestblockhash") == tip)
            time.sleep(1)
            keep = LOGS / f"{n}-{case}-{'ours' if middle == 'bsv-relay' else 'sv'}-{time.strftime('%H%M%S')}"
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("s", "m", "t"):
                for log in ("bitcoind.log", "debug.log"):  # SV Node's name, then ours
                    if (work / name / "regtest" / log).exists():
                        shutil.copy(work / name / "regtest" / log, keep / f"{name}.log")
                        break
            if middle == "bsv-relay":
                import urllib.request
                (keep / "m.metrics.before").write_text(metrics_before)
                (keep / "m.metrics").write_text(
                    urllib.request.urlopen(f"http://127.0.0.1:{net.metrics}/metrics", timeout=5).read().decode())
            (keep / "run.json").write_text(json.dumps(
                {"n": n, "case": case, "middle": middle, "block": tip, "before_generate": before,
                 "generated": generated, "elapsed": elapsed}))
            print(f"  logs kept in {keep}", flush=True)
            RESULTS.append(breakdown(keep))
            print_breakdown([RESULTS[-1]])
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


RESULTS = []


SV_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) ")
OUR_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ")


def template_time(path, block):
    """Time of S's last `CreateNewBlock()` line before it accepted `block`: the template is
    ready, the block is solved, checked and announced after it (S's ConnectBlock follows)."""
    last = None
    for t, line in log_events(path, block, everything=True):
        if "CreateNewBlock()" in line:
            last = t
        elif block in line:
            break
    return last


def log_events(path, block, everything=False):
    """(unix time, line) of each line of a debug log that names `block`, plus the bench lines
    (`- Connect total`, `- Verify`) that follow them; both log formats (SV Node with
    -logtimemicros, ours in RFC 3339)."""
    import calendar
    out = []
    if not path.exists():
        return out
    seen = False
    for line in path.read_text(errors="replace").splitlines():
        m = SV_LINE.match(line) or OUR_LINE.match(line)
        if not m:
            continue
        stamp = m.group(1).replace("T", " ")
        whole, frac = stamp.split(".")
        t = calendar.timegm(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) + float("0." + frac)
        if block in line or everything:
            seen = seen or block in line
            out.append((t, line))
        elif seen and ("- Connect total:" in line or "- Verify " in line):
            out.append((t, line))
    return out


def first(events, *needles):
    """Time of the first event whose line holds any of the needles, or None."""
    for t, line in events:
        if any(n in line for n in needles):
            return t
    return None


def bench_ms(events, what):
    """The milliseconds of the first `what` bench line (`Connect total`, `Verify`)."""
    for _, line in events:
        if what in line:
            m = re.search(what + r"[^:]*: ([0-9.]+)ms", line)
            if m:
                return float(m.group(1))
    return None


def histogram_sums(text):
    """{stage: (sum, count)} of bsv_relay_block_relay_latency_seconds."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'bsv_relay_block_relay_latency_seconds_(sum|count)\{stage="(\w+)"\} ([0-9.e+-]+)', line)
        if m:
            sums = out.setdefault(m.group(2), [0.0, 0])
            sums[0 if m.group(1) == "sum" else 1] = float(m.group(3))
    return out


def breakdown(keep):
    """Where the time went for one run kept under `keep` (see the README's block relay section).
    Every time is seconds after t0 = S's `CreateNewBlock()` line (the template is ready; S then
    solves the block, checks it, announces it to its high-bandwidth peers, writes it, logs
    "Accepted block" and runs its own ConnectBlock; `generate` returns only after that)."""
    run = json.loads((keep / "run.json").read_text())
    block = run["block"]
    s, m, t = (log_events(keep / f"{x}.log", block) for x in ("s", "m", "t"))
    ours = run["middle"] == "bsv-relay"
    t0 = template_time(keep / "s.log", block) or first(s, "Accepted block")
    ev = {"generate returned": run["generated"]}
    if ours:
        ev["middle: header/cmpctblock"] = first(m, "new best header", "compact block peer=")
        # The measured block's own observation: the histogram after it less the one before.
        after, before = (histogram_sums((keep / f).read_text()) if (keep / f).exists() else {}
                         for f in ("m.metrics", "m.metrics.before"))
        rec, old = after.get("reconstructed", [0, 0]), before.get("reconstructed", [0, 0])
        if rec[1] - old[1] == 1 and ev["middle: header/cmpctblock"]:
            ev["middle: has every tx"] = ev["middle: header/cmpctblock"] + rec[0] - old[0]
        ev["middle: forwarded early"] = first(m, "forwarded before validation")
        ev["middle: tip"] = first(m, "new tip")
    else:
        ev["middle: header/cmpctblock"] = first(m, "Requesting block", "Got compact block for", "received block")
        ev["middle: has every tx"] = first(m, "Successfully reconstructed block", "received block")
        ev["middle: accepted"] = first(m, "Accepted block")
        ev["middle: tip"] = first(m, "UpdateTip")
    ev["T: header/cmpctblock"] = first(t, "Requesting block", "Got compact block for", "received block")
    ev["T: has every tx"] = first(t, "Successfully reconstructed block", "received block")
    ev["T: accepted"] = first(t, "Accepted block")
    ev["T: tip"] = first(t, "UpdateTip")
    rel = {k: (v - t0 if v is not None and t0 is not None else None) for k, v in ev.items()}

    def span(a, b):
        return rel[b] - rel[a] if rel.get(a) is not None and rel.get(b) is not None else None
    # Whether T got the block high-bandwidth (cmpctblock unasked) or asked for it after a header.
    t_asked = first(t, "Requesting block") is not None
    ev["S: accepted"] = first(s, "Accepted block")
    ev["S: tip"] = first(s, "UpdateTip")
    rel = {k: (v - t0 if v is not None and t0 is not None else None) for k, v in ev.items()}
    stages = {
        "S: template -> its tip (own ConnectBlock)": rel["S: tip"],
        "S -> middle hears of it": rel["middle: header/cmpctblock"],
        "middle gets every transaction": span("middle: header/cmpctblock", "middle: has every tx"),
        "middle validates (has all -> tip)": span("middle: has every tx", "middle: tip"),
        "middle: has all -> T hears of it": span("middle: has every tx", "T: header/cmpctblock"),
        "T gets every transaction": span("T: header/cmpctblock", "T: has every tx"),
        "T validates (has all -> tip)": span("T: has every tx", "T: tip"),
        "  of which Connect total": (bench_ms(t, "Connect total") or 0) / 1000 or None,
        "total: S's template -> T's tip": rel["T: tip"],
        "S: generate returned": rel["generate returned"],
        "benchmark time (generate -> T)": run["elapsed"],
    }
    return {"n": run["n"], "case": run["case"], "middle": run["middle"], "dir": str(keep), "events": rel,
            "stages": stages, "t_asked": t_asked, "forwarded_early": rel.get("middle: forwarded early") is not None}


def print_breakdown(results):
    """One column per run, one row per stage (seconds)."""
    if not results:
        return
    rows = list(results[0]["stages"])
    head = [f"{r['middle']} {r['case']} {r['n']}" for r in results]
    print("| stage (s) | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(results))
    for row in rows:
        cells = []
        for r in results:
            v = r["stages"].get(row)
            cells.append("-" if v is None else f"{v:.3f}")
        print(f"| {row} | " + " | ".join(cells) + " |")
    print("| T asked for it after a header | " + " | ".join("yes" if r["t_asked"] else "no" for r in results) + " |")
    print("| middle forwarded before validating | " + " | ".join(
        ("yes" if r["forwarded_early"] else "no") if r["middle"] == "bsv-relay" else "n/a" for r in results) + " |",
        flush=True)


TOTAL = "total: S's template -> T's tip"


def print_medians(results):
    """Per N, case and middle: the median of each stage over the runs, and the ratios of the
    medians of the two totals (the benchmark's, from `generate` returning, and the logs', from S's
    block)."""
    groups = {}
    for r in results:
        groups.setdefault((r["n"], r["case"]), {}).setdefault(r["middle"], []).append(r)
    for (n, case), by_middle in groups.items():
        print(f"\nWhere the time went, N={n:,}, case ({case}), medians (runs):")
        middles = [m for m in ("bsv-relay", "SV Node") if m in by_middle]
        print("| stage (s) | " + " | ".join(f"{m} in the middle ({len(by_middle[m])})" for m in middles) + " |")
        print("|---|" + "---|" * len(middles))
        med = {}
        for row in by_middle[middles[0]][0]["stages"]:
            cells = []
            for m in middles:
                vals = [r["stages"][row] for r in by_middle[m] if r["stages"].get(row) is not None]
                med[(m, row)] = statistics.median(vals) if vals else None
                cells.append("-" if not vals else f"{med[(m, row)]:.3f}")
            print(f"| {row} | " + " | ".join(cells) + " |")
        if len(middles) == 2:
            for row in ("total: S's template -> T's tip", "benchmark time (generate -> T)"):
                a, b = med[("bsv-relay", row)], med[("SV Node", row)]
                if a and b:
                    print(f"ratio of medians, {row}: {b / a:.2f}x")
            # T's own work with SV Node in the middle: what any middle leaves to T.
            own = [r["stages"]["T gets every transaction"] + r["stages"]["T validates (has all -> tip)"]
                   for r in by_middle["SV Node"]
                   if r["stages"].get("T gets every transaction") is not None
                   and r["stages"].get("T validates (has all -> tip)") is not None]
            if own and med[("SV Node", TOTAL)]:
                floor = statistics.median(own)
                print(f"T's own fetch + validation (SV Node in the middle, median): {floor:.3f} s; best possible"
                      f" ratio for any middle = SV total / that = {med[('SV Node', TOTAL)] / floor:.2f}x")


def main():
    global BREAKDOWN
    args = sys.argv[1:]
    runs = 1
    if "--breakdown" in args:
        args.remove("--breakdown")
        BREAKDOWN = True
    if "--parse" in args:
        # Only the tables, again, from logs kept by earlier --breakdown runs.
        dirs = [Path(a) for a in args[args.index("--parse") + 1:]]
        results = [breakdown(d) for d in sorted(dirs, key=lambda d: json.loads((d / "run.json").read_text())["generated"])]
        print_breakdown(results)
        print_medians(results)
        return
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
    if BREAKDOWN:
        print_medians(RESULTS)


if __name__ == "__main__":
    main()
