"""Checks that look at the database itself (``check --database``): each fires and is silent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from pgevents.checks import check_database
from pgevents.models import Watch
from tests.support import Stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts() -> Iterator[str]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE accounts (id serial PRIMARY KEY, email text, api_token text)")
    yield "accounts"


def about(table: str, **kwargs: Any) -> list[tuple[str, str]]:
    messages: list[CheckMessage] = check_database(databases=["default"], **kwargs)
    return [(m.id or "", m.msg) for m in messages if f".{table} " in m.msg or f".{table}." in m.msg]


def ids(table: str) -> list[str]:
    return [i for i, _ in about(table)]


def test_watch_on_a_missing_table(accounts: str) -> None:
    Watch.objects.create(table=accounts, channel="demo")
    assert "pgevents.W012" not in ids(accounts)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE accounts")
    assert ids(accounts) == ["pgevents.W012"]
    with pytest.raises(SystemCheckError, match=r"pgevents\.W012"):
        call_command("check", "--database", "default", "--fail-level", "WARNING")


def test_sensitive_columns_exposed_by_a_watch(accounts: str) -> None:
    watch = Watch.objects.create(table=accounts, channel="demo")
    assert ids(accounts) == []  # api_token is excluded without being asked
    watch.include = ["id", "api_token"]
    watch.save()
    ((check_id, message),) = about(accounts)
    assert check_id == "pgevents.W010" and "api_token" in message and "email" not in message


def test_trigger_drift(accounts: str) -> None:
    watch = Watch.objects.create(table=accounts, channel="demo", events=["INSERT", "UPDATE"])
    assert ids(accounts) == []
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TRIGGER "{watch.stub().base_name}_u" ON accounts')
    assert ids(accounts) == ["pgevents.W011"]
    watch.save()
    assert ids(accounts) == []


def test_admin_watch_on_a_channel_no_client_may_subscribe_to(accounts: str) -> None:
    watch = Watch.objects.create(table=accounts, channel="t")  # the test settings admit "t.*", not "t"
    messages = [m for m in check_database(databases=["default"]) if m.id == "pgevents.W013"]
    assert [m.msg for m in messages] == [
        f"Watch public.accounts (admin #{watch.pk}) publishes on channel 't', which no PGEVENTS['CHANNELS'] "
        "entry admits: every subscription to it is refused."
    ]
    assert messages[0].hint == (
        "Add 't' (or a pattern matching it) to PGEVENTS['CHANNELS']. 't.*' admits 't.something', not 't' itself."
    )
    watch.channel = "t.accounts"
    watch.save()
    assert ids(accounts) == []


def test_database_checks_only_run_when_asked(accounts: str) -> None:
    Watch.objects.create(table=accounts, channel="demo")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE accounts")
    assert check_database(databases=None) == []
    call_command("check", "--fail-level", "WARNING")  # no --database: nothing raised


def test_in_memory_layer_while_a_runlisten_is_connected(stack: Stack) -> None:
    stray = "pgevents.W004"
    assert stray not in [m.id for m in check_database(databases=["default"])]  # Redis layer: all is well
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        assert stray in [m.id for m in check_database(databases=["default"])]


def test_a_migration_watch_whose_table_was_dropped_later_is_history() -> None:
    from pgevents.setup import sync

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE people")  # rolled back with the test's transaction
        (step,) = [s for s in sync.plan(cursor, sync.configured("default")) if s.table == "people"]
    assert (step.action, step.detail) == ("ok", "no table")
    assert ids("people") == []


def test_a_plain_notify_channel_that_a_watch_also_publishes_on() -> None:
    def plain_on_watched(**pgevents: Any) -> list[str]:
        with override_settings(PGEVENTS={"CHANNELS": ["people", "demo"], **pgevents}):
            return [m.msg for m in check_database(databases=["default"]) if m.id == "pgevents.W014"]

    (message,) = plain_on_watched(NOTIFY_CHANNELS=["people", "demo"])  # the demo's people watch
    assert "'people'" in message and "any database role" in message
    assert plain_on_watched(NOTIFY_CHANNELS=["demo"]) == []


def test_a_log_that_autovacuum_does_not_look_after() -> None:
    """On a server of its own (the shared one's settings are not the test's to change):
    silent with autovacuum on; a warning naming the table whose ``autovacuum_enabled`` is
    off; then one naming the server's setting and both tables once it is off for all."""
    import psycopg

    from tests.faults import PrivatePostgres
    from tests.support import run_manage

    def w015(url: str) -> list[str]:
        result = run_manage(url, "check", "--database", "default")
        assert result.returncode == 0, result.stdout + result.stderr  # a warning never blocks
        return [line for line in (result.stdout + result.stderr).splitlines() if "(pgevents.W015)" in line]

    with PrivatePostgres() as server:
        url = server.migrate()
        assert w015(url) == []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE pgevents_event SET (autovacuum_enabled = off)")
        (line,) = w015(url)
        assert "autovacuum is disabled on pgevents_event (autovacuum_enabled)" in line, line
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE pgevents_event RESET (autovacuum_enabled)")
            conn.execute("ALTER SYSTEM SET autovacuum = off")
            conn.execute("SELECT pg_reload_conf()")
        (line,) = w015(url)
        assert "autovacuum is off on this PostgreSQL server" in line and "pgevents_event, pgevents_transient" in line
