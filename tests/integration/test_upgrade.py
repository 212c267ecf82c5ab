"""An installation made by the previous schema version (v2, migrations up to 0003) upgraded
with ``migrate``: its triggers keep working, ``migrate`` rebuilds the configured ones, the
write rights writers needed before are taken back — and going back to 0003 works too."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors
from psycopg import sql as psql

from pgevents.core.sql import TriggerSpec
from pgevents.setup import installation
from tests.support import manage

WRITER = "pgev_{}_upgrade".format(hashlib.sha256(os.environ.get("PGEVENTS_TEST_DB", "").encode()).hexdigest()[:6])

# Triggers as v2 installed them: one JSON argument, include/exclude in it.
LEGACY = """
CREATE TABLE legacy (id serial PRIMARY KEY, name text, secret_token text);
CREATE TABLE fleeting (id serial PRIMARY KEY, name text, secret_token text);
CREATE TRIGGER {legacy} AFTER INSERT ON legacy FOR EACH ROW
    EXECUTE FUNCTION pgevents_notify('{{"channel": "legacy", "durable": true, "exclude": ["secret_token"], "notify": true}}');
COMMENT ON TRIGGER {legacy} ON legacy IS 'pgevents:0123456789abcdef';
CREATE TRIGGER pgevents_fleeting_r AFTER INSERT ON fleeting FOR EACH ROW
    EXECUTE FUNCTION pgevents_notify('{{"channel": "fleeting", "durable": false, "exclude": ["secret_token"]}}');
INSERT INTO pgevents_watch (schema, "table", channel, events, include, exclude, update_columns,
                            durable, notify, enabled, updated_at)
