"""Small pure parts: the admin's column field, session checks."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pgevents.delivery.sessions import still_logged_in
from pgevents.setup.forms import ColumnsField


def test_columns_are_typed_as_a_comma_separated_list() -> None:
    field = ColumnsField(required=False)
    assert field.clean(" a, b ,,c ") == ["a", "b", "c"] and field.clean("") == []
    assert field.prepare_value(["a", "b"]) == "a, b"
    assert field.prepare_value('["a", "b"]') == "a, b"  # the JSON list a redisplayed form holds
    assert field.prepare_value("[not json") == "[not json"


def test_a_connection_without_a_session_is_not_logged_in() -> None:
    assert not asyncio.run(still_logged_in(None, SimpleNamespace(pk=1)))
