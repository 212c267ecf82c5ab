"""Helpers for integration tests: real processes, a real WebSocket client, raw SQL writers."""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import websockets

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    host = s["HOST"] or "127.0.0.1"
    user = s["USER"] or "postgres"
    port = s["PORT"] or "5432"
    if host.startswith("/"):
        return f"postgresql://{user}@/{s['NAME']}?host={host}&port={port}"
    return f"postgresql://{user}@{host}:{port}/{s['NAME']}"


def _admin_url(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    name, _, query = name.partition("?")
    return base + "/postgres" + ("?" + query if query else ""), name


def clone_database(url: str, suffix: str) -> str:
    """``CREATE DATABASE <name>_<suffix> TEMPLATE <name>``; returns the new database's URL."""
    admin, name = _admin_url(url)
    new = f"{name}_{suffix}"[:63]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(new)))
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                psycopg.sql.Identifier(new), psycopg.sql.Identifier(name)
            )
        )
    return url.replace(f"/{name}", f"/{new}", 1)


def drop_database(url: str) -> None:
    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


_children: list[Process] = []


@atexit.register
def _kill_leftovers() -> None:
    """However a run ends, no server it started outlives it."""
    for child in _children:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)


class Process:
    """A child process with its output in a file (read it when a test fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _children.append(self)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self._log.closed:
            return self.proc.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait(5)
        finally:
            self._log.close()


def base_env(db_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DATABASE_URL": db_url, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_manage(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` in a process of its own on ``db_url``, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base_env(db_url),
        capture_output=True,
        text=True,
        timeout=180,
    )


def manage(db_url: str, *args: str) -> str:
    """``manage.py *args`` in a process of its own on ``db_url``; its output, once it succeeded."""
    result = run_manage(db_url, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


#: The ASGI servers the stack can run (``server=``), as commands for a port.
SERVERS = {
    "daphne": lambda port: ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "demo_project.asgi:application"],
    # the project mounted under /app/, as behind a proxy that forwards that prefix
    "daphne-root-path": lambda port: [
        *("-m", "daphne", "--root-path", "/app", "-b", "127.0.0.1", "-p", str(port), "demo_project.asgi:application")
    ],
    "uvicorn": lambda port: [
        *("-m", "uvicorn", "demo_project.asgi:application", "--host", "127.0.0.1", "--port", str(port)),
        *("--lifespan", "off", "--no-access-log", "--loop", "asyncio"),
    ],
    # uvicorn's default when uvloop is installed (uvicorn[standard]): transports of its own
    "uvicorn-uvloop": lambda port: [
        *("-m", "uvicorn", "demo_project.asgi:application", "--host", "127.0.0.1", "--port", str(port)),
        *("--lifespan", "off", "--no-access-log", "--loop", "uvloop"),
    ],
    "hypercorn": lambda port: ["-m", "hypercorn", "demo_project.asgi:application", "-b", f"127.0.0.1:{port}"],
    # two daphne processes on one port (SO_REUSEPORT), as docs/deployment.md describes
    "pgevents_serve": lambda port: ["manage.py", "pgevents_serve", "--processes", "2", "-p", str(port)],
    # gunicorn managing two uvicorn worker processes, as docs/deployment.md describes
    "gunicorn": lambda port: [
        *("-m", "gunicorn", "demo_project.asgi:application", "-k", "uvicorn_worker.UvicornWorker"),
        *("-w", "2", "-b", f"127.0.0.1:{port}", "--no-control-socket"),
    ],
}


class Stack:
    """An ASGI server (daphne unless ``server=``) and runlisten (unless ``listener=False``) on
    free ports, against ``db_url``."""

    def __init__(
        self,
        db_url: str,
        *,
        listener: bool = True,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        server: str = "daphne",
    ) -> None:
        self.db_url = db_url
        self.server = server
        self.port = free_port()
        # Its own Redis key prefix: stacks on other databases must never share groups.
        # (``env`` may name the prefix to share another stack's listener.)
        self.env = base_env(
            db_url, **{"PGEVENTS_REDIS_PREFIX": f"pgevents-test-{os.getpid()}-{self.port}", **(env or {})}
        )
        self.log_dir = log_dir or ROOT / ".pgevents" / "test-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.want_listener = listener
        self.daphne: Process | None = None
        self.listeners: list[Process] = []

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> Stack:
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> Stack:
        self.start_daphne(wait=False)
        if self.want_listener:
            self.start_listener()
        self.wait_daphne()
        return self

    def start_daphne(self, wait: bool = True) -> Process:
        """(Re)start the server on the stack's port: clients see the same address come back."""
        self.daphne = Process(self.server, [sys.executable, *SERVERS[self.server](self.port)], self.env, self.log_dir)
        if wait:
            self.wait_daphne()
        return self.daphne

    def wait_daphne(self) -> None:
        assert self.daphne is not None
        wait_until(self._port_open, 30, what=f"daphne on port {self.port}:\n{self.daphne.output()}")

    def start_listener(self, *args: str, env: dict[str, str] | None = None) -> Process:
        proc = Process(
            "runlisten", [sys.executable, "manage.py", "runlisten", *args], {**self.env, **(env or {})}, self.log_dir
        )
        self.listeners.append(proc)
        self.wait_active(proc)
        return proc

    def wait_active(self, proc: Process, count: int = 1) -> None:
        wait_until(
            lambda: proc.output().count("listener active") >= count or not proc.alive(),
            30,
            what="the listener to become active",
        )
        assert proc.alive(), proc.output()

    def _port_open(self) -> bool:
        assert self.daphne is not None and self.daphne.alive(), self.daphne.output() if self.daphne else ""
        with contextlib.closing(socket.socket()) as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def __exit__(self, *exc: object) -> None:
        for proc in self.listeners:
            proc.stop()
        if self.daphne is not None:
            self.daphne.stop()


