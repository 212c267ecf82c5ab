"""Client worker processes: each holds a share of the sockets on its own event loop.

The coordinator talks to a worker over a pipe: ``connect`` (open and subscribe), ``wait``
(until every socket has ``n`` events or a deadline passes) and ``close``. Workers run in
their own processes so that the clients' CPU never competes with the coordinator's writer
for one interpreter, and their CPU time is reported beside the server's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import time
from dataclasses import dataclass
from typing import Any

from .wsclient import WsClient, connect


@dataclass
class Result:
    sockets: int
    received: int
    #: Events that carried a region's HTML.
    html: int
    disorder: int
    #: Per socket, the smallest count received (every socket must reach the expected count).
    min_received: int
    seqnos: bytes
    times: bytes


async def _serve(conn: multiprocessing.connection.Connection) -> None:
    loop = asyncio.get_running_loop()
    clients: list[WsClient] = []
    while True:
        command, args = await loop.run_in_executor(None, conn.recv)
        if command == "connect":
            host, port, path, count, record, concurrency, raw, key = args
            gate = asyncio.Semaphore(concurrency)

            async def one(
                gate: asyncio.Semaphore, host: str, port: int, path: str, record: bool, raw: bool, key: str
            ) -> WsClient:
                async with gate:
                    return await connect(host, port, path, record, raw, key)

            try:
                clients += await asyncio.gather(*(one(gate, host, port, path, record, raw, key) for _ in range(count)))
                conn.send(("ok", len(clients)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
        elif command == "wait":
            expected, timeout = args
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(c.tally.received < expected for c in clients):
                await asyncio.sleep(0.02)
            conn.send(("ok", _result(clients)))
        elif command == "reset":
            for c in clients:
                c.tally.seqnos = type(c.tally.seqnos)("q")
                c.tally.times = type(c.tally.times)("d")
                c.tally.received = c.tally.disorder = c.tally.html = 0
            conn.send(("ok", None))
        elif command == "close":
            for c in clients:
                c.close()
            if clients:
                await asyncio.wait([c.closed for c in clients], timeout=10)
            conn.send(("ok", None))
            return


def _result(clients: list[WsClient]) -> Result:
    from array import array

    seqnos, times = array("q"), array("d")
    for c in clients:
        seqnos.extend(c.tally.seqnos)
        times.extend(c.tally.times)
    return Result(
        sockets=len(clients),
        received=sum(c.tally.received for c in clients),
        html=sum(c.tally.html for c in clients),
        disorder=sum(c.tally.disorder for c in clients),
        min_received=min((c.tally.received for c in clients), default=0),
        seqnos=seqnos.tobytes(),
        times=times.tobytes(),
    )


def _main(conn: multiprocessing.connection.Connection, nice: int = 0) -> None:
    if nice:
        os.nice(nice)
    asyncio.run(_serve(conn))


class Workers:
    """``n`` client processes, used together."""

    def __init__(self, n: int, nice: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_main, args=(child, nice), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _all(self, command: str, per_worker: list[Any], timeout: float = 600) -> list[Any]:
        for pipe, args in zip(self.pipes, per_worker, strict=True):
            pipe.send((command, args))
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError(f"client worker did not answer {command!r}")
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"client worker failed to {command}: {value}")
            out.append(value)
        return out

    def connect(
        self,
        host: str,
        port: int,
        path: str,
        count: int,
        record: bool = True,
        concurrency: int = 100,
        raw: bool = False,
        key: str = "seqno",
    ) -> None:
        """Open and subscribe ``count`` sockets, spread over the workers (``raw``: a peer's
        endpoint; ``key``: the row's integer that times a frame; see ``wsclient``)."""
        shares = [count // len(self.pipes) + (i < count % len(self.pipes)) for i in range(len(self.pipes))]
        self._all("connect", [(host, port, path, s, record, concurrency, raw, key) for s in shares])

    def wait(self, expected: int, timeout: float) -> list[Result]:
        return self._all("wait", [(expected, timeout)] * len(self.pipes), timeout + 30)

    def reset(self) -> None:
        self._all("reset", [None] * len(self.pipes))

    def close(self) -> None:
        try:
            self._all("close", [None] * len(self.pipes), 30)
        finally:
            for p in self.procs:
                p.join(5)
                if p.is_alive():
                    p.kill()
