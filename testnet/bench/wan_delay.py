"""Delay and loss for forwarded packets, in user space, for kernels without `tc netem`.

An iptables NFQUEUE rule in the core router's namespace queues every forwarded packet to NFQUEUE 0; this
module, on a thread inside that namespace, reads the queue over raw netlink (no library needed),
looks at the packet's source and destination addresses, and gives the verdict ACCEPT after the
one-way delay between the two regions (or DROP with the loss probability). Verdicts may be given
in any order, so one packet's delay does not hold the next one back. Netlink messages are built
from the kernel's nfnetlink_queue ABI (linux/netfilter/nfnetlink_queue.h).
"""

import heapq
import random
import select
import socket
import struct
import threading
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_PAYLOAD = 1, 10
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST = 1


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, queue, attrs, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, NLM_F_REQUEST, seq, 0) + body


def attrs_of(data):
    out, off = {}, 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[off + 4:off + length]
        off += (length + 3) & ~3
    return out


def addresses(packet):
    """(source, destination) of an IPv4 or IPv6 packet, as text."""
    if packet and packet[0] >> 4 == 4 and len(packet) >= 20:
        return socket.inet_ntop(socket.AF_INET, packet[12:16]), socket.inet_ntop(socket.AF_INET, packet[16:20])
    if packet and packet[0] >> 4 == 6 and len(packet) >= 40:
        return socket.inet_ntop(socket.AF_INET6, packet[8:24]), socket.inet_ntop(socket.AF_INET6, packet[24:40])
    return None, None


class Delayer(threading.Thread):
    """Holds each queued packet for `delay_ms(src, dst)` and drops it with probability `loss`."""

    def __init__(self, enter, ns, delay_ms, loss, queue=0):
        super().__init__(daemon=True)
        self.enter, self.ns, self.delay_ms, self.loss, self.queue = enter, ns, delay_ms, loss, queue
        self.ready, self.alive = threading.Event(), True
        self.error = None
        self.packets = self.dropped = 0

    def run(self):
        try:
            self.enter(self.ns)
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.bind((0, 0))
            s.send(message(NFQNL_MSG_CONFIG, self.queue,
                           [attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0))]))
            s.send(message(NFQNL_MSG_CONFIG, self.queue,
                           [attr(NFQA_CFG_PARAMS, struct.pack(">IB", 64, NFQNL_COPY_PACKET)),
                            attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", 100_000))]))
        except OSError as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        pending = []  # (due, id, verdict)
        rng = random.Random(7)
        while self.alive:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, pid, verdict = heapq.heappop(pending)
                s.send(message(NFQNL_MSG_VERDICT, self.queue,
                               [attr(NFQA_VERDICT_HDR, struct.pack(">II", verdict, pid))]))
            timeout = max(0.0, pending[0][0] - now) if pending else 0.1
            if not select.select([s], [], [], min(timeout, 0.1))[0]:
                continue
            data = s.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, msg_type = struct.unpack_from("=IH", data, off)
                if length < 16:
                    break
                if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    a = attrs_of(data[off + 20:off + length])
                    if NFQA_PACKET_HDR in a:
                        pid = struct.unpack_from(">I", a[NFQA_PACKET_HDR])[0]
                        src, dst = addresses(a.get(NFQA_PAYLOAD, b""))
                        self.packets += 1
                        if rng.random() < self.loss:
                            self.dropped += 1
                            verdict = NF_DROP
                        else:
                            verdict = NF_ACCEPT
                        heapq.heappush(pending, (time.monotonic() + self.delay_ms(src, dst) / 1000, pid, verdict))
                off += (length + 3) & ~3
        # Let what is still held go, so nothing stays queued in the kernel.
        for _, pid, verdict in pending:
            s.send(message(NFQNL_MSG_VERDICT, self.queue, [attr(NFQA_VERDICT_HDR, struct.pack(">II", verdict, pid))]))
        s.close()
