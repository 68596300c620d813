#!/usr/bin/env python3
"""A local regtest network of bsv-relay nodes, optionally with a real SV Node and Prometheus.

Used through the wrappers `testnet/up`, `testnet/down` and `testnet/status`. Everything it starts
runs on loopback, with its own data directory under `testnet/run/`, and is recorded in
`testnet/run/state.json`, so `down` stops exactly what `up` started and nothing else. Running `up`
twice or `down` twice is harmless.

Ports: node i listens for peers on 18600 + 10*i, RPC on 18601 + 10*i and metrics on 18602 + 10*i;
SV Node uses 18590 (P2P) and 18591 (RPC); Prometheus 18599.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The e2e test runs its own network beside a user's: it moves the state folder and the ports.
RUN = Path(os.environ.get("BSV_RELAY_TESTNET_RUN", ROOT / "testnet" / "run"))
STATE = RUN / "state.json"
BINARY = ROOT / "target" / "release" / "bsv-relay"
USER, PASSWORD = "u", "p"
BASE_PORT = int(os.environ.get("BSV_RELAY_TESTNET_PORT", "18600"))
SV_PORT, SV_RPC = BASE_PORT - 10, BASE_PORT - 9
PROMETHEUS_PORT = BASE_PORT - 1
MINE_INTERVAL_SECS = 5
# Load while the network is up: a modest rate, for an hour (the generator pre-signs all of it).
DEFAULT_RATE = 20
LOAD_SECS = 3600
# Regtest P2PKH address of the all-zero key hash: coins mined to it are spendable by nobody.
BURN_ADDRESS = "mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8"


def node_ports(i):
    return BASE_PORT + 10 * i, BASE_PORT + 10 * i + 1, BASE_PORT + 10 * i + 2


def load_state():
    if STATE.exists():
        return json.loads(STATE.read_text())
    return {"processes": [], "nodes": []}


def save_state(state):
    RUN.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2))


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie or a recycled pid: check it is still the command we started.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_until(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def svnode_bin():
    out = subprocess.run([str(ROOT / "testnet" / "install-svnode")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def cli(rpcport, *args, timeout=30):
    """Runs SV Node's bitcoin-cli against a node (ours or SV Node); returns stdout or None."""
    bin_dir = svnode_bin()
    cmd = [str(bin_dir / "bitcoin-cli"), "-regtest", f"-rpcport={rpcport}", "-rpcconnect=127.0.0.1",
           f"-rpcuser={USER}", f"-rpcpassword={PASSWORD}", *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def rpc_call(port, method, *params, timeout=60):
    """JSON-RPC to a node over HTTP (no bitcoin-cli needed); returns the result or None."""
    body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers={"Content-Type": "application/json"})
    import base64
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())["result"]
    except (OSError, ValueError):
        return None


def mine_loop(args):
    """Mines a block on a node every few seconds until it goes away (a process `up` records)."""
    failures = 0
    while failures < 5:
        time.sleep(MINE_INTERVAL_SECS)
        ok = rpc_call(args.rpc, "generatetoaddress", 1, BURN_ADDRESS) is not None
        failures = 0 if ok else failures + 1


def spawn(state, name, argv, log):
    logf = open(log, "ab")
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    state["processes"].append({"name": name, "pid": proc.pid, "log": str(log)})
    save_state(state)
    return proc.pid


