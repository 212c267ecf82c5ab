"""The role table of docs/security.md, row by row, with real non-superuser roles.

A database of its own is created for an ``owner`` role, which runs ``migrate`` and the
``pgevents_grants`` script for a ``listener``, a ``web`` role and two writers (one of them
owns a table of its own). ``other`` can only connect. Then every right each row grants is
used, and every right it does not grant is refused by PostgreSQL — including each way the
database-side attacks of the threat model work against an unprotected install: a forged
log row, a preset huge id, a temporary table or a schema earlier on ``search_path`` that
shadows pgevents' objects, and the trigger function attached to another table. Last, the
whole pipeline runs with each process connected as its own role.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors
from psycopg import sql as psql

from tests.integration.test_sequencer import SEQUENCER_CONFIG
from tests.support import ROOT, Client, Process, Stack, base_env, manage, run, wait_until

_SUFFIX = hashlib.sha256(os.environ.get("PGEVENTS_TEST_DB", "test_pgevents").encode()).hexdigest()[:6]
KINDS = ("owner", "listener", "web", "writer", "tableowner", "other")
ROLE = {kind: f"pgev_{_SUFFIX}_{kind}" for kind in KINDS}
LOGS = ROOT / ".pgevents" / "test-logs"

#: Every function pgevents owns, as its signature.
FUNCTIONS = {
    "notify": "pgevents_notify()",
    "frame": "pgevents_frame(pgevents_event)",
    "assign": "pgevents_assign(integer, bigint)",
    "prune": "pgevents_prune(double precision, integer)",
    "take_transient": "pgevents_take_transient(integer)",
    "wake": "pgevents_wake(boolean)",
    "wake_transient": "pgevents_wake(boolean, boolean)",
    "only_keys": "pgevents_only_keys(jsonb, text[])",
}
#: The trigger function's helper: run by the owner (as the trigger function), by no other role.
OWNER_ONLY = "SELECT pgevents_only_keys('{}', '{}')"
CALLS = {
    "frame": "SELECT pgevents_frame(e) FROM pgevents_event e LIMIT 1",
    "assign": "SELECT * FROM pgevents_assign(10, 0)",
    "prune": "SELECT pgevents_prune(1e9, 10)",
    "take_transient": "SELECT * FROM pgevents_take_transient(10)",
    "wake": "SELECT pgevents_wake(false)",  # whether writers may skip their wake-ups
    "wake_transient": "SELECT pgevents_wake(false, true)",  # non-durable writers too
}
TABLES = ("pgevents_event", "pgevents_cursor", "pgevents_transient", "pgevents_presence", "pgevents_watch")
WRITES = {
    "pgevents_event": "INSERT INTO pgevents_event (channel, op) VALUES ('people', 'INSERT')",
    "pgevents_cursor": "UPDATE pgevents_cursor SET value = value + 1000 WHERE name = 'assigned'",
    "pgevents_transient": "INSERT INTO pgevents_transient (channel, op) VALUES ('people', 'INSERT')",
    "pgevents_presence": "INSERT INTO pgevents_presence (process, counts) VALUES ('forged', '{}')",
    "pgevents_watch": "DELETE FROM pgevents_watch",
}
#: The first repro: a forged durable event whose preset id hides every later real event.
FORGED_HUGE_ID = "INSERT INTO pgevents_event (id, channel, op, \"row\") VALUES (900000000000, 'people', 'INSERT', '{}')"
#: The second: a notification that made json.loads raise RecursionError in the listener.
DEEP_NOTIFY = (
    'SELECT pg_notify(\'pgevents\', \'{"channel":"people","op":"INSERT","row":\' '
    "|| repeat('[', 3900) || repeat(']', 3900) || '}')"
)


@dataclass(frozen=True)
class Roles:
    base: str  # postgresql://{role}@host:port/
    database: str

    def url(self, kind: str) -> str:
        return self.base.format(role=ROLE[kind]) + self.database

    def connect(self, kind: str) -> psycopg.Connection:
        return psycopg.connect(self.url(kind), autocommit=True)


def _admin(db_url: str) -> tuple[str, str, str]:
    """(superuser URL of the maintenance database, URL template for a role, a database name)."""
    base, _, name = db_url.rpartition("/")
    scheme, _, rest = base.partition("://")
    _, _, hostport = rest.rpartition("@")
    return f"{base}/postgres", f"{scheme}://{{role}}@{hostport}/", f"{name.partition('?')[0]}_roles"[:63]


def _drop_everything(admin: str, database: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psql.Identifier(database)))
        for role in ROLE.values():
            conn.execute(psql.SQL("DROP ROLE IF EXISTS {}").format(psql.Identifier(role)))


@pytest.fixture(scope="module")
def roles(db_url: str) -> Iterator[Roles]:
    admin, base, database = _admin(db_url)
    _drop_everything(admin, database)  # what an interrupted run left
    with psycopg.connect(admin, autocommit=True) as conn:
        for role in ROLE.values():
            conn.execute(psql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(psql.Identifier(role)))
        conn.execute(
            psql.SQL("CREATE DATABASE {} OWNER {}").format(psql.Identifier(database), psql.Identifier(ROLE["owner"]))
        )
    found = Roles(base, database)
    try:
        manage(found.url("owner"), "migrate", "--noinput", "-v", "0")
        script = manage(
            found.url("owner"),
            "pgevents_grants",
            *("--listener", ROLE["listener"], "--web", ROLE["web"]),
            *("--writer", ROLE["writer"], "--writer", ROLE["tableowner"]),
        )
        writer, tableowner = (psql.Identifier(ROLE[k]) for k in ("writer", "tableowner"))
        with found.connect("owner") as owner:
            owner.execute(script)
            # The project's own grants, not pgevents': writers write the watched tables.
            owner.execute(psql.SQL("GRANT SELECT, INSERT, UPDATE ON people TO {}").format(writer))
            owner.execute(psql.SQL("GRANT USAGE ON SEQUENCE people_pk_seq TO {}").format(writer))
            owner.execute("CREATE TABLE notes (id serial PRIMARY KEY, body jsonb)")
            owner.execute(psql.SQL("GRANT INSERT ON notes TO {}").format(writer))
            owner.execute(psql.SQL("GRANT USAGE ON SEQUENCE notes_id_seq TO {}").format(writer))
            # A non-durable watch, configured as the admin would, installed by pgevents_sync.
            owner.execute(
                'INSERT INTO pgevents_watch (schema, "table", channel, events, include, exclude, update_columns,'
                " durable, notify, enabled, updated_at) VALUES"
                " ('public', 'notes', 't.notes', '[\"INSERT\"]', '[]', '[]', '[]', false, true, true, now())"
            )
            # Both writers may create schemas of their own (to shadow pgevents' objects, to own tables).
            owner.execute(
                psql.SQL("GRANT CREATE ON DATABASE {} TO {}, {}").format(psql.Identifier(database), writer, tableowner)
            )
        for kind, schema in (("writer", "evil"), ("tableowner", "mine")):
            with found.connect(kind) as conn:
                conn.execute(psql.SQL("CREATE SCHEMA {}").format(psql.Identifier(schema)))
        assert "1 changed" in manage(found.url("owner"), "pgevents_sync")
        yield found
    finally:
        _drop_everything(admin, database)


def _log(roles: Roles, where: str = "true") -> list[tuple[object, ...]]:
    with roles.connect("owner") as owner:
        return owner.execute(f'SELECT id, channel, "row" FROM pgevents_event WHERE {where} ORDER BY seq').fetchall()


def _refused(conn: psycopg.Connection, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_the_grants_script_needs_pgevents_tables(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    iso_pg.execute("ALTER TABLE pgevents_event RENAME TO not_pgevents")
    result = subprocess.run(
        [sys.executable, "manage.py", "pgevents_grants", "--web", ROLE["web"]],
        cwd=ROOT,
        env=base_env(isolated_db),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "run manage.py migrate first" in result.stderr, result.stderr


# -- owner -------------------------------------------------------------------------------
def test_owner_owns_functions_that_cannot_be_redirected(roles: Roles) -> None:
    with roles.connect("owner") as owner:
        rows = owner.execute(
            "SELECT p.proname, pg_get_userbyid(p.proowner), p.prosecdef, p.proconfig, p.proacl::text[]"
            " FROM pg_proc p WHERE p.oid = ANY(%s::regprocedure[])",
            (list(FUNCTIONS.values()),),
        ).fetchall()
    assert len(rows) == len(FUNCTIONS)
    for name, owner_name, definer, config, acl in rows:
        assert owner_name == ROLE["owner"], name
        if name in ("pgevents_frame", "pgevents_only_keys"):
            # They read only their arguments; the frame is inlined into the query that calls it,
            # which a SET would prevent: they qualify every name instead (the next test but two).
            assert (definer, config) == (False, None)
        else:
            assert definer, name
            assert config[0] == "search_path=pg_catalog, pg_temp", name
            # the sequencer also plans once through the log's indexes only (0009); nothing else is set
            assert config == (SEQUENCER_CONFIG if name == "pgevents_assign" else config[:1]), name
        assert not any(entry.startswith("=") for entry in acl), f"{name}: PUBLIC may execute it: {acl}"


# -- writers and everyone else --------------------------------------------------------------
def test_a_writer_logs_events_without_any_right_on_pgevents_objects(roles: Roles) -> None:
    with roles.connect("writer") as writer:
        writer.execute("INSERT INTO people (name) VALUES ('written by a writer')")
        for table in TABLES:
            _refused(writer, f"SELECT * FROM {table}")
            _refused(writer, WRITES[table])
        for call in (*CALLS.values(), OWNER_ONLY):
            _refused(writer, call)
    assert [row[2]["name"] for row in _log(roles, "\"row\"->>'name' = 'written by a writer'")] == [  # type: ignore[index]
        "written by a writer"
    ]


@pytest.mark.parametrize("kind", ["writer", "other"])
def test_forged_events_and_a_preset_huge_id_are_refused(roles: Roles, kind: str) -> None:
    with roles.connect(kind) as conn:
        _refused(conn, FORGED_HUGE_ID)
        _refused(conn, "UPDATE pgevents_event SET id = 900000000000")
        _refused(conn, "UPDATE pgevents_cursor SET value = 900000000000")
    assert _log(roles, "id >= 900000000000") == []


def test_a_temporary_table_cannot_hide_a_writers_events(roles: Roles) -> None:
    with roles.connect("writer") as writer:
        for table in ("pgevents_event", "pgevents_transient"):
            writer.execute(
                f"CREATE TEMP TABLE {table} (seq bigserial, id bigint, prev_id bigint, channel text, op text,"
                ' schema_name text, table_name text, "row" jsonb, old jsonb, at timestamptz)'
            )
        writer.execute("SET search_path = pg_temp, public")
        writer.execute("INSERT INTO people (name) VALUES ('behind a temp table')")
        writer.execute('INSERT INTO notes (body) VALUES (\'{"behind": "a temp table"}\')')
        assert writer.execute("SELECT count(*) FROM pg_temp.pgevents_event").fetchone() == (0,)
        assert writer.execute("SELECT count(*) FROM pg_temp.pgevents_transient").fetchone() == (0,)
    assert len(_log(roles, "\"row\"->>'name' = 'behind a temp table'")) == 1
    with roles.connect("owner") as owner:  # taken here, so no later listener delivers it
        taken = owner.execute('DELETE FROM pgevents_transient RETURNING "row"').fetchall()
    assert taken == [({"id": 1, "body": {"behind": "a temp table"}},)]


def test_a_schema_earlier_on_search_path_cannot_redirect_the_trigger(roles: Roles) -> None:
    with roles.connect("writer") as writer:
        writer.execute(
            "CREATE TABLE evil.pgevents_event (seq bigserial, id bigint, prev_id bigint, channel text, op text,"
            ' schema_name text, table_name text, "row" jsonb, old jsonb, at timestamptz DEFAULT now())'
        )
        # A better match than pg_catalog.to_jsonb(anyelement) for a people row: an unpinned
        # function would call it and log whatever it returns.
        writer.execute(
            "CREATE FUNCTION evil.to_jsonb(public.people) RETURNS jsonb LANGUAGE sql"
            ' AS $$ SELECT \'{"name": "forged"}\'::jsonb $$'
        )
        writer.execute("SET search_path = evil, public")
        assert writer.execute("SELECT to_jsonb(p) FROM people p LIMIT 1").fetchone() == ({"name": "forged"},)
        writer.execute("INSERT INTO people (name, age) VALUES ('through evil', 41)")
        assert writer.execute("SELECT count(*) FROM evil.pgevents_event").fetchone() == (0,)
    (logged,) = _log(roles, "\"row\"->>'age' = '41'")
    assert logged[2]["name"] == "through evil"  # type: ignore[index]


def test_a_schema_earlier_on_search_path_cannot_redirect_the_frame(roles: Roles) -> None:
    """The frame is inlined into its caller's query, so it is resolved on the caller's
    ``search_path``, where ``pg_catalog`` may come after a schema another role controls:
    every name in it is qualified."""
    with roles.connect("writer") as writer:
        writer.execute("INSERT INTO people (name) VALUES ('framed')")
        writer.execute(
            "CREATE FUNCTION evil.to_char(timestamp, text) RETURNS text LANGUAGE sql AS $$ SELECT 'forged' $$"
        )
        writer.execute("CREATE DOMAIN evil.text AS varchar CHECK (VALUE NOT LIKE '{%')")
        writer.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
    frame = "SELECT public.pgevents_frame(e) FROM public.pgevents_event e WHERE \"row\"->>'name' = 'framed'"
    with roles.connect("web") as web:
        (expected,) = web.execute(frame).fetchone() or (None,)
        web.execute("SET search_path = evil, pg_catalog, public")
        # an unqualified name would now be redirected
        assert web.execute("SELECT to_char(now()::timestamp, 'YYYY')").fetchone() == ("forged",)
        with pytest.raises(errors.CheckViolation):
            web.execute("SELECT '{}'::text")
        assert web.execute(frame).fetchone() == (expected,)
    assert json.loads(expected)["row"]["name"] == "framed"
    assert json.loads(expected)["at"].endswith("Z")


def test_a_table_owner_cannot_attach_the_trigger_function_to_its_table(roles: Roles) -> None:
    with roles.connect("tableowner") as owner_of_mine:
        owner_of_mine.execute("CREATE TABLE mine.t (id int)")
        _refused(
            owner_of_mine,
            "CREATE TRIGGER forge AFTER INSERT ON mine.t FOR EACH ROW EXECUTE FUNCTION "
            'public.pgevents_notify(\'{"channel": "sec.staff", "columns": ["id"]}\', \'{id}\', \'{}\')',
        )
    with roles.connect("other") as other:
        _refused(other, "SELECT pgevents_notify()")


def test_a_role_that_can_only_connect_reads_nothing(roles: Roles) -> None:
    with roles.connect("other") as other:
        for table in TABLES:
            _refused(other, f"SELECT * FROM {table}")
        for call in (*CALLS.values(), OWNER_ONLY):
            _refused(other, call)
        # nor can it tell writers the listener is polling (they would skip their wake-ups)
        _refused(other, "SELECT setval('pgevents_wake', pg_backend_pid())")
        _refused(other, "SELECT last_value FROM pgevents_wake")


# -- the listener and the web processes ------------------------------------------------------
def test_the_listener_role_reads_the_log_and_writes_only_through_the_sequencer(roles: Roles) -> None:
    with roles.connect("listener") as listener:
        listener.execute("SELECT id, channel FROM pgevents_event LIMIT 1")
        listener.execute("SELECT name, value FROM pgevents_cursor")
        for call in CALLS.values():
            listener.execute(call)
        for table in TABLES:
            _refused(listener, WRITES[table])
        _refused(listener, FORGED_HUGE_ID)
        _refused(listener, OWNER_ONLY)
        _refused(listener, "SELECT * FROM pgevents_transient")


def test_the_web_role_reads_the_log_and_writes_only_its_presence(roles: Roles) -> None:
    with roles.connect("web") as web:
        web.execute(CALLS["frame"])
        web.execute("SELECT name, value FROM pgevents_cursor")
        web.execute(WRITES["pgevents_presence"])
        web.execute("DELETE FROM pgevents_presence WHERE process = 'forged'")
        for name in ("assign", "prune", "take_transient", "wake", "wake_transient"):
            _refused(web, CALLS[name])
        _refused(web, OWNER_ONLY)
        for table in ("pgevents_event", "pgevents_cursor", "pgevents_transient", "pgevents_watch"):
            _refused(web, WRITES[table])


# -- end to end ------------------------------------------------------------------------------
def test_the_pipeline_runs_with_each_process_holding_only_its_grants(roles: Roles) -> None:
    with Stack(roles.url("web"), listener=False) as stack:
        listener = stack.start_listener(env={"DATABASE_URL": roles.url("listener")})
        # The earlier tests' events are positioned (and forwarded to nobody) before a client comes.
        wait_until(lambda: not _log(roles, "id IS NULL"), 20, what="the listener to catch up")

        async def scenario() -> None:
            async with Client.connect(f"{stack.ws}/ws/pgevents/") as client:
                await client.subscribe("people")
                await client.subscribe("t.notes")
                with roles.connect("writer") as writer:
                    writer.execute("INSERT INTO people (name) VALUES ('e2e first')")
                (first,) = await client.events(1)
                assert first["row"]["name"] == "e2e first" and isinstance(first["id"], int)
                with roles.connect("other") as other:
                    forged = {"channel": "people", "op": "INSERT", "row": {"name": "forged"}}
                    other.execute("SELECT pg_notify('pgevents', %s)", (json.dumps(forged),))
                    other.execute(DEEP_NOTIFY)
                    _refused(other, FORGED_HUGE_ID)
                with roles.connect("writer") as writer:
                    _refused(writer, FORGED_HUGE_ID)
                    writer.execute("INSERT INTO notes (body) VALUES ('{\"a\": [1, 2]}')")
                    writer.execute("INSERT INTO people (name) VALUES ('e2e second')")
                got = {e["channel"]: e for e in await client.events(2)}
                assert got["t.notes"]["id"] is None and got["t.notes"]["row"]["body"] == {"a": [1, 2]}
                assert got["people"]["row"]["name"] == "e2e second"
                assert first["id"] < got["people"]["id"] < 900000000000
                # A fence: neither forged notification became an event (it would have come first).
                with roles.connect("writer") as writer:
                    writer.execute("INSERT INTO people (name) VALUES ('e2e fence')")
                (fence,) = await client.events(1)
                assert fence["row"]["name"] == "e2e fence"
            # Resuming replays from the log through the web role.
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/?last_event_id={first['id'] - 1}") as again:
                await again.expect("subscribed")
                assert [e["row"]["name"] for e in await again.events(2)] == ["e2e first", "e2e second"]

        run(scenario())
        wait_until(lambda: "ignored 1 notification" in listener.output(), 10, what="the ignored notification log")
        assert listener.alive()
        assert stack.daphne is not None
        for output in (listener.output(), stack.daphne.output()):
            assert "Traceback" not in output and "permission denied" not in output, output


def test_migrate_says_when_it_may_not_rebuild_a_watch_and_still_succeeds(roles: Roles) -> None:
    """A watch on a table another role owns: the owner of pgevents' tables may not put
    triggers on it. ``migrate`` (whose own work is done) says so and what to run."""
    with roles.connect("tableowner") as tableowner:
        tableowner.execute("CREATE TABLE mine.kept_apart (id serial PRIMARY KEY, body text)")
    with roles.connect("owner") as owner:
        owner.execute(
            'INSERT INTO pgevents_watch (schema, "table", channel, events, include, exclude, update_columns,'
            " durable, notify, enabled, updated_at) VALUES"
            " ('mine', 'kept_apart', 'demo', '[\"INSERT\"]', '[]', '[]', '[]', true, true, true, now())"
        )
    try:
        out = manage(roles.url("owner"), "migrate", "--noinput")
        (said,) = [line for line in out.splitlines() if line.startswith("pgevents:")]
        assert said.startswith("pgevents: could not bring the watches up to date (permission denied")
        assert said.endswith("run manage.py pgevents_sync.")
    finally:
        with roles.connect("owner") as owner:
            owner.execute("DELETE FROM pgevents_watch WHERE \"table\" = 'kept_apart'")
        with roles.connect("tableowner") as tableowner:
            tableowner.execute("DROP TABLE mine.kept_apart")


def test_a_role_squatting_the_listener_lock_is_named_in_the_log(roles: Roles) -> None:
    """Advisory locks need no privilege: any role can hold the listener's and keep every
    listener standing by. Not preventable; made visible."""
    from pgevents import conf

    key = conf.get().listener_lock
    LOGS.mkdir(parents=True, exist_ok=True)
    with roles.connect("other") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (key,))
        listener = Process(
            "runlisten", [sys.executable, "manage.py", "runlisten"], base_env(roles.url("listener")), LOGS
        )
        try:
            wait_until(lambda: "not a pgevents listener" in listener.output(), 30, what="the warning")
            assert f"role {ROLE['other']}" in listener.output()
            other.execute("SELECT pg_advisory_unlock(%s)", (key,))
            wait_until(lambda: "listener active" in listener.output(), 30, what="the listener to take over")
        finally:
            listener.stop()