class Client:
    """A real WebSocket client speaking the contract."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, origin: str | None = None, headers: dict[str, str] | None = None, **options: Any
    ) -> Any:
        origin = origin or url.replace("ws://", "http://").split("/ws/")[0]
        async with websockets.connect(
            url, origin=origin, max_size=None, open_timeout=20, additional_headers=headers, **options
        ) as ws:
            yield cls(ws)

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self, timeout: float = 15.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return dict(json.loads(raw))

    async def expect(self, type_: str, timeout: float = 15.0) -> dict[str, Any]:
        msg = await self.recv(timeout)
        assert msg["type"] == type_, msg
        return msg

    async def events(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The next ``n`` event messages (control messages in between are not allowed)."""
        out = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < n:
            remaining = deadline - asyncio.get_running_loop().time()
            msg = await self.recv(max(remaining, 0.01))
            assert msg["type"] == "event", msg
            out.append(msg)
        return out

    async def pong(self) -> None:
        """A fence without a write: the reply to a ping must be the next message. Use it once
        something else has shown that whatever could have been sent to this socket was sent
        (another socket of the same server received the event: the hub writes to all at once)."""
        await self.send({"type": "ping"})
        assert await self.recv() == {"type": "pong"}

    async def subscribe(self, channel: str, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "subscribe", "channel": channel, **fields})
        return await self.expect("subscribed")


def execute(db_url: str, *statements: str, params: Any = None) -> None:
    """Run statements in one transaction on a fresh connection, like an outside writer."""
    with psycopg.connect(db_url) as conn:
        for statement in statements:
            conn.execute(statement, params)  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@contextlib.contextmanager
def temp_table(db_url: str, ddl: str, name: str) -> Iterator[None]:
    execute(db_url, ddl)
    try:
        yield
    finally:
        execute(db_url, f"DROP TABLE IF EXISTS {name}")