def build():
    print("building the release binary (cargo build --release)…", flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def up(args):
    state = load_state()
    if any(alive(p["pid"]) for p in state["processes"]):
        print("the network is already up; `testnet/status` shows it, `testnet/down` stops it")
        return
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    state = {"processes": [], "nodes": [], "svnode": None, "prometheus": None}
    build()
    n = args.nodes
    for i in range(n):
        p2p, rpc, metrics = node_ports(i)
        datadir = RUN / f"node{i}"
        datadir.mkdir()
        argv = [str(BINARY), "-regtest", f"-datadir={datadir}", f"-port={p2p}", "-bind=127.0.0.1",
                f"-rpcport={rpc}", f"-rpcuser={USER}", f"-rpcpassword={PASSWORD}",
                f"-metricsbind=127.0.0.1:{metrics}", "-printtoconsole"]
        # A ring: each node keeps the previous one connected (the last closes it).
        if i > 0:
            argv.append(f"-addnode=127.0.0.1:{node_ports(i - 1)[0]}")
        if i == n - 1 and n > 2:
            argv.append(f"-addnode=127.0.0.1:{node_ports(0)[0]}")
        log = datadir / "node.log"
        spawn(state, f"node{i}", argv, log)
        state["nodes"].append({"name": f"node{i}", "p2p": p2p, "rpc": rpc, "metrics": metrics, "log": str(log)})
        save_state(state)
    for node in state["nodes"]:
        wait_until(f"{node['name']} RPC", lambda node=node: rpc_call(node["rpc"], "getnetworkinfo") is not None)
    first = state["nodes"][0]

    if args.with_svnode:
        bin_dir = svnode_bin()
        datadir = RUN / "svnode"
        datadir.mkdir()
        argv = [str(bin_dir / "bitcoind"), "-regtest", f"-datadir={datadir}", f"-port={SV_PORT}", "-bind=127.0.0.1",
                "-listen=1", "-server=1", f"-rpcport={SV_RPC}", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1",
                f"-rpcuser={USER}", f"-rpcpassword={PASSWORD}", "-excessiveblocksize=1000000000",
                "-maxstackmemoryusageconsensus=100000000", "-minminingtxfee=0.00000500", "-checkmempool=0",
                "-checkblockindex=0", "-discover=0", "-dnsseed=0", "-printtoconsole=0",
                f"-addnode=127.0.0.1:{node_ports(0)[0]}"]
        spawn(state, "svnode", argv, datadir / "console.log")
        state["svnode"] = {"p2p": SV_PORT, "rpc": SV_RPC, "log": str(datadir / "regtest" / "bitcoind.log")}
        save_state(state)
        wait_until("SV Node RPC", lambda: rpc_call(SV_RPC, "getnetworkinfo") is not None)

    print(f"{first['name']} mines the first 101 blocks…", flush=True)
    if rpc_call(first["rpc"], "generatetoaddress", 101, BURN_ADDRESS, timeout=120) is None:
        sys.exit("mining the first blocks failed; see " + first["log"])
    if args.mine:
        miner = [sys.executable, str(Path(__file__).resolve()), "mine-loop", str(first["rpc"])]
        spawn(state, "miner", miner, RUN / "miner.log")
    if args.rate > 0:
        target = state["nodes"][1 if len(state["nodes"]) > 1 else 0]
        load = [str(BINARY), "txgen", "--rpc", f"127.0.0.1:{first['rpc']}", "--rpcuser", USER, "--rpcpassword", PASSWORD,
                "--connect", f"127.0.0.1:{target['p2p']}", "--rate", str(args.rate), "--duration", str(args.load_secs),
                "--json", "--txids-out", str(RUN / "txgen-accepted.txt")]
        spawn(state, "txgen", load, RUN / "txgen.log")
        state["txgen"] = {"rate": args.rate, "log": str(RUN / "txgen.log")}
        save_state(state)

    if not args.no_prometheus:
        prom = shutil.which("prometheus")
        if prom is None:
            subprocess.run([str(ROOT / "testnet" / "install-prometheus")], check=False, stdout=subprocess.DEVNULL)
            prom = shutil.which("prometheus")
        if prom is None:
            print("Prometheus is not installed and could not be installed: skipping it")
        else:
            # The committed testnet/prometheus.yml covers the default 3 nodes; other sizes get their own.
            config = ROOT / "testnet" / "prometheus.yml"
            if len(state["nodes"]) != 3 or BASE_PORT != 18600:
                config = RUN / "prometheus.yml"
                config.write_text(prometheus_config(state["nodes"]))
            argv = [prom, f"--config.file={config}", f"--storage.tsdb.path={RUN / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"]
            spawn(state, "prometheus", argv, RUN / "prometheus.log")
            state["prometheus"] = {"url": f"http://127.0.0.1:{PROMETHEUS_PORT}", "config": str(config)}
            save_state(state)
    print_where(state)


def prometheus_config(nodes):
    targets = ", ".join(f"'127.0.0.1:{n['metrics']}'" for n in nodes)
    return ("global:\n  scrape_interval: 5s\n\nscrape_configs:\n  - job_name: bsv-relay\n"
            f"    static_configs:\n      - targets: [{targets}]\n")


def print_where(state):
    print("\nlocal regtest network is up:")
    for node in state["nodes"]:
        print(f"  {node['name']}: p2p 127.0.0.1:{node['p2p']}  rpc {node['rpc']} (user {USER}, password {PASSWORD})"
              f"  metrics http://127.0.0.1:{node['metrics']}/metrics  log {node['log']}")
    if state.get("svnode"):
        sv = state["svnode"]
        print(f"  SV Node: p2p 127.0.0.1:{sv['p2p']}  rpc {sv['rpc']}  log {sv['log']}")
    if any(p["name"] == "miner" for p in state["processes"]):
        print(f"  mining: {state['nodes'][0]['name']} mines a block every {MINE_INTERVAL_SECS} s")
    if state.get("txgen"):
        print(f"  load: txgen at {state['txgen']['rate']} tx/s, log {state['txgen']['log']}")
    if state.get("prometheus"):
        print(f"  Prometheus: {state['prometheus']['url']}")
    print("testnet/status shows the network, testnet/down stops it.")


def status(_args):
    state = load_state()
    if not state["nodes"]:
        print("no network: start one with testnet/up")
        return
    rows = [("name", "up", "height", "best block", "mempool", "peers", "accepted/s", "banned")]
    for node in state["nodes"]:
        info = rpc_call(node["rpc"], "getblockchaininfo", timeout=5)
        if info is None:
            rows.append((node["name"], "no", "-", "-", "-", "-", "-", "-"))
            continue
        pool = rpc_call(node["rpc"], "getmempoolinfo", timeout=5) or {}
        peers = rpc_call(node["rpc"], "getconnectioncount", timeout=5)
        banned = rpc_call(node["rpc"], "listbanned", timeout=5) or []
        rate = accepted_rate(node["metrics"])
        rows.append((node["name"], "yes", str(info["blocks"]), info["bestblockhash"][:16] + "…", str(pool.get("size", "-")),
                     str(peers), rate, str(len(banned))))
    if state.get("svnode"):
        info = rpc_call(SV_RPC, "getblockchaininfo", timeout=5)
        pool = rpc_call(SV_RPC, "getmempoolinfo", timeout=5) or {}
        peers = rpc_call(SV_RPC, "getconnectioncount", timeout=5)
        rows.append(("svnode", "yes" if info else "no", str(info["blocks"]) if info else "-",
                     (info["bestblockhash"][:16] + "…") if info else "-", str(pool.get("size", "-")), str(peers), "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if state.get("prometheus"):
        url = state["prometheus"]["url"] + "/api/v1/query?query=up"
        try:
            data = json.loads(urllib.request.urlopen(url, timeout=3).read())
            ups = [r["value"][1] for r in data["data"]["result"]]
            print(f"Prometheus {state['prometheus']['url']}: {ups.count('1')}/{len(ups)} targets up")
        except OSError:
            print(f"Prometheus {state['prometheus']['url']}: not answering")


def accepted_rate(metrics_port):
    """Transactions accepted per second, from two scrapes of the node's counter one second apart."""
    def total():
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=3).read().decode()
        except OSError:
            return None
        return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("bsv_relay_tx_accepted_total{"))
    a = total()
    time.sleep(1)
    b = total()
    return "-" if a is None or b is None else f"{b - a:.0f}"


def down(_args):
    state = load_state()
    procs = [p for p in state.get("processes", []) if alive(p["pid"])]
    if not procs:
        print("nothing to stop")
        state["processes"] = []
        save_state(state)
        return
    # The miner first, so it does not outlive SV Node; then everything else, gracefully.
    for p in sorted(procs, key=lambda p: p["name"] != "miner"):
        try:
            os.killpg(p["pid"], signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p["pid"]) for p in procs):
        time.sleep(0.2)
    for p in procs:
        if alive(p["pid"]):
            try:
                os.killpg(p["pid"], signal.SIGKILL)
            except OSError:
                pass
    print(f"stopped {len(procs)} processes")
    state["processes"] = []
    save_state(state)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the network")
    p_up.add_argument("-n", "--nodes", type=int, default=3, help="bsv-relay nodes (default 3)")
    p_up.add_argument("--with-svnode", action="store_true", help="add a real SV Node v1.0.13, which mines")
    p_up.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    p_up.add_argument("--rate", type=int, default=DEFAULT_RATE, help=f"load in tx/s (default {DEFAULT_RATE}; 0: none)")
    p_up.add_argument("--no-mining", dest="mine", action="store_false", help="do not mine a block every few seconds")
    p_up.add_argument("--load-secs", type=int, default=LOAD_SECS, help=f"how long the load runs (default {LOAD_SECS})")
    sub.add_parser("status", help="show the network")
    sub.add_parser("down", help="stop everything up started")
    p_mine = sub.add_parser("mine-loop", help=argparse.SUPPRESS)
    p_mine.add_argument("rpc", type=int)
    args = parser.parse_args()
    {"up": up, "status": status, "down": down, "mine-loop": mine_loop}[args.command](args)


if __name__ == "__main__":
    main()
