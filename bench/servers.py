"""The server side under test: daphne and ``runlisten`` processes, and their CPU and memory.

Processes run with ``bench.settings`` against the benchmark database and a Redis key prefix
of their own, so a benchmark never sees (or disturbs) anyone else's events.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".pgevents" / "bench-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOGS / f"{name}-{os.getpid()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.output()[-3000:]}")
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: {what} did not happen within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def env_for(db_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PGEVENTS_REDIS_PREFIX=prefix,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


#: Connections the server's listening socket queues before it accepts them. daphne's ``-b/-p``
#: listen with Twisted's default of 50: when hundreds of clients connect at once the rest of
#: their handshakes are dropped and retried a second or more later, which made the time to
#: open 1,000 connections vary from 1.5 to 3+ s. Deployed, this is
#: ``daphne -e tcp:port=8000:interface=0.0.0.0:backlog=4096`` (docs/deployment.md);
#: ``pgevents_serve`` sets it itself, uvicorn's default is 2048.
BACKLOG = 4096

#: The ASGI servers the benchmark can run, as ``python -m`` arguments for a port.
COMMANDS = {
    "daphne": lambda port: [
        *("-m", "daphne", "-e", f"tcp:port={port}:interface=127.0.0.1:backlog={BACKLOG}"),
        "demo_project.asgi:application",
    ],
    "uvicorn": lambda port: [
        *("-m", "uvicorn", "demo_project.asgi:application", "--host", "127.0.0.1", "--port", str(port)),
        *("--lifespan", "off", "--no-access-log", "--log-level", "warning"),
    ],
    "hypercorn": lambda port: [
        *("-m", "hypercorn", "demo_project.asgi:application", "-b", f"127.0.0.1:{port}"),
        *("--log-level", "warning"),
    ],
}


def serve_command(port: int, processes: int) -> list[str]:
    """``processes`` daphne processes on one port (``manage.py pgevents_serve``, SO_REUSEPORT)."""
    return ["manage.py", "pgevents_serve", "--processes", str(processes), "-b", "127.0.0.1", "-p", str(port)]


def start_server(
    env: dict[str, str],
    port: int,
    server: str = "daphne",
    root: Path | None = None,
    processes: int = 1,
    trace: Path | None = None,
) -> Server:
    """``server`` on ``port``; ``root``: run another checkout's code (to measure it side by side);
    ``processes`` > 1: that many daphne processes on the port; ``trace``: one daphne process
    timing each event inside (``bench.servertrace``, lines to ``trace.<pid>``)."""
    if root is not None:
        env = {**env, "PYTHONPATH": str(root)}
    command = serve_command(port, processes) if processes > 1 else COMMANDS[server](port)
    if trace is not None:
        if server != "daphne" or processes > 1:
            raise ValueError("the server trace runs one daphne process")
        command = [str(Path(__file__).with_name("servertrace.py")), *command[2:]]  # instead of -m daphne
        env = {**env, "PGEVENTS_BENCH_SERVER_TRACE": str(trace)}
    proc = Server(f"{server}-{port}", [sys.executable, *command], env, cwd=root or ROOT)

    def listening() -> bool:
        with contextlib.closing(socket.socket()) as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        proc.wait_for(listening, f"{server} listening on {port}")
    except BaseException:
        proc.stop()
        raise
    return proc


def start_daphne(env: dict[str, str], port: int) -> Server:
    return start_server(env, port, "daphne")


def start_listener(env: dict[str, str], *args: str) -> Server:
    # INFO for the listener: its "listener active" line is how we know it holds the lock.
    server = Server(
        "runlisten", [sys.executable, "manage.py", "runlisten", *args], {**env, "PGEVENTS_LOG_LEVEL": "INFO"}
    )
    try:
        server.wait_for(lambda: "listener active" in server.output(), "the listener becoming active")
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Usage:
    cpu: float = 0.0  # seconds of CPU over the window
    wall: float = 0.0
    rss_max: int = 0

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu / self.wall if self.wall else 0.0


@dataclass
class Monitor:
    """Samples CPU time and RSS of some processes (their children included) in a thread."""

    pids: dict[str, list[int]]
    interval: float = 0.2
    usage: dict[str, Usage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._procs = {k: [psutil.Process(p) for p in pids] for k, pids in self.pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree(procs: list[psutil.Process]) -> list[psutil.Process]:
        """The processes and their children (hypercorn and gunicorn serve from workers)."""
        out = list(procs)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                out += p.children(recursive=True)
        return out

    def _cpu(self, procs: list[psutil.Process]) -> float:
        total = 0.0
        for p in self._tree(procs):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def _rss(self, procs: list[psutil.Process]) -> int:
        total = 0
        for p in self._tree(procs):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def rss(self, key: str) -> int:
        """The current RSS of ``key``'s processes and their children."""
        return self._rss(self._procs[key])

    def __enter__(self) -> Monitor:
        self._start = time.monotonic()
        self._cpu0 = {k: self._cpu(v) for k, v in self._procs.items()}
        self.usage = {k: Usage(rss_max=self._rss(v)) for k, v in self._procs.items()}
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for k, procs in self._procs.items():
                self.usage[k].rss_max = max(self.usage[k].rss_max, self._rss(procs))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self._start
        for k, procs in self._procs.items():
            u = self.usage[k]
            u.cpu = self._cpu(procs) - self._cpu0[k]
            u.wall = wall
            u.rss_max = max(u.rss_max, self._rss(procs))
