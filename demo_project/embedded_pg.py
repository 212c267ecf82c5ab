"""Start (or reuse) an embedded PostgreSQL from the ``pgserver`` wheel; print its URL.

    python -m demo_project.embedded_pg .pgevents/pgdata

The server keeps running after this exits, so the demo's processes can share it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import pgserver

    data = Path(sys.argv[1] if len(sys.argv) > 1 else ".pgevents/pgdata").resolve()
    data.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data, cleanup_mode=None)
    if not server.psql("SELECT 1 FROM pg_database WHERE datname = 'pgevents'").strip().endswith("1"):
        server.psql("CREATE DATABASE pgevents;")
    print(server.get_uri("pgevents"))


if __name__ == "__main__":
    main()
