"""The production topology on loopback, and the faults it can be dealt.

A private PostgreSQL cluster and a private redis-server on free ports (``tests.faults``:
the same servers the fault tests restart), two daphne servers and two ``manage.py
runlisten`` (one active, one standing by), all started with ``chaos.settings``. Each fault
method blocks until the fault is over (the process is back, or the standby took over) and
returns a short description for the timeline. ``close()`` stops everything it started and
removes the cluster's files, whatever state the run is in.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from tests.faults import PrivatePostgres, PrivateRedis
from tests.support import Process, base_env, free_port, wait_until

from . import schema

ACTIVE, STANDBY = "listener active", "standing by"
ENDED = ("session ended", "listener stopped")


class Topology:
    def __init__(self, layer: str, log_dir: Path) -> None:
        self.layer = layer
        self.log_dir = log_dir
        self.pg: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.ports = [free_port(), free_port()]
        self.daphnes: list[Process | None] = [None, None]
        self.listeners: list[Process | None] = [None, None]
        #: Activations logged by listeners that were killed since.
        self._retired_activations = 0
        self.url = ""

    # -- start and stop ------------------------------------------------------------------
    def start(self) -> None:
        self.pg = PrivatePostgres()
        self.url = self.pg.migrate(settings="chaos.settings")
        schema.create(self.url)
        self.redis = PrivateRedis()
        for i in range(2):
            self._start_daphne(i)
        self.listeners[0] = self._listener()
        wait_until(lambda: self.active() is not None, 60, what="a listener to become active")
        self.listeners[1] = self._listener()
        wait_until(lambda: STANDBY in self._output(self.listeners[1]), 60, what="the second listener to stand by")
        for i in range(2):
            self._wait_daphne(i)

    def close(self) -> None:
        for proc in [*self.listeners, *self.daphnes]:
            if proc is not None:
                proc.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            with contextlib.suppress(OSError):
                shutil.copy(self.pg.log_path, self.log_dir / "postgresql.log")
            self.pg.close()

    @property
    def env(self) -> dict[str, str]:
        assert self.redis is not None
        return base_env(
            self.url,
            DJANGO_SETTINGS_MODULE="chaos.settings",
            REDIS_URL=self.redis.url,
            CHAOS_LAYER=self.layer,
            PGEVENTS_LOG_LEVEL="INFO",
        )

    def _start_daphne(self, i: int) -> None:
        port = self.ports[i]
        self.daphnes[i] = Process(
            f"daphne{i}",
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "demo_project.asgi:application"],
            self.env,
            self.log_dir,
        )

    def _wait_daphne(self, i: int) -> None:
        proc = self.daphnes[i]
        assert proc is not None

        def listening() -> bool:
            assert proc.alive(), proc.output()[-3000:]
            with contextlib.closing(socket.socket()) as s:
                return s.connect_ex(("127.0.0.1", self.ports[i])) == 0

        wait_until(listening, 60, what=f"daphne on port {self.ports[i]}")

    def _listener(self) -> Process:
        return Process("runlisten", [sys.executable, "manage.py", "runlisten"], self.env, self.log_dir)

    @staticmethod
    def _output(proc: Process | None) -> str:
        return proc.output() if proc is not None else ""

    def active(self) -> int | None:
        """Which listener holds the lock, from what each last said about itself."""
        for i, proc in enumerate(self.listeners):
            if proc is None or not proc.alive():
                continue
            out = proc.output()
            said = {word: out.rfind(word) for word in (ACTIVE, STANDBY, *ENDED)}
            if said[ACTIVE] >= 0 and said[ACTIVE] == max(said.values()):
                return i
        return None

    def _activations(self) -> int:
        return self._retired_activations + sum(self._output(p).count(ACTIVE) for p in self.listeners)

    def healthy(self) -> bool:
        procs = [*self.listeners, *self.daphnes]
        redis_up = self.redis is not None and self.redis.proc is not None and self.redis.proc.poll() is None
        return redis_up and all(p is not None and p.alive() for p in procs) and self.active() is not None

    def describe(self) -> str:
        """Which processes are up, for error messages."""

        def state(p: Process | None) -> str:
            return "down" if p is None or not p.alive() else "up"

        redis = (
            "up"
            if self.redis is not None and self.redis.proc is not None and self.redis.proc.poll() is None
            else "down"
        )
        return (
            f"daphne {state(self.daphnes[0])}/{state(self.daphnes[1])}, runlisten {state(self.listeners[0])}/"
            f"{state(self.listeners[1])} (active: {self.active()}), redis {redis}"
        )

    # -- faults --------------------------------------------------------------------------
    def kill_listener(self) -> str:
        """kill -9 the active listener, start it again at once (it stands by), and wait
        for a listener to be active again (normally the standby)."""
        i = self.active()
        state = "active"
        if i is None:  # both reconnecting (after another fault): hit one that is alive
            i, state = (0 if self.listeners[0] is not None and self.listeners[0].alive() else 1), "reconnecting"
        before = self._activations()
        proc = self.listeners[i]
        assert proc is not None
        self._retired_activations += proc.output().count(ACTIVE)
        self._kill(proc)
        self.listeners[i] = self._listener()
        wait_until(lambda: self._activations() > before, 60, what="a listener to take over")
        return f"listener {i} ({state}) killed; listener {self.active()} active"

    def restart_redis(self, down_for: float) -> str:
        assert self.redis is not None
        self.redis.stop()
        time.sleep(down_for)
        self.redis.start()
        return f"down {down_for:.1f}s, data lost"

    def restart_postgres(self, mode: str) -> str:
        assert self.pg is not None
        self.pg.restart(mode)
        return f"pg_ctl restart -m {mode}"

    def kill_daphne(self, i: int, down_for: float) -> str:
        self._kill(self.daphnes[i])
        time.sleep(down_for)
        self._start_daphne(i)
        self._wait_daphne(i)
        return f"daphne {i} (port {self.ports[i]}) down {down_for:.1f}s"

    def _kill(self, proc: Process | None) -> None:
        assert proc is not None
        proc.signal(signal.SIGKILL)
        proc.proc.wait(10)
        proc.stop()  # closes its log
