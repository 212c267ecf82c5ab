"""Reversible migration operations: ``pgevents.operations.Watch`` in a user's migration.

operations = [
    pgevents.operations.Watch(table="people", channel="people"),
    pgevents.operations.Watch(model="shop.Order", channel="orders", exclude=["card_token"]),
    pgevents.operations.Watch(table="authors", channel="authors", notify_referencing=["books"]),
]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.migrations.operations.base import Operation

from pgevents.core.sql import ALL_EVENTS, TriggerSpec
from pgevents.setup import installation


class Watch(Operation):
    """Install triggers that publish a table's changes on ``channel``; reversing removes them."""

    reversible = True
    reduces_to_sql = True
    elidable = False

    def __init__(
        self,
        *,
        channel: str,
        table: str | None = None,
        model: str | None = None,
        schema: str = "public",
        events: Sequence[str] = ALL_EVENTS,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        durable: bool | None = None,
        notify: bool = True,
        update_columns: Sequence[str] = (),
        notify_referencing: Sequence[str | Mapping[str, Any]] = (),
    ) -> None:
        if (table is None) == (model is None):
            raise ValueError("Watch needs exactly one of table= or model=")
        self.channel, self.table, self.model, self.schema = channel, table, model, schema
        self.events, self.include, self.exclude = list(events), list(include), list(exclude)
        self.durable, self.notify, self.update_columns = durable, notify, list(update_columns)
        self.notify_referencing = [r if isinstance(r, str) else dict(r) for r in notify_referencing]

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"channel": self.channel}
        for name, default in (
            ("table", None),
            ("model", None),
            ("schema", "public"),
            ("events", list(ALL_EVENTS)),
            ("include", []),
            ("exclude", []),
            ("durable", None),
            ("notify", True),
            ("update_columns", []),
            ("notify_referencing", []),
        ):
            value = getattr(self, name)
            if value != default:
                kwargs[name] = value
        return ("pgevents.operations.Watch", [], kwargs)

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # triggers are database state only

    def _table(self, state: Any) -> str:
        if self.table is not None:
            return self.table
        assert self.model is not None
        app_label, model_name = self.model.split(".")
        return str(state.apps.get_model(app_label, model_name)._meta.db_table)

    def options(self, table: str) -> dict[str, Any]:
        """``installation.build_spec`` keyword arguments: the one description of this watch,
        shared by the migration itself and ``pgevents_sync``."""
        return installation.watch_options(self, table)

    def _spec(self, schema_editor: Any, state: Any) -> TriggerSpec:
        with schema_editor.connection.cursor() as cursor:
            return installation.build_spec(cursor, **self.options(self._table(state)))

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        for statement in self._spec(schema_editor, to_state).create_statements():
            schema_editor.execute(statement.as_string(None))

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        spec = TriggerSpec(table=self._table(from_state), channel=self.channel, schema=self.schema)
        for statement in spec.drop_statements():
            schema_editor.execute(statement.as_string(None))

    def describe(self) -> str:
        return f"Watch {self.table or self.model} on channel {self.channel!r}"

    @property
    def migration_name_fragment(self) -> str:
        return f"watch_{(self.table or self.model or '').replace('.', '_').lower()}"
