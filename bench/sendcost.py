"""``python -m bench.sendcost``: what one ``send()`` to a loopback TCP socket costs here.

The floor under pgevents' fan-out, measured without it: a Python loop writes one
260-byte WebSocket-sized frame to each of ``--sockets`` loopback TCP connections,
``--rate`` times a second, while ``--readers`` other processes read them (as the benchmark's
clients do); the sender's CPU time (user and system) over the sends is the cost of one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import selectors
import socket
import time

FRAME = b"\x81\x7e\x01\x00" + b"x" * 256


def _read(port: int, count: int, ready: multiprocessing.synchronize.Event) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    ready.set()
    while True:
        for key, _ in selector.select():
            try:
                if not key.fileobj.recv(65536):  # type: ignore[union-attr]
                    return
            except BlockingIOError:
                pass


def measure(sockets: int, rate: float, seconds: float, readers: int) -> tuple[float, float]:
    """(user, system) µs of the sender's CPU per ``send()``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    procs, events = [], []
    for i in range(readers):
        ready = multiprocessing.Event()
        share = sockets // readers + (i < sockets % readers)
        proc = multiprocessing.Process(target=_read, args=(port, share, ready))
        proc.start()
        procs.append(proc)
        events.append(ready)
    conns = [listener.accept()[0] for _ in range(sockets)]
    for ready in events:
        ready.wait()
    for conn in conns:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as autobahn sets it
    sends = [conn.send for conn in conns]
    before = resource.getrusage(resource.RUSAGE_SELF)
    start, rounds = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        t0 = time.monotonic()
        for send in sends:
            send(FRAME)
        rounds += 1
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - t0)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        conn.close()
    for proc in procs:
        proc.join(10)
    listener.close()
    n = rounds * sockets
    return 1e6 * (after.ru_utime - before.ru_utime) / n, 1e6 * (after.ru_stime - before.ru_stime) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    for _ in range(args.rounds):
        user, system = measure(args.sockets, args.rate, args.seconds, args.readers)
        print(
            f"{args.sockets} sockets x {args.rate:g}/s: {user + system:.2f} µs per send() (user {user:.2f}, system {system:.2f})"
        )


if __name__ == "__main__":
    main()
