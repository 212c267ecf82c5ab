"""Small pure parts: the admin's column field, session checks."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

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


def test_pgevents_serve_names_daphne_target_and_refuses_bad_arguments() -> None:
    from django.core.management import CommandError, call_command

    from pgevents.delivery import serving

    assert serving.daphne_target("demo_project.asgi.application") == "demo_project.asgi:application"
    with pytest.raises(ValueError, match="dotted path"):
        serving.daphne_target("application")
    with pytest.raises(ValueError, match="at least one"):
        serving.Processes("m:app", "127.0.0.1", 0, 0)
    with pytest.raises(CommandError, match="--processes must be at least 1"):
        call_command("pgevents_serve", "--processes", "0")
    with pytest.raises(CommandError, match="ASGI_APPLICATION must be a dotted path"):
        call_command("pgevents_serve", "--application", "nodots")
    assert serving.default_count() >= 1