class Recorder:
    """Collects everything a client receives, in the background, while a test writes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.controls: list[dict[str, Any]] = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            msg = await self.client.recv(timeout=3600)
            (self.events if msg["type"] == "event" else self.controls).append(msg)

    def names(self) -> list[str]:
        return [e["row"]["name"] for e in self.events if e.get("row")]

    async def fence(self, url: str, name: str) -> None:
        """Write one more row (``people``, named ``name``) and wait for it: whatever was going
        to arrive before it has arrived. It must be the last event; it is then left out."""
        await asyncio.to_thread(execute, url, f"INSERT INTO people (name) VALUES ('{name}')")
        await self.wait_for({name})
        assert self.events[-1]["row"]["name"] == name, self.events[-3:]
        self.events.pop()

    async def wait_for(self, names: set[str], timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not names <= set(self.names()):
            if self._task.done():
                self._task.result()  # re-raise what ended the client
            if asyncio.get_running_loop().time() > deadline:
                missing = sorted(names - set(self.names()))
                raise AssertionError(f"{len(missing)} event(s) never arrived, e.g. {missing[:5]}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def write_rows(
    url: str, tag: str, count: int, *, threads: int = 4, progress: Any = None, tolerate_outage: bool = False
) -> None:
    """Insert ``count`` people named ``<tag>-<n>``, one row per transaction, from several
    connections at once. With ``tolerate_outage`` a failed attempt is retried under a new
    name (``-r<k>``): which attempts committed is read back from the table afterwards."""
    import threading

    done = [0]
    lock = threading.Lock()

    def worker(start: int) -> None:
        conn: psycopg.Connection | None = None
        for i in range(start, count, threads):
            attempt = 0
            while True:
                name = f"{tag}-{i}" if attempt == 0 else f"{tag}-{i}-r{attempt}"
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
                    conn.execute("INSERT INTO people (name) VALUES (%s)", (name,))
                    break
                except psycopg.OperationalError:
                    if not tolerate_outage:
                        raise
                    attempt += 1
                    with contextlib.suppress(Exception):
                        if conn is not None:
                            conn.close()
                    conn = None
                    time.sleep(0.2)
            with lock:
                done[0] += 1
                if progress is not None:
                    progress(done[0])
        if conn is not None:
            conn.close()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def committed_names(url: str, tag: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT name FROM people WHERE name LIKE %s", (f"{tag}-%",)).fetchall()
    return {row[0] for row in rows}


def assert_exactly_once_in_order(events: list[dict[str, Any]], expected: set[str]) -> None:
    names = [e["row"]["name"] for e in events if e.get("row")]
    ids = [e["id"] for e in events]
    assert len(names) == len(set(names)), "duplicates: " + str(sorted({n for n in names if names.count(n) > 1})[:5])
    assert set(names) == expected, (
        f"missing {sorted(expected - set(names))[:5]}, extra {sorted(set(names) - expected)[:5]}"
    )
    assert ids == sorted(ids) and len(ids) == len(set(ids)), "ids are not strictly increasing"


#: A durable event's id in its frame as PostgreSQL renders it (jsonb key order and spacing).
EVENT_ID = re.compile(rb'"id": (\d+), "op"')


class RawStream:
    """A raw TCP client of the server: a WebSocket or an SSE stream it reads only when told.

    With a tiny receive buffer and nobody reading, the server's writes back up: this is the
    client that stops reading but keeps its connection.
    """

    def __init__(self, stack: Stack, request: str, rcvbuf: int | None = 4096) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", stack.port))
        self.sock.sendall(request.encode())
        self.data = b""

    @classmethod
    def websocket(cls, stack: Stack, path: str, rcvbuf: int | None = 4096) -> RawStream:
        key = base64.b64encode(os.urandom(16)).decode()
        return cls(
            stack,
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {stack.http}\r\n\r\n",
            rcvbuf,
        )

    @classmethod
    def sse(cls, stack: Stack, path: str, last_event_id: int | None = None, rcvbuf: int | None = 4096) -> RawStream:
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        return cls(
            stack,
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nAccept: text/event-stream\r\n{resume}\r\n",
            rcvbuf,
        )

    def read_until(self, needle: bytes | re.Pattern[bytes], timeout: float = 30.0) -> bytes:
        """Read until ``needle`` appears in what was read (all of it is kept in ``data``)."""
        deadline = time.monotonic() + timeout
        found = (lambda: needle in self.data) if isinstance(needle, bytes) else (lambda: needle.search(self.data))
        while not found():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {needle!r}; last bytes {self.data[-300:]!r}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AssertionError(f"connection closed before {needle!r}; last bytes {self.data[-300:]!r}")
            self.data += chunk
        return self.data

    def ids(self) -> list[int]:
        return [int(m) for m in EVENT_ID.findall(self.data)]

    def close(self) -> None:
        self.sock.close()
