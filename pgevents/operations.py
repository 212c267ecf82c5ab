"""Reversible migration operations: ``pgevents.operations.Watch`` in a user's migration.

operations = [
    pgevents.operations.Watch(table="people", channel="people"),
    pgevents.operations.Watch(model="shop.Order", channel="orders", exclude=["card_token"]),
    pgevents.operations.Watch(table="authors", channel="authors", notify_referencing=["books"]),
]
"""

from __future__ import annotations

from typing import Any

from django.db.migrations.operations.base import Operation

from pgevents.core.options import WatchOptions
from pgevents.core.sql import TriggerSpec
from pgevents.setup import installation


class Watch(Operation):
    """Install triggers that publish a table's changes on ``channel``; reversing removes them.

    ``table=`` or ``model=`` (``"app.Model"``, resolved in the migration's state), and the
    options of ``pgevents.core.options.WatchOptions`` as keyword arguments: ``channel``,
    ``schema``, ``events``, ``include``, ``exclude``, ``durable``, ``notify``,
    ``update_columns``, ``notify_referencing``.
    """

    reversible = True
    reduces_to_sql = True
    elidable = False

    def __init__(self, *, table: str | None = None, model: str | None = None, **options: Any) -> None:
        if (table is None) == (model is None):
            raise ValueError("Watch needs exactly one of table= or model=")
        self.table, self.model = table, model
        self.options = WatchOptions(**options)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        where = {"table": self.table} if self.table is not None else {"model": self.model}
        return ("pgevents.operations.Watch", [], {**self.options.deconstruct(), **where})

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # triggers are database state only

    def table_name(self, state: Any) -> str:
        """The watched table: ``table``, or the table of ``model`` in ``state``."""
        if self.table is not None:
            return self.table
        assert self.model is not None
        app_label, model_name = self.model.split(".")
        return str(state.apps.get_model(app_label, model_name)._meta.db_table)

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        with schema_editor.connection.cursor() as cursor:
            spec = installation.spec(cursor, self.table_name(to_state), self.options)
        for statement in spec.create_statements():
            schema_editor.execute(statement.as_string(None))

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        spec = TriggerSpec(table=self.table_name(from_state), channel=self.options.channel, schema=self.options.schema)
        for statement in spec.drop_statements():
            schema_editor.execute(statement.as_string(None))

    def describe(self) -> str:
        return f"Watch {self.table or self.model} on channel {self.options.channel!r}"

    @property
    def migration_name_fragment(self) -> str:
        return f"watch_{(self.table or self.model or '').replace('.', '_').lower()}"
