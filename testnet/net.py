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
RUN = ROOT / "testnet" / "run"
STATE = RUN / "state.json"
BINARY = ROOT / "target" / "release" / "bsv-relay"
USER, PASSWORD = "u", "p"
BASE_PORT = 18600
SV_PORT, SV_RPC = 18590, 18591
PROMETHEUS_PORT = 18599
MINE_INTERVAL_SECS = 5


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
        wait_until(f"{node['name']} RPC", lambda node=node: cli(node["rpc"], "getnetworkinfo") is not None)

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
        wait_until("SV Node RPC", lambda: cli(SV_RPC, "getnetworkinfo") is not None)
        address = cli(SV_RPC, "getnewaddress")
        print("SV Node mines the first 101 blocks…", flush=True)
        cli(SV_RPC, "generatetoaddress", "101", address, timeout=120)
        miner = ["bash", "-c", f"while true; do sleep {MINE_INTERVAL_SECS}; "
                 f"'{bin_dir / 'bitcoin-cli'}' -regtest -rpcport={SV_RPC} -rpcuser={USER} -rpcpassword={PASSWORD} "
                 f"generatetoaddress 1 {address} >/dev/null || exit 0; done"]
        spawn(state, "miner", miner, RUN / "miner.log")

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
            if len(state["nodes"]) != 3:
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
        print(f"  SV Node: p2p 127.0.0.1:{sv['p2p']}  rpc {sv['rpc']}  log {sv['log']}  (mines a block every "
              f"{MINE_INTERVAL_SECS} s)")
    if state.get("prometheus"):
        print(f"  Prometheus: {state['prometheus']['url']}")
    print("testnet/status shows the network, testnet/down stops it.")


def status(_args):
    state = load_state()
    if not state["nodes"]:
        print("no network: start one with testnet/up")
        return
    rows = [("name", "up", "headers", "best header", "peers", "banned")]
    for node in state["nodes"]:
        info = cli(node["rpc"], "getblockchaininfo", timeout=5)
        peers = cli(node["rpc"], "getconnectioncount", timeout=5)
        banned = cli(node["rpc"], "listbanned", timeout=5)
        if info is None:
            rows.append((node["name"], "no", "-", "-", "-", "-"))
            continue
        info = json.loads(info)
        rows.append((node["name"], "yes", str(info["headers"]), info["bestheaderhash"][:16] + "…", peers or "-",
                     str(len(json.loads(banned))) if banned else "-"))
    if state.get("svnode"):
        count = cli(SV_RPC, "getblockcount", timeout=5)
        best = cli(SV_RPC, "getbestblockhash", timeout=5)
        peers = cli(SV_RPC, "getconnectioncount", timeout=5)
        rows.append(("svnode", "yes" if count else "no", count or "-", (best or "-")[:16] + "…", peers or "-", "-"))
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
    sub.add_parser("status", help="show the network")
    sub.add_parser("down", help="stop everything up started")
    args = parser.parse_args()
    {"up": up, "status": status, "down": down}[args.command](args)


if __name__ == "__main__":
    main()
