"""Which process is which: ``host:pid``, also inside PostgreSQL's ``application_name``.

``pgevents_status`` runs anywhere; PostgreSQL only knows its own backend pids. So every
pgevents session names itself ``<role> <host>:<pid>`` (cut to PostgreSQL's 63 bytes), and the
status tools read the OS process and host back from ``pg_stat_activity``.
"""

from __future__ import annotations

import os
import socket

#: PostgreSQL keeps ``application_name`` to NAMEDATALEN - 1 bytes.
MAX_APPLICATION_NAME = 63


def process() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def application_name(role: str, ident: str | None = None) -> str:
    """``"<role> <host>:<pid>"`` within 63 bytes: a long host name is cut, never the pid."""
    host, _, pid = (ident or process()).rpartition(":")
    room = MAX_APPLICATION_NAME - len(role.encode()) - len(pid) - 2
    cut = host.encode()[: max(room, 0)].decode(errors="ignore")
    return f"{role} {cut}:{pid}"


def parse_application_name(name: str) -> tuple[str, str | None, int | None]:
    """``(role, host, pid)`` from an ``application_name`` written by :func:`application_name`
    (host and pid are None for a bare role, as older versions wrote it)."""
    role, _, ident = name.partition(" ")
    host, sep, pid = ident.rpartition(":")
    if not sep or not pid.isdigit():
        return role, None, None
    return role, host, int(pid)


def parse_process(process: str) -> tuple[str, int | None]:
    """``(host, pid)`` from a ``host:pid[:more]`` process name (as server processes report
    presence); pid None when there is none."""
    host, _, rest = process.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None
