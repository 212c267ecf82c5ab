"""The admin's Watch form: the table is picked from the database's real tables.

Tables come from ``pg_catalog`` (so tables no Django model maps are offered too); columns are
typed as comma-separated names and checked against the real table before anything is saved.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connections, router

from pgevents.core.names import BadChannel, validate_channel
from pgevents.core.options import WatchOptions
from pgevents.core.sql import ALL_EVENTS
from pgevents.models import Watch
from pgevents.setup import installation


class ColumnsField(forms.CharField):
    """A list of column names typed as ``a, b, c``."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(value)
        if isinstance(value, str) and value.startswith("["):  # a JSON list, when the form is redisplayed
            try:
                return ", ".join(json.loads(value))
            except ValueError:
                return value
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [name.strip() for name in text.split(",") if name.strip()]


def _mapped_tables() -> dict[str, str]:
    return {model._meta.db_table: model._meta.label for model in apps.get_models()}


class WatchForm(forms.ModelForm):  # type: ignore[type-arg]
    relation = forms.ChoiceField(label="Table", help_text="Every table of the database, mapped by a model or not.")
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in ALL_EVENTS], widget=forms.CheckboxSelectMultiple, initial=list(ALL_EVENTS)
    )
    include = ColumnsField(required=False, help_text="Send only these columns, comma-separated (empty: all).")
    exclude = ColumnsField(required=False, help_text="Never send these columns, comma-separated.")
    update_columns = ColumnsField(
        required=False,
        label="Only when these change",
        help_text="UPDATEs fire only when one of these columns changes, comma-separated (empty: when the row changes).",
    )

    class Meta:
        model = Watch
        fields = ["channel", "events", "include", "exclude", "update_columns", "durable", "notify", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alias = router.db_for_write(Watch, instance=self.instance)
        with connections[self.alias].cursor() as cursor:
            found = installation.tables(cursor)
            columns = (
                installation.table_columns(cursor, self.instance.schema, self.instance.table)
                if self.instance.pk
                else []
            )
        current = (self.instance.schema, self.instance.table) if self.instance.pk else None
        if current and current not in found:
            found.append(current)  # shown (and refused on save) when the table was dropped
        mapped = _mapped_tables()
        relation = self.fields["relation"]
        assert isinstance(relation, forms.ChoiceField)
        relation.choices = [("", "---------")] + [
            (json.dumps([schema, table]), self._label(schema, table, mapped)) for schema, table in found
        ]
        if current:
            self.initial["relation"] = json.dumps(list(current))
        if columns:
            self.fields["include"].help_text += f" Columns: {', '.join(columns)}."

    @staticmethod
    def _label(schema: str, table: str, mapped: dict[str, str]) -> str:
        model = mapped.get(table) if schema == "public" else None
        return f"{schema}.{table}" + (f" ({model})" if model else "")

    def clean_channel(self) -> str:
        try:
            return validate_channel(self.cleaned_data["channel"])
        except BadChannel as exc:
            raise ValidationError(str(exc))

    def clean_events(self) -> list[str]:
        chosen = self.cleaned_data.get("events") or []
        return [e for e in ALL_EVENTS if e in chosen]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            schema, table = json.loads(data.get("relation") or "null") or (None, None)
        except ValueError:
            schema = table = None
        if not isinstance(schema, str) or not isinstance(table, str):
            self.add_error("relation", "Pick a table.")
            return data
        self.instance.schema, self.instance.table = schema, table
        if self.errors:
            return data
        taken = Watch.objects.using(self.alias).filter(schema=schema, table=table, channel=data["channel"])
        if taken.exclude(pk=self.instance.pk).exists():
            raise ValidationError(f"{schema}.{table} is already watched on channel {data['channel']!r}.")
        options = WatchOptions.pick({**data, "schema": schema})  # what is not on the form keeps its default
        with connections[self.alias].cursor() as cursor:
            try:
                installation.spec(cursor, table, options)
            except (installation.WatchError, ValueError) as exc:
                raise ValidationError(str(exc))
        return data
