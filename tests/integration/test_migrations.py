"""The app's migrations run the SQL of their own version, frozen in ``pgevents/migrations/sql``."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from psycopg import sql as pgsql

from pgevents.core import sql
from tests.support import manage

FROZEN = Path(sql.__file__).resolve().parent.parent / "migrations" / "sql"

#: The files of released migrations never change: a new version is a new migration.
DIGESTS = {
    "0001_initial.reverse.sql": "3fdb55898933cc02",
    "0001_initial.sql": "69eac5cb67f58448",
    "0002_notify_referencing.sql": "a6e02f2ca5b4a58b",
    "0003_watch_presence.reverse.sql": "6973955115339a0c",
    "0003_watch_presence.sql": "192f0a820d6626e5",
    "0004_least_privilege.reverse.sql": "1885f1387565fe1b",
    "0004_least_privilege.sql": "6dacab71e7d74e54",
    "0006_sequencer_custom_plans.reverse.sql": "54601fb441df5cdc",
    "0006_sequencer_custom_plans.sql": "02f8229a3c5a6f25",
    "0007_wake_handover.reverse.sql": "47b7a7147c3c3edf",
    "0007_wake_handover.sql": "3deb016f5c214002",
    "0008_lean_log.reverse.sql": "3bde42c2e7ac6089",
    "0008_lean_log.sql": "bba1d10ec5f98397",
    "0009_sequencer_one_plan.reverse.sql": "1e876223a1c02d70",
    "0009_sequencer_one_plan.sql": "c58f4af2678cff1f",
    "0010_transient_handover.reverse.sql": "05ccb7c92788ba38",
    "0010_transient_handover.sql": "86063671661fd4f5",
    "0011_sequencer_lean_call.reverse.sql": "e01f547b76c01415",
    "0011_sequencer_lean_call.sql": "82b5defcc0b32366",
    "0012_lean_trigger.reverse.sql": "ec4ba7699f3a1b4f",
    "0012_lean_trigger.sql": "0efdd10dfe3b5f95",
}


def sqlmigrate(name: str, backwards: bool = False) -> str:
    out = io.StringIO()
    call_command("sqlmigrate", "pgevents", name, backwards=backwards, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_each_migration_prints_the_function_of_its_own_version() -> None:
    assert "IS 'pgevents v1'" in sqlmigrate("0001") and "referencing" not in sqlmigrate("0001")
    assert "IS 'pgevents v2'" in sqlmigrate("0002") and "referencing" in sqlmigrate("0002")
    v3 = sqlmigrate("0004")
    assert "IS 'pgevents v3'" in v3 and "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in v3


@pytest.mark.django_db
def test_going_back_from_v3_restores_the_v2_functions_as_0001_and_0002_made_them() -> None:
    backwards = sqlmigrate("0004", backwards=True)
    assert "DROP TABLE IF EXISTS pgevents_transient" in backwards
    assert "IS 'pgevents v2'" in backwards and "SECURITY DEFINER" not in backwards


@pytest.mark.django_db
def test_the_sequencer_forces_custom_plans_and_going_back_resets_it() -> None:
    assert "SET plan_cache_mode = force_custom_plan" in sqlmigrate("0006")
    assert "RESET plan_cache_mode" in sqlmigrate("0006", backwards=True)


@pytest.mark.django_db
def test_the_sequencer_plans_once_through_the_indexes_and_going_back_restores_custom_plans() -> None:
    forward, backwards = sqlmigrate("0009"), sqlmigrate("0009", backwards=True)
    assert "SET plan_cache_mode = force_generic_plan SET enable_seqscan = off" in forward
    assert "SET plan_cache_mode = force_custom_plan" in backwards and "force_generic_plan" not in backwards


@pytest.mark.django_db
def test_the_wake_up_hand_over_keeps_the_trigger_interface_and_going_back_restores_v3() -> None:
    forward, backwards = sqlmigrate("0007"), sqlmigrate("0007", backwards=True)
    assert "pgevents_wake" in forward and "pg_try_advisory_xact_lock_shared" in forward
    assert "DROP SEQUENCE IF EXISTS" in backwards and "pg_try_advisory_xact_lock_shared" not in backwards
    assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in backwards


@pytest.mark.django_db
def test_the_non_durable_hand_over_keeps_the_trigger_interface_and_going_back_restores_0008() -> None:
    forward, backwards = sqlmigrate("0010"), sqlmigrate("0010", backwards=True)
    assert "pgevents_wake_transient" in forward and "pgevents_wake(busy boolean, transient boolean)" in forward
    assert "IS 'pgevents v" not in forward  # installed triggers stay current
    assert "DROP FUNCTION IF EXISTS" in backwards and "DROP SEQUENCE IF EXISTS" in backwards
    assert "PERFORM pg_notify('pgevents', 't');" in backwards  # 0008's: every non-durable commit wakes
    assert "LANGUAGE sql SECURITY DEFINER" in backwards  # 0004's take_transient


@pytest.mark.django_db
def test_the_lean_trigger_keeps_the_interface_and_going_back_restores_0010() -> None:
    forward, backwards = sqlmigrate("0012"), sqlmigrate("0012", backwards=True)
    assert "pg_sequence_last_value" in forward and "SELECT last_value FROM" not in forward
    assert "IS 'pgevents v" not in forward  # installed triggers stay current
    assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in forward
    assert "REVOKE ALL ON FUNCTION" in forward and "pgevents_only_keys(jsonb, text[]) FROM PUBLIC" in forward
    assert "sample := (SELECT to_jsonb(r) FROM pgevents_new r LIMIT 1);" in backwards  # 0010's
    assert "DROP FUNCTION IF EXISTS" in backwards and "pg_sequence_last_value" not in backwards


def test_the_helper_of_the_trigger_function_is_the_owner_s_alone(pg: psycopg.Connection) -> None:
    may = "SELECT has_function_privilege(%s, 'pgevents_only_keys(jsonb, text[])', 'EXECUTE')"
    assert pg.execute(may, ("public",)).fetchone() == (False,)
    keep = "SELECT pgevents_only_keys(%s::jsonb, %s::text[])"
    assert pg.execute(keep, ('{"a": 1, "b": 2, "c": 3}', ["a", "c", "d"])).fetchone() == ({"a": 1, "c": 3},)
    assert pg.execute(keep, ('{"b": 2}', ["a"])).fetchone() == ({},)


def test_whoever_may_say_the_listener_polls_may_say_it_for_non_durable_rows_too(isolated_db: str) -> None:
    """A role granted ``pgevents_wake(boolean)`` before 0010 (a listener's role) may run the
    two-argument form after it, without new grants; ``PUBLIC`` may not."""
    role = f"pgevents_listener_{os.getpid()}"
    manage(isolated_db, "migrate", "pgevents", "0009_sequencer_one_plan", "--noinput", "-v", "0")
    with psycopg.connect(isolated_db, autocommit=True) as owner:
        owner.execute(pgsql.SQL("CREATE ROLE {}").format(pgsql.Identifier(role)))
        try:
            owner.execute(
                pgsql.SQL("GRANT EXECUTE ON FUNCTION pgevents_wake(boolean) TO {}").format(pgsql.Identifier(role))
            )
            manage(isolated_db, "migrate", "--noinput", "-v", "0")
            may = "SELECT has_function_privilege(%s, 'pgevents_wake(boolean, boolean)', 'EXECUTE')"
            assert owner.execute(may, (role,)).fetchone() == (True,)
            assert owner.execute(may, ("public",)).fetchone() == (False,)
        finally:
            owner.execute(pgsql.SQL("DROP OWNED BY {}").format(pgsql.Identifier(role)))
            owner.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(role)))


def test_frozen_sql_files_are_unchanged() -> None:
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(FROZEN.glob("*.sql"))}
    assert {name: found.get(name) for name in DIGESTS} == DIGESTS


def test_the_migrated_function_is_the_version_the_code_expects(pg: psycopg.Connection) -> None:
    row = pg.execute("SELECT obj_description('pgevents_notify()'::regprocedure, 'pg_proc')").fetchone()
    assert row == (f"pgevents v{sql.SCHEMA_VERSION}",)


def test_a_logged_row_is_written_into_the_pending_index_only(pg: psycopg.Connection) -> None:
    """0008: no ``seq`` primary key and no index entry for a pending row's NULL ``id``; ids
    stay unique among positioned rows."""
    indexes = pg.execute(
        "SELECT indexrelid::regclass::text, indisunique, pg_get_expr(indpred, indrelid)"
        " FROM pg_index WHERE indrelid = 'pgevents_event'::regclass ORDER BY 1"
    ).fetchall()
    assert indexes == [
        ("pgevents_event_channel_id", False, "(id IS NOT NULL)"),
        ("pgevents_event_id", True, "(id IS NOT NULL)"),
        ("pgevents_event_pending", False, "(id IS NULL)"),
    ]
    with pg.transaction(force_rollback=True):
        pg.execute("INSERT INTO pgevents_event (channel, id) VALUES ('a', -1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            pg.execute("INSERT INTO pgevents_event (channel, id) VALUES ('b', -1)")
