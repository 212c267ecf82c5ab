"""What the database should have, what it has, and the steps between (``pgevents_sync``).

Watches are configured in two places: ``pgevents.operations.Watch`` in applied migrations,
and ``Watch`` rows (the admin). Both are read here; when both name the same table and
channel, the admin's row wins (it is the newer, editable definition). Triggers calling
``pgevents_notify()`` that neither configures are *unmanaged* (installed by hand or by a
script): listed, and removed only on request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from django.apps import apps
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from psycopg import sql

from pgevents.core.options import WatchOptions
from pgevents.core.sql import TriggerSpec
from pgevents.setup import installation

Action = Literal["install", "remove", "ok", "error"]


@dataclass
class Configured:
    """One watch as configured, with where it comes from (``admin #3``, ``migration app.0002``)."""

    source: str
    table: str
    options: WatchOptions
    enabled: bool = True

    @property
    def stub(self) -> TriggerSpec:
        """Enough of the spec to name (and drop) the triggers, even if the table is gone."""
        return TriggerSpec(table=self.table, channel=self.options.channel, schema=self.options.schema)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.options.schema, self.table, self.stub.base_name)


@dataclass
class Step:
    action: Action
    source: str
    schema: str
    table: str
    channel: str
    detail: str = ""
    statements: list[sql.Composable] = field(default_factory=list)


def _migration_watches(alias: str) -> Iterator[Configured]:
    from pgevents.operations import Watch as WatchOperation

    loader = MigrationLoader(connections[alias])
    seen: set[tuple[str, str]] = set()
    for leaf in sorted(loader.graph.leaf_nodes()):
        for node in loader.graph.forwards_plan(leaf):
            if node in seen or node not in loader.applied_migrations:
                continue
            seen.add(node)
            for operation in loader.graph.nodes[node].operations:
                if isinstance(operation, WatchOperation):
                    table = operation.table
                    if table is None:
                        try:
                            table = apps.get_model(str(operation.model))._meta.db_table
                        except LookupError:  # the model was deleted by a later migration
                            table = str(operation.model)
                    yield Configured(f"migration {node[0]}.{node[1]}", table, operation.options)


def _admin_watches(alias: str) -> Iterator[Configured]:
    from pgevents.models import Watch

    if Watch._meta.db_table not in connections[alias].introspection.table_names():
        return  # not migrated yet
    for watch in Watch.objects.using(alias).order_by("pk"):
        yield Configured(f"admin #{watch.pk}", watch.table, watch.options(), enabled=watch.enabled)


def configured(alias: str) -> list[Configured]:
    """Every configured watch, one per (schema, table, channel); the admin's row wins."""
    found: dict[tuple[str, str, str], Configured] = {}
    for item in [*_migration_watches(alias), *_admin_watches(alias)]:
        found[item.key] = item
    return list(found.values())


def plan(cursor: Any, watches: list[Configured], *, prune: bool = False) -> list[Step]:
    """The steps that make the database match ``watches`` (``ok`` steps change nothing)."""
    steps: list[Step] = []
    configured_keys = {w.key for w in watches}
    for watch in watches:
        opts = watch.options
        step = Step("ok", watch.source, opts.schema, watch.table, opts.channel)
        steps.append(step)
        if not watch.enabled:
            stub = watch.stub
            if (
                installation.table_exists(cursor, stub.schema, stub.table)
                and installation.trigger_state(cursor, stub) != "missing"
            ):
                step.action, step.detail, step.statements = "remove", "disabled", list(stub.drop_statements())
            else:
                step.detail = "disabled"
            continue
        try:
            spec = installation.spec(cursor, watch.table, opts)
        except installation.WatchError as exc:
            if watch.source.startswith("migration") and not installation.table_exists(cursor, opts.schema, watch.table):
                step.detail = "no table"  # history: a later migration dropped or renamed it
            else:
                step.action, step.detail = "error", str(exc)
            continue
        current = installation.trigger_state(cursor, spec)
        step.detail = current
        if current != "installed":
            step.action, step.statements = "install", list(spec.create_statements())
    for found in installation.installed(cursor):
        if found.key in configured_keys:
            continue
        step = Step("ok", "unmanaged", found.schema, found.table, found.channel, "unmanaged")
        if prune:
            step.action, step.statements = "remove", list(found.drop_statements())
        steps.append(step)
    return steps


def apply(cursor: Any, steps: list[Step]) -> int:
    """Run the steps' statements (the caller holds the transaction); returns how many changed."""
    changed = 0
    for step in steps:
        if step.action in ("install", "remove"):
            for statement in step.statements:
                cursor.execute(statement.as_string(None))
            changed += 1
    return changed


def after_migrate(*, using: str, verbosity: int = 1, stdout: Any = None, **kwargs: Any) -> None:
    """``post_migrate`` receiver: bring the watches up to date with the tables just migrated.

    A watch's triggers carry the columns it sends, decided when they were built, so a column
    added by a migration is sent only once this has rebuilt them (and a sensitive-looking one
    not even then). Runs after ``migrate`` only (``flush`` sends the same signal without a
    plan), on the database pgevents uses, once pgevents' own migrations are applied. A watch
    that cannot be installed is reported, never fatal: ``migrate`` must not be blocked by it.
    """
    from django.db import DatabaseError, transaction

    from pgevents import conf

    if kwargs.get("plan") is None or using != conf.get().database:
        return
    out = stdout.write if stdout is not None else print
    try:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SELECT to_regproc('pgevents_take_transient') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return  # pgevents' tables and functions are not (or no longer) there
            steps = plan(cursor, configured(using))
            changed = apply(cursor, steps)
    except DatabaseError as exc:
        out(f"pgevents: could not bring the watches up to date ({exc}); run manage.py pgevents_sync.")
        return
    for step in steps:
        where = f"{step.schema}.{step.table} → {step.channel} ({step.source})"
        if step.action == "error":
            out(f"pgevents: watch {where} cannot be installed: {step.detail}")
        elif step.action in ("install", "remove") and verbosity >= 1:
            out(f"pgevents: {'updated' if step.action == 'install' else 'removed'} the triggers of {where}")
    if changed and verbosity >= 1:
        out(f"pgevents: {changed} watch(es) brought up to date.")
