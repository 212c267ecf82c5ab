"""Private PostgreSQL and Redis servers that tests may restart without disturbing anyone.

Both are context managers (``with PrivatePostgres() as pg: ...``) that leave nothing behind:
the chaos run (``python -m chaos``) uses them as well as the fault tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.support import ROOT, base_env, free_port, wait_until


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are needed for the fault tests")
    return Path(initdb).parent


class PrivatePostgres:
    """A throw-away cluster on a free port, migrated for the demo project."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pgevents-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.bin = _bindir()
        try:
            self._init()
            self.start()
        except BaseException:
            self.close()
            raise

    def _init(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def log_path(self) -> Path:
        """The server's log (gone once ``close()`` removed the cluster: copy it first)."""
        return self.dir / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/pgevents"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.log_path),
                    "-w",
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def migrate(self, settings: str = "tests.settings") -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE pgevents")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=base_env(self.url, DJANGO_SETTINGS_MODULE=settings),
            check=True,
            timeout=120,
        )
        return self.url

    def close(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server on a free port that keeps nothing on disk (a restart loses everything)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def __enter__(self) -> PrivateRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ping, 20, what="private redis")

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGKILL: nothing is saved, so the next ``start()`` begins empty (data loss)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class BlackholeProxy:
    """A TCP proxy to PostgreSQL that can silently stop forwarding on its current
    connections (a network partition: nothing is closed, nothing gets through)."""

    def __init__(self, target_port: int = 5432) -> None:
        import asyncio
        import threading

        self.target_port = target_port
        self.port = free_port()
        self._dead: set[object] = set()
        self._pairs: list[object] = []
        self._writers: list[object] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        import asyncio

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: object) -> None:
            try:
                while data := await reader.read(65536):
                    if pair in self._dead:
                        continue  # swallowed: the peer never hears back
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if pair not in self._dead:
                    writer.close()

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers += [client_w, server_w]
            pair = object()
            self._pairs.append(pair)
            await asyncio.gather(pipe(client_r, server_w, pair), pipe(server_r, client_w, pair))

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()
            await self._stop.wait()
            server.close()
            for writer in self._writers:
                writer.close()  # type: ignore[attr-defined]
            await asyncio.sleep(0)  # let the transports finish closing

        self._stop = asyncio.Event()
        self._loop.run_until_complete(main())
        self._loop.close()

    def close(self) -> None:
        """Close every connection (the blackholed ones too) and stop the proxy."""
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def blackhole_existing(self) -> None:
        self._loop.call_soon_threadsafe(lambda: self._dead.update(self._pairs))

    def url(self, db_url: str) -> str:
        return db_url.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")