VALUES ('public', 'legacy', 'legacy', '["INSERT"]', '[]', '["secret_token"]', '[]', true, true, true, now());
"""


@pytest.fixture
def v2_database(db_url: str) -> Iterator[str]:
    base, _, name = db_url.rpartition("/")
    database = f"{name.partition('?')[0]}_upgrade"[:63]
    admin = f"{base}/postgres"

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psql.Identifier(database)))
            conn.execute(psql.SQL("DROP ROLE IF EXISTS {}").format(psql.Identifier(WRITER)))

    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psql.SQL("CREATE DATABASE {}").format(psql.Identifier(database)))
        conn.execute(psql.SQL("CREATE ROLE {} LOGIN").format(psql.Identifier(WRITER)))
    url = f"{base}/{database}"
    try:
        manage(url, "migrate", "pgevents", "0003_watch_presence", "--noinput", "-v", "0")
        with psycopg.connect(url, autocommit=True) as conn:
            # named as v2 named them (the same scheme as now)
            name = TriggerSpec(table="legacy", channel="legacy").base_name + "_r"
            conn.execute(psql.SQL(LEGACY).format(legacy=psql.Identifier(name)))
            writer = psql.Identifier(WRITER)
            # What the v2 documentation made writers need: INSERT on the log.
            conn.execute(psql.SQL("GRANT INSERT ON pgevents_event TO {}").format(writer))
            conn.execute(psql.SQL("GRANT USAGE ON SEQUENCE pgevents_event_seq_seq TO {}").format(writer))
            conn.execute(psql.SQL("GRANT INSERT ON legacy, fleeting TO {}").format(writer))
            conn.execute(psql.SQL("GRANT USAGE ON SEQUENCE legacy_id_seq, fleeting_id_seq TO {}").format(writer))
        yield url
    finally:
        drop()


def test_a_watch_built_by_this_version_under_the_v2_function_hides_what_it_hides(v2_database: str) -> None:
    """A project migration with a Watch can run before pgevents' 0004 (it depends on 0001):
    its triggers, built by this version, run under the v2 function until 0004 replaces it."""
    with psycopg.connect(v2_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE early (id serial PRIMARY KEY, name text, api_token text)")
        with conn.cursor() as cur:
            installation.install(cur, installation.build_spec(cur, table="early", channel="early"))
        conn.execute("INSERT INTO early (name, api_token) VALUES ('a', 'secret')")
        assert conn.execute("SELECT \"row\" FROM pgevents_event WHERE channel = 'early'").fetchall() == [
            ({"id": 1, "name": "a"},)
        ]


def test_migrate_upgrades_a_v2_installation_and_back(v2_database: str) -> None:
    url = v2_database
    writer_url = url.replace("postgres@", f"{WRITER}@", 1)
    with psycopg.connect(writer_url, autocommit=True) as writer:
        writer.execute("INSERT INTO pgevents_event (channel) VALUES ('forged before the upgrade')")

    out = manage(url, "migrate", "--noinput")
    assert "pgevents: updated the triggers of public.legacy → legacy (admin #1)" in out

    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT obj_description('pgevents_notify()'::regprocedure, 'pg_proc'), p.prosecdef"
            " FROM pg_proc p WHERE p.oid = 'pgevents_notify()'::regprocedure"
        ).fetchone() == ("pgevents v4", True)
        # migrate rebuilt the configured watch with the columns it sends...
        assert conn.execute(
            "SELECT tgnargs FROM pg_trigger WHERE tgrelid = 'legacy'::regclass AND NOT tgisinternal"
        ).fetchall() == [(3,)]
        # ...and left the unmanaged v2 trigger as it was (pgevents_sync --prune would remove it)
        assert conn.execute(
            "SELECT tgnargs FROM pg_trigger WHERE tgrelid = 'fleeting'::regclass AND NOT tgisinternal"
        ).fetchall() == [(1,)]

    with psycopg.connect(writer_url, autocommit=True) as writer:
        with pytest.raises(errors.InsufficientPrivilege):  # the v2 grant is taken back
            writer.execute("INSERT INTO pgevents_event (channel) VALUES ('forged after the upgrade')")
        writer.execute("INSERT INTO legacy (name, secret_token) VALUES ('after', 's')")
        writer.execute("INSERT INTO fleeting (name, secret_token) VALUES ('after', 's')")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT \"row\" FROM pgevents_event WHERE channel = 'legacy'").fetchall() == [
            ({"id": 1, "name": "after"},)
        ]
        # the v2 trigger of a non-durable watch now writes the transient table, with its exclusions
        assert conn.execute('SELECT channel, "row" FROM pgevents_transient').fetchall() == [
            ("fleeting", {"id": 1, "name": "after"})
        ]
        conn.execute("ALTER TABLE legacy ADD COLUMN nickname text, ADD COLUMN api_token text")

    # An ordinary column addition: the next migrate sends it (not the sensitive one).
    assert "updated the triggers of public.legacy" in manage(url, "migrate", "--noinput")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO legacy (name, secret_token, nickname, api_token) VALUES ('later', 's', 'n', 't')")
        assert conn.execute("SELECT \"row\" FROM pgevents_event WHERE \"row\"->>'name' = 'later'").fetchall() == [
            ({"id": 2, "name": "later", "nickname": "n"},)
        ]

    manage(url, "migrate", "pgevents", "0003_watch_presence", "--noinput", "-v", "0")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT obj_description('pgevents_notify()'::regprocedure, 'pg_proc'), p.prosecdef, p.proconfig"
            " FROM pg_proc p WHERE p.oid = 'pgevents_notify()'::regprocedure"
        ).fetchone() == ("pgevents v2", False, None)
        assert conn.execute("SELECT to_regclass('pgevents_transient')").fetchone() == (None,)
        conn.execute("INSERT INTO legacy (name) VALUES ('back on v2')")  # v3 triggers under the v2 function
        assert conn.execute("SELECT count(*) FROM pgevents_event WHERE \"row\"->>'name' = 'back on v2'").fetchone() == (
            1,
        )
    manage(url, "migrate", "--noinput", "-v", "0")  # and forwards again
