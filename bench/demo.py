"""The demo project served for a browser-side benchmark: a database of its own (created,
migrated, dropped at the end), runlisten and one daphne, with the test settings, whose request
log (``tests.hooks.RequestLog``) counts what reaches Django and what the server renders."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import database, servers

#: In a page of the demo's people table: records in ``window.__shown[row key]`` when each
#: row first appears.
OBSERVE_ROWS = """() => {
  window.__shown = {};
  const rows = document.getElementById('people-rows');
  new MutationObserver(() => {
    for (const tr of rows.children) {
      const k = tr.dataset.pgeventsRow;
      if (k && !(k in window.__shown)) window.__shown[k] = Date.now();
    }
  }).observe(rows, {childList: true});
}"""


@dataclass
class Demo:
    port: int
    database_url: str
    log: Path
    #: The server's Redis key prefix (``stages.Tap``).
    redis_prefix: str

    def requests(self) -> list[str]:
        """Lines of the request log since the last ``forget()``, static files aside."""
        return [line for line in self.log.read_text().splitlines() if " /static/" not in line]

    def forget(self) -> None:
        self.log.write_text("")


@contextlib.contextmanager
def serve(database_url: str, name: str, port: int = 0, extra: dict[str, str] | None = None) -> Iterator[Demo]:
    """``port``: 0 for any free one; ``extra``: more of the daphne process's environment."""
    log = Path(tempfile.mkdtemp()) / "requests.log"
    log.write_text("")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PGEVENTS_REDIS_PREFIX": f"pgevents-bench-{name}-{os.getpid()}",
        "PGEVENTS_TEST_REQUEST_LOG": str(log),
        "PYTHONUNBUFFERED": "1",
    }
    database.create(database_url)
    started: list[servers.Server] = []
    try:
        database.migrate(database_url, env)
        started.append(servers.start_listener(env))
        port = port or servers.free_port()
        started.append(servers.start_server({**env, **(extra or {})}, port))
        yield Demo(port, database_url, log, env["PGEVENTS_REDIS_PREFIX"])
    finally:
        for server in reversed(started):
            server.stop()
        database.drop(database_url)
