"""``scripts/demo`` as a person runs it: it starts, serves the page, stops everything it started
on Ctrl-C, and starts again cleanly, in the embedded topology and with a Redis it had to start.

The demo runs in a virtualenv of its own that nothing but ``scripts/demo`` ever installs into
(``.pgevents/demo-test-venv``, kept between runs: only the first costs an install), to show it
installs the runtime only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, free_port, wait_until


class Demo:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["PORT"])
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                ["bash", "scripts/demo"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def serving(self) -> bool:
        assert self.proc.poll() is None, self.output()
        if "open http://" not in self.output():
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        assert self.proc.wait(60) == 130, self.output()
        with pytest.raises(ProcessLookupError):  # nothing of the demo's process group is left
            os.killpg(self.proc.pid, 0)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", self.port)) != 0


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("demo")
    keep = {"HOME", "LANG", "PATH", "TMPDIR", "PIP_CACHE_DIR", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"PGEVENTS_VENV": str(ROOT / ".pgevents" / "demo-test-venv"), "PGEVENTS_PGDATA": str(home / "pgdata")})
    yield env


def test_the_demo_installs_only_the_runtime_and_cleans_up_after_itself_twice(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**demo_env, "PGEVENTS_EMBEDDED": "1"}
    pgdata = Path(env["PGEVENTS_PGDATA"])
    for attempt in (1, 2):  # the second run reuses the data directory and its database
        demo = Demo({**env, "PORT": str(free_port())}, tmp_path / f"embedded-{attempt}.log")
        wait_until(demo.serving, 240, interval=0.25, what=f"the demo (run {attempt}) to serve its page")
        assert "topology: one process (embedded listener, in-memory channel layer)" in demo.output()
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        demo.ctrl_c()
        assert "stopping the embedded PostgreSQL" in demo.output() and "already exists" not in demo.output()
        assert not (pgdata / "postmaster.pid").exists()
        wait_until(lambda pid=postmaster: _gone(pid), 10, what="the embedded PostgreSQL to exit")
    python = Path(env["PGEVENTS_VENV"]) / "bin" / "python"
    assert subprocess.run([python, "-c", "import daphne, channels_redis, pgserver"]).returncode == 0
    for tooling in ("pytest", "playwright", "hypothesis"):
        assert subprocess.run([python, "-c", f"import {tooling}"], capture_output=True).returncode != 0, tooling


def test_the_demo_stops_the_redis_server_and_listener_it_started(
    demo_env: dict[str, str], isolated_db: str, tmp_path: Path
) -> None:
    redis_port = free_port()  # nothing there: the demo starts its own redis-server
    env = {**demo_env, "DATABASE_URL": isolated_db, "PGEVENTS_REDIS_PORT": str(redis_port), "PORT": str(free_port())}
    demo = Demo(env, tmp_path / "redis.log")
    wait_until(demo.serving, 240, interval=0.25, what="the demo to serve its page")
    wait_until(lambda: "runlisten ready, role active" in demo.output(), 60, what="the demo's listener")
    assert f"starting redis-server on 127.0.0.1:{redis_port}" in demo.output()
    assert redis.Redis(port=redis_port).ping()
    demo.ctrl_c()
    assert "stopping the redis-server this script started" in demo.output()
    wait_until(lambda: not _answers(redis_port), 10, what="redis-server to stop")


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
