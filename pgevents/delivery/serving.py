"""Several daphne processes on one port, one per core (``manage.py pgevents_serve``).

A daphne process runs one event loop on one core: the fan-out of every event to its sockets
happens on that one thread. On a host with more cores, more processes serve more sockets;
the channel layer already delivers every event once to every server process, so nothing
else has to change.

Each process gets a listening socket of its own, bound to the same address with
``SO_REUSEPORT`` and handed to daphne as an inherited descriptor (``daphne --fd``). The
kernel spreads incoming connections over the sockets evenly (by a hash of the connection's
addresses), so a busy process is not handed more than its share, and no process wakes for a
connection another one takes. One shared socket accepted from by every process would also
work, but every process wakes for every connection and the busiest one can be handed the
most.

The parent only starts and stops: when one process exits, the others are stopped and the
parent exits with its status, so the supervisor (systemd, a container runtime) restarts the
whole set; it never re-spawns on its own. SIGTERM and SIGINT stop every process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

logger = logging.getLogger(__name__)


class ReusePortUnavailable(RuntimeError):
    """The platform has no ``SO_REUSEPORT`` (Linux and the BSDs have it)."""


def reuseport_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other ``SO_REUSEPORT`` sockets share."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ReusePortUnavailable("this platform has no SO_REUSEPORT: run one server process per port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def daphne_target(asgi_application: str) -> str:
    """``ASGI_APPLICATION``'s dotted path as daphne's ``module:attribute``."""
    module, _, attribute = asgi_application.rpartition(".")
    if not module or not attribute:
        raise ValueError(f"ASGI_APPLICATION must be a dotted path to the application, got {asgi_application!r}")
    return f"{module}:{attribute}"


class Processes:
    """``count`` daphne processes serving ``application`` on ``host:port``."""

    def __init__(self, application: str, host: str, port: int, count: int, daphne_args: Sequence[str] = ()) -> None:
        if count < 1:
            raise ValueError("at least one process")
        self.application = application
        self.host = host
        self.port = port
        self.count = count
        self.daphne_args = list(daphne_args)
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        sockets = [reuseport_socket(self.host, self.port)]
        try:
            self.port = sockets[0].getsockname()[1]  # port 0: the kernel's choice, shared by the rest
            sockets += [reuseport_socket(self.host, self.port) for _ in range(self.count - 1)]
            for sock in sockets:
                fd = sock.fileno()
                self.children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "daphne", "--fd", str(fd), *self.daphne_args, self.application],
                        pass_fds=(fd,),
                    )
                )
        except BaseException:
            self.stop()
            raise
        finally:
            for sock in sockets:  # the children hold their own copies
                sock.close()
        logger.info(
            "%d daphne processes on %s:%d (pids %s)",
            self.count,
            self.host,
            self.port,
            ", ".join(str(c.pid) for c in self.children),
        )

    def wait(self, poll: float = 0.5) -> int:
        """Until one process exits (or SIGTERM/SIGINT): then stop the others; its status."""

        def stop_on(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, stop_on)
        try:
            while True:
                for child in self.children:
                    code = child.poll()
                    if code is not None:
                        logger.warning("daphne process %d exited with status %d; stopping the others", child.pid, code)
                        return code if code >= 0 else 128 - code  # killed by a signal: as a shell says it
                time.sleep(poll)
        except KeyboardInterrupt:
            return 128 + signal.SIGINT
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def default_count() -> int:
    """One process per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
