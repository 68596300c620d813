#!/usr/bin/env python3
"""Many hostile P2P peers in one asyncio program, speaking v1 to regtest bsv-relay nodes.

Each hostile *node* has its own loopback source address (127.0.2.x, so a ban hits only it) and
connects to a few honest nodes. It re-announces every transaction it hears of to its other honest
peers at once (no trickle), so it is often the first announcer, and then misbehaves by kind:

- withholder: never answers `getdata`;
- laggard: fetches the transaction from whoever announced it and answers `getdata` LAG seconds late;
- invalid:  answers `getdata` with the transaction's bytes altered inside the first signature (a
  consensus failure, punished by the node's misbehaviour table).

    hostile_peers.py --targets 24000,24002,... --nodes 12 --links 6 [--lag 3] [--seed 1]

Runs until killed. Prints one line per connection problem at most (to stderr), nothing else.
"""

import argparse
import asyncio
import hashlib
import random
import struct
import sys
import time

MAGIC = bytes([0xda, 0xb5, 0xbf, 0xfa])
MSG_TX = 1


def sha256d(b):
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def varint(n):
    if n < 0xfd:
        return bytes([n])
    if n <= 0xffff:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xffffffff:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def read_varint(b, i):
    first = b[i]
    if first < 0xfd:
        return first, i + 1
    if first == 0xfd:
        return struct.unpack_from("<H", b, i + 1)[0], i + 3
    if first == 0xfe:
        return struct.unpack_from("<I", b, i + 1)[0], i + 5
    return struct.unpack_from("<Q", b, i + 1)[0], i + 9


def frame(command, payload):
    return MAGIC + command.encode().ljust(12, b"\0") + struct.pack("<I", len(payload)) + sha256d(payload)[:4] + payload


def net_addr(services=0):
    return struct.pack("<Q", services) + b"\0" * 10 + b"\xff\xff" + b"\0" * 4 + struct.pack(">H", 0)


def version_payload():
    ua = b"/hostile-sim:0.1/"
    return (struct.pack("<iQq", 70016, 1, int(time.time())) + net_addr() + net_addr(1)
            + struct.pack("<Q", random.getrandbits(64)) + varint(len(ua)) + ua + struct.pack("<i?", 0, True))


def inv_payload(hashes):
    return varint(len(hashes)) + b"".join(struct.pack("<I", MSG_TX) + h for h in hashes)


def parse_inv(p):
    n, i = read_varint(p, 0)
    out = []
    for _ in range(n):
        kind = struct.unpack_from("<I", p, i)[0]
        out.append((kind, p[i + 4:i + 36]))
        i += 36
    return out


class Conn:
    def __init__(self, node, port):
        self.node, self.port, self.writer, self.ready = node, port, None, False

    def send(self, command, payload):
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(frame(command, payload))

    async def run(self):
        while True:
            try:
                reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                                    local_addr=(self.node.ip, 0))
                self.send("version", version_payload())
                await self.read_loop(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            self.ready = False
            await asyncio.sleep(2)  # banned or dropped: try again later, as an attacker would

    async def read_loop(self, reader):
        while True:
            header = await reader.readexactly(24)
            if header[:4] != MAGIC:
                raise ValueError("bad magic")
            command = header[4:16].rstrip(b"\0").decode()
            length = struct.unpack_from("<I", header, 16)[0]
            payload = await reader.readexactly(length)
            if command == "version":
                self.send("verack", b"")
            elif command == "verack":
                self.ready = True
            elif command == "ping":
                self.send("pong", payload)
            elif command == "inv":
                self.node.on_inv(self, [h for k, h in parse_inv(payload) if k == MSG_TX])
            elif command == "getdata":
                self.node.on_getdata(self, [h for k, h in parse_inv(payload) if k == MSG_TX])
            elif command == "tx":
                self.node.on_tx(sha256d(payload), payload)


class HostileNode:
    def __init__(self, ip, kind, ports, lag):
        self.ip, self.kind, self.lag = ip, kind, lag
        self.conns = [Conn(self, p) for p in ports]
        self.seen, self.raw, self.waiting = set(), {}, {}

    def on_inv(self, source, hashes):
        new = [h for h in hashes if h not in self.seen]
        if not new:
            return
        self.seen.update(new)
        if len(self.seen) > 200_000:
            self.seen.clear()
        for c in self.conns:
            if c is not source and c.ready:
                c.send("inv", inv_payload(new))
        if self.kind != "withholder":
            source.send("getdata", inv_payload(new))

    def on_tx(self, txid, payload):
        self.raw[txid] = payload
        for fut in self.waiting.pop(txid, []):
            if not fut.done():
                fut.set_result(payload)

    def on_getdata(self, conn, hashes):
        if self.kind == "withholder":
            return
        for h in hashes:
            asyncio.get_running_loop().create_task(self.answer(conn, h))

    async def answer(self, conn, txid):
        start = time.monotonic()
        raw = self.raw.get(txid)
        if raw is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiting.setdefault(txid, []).append(fut)
            try:
                raw = await asyncio.wait_for(fut, 30)
            except asyncio.TimeoutError:
                return
        if self.kind == "laggard":
            await asyncio.sleep(max(0.0, self.lag - (time.monotonic() - start)))
        else:  # invalid: alter a byte inside the first input's signature
            b = bytearray(raw)
            b[min(len(b) - 1, 55)] ^= 0x01
            raw = bytes(b)
        conn.send("tx", raw)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--links", type=int, default=6)
    ap.add_argument("--lag", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    random.seed(args.seed)
    ports = [int(p) for p in args.targets.split(",")]
    kinds = ["withholder", "laggard", "invalid"]
    nodes = [HostileNode(f"127.0.2.{i + 1}", kinds[i % 3], random.sample(ports, min(args.links, len(ports))), args.lag)
             for i in range(args.nodes)]
    await asyncio.gather(*(c.run() for n in nodes for c in n.conns))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
