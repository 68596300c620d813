#!/usr/bin/env python3
"""A/B of the hot path in one run, for two bsv-relay binaries (before and after a change),
alternating, fresh nodes each: acceptance (throughput.py's load: 50,000 transactions pushed over
one connection) and one-hop relay latency (latency.py's steady load: 200 tx/s for 20 s, 7
listening peers). Each binary's own `txgen` drives it.

    testnet/bench/hotpath_ab.py BEFORE_BINARY AFTER_BINARY [ROUNDS]     (default 3 rounds)
"""
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as T  # noqa: E402

bins = {'before': Path(sys.argv[1]), 'after': Path(sys.argv[2])}
out = subprocess.run([str(T.ROOT / 'testnet' / 'install-svnode')], check=True, capture_output=True, text=True)
cli_dir = Path(out.stdout.strip().splitlines()[-1])
res = {k: {'tps': [], 'p50': [], 'p99': []} for k in bins}
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
for rnd in range(rounds):
    for name, b in bins.items():
        T.BINARY = b
        work = Path(tempfile.mkdtemp(prefix='ab-'))
        procs = []
        try:
            p, rpc, p2p, _ = T.start_ours(work, 'n1'); procs.append(p)
            T.wait_rpc([str(cli_dir / 'bitcoin-cli'), '-regtest', f'-rpcport={rpc}', '-rpcuser=u', '-rpcpassword=p'], [])
            r = T.txgen(rpc, p2p, 50000, 1)
            res[name]['tps'].append(r['accepted_per_second'])
            p, rpc, p2p, _ = T.start_ours(work, 'n2'); procs.append(p)
            T.wait_rpc([str(cli_dir / 'bitcoin-cli'), '-regtest', f'-rpcport={rpc}', '-rpcuser=u', '-rpcpassword=p'], [])
            out = subprocess.run([str(b), 'txgen', '--rpc', f'127.0.0.1:{rpc}', '--rpcuser', 'u', '--rpcpassword', 'p',
                                  '--connect', f'127.0.0.1:{p2p}', '--rate', '200', '--count', '4000', '--seed', '11',
                                  '--observers', '7', '--json'], capture_output=True, text=True)
            lat = json.loads(out.stdout.strip().splitlines()[-1])['announce_latency_ms']
            res[name]['p50'].append(lat['p50']); res[name]['p99'].append(lat['p99'])
            print(name, r['accepted_per_second'], lat, flush=True)
        finally:
            T.stop(procs, work)
print('| binary | accepted tx/s (runs) | median | latency p50 ms (runs) | median p50 | p99 median |')
for name, r in res.items():
    print(f"| {name} | {', '.join(f'{x:.0f}' for x in r['tps'])} | {statistics.median(r['tps']):.0f} | "
          f"{', '.join(str(x) for x in r['p50'])} | {statistics.median(r['p50'])} | {statistics.median(r['p99'])} |")
