"""The status report: what is running and how far behind it is, for ``pgevents_status``
and the admin's status page.

Everything is read from PostgreSQL, so it works from any host and for every topology:
listeners are the sessions in ``pg_stat_activity`` whose name starts with
``pgevents-listener`` or ``pgevents-embedded`` (``core.names.LISTENER_SESSIONS``; the active
one holds the advisory lock, the others stand by), followed by the OS process that runs them,
``<host>:<pid>`` (``core.identity``); server processes report their subscriptions in
``pgevents_presence`` (``pgevents.store.presence``) under ``<host>:<pid>:<reporter>``.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

from pgevents import conf
from pgevents.core.identity import parse_application_name, parse_process
from pgevents.core.names import LISTENER_SESSIONS
from pgevents.setup import sync
from pgevents.store import log, presence


def listeners(cursor: Any) -> list[dict[str, Any]]:
    """Listener sessions on this database; ``active`` is the one holding the advisory lock."""
    key = conf.get().listener_lock
    cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is snapshotted once per transaction
    cursor.execute(
        "SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local'), a.backend_start,"
        " EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted"
        "         AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1)"
        " FROM pg_stat_activity a WHERE a.datname = current_database()"
        " AND split_part(a.application_name, ' ', 1) = ANY(%s)"
        " ORDER BY 5 DESC, a.backend_start",
        [key >> 32, key & 0xFFFFFFFF, list(LISTENER_SESSIONS)],
    )
    found = []
    for backend_pid, application_name, client, since, active in cursor.fetchall():
        name, host, os_pid = parse_application_name(application_name)
        found.append(
            {
                "role": "active" if active else "standby",
                "name": name,
                "host": host,
                "pid": os_pid,
                "backend_pid": backend_pid,
                "client": client,
                "since": since,
            }
        )
    return found


def clients(cursor: Any) -> dict[str, Any]:
    """Subscriptions per channel, summed over the server processes that reported recently."""
    processes = []
    for proc in presence.recent(cursor):
        host, pid = parse_process(proc["process"])
        processes.append({**proc, "host": host, "pid": pid})
    totals: dict[str, int] = {}
    for proc in processes:
        for channel, n in proc["channels"].items():
            totals[channel] = totals.get(channel, 0) + int(n)
    return {"channels": dict(sorted(totals.items())), "processes": processes}


def triggers(cursor: Any, alias: str) -> list[dict[str, Any]]:
    """Every configured or installed watch and the state of its triggers in the database."""
    return [
        {"source": s.source, "schema": s.schema, "table": s.table, "channel": s.channel, "status": s.detail}
        for s in sync.plan(cursor, sync.configured(alias))
    ]


def collect(alias: str | None = None) -> dict[str, Any]:
    alias = alias or conf.get().database
    with connections[alias].cursor() as cursor:
        return {
            "database": alias,
            "listeners": listeners(cursor),
            "log": log.stats_sync(cursor),
            "clients": clients(cursor),
            "triggers": triggers(cursor, alias),
        }
