"""``pgevents_sync`` on a database of its own: configured state reached, second run a no-op."""

from __future__ import annotations

import json
import subprocess

import psycopg

from tests.support import manage, run_manage


def pgevents_triggers(conn: psycopg.Connection) -> list[tuple[str, str, int, str]]:
    """(table, trigger, oid, comment): a re-created trigger gets a new oid."""
    rows = conn.execute(
        "SELECT c.relname, t.tgname, t.oid::int, obj_description(t.oid, 'pg_trigger') FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE p.proname = 'pgevents_notify' ORDER BY 1, 2"
    ).fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_sync_brings_a_fresh_database_to_the_configured_state(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    pg = iso_pg
    # A deploy: watches restored as rows (a dump, loaddata: save() never ran), the migration's
    # triggers lost, one trigger nobody configures.
    pg.execute("CREATE TABLE invoices (id serial PRIMARY KEY, total int, password text)")
    pg.execute("CREATE TABLE old_stuff (id int)")
    pg.execute(
        'INSERT INTO pgevents_watch (schema, "table", channel, events, include, exclude, update_columns,'
        " durable, notify, enabled, updated_at) VALUES"
        " ('public', 'invoices', 'books', '[\"INSERT\", \"UPDATE\"]', '[]', '[]', '[\"total\"]', true, true, true, now()),"
        " ('public', 'old_stuff', 'demo', '[\"INSERT\"]', '[]', '[]', '[]', true, true, false, now())"
    )
    for name, table in pg.execute(
        "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE 'pgevents%' AND tgrelid = 'people'::regclass"
    ).fetchall():
        pg.execute(f'DROP TRIGGER "{name}" ON {table}')
    with pg.cursor() as cur:
        from pgevents.core.sql import TriggerSpec

        for statement in TriggerSpec(table="old_stuff", channel="chat").create_statements():
            cur.execute(statement)
    listed = manage(isolated_db, "pgevents_sync", "--list").splitlines()
    # the demo's library watches were never touched
    assert [line for line in listed if "library." in line] == [
        "installed  public.books → books  [migration library.0002_watch]",
        "installed  public.authors → authors  [migration library.0002_watch]",
    ]
    assert [line for line in listed if "library." not in line] == [
        "missing    public.people → people  [migration people.0001_people]  (would install)",
        "missing    public.invoices → books  [admin #1]  (would install)",
        "disabled   public.old_stuff → demo  [admin #2]",
        "unmanaged  public.old_stuff → chat  [unmanaged]",
    ]

    before = pgevents_triggers(pg)
    dry = manage(isolated_db, "pgevents_sync", "--dry-run")
    assert "-- install public.invoices → books (admin #1)" in dry
    assert 'CREATE TRIGGER "pgevents_' in dry and 'ON "public"."invoices"' in dry
    assert pgevents_triggers(pg) == before  # a dry run changes nothing

    out = manage(isolated_db, "pgevents_sync")
    assert out.splitlines()[-1] == "2 changed, 4 unchanged."
    synced = pgevents_triggers(pg)
    assert sorted({table for table, *_ in synced}) == ["authors", "books", "invoices", "old_stuff", "people"]
    # people: INSERT, DELETE, UPDATE, TRUNCATE
    assert len([t for t in synced if t[0] == "people"]) == 4 and len([t for t in synced if t[0] == "invoices"]) == 2
    config = pg.execute(
        "SELECT DISTINCT convert_from(substring(tgargs FROM 1 FOR position('\\x00'::bytea IN tgargs) - 1), 'UTF8')"
        " FROM pg_trigger WHERE tgrelid = 'invoices'::regclass"
    ).fetchone()
    assert config is not None and json.loads(config[0])["columns"] == ["id", "total"]  # not password

    # idempotent: the second run changes nothing (same trigger oids)
    assert manage(isolated_db, "pgevents_sync").splitlines() == ["0 changed, 6 unchanged."]
    assert manage(isolated_db, "pgevents_sync", "--dry-run").strip() == "-- nothing to do"
    assert pgevents_triggers(pg) == synced
    listing = manage(isolated_db, "pgevents_sync", "--list")
    assert "installed  public.invoices → books  [admin #1]" in listing

    # --prune removes what nobody configures
    assert "removed public.old_stuff → chat (unmanaged)" in manage(isolated_db, "pgevents_sync", "--prune")
    assert [t[0] for t in pgevents_triggers(pg)].count("old_stuff") == 0
    assert manage(isolated_db, "pgevents_sync", "--prune").splitlines() == ["0 changed, 5 unchanged."]


def test_sync_reports_a_watch_on_a_missing_table_changes_the_rest_and_fails(
    isolated_db: str, iso_pg: psycopg.Connection
) -> None:
    iso_pg.execute(
        'INSERT INTO pgevents_watch (schema, "table", channel, events, include, exclude, update_columns,'
        " durable, notify, enabled, updated_at) VALUES"
        " ('public', 'gone', 'demo', '[\"INSERT\"]', '[]', '[]', '[]', true, true, true, now())"
    )
    dropped = pgevents_triggers(iso_pg)[0]
    iso_pg.execute(f'DROP TRIGGER "{dropped[1]}" ON "{dropped[0]}"')  # drift a healthy watch too

    def sync(*args: str) -> subprocess.CompletedProcess[str]:
        return run_manage(isolated_db, "pgevents_sync", *args)

    for preview in ("--list", "--dry-run"):  # previews fail the same way, and change nothing
        result = sync(preview)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "1 watch(es) could not be installed" in result.stderr
    assert dropped not in pgevents_triggers(iso_pg)

    result = sync()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error  public.gone → demo (admin #1): table public.gone does not exist" in result.stderr
    assert "CommandError: 1 watch(es) could not be installed" in result.stderr
    assert result.stdout.splitlines()[-1] == "1 changed, 2 unchanged, 1 in error."
    assert dropped[:2] in [t[:2] for t in pgevents_triggers(iso_pg)]  # the healthy watch was repaired


def test_migrate_reports_a_watch_it_cannot_install_and_still_succeeds(
    isolated_db: str, iso_pg: psycopg.Connection
) -> None:
    """``migrate`` brings the watches up to date when it ends; one it cannot install is said,
    and the migration is not undone for it."""
    iso_pg.execute(
        'INSERT INTO pgevents_watch (schema, "table", channel, events, include, exclude, update_columns,'
        " durable, notify, enabled, updated_at) VALUES"
        " ('public', 'people', 'demo', '[\"INSERT\"]', '[\"nickname\"]', '[]', '[]', true, true, true, now())"
    )
    out = manage(isolated_db, "migrate", "--noinput")
    assert "pgevents: watch public.people → demo (admin #" in out
    assert "cannot be installed: table public.people has no column(s) nickname" in out


def test_sync_keeps_every_option_of_a_migration_watch(isolated_db: str) -> None:
    """Right after ``migrate`` every migration watch is installed as sync would install it,
    including options such as ``notify_referencing`` (a sync must never "repair" them away)."""
    listed = manage(isolated_db, "pgevents_sync", "--list").splitlines()
    migration_lines = [line for line in listed if "[migration" in line]
    assert migration_lines and all(line.startswith("installed") for line in migration_lines), listed
