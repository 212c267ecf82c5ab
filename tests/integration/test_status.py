"""``pgevents_status`` and the admin status page against real listeners, servers and clients."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client as DjangoClient
from django.urls import reverse

from tests.support import ROOT, Client, Process, Stack, base_env, run, wait_until


def status() -> dict[str, Any]:
    out = StringIO()
    call_command("pgevents_status", "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


@pytest.mark.django_db
def test_status_shows_listeners_clients_log_and_triggers(stack: Stack, db_url: str) -> None:
    report = status()
    assert [item["role"] for item in report["listeners"]] == ["active"]
    (listener,) = report["listeners"]  # the OS process and its host, not only PostgreSQL's backend
    assert (listener["host"], listener["pid"]) == (socket.gethostname(), stack.listeners[0].proc.pid)
    assert listener["name"] == "pgevents-listener" and listener["backend_pid"] != listener["pid"]
    assert {
        "source": "migration people.0001_people",
        "schema": "public",
        "table": "people",
        "channel": "people",
        "status": "installed",
    } in report["triggers"]
    assert set(report["log"]) >= {
        "events",
        "bytes",
        "oldest",
        "pending",
        "oldest_pending_seconds",
        "notify_queue_usage",
    }

    standby = Process("runlisten", [sys.executable, "manage.py", "runlisten"], stack.env, stack.log_dir)
    try:
        wait_until(lambda: "standing by" in standby.output(), 30, what="a standby listener")
        roles = sorted(item["role"] for item in status()["listeners"])
        assert roles == ["active", "standby"]
    finally:
        standby.stop()

    async def connected() -> None:
        async with (
            Client.connect(f"{stack.ws}/ws/pgevents/books/") as a,
            Client.connect(f"{stack.ws}/ws/pgevents/books/") as b,
            Client.connect(f"{stack.ws}/ws/pgevents/chat/") as c,
        ):
            for client in (a, b, c):
                await client.expect("subscribed")
            counts = await _wait_for_counts(lambda n: n.get("books") == 2 and n.get("chat") == 1)
            assert counts["books"] == 2 and counts["chat"] == 1
            assert stack.daphne is not None
            servers = await asyncio.to_thread(lambda: status()["clients"]["processes"])
            assert (socket.gethostname(), stack.daphne.proc.pid) in [(p["host"], p["pid"]) for p in servers]
        await _wait_for_counts(lambda n: "books" not in n and "chat" not in n)

    run(connected())

    text = StringIO()
    call_command("pgevents_status", stdout=text)
    assert "Listeners: 1 (1 active, 0 standby)" in text.getvalue()
    assert f"  active   {socket.gethostname()} pid {stack.listeners[0].proc.pid}  (pgevents-listener" in text.getvalue()
    assert f"  {socket.gethostname()} pid {stack.daphne.proc.pid}: " in text.getvalue()
    assert "installed  public.people → people  [migration people.0001_people]" in text.getvalue()


async def _wait_for_counts(ready: Any) -> dict[str, int]:
    """Poll the status (in a thread: Django's database access is sync-only) until ``ready``."""

    def counts_now() -> dict[str, int]:
        try:
            return dict(status()["clients"]["channels"])
        finally:
            connections.close_all()

    counts: dict[str, int] = {}
    for _ in range(200):
        counts = await asyncio.to_thread(counts_now)
        if ready(counts):
            return counts
        await asyncio.sleep(0.1)
    raise AssertionError(f"subscription counts never matched: {counts}")


@pytest.mark.django_db
def test_a_listener_session_is_known_by_the_first_word_of_its_name(db_url: str) -> None:
    from pgevents.setup import report

    with (
        psycopg.connect(db_url, application_name="pgevents-listener web-1:4242"),
        psycopg.connect(db_url, application_name="pgevents-listeners"),
        connections["default"].cursor() as cursor,
    ):
        found = {(item["name"], item["host"], item["pid"]): item["role"] for item in report.listeners(cursor)}
    assert found.get(("pgevents-listener", "web-1", 4242)) == "standby"  # the name, and where it runs
    assert not any(name == "pgevents-listeners" for name, _, _ in found)


def test_status_reports_lag_when_no_listener_runs(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    iso_pg.execute("INSERT INTO people (name) VALUES ('a'), ('b')")

    def manage(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", "pgevents_status", *args],
            cwd=ROOT,
            env=base_env(isolated_db),
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    report = json.loads(manage("--json"))
    assert report["listeners"] == []
    assert report["log"]["pending"] == 2 and report["log"]["events"] == 2
    assert report["log"]["oldest_pending_seconds"] >= 0 and report["log"]["oldest"]
    text = manage()
    assert "none: events are logged but nobody delivers them" in text
    assert "Lag: 2 event(s) waiting, oldest" in text


@pytest.mark.django_db
def test_admin_status_page(admin_client: DjangoClient, stack: Stack) -> None:
    page = admin_client.get(reverse("admin:pgevents_watch_status")).content.decode()
    assert "<td>active</td>" in page and "pgevents-listener" in page
    assert f"<td>{socket.gethostname()}</td><td>{stack.listeners[0].proc.pid}</td>" in page
    assert "<td>public.people</td><td>people</td><td>installed</td>" in page
    changelist = admin_client.get(reverse("admin:pgevents_watch_changelist")).content.decode()
    assert reverse("admin:pgevents_watch_status") in changelist


def test_pgevents_log_reports_the_log_and_prunes_on_demand(db_url: str) -> None:
    from io import StringIO

    from django.core.management import call_command

    text, as_json, pruned = StringIO(), StringIO(), StringIO()
    call_command("pgevents_log", "status", stdout=text)
    call_command("pgevents_log", "status", "--json", stdout=as_json)
    call_command("pgevents_log", "prune", "--older-than", "1000000000", stdout=pruned)  # nothing is that old
    stats = json.loads(as_json.getvalue())
    assert f"events: {stats['events']}" in text.getvalue() and "last id assigned:" in text.getvalue()
    assert set(stats["cursors"]) == {"assigned", "published", "pruned"}
    assert pruned.getvalue().startswith("pruned 0 event(s)")
