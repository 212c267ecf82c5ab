"""Start or stop the demo's embedded PostgreSQL (the ``pgserver`` wheel).

    python -m demo_project.embedded_pg start .pgevents/pgdata   # prints the database URL
    python -m demo_project.embedded_pg stop .pgevents/pgdata

``start`` reuses a server already running on that data directory and creates the ``pgevents``
database when it is missing; the server keeps running after this exits, so the demo's
processes can share it, until ``stop`` (``scripts/demo`` calls it when it ends).
"""

from __future__ import annotations

import sys
from pathlib import Path

DATABASE = "pgevents"


def start(data: Path) -> str:
    import pgserver
    import psycopg
    from psycopg import sql

    data.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data, cleanup_mode=None)
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return str(server.get_uri(DATABASE))


def stop(data: Path) -> None:
    """Fast shutdown of the server on ``data``, if one runs there."""
    from pgserver import pg_ctl

    if not (data / "postmaster.pid").exists():
        return
    # As root, pgserver runs PostgreSQL as its own system user "pgserver"; pg_ctl must too.
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, user="pgserver" if _is_root() else None)


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: python -m demo_project.embedded_pg start|stop [DATA_DIR]")
    data = Path(sys.argv[2] if len(sys.argv) > 2 else ".pgevents/pgdata").resolve()
    if sys.argv[1] == "start":
        print(start(data))
    else:
        stop(data)


if __name__ == "__main__":
    main()
