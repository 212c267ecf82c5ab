"""``WatchOptions``: the one description of a watch, and the migration operation built on it."""

from __future__ import annotations

import pytest

from pgevents.core.options import WatchOptions
from pgevents.core.sql import ALL_EVENTS
from pgevents.operations import Watch


def test_defaults_and_normalisation() -> None:
    options = WatchOptions(channel="c", events=["INSERT"], include=["a"], notify_referencing=["books", {"table": "x"}])
    assert options.events == ("INSERT",) and options.include == ("a",)
    assert options.durable is None  # None: PGEVENTS["DURABLE"] decides at install time
    assert options == WatchOptions(
        channel="c", events=("INSERT",), include=("a",), notify_referencing=("books", {"table": "x"})
    )


def test_pick_takes_known_fields_and_keeps_defaults() -> None:
    options = WatchOptions.pick({"channel": "c", "enabled": False, "table": "t", "exclude": ["secret"]})
    assert options == WatchOptions(channel="c", exclude=("secret",))


def test_operation_arguments_round_trip_through_deconstruct() -> None:
    op = Watch(model="shop.Order", channel="orders", exclude=["card_token"], durable=False, events=list(ALL_EVENTS))
    name, args, kwargs = op.deconstruct()
    assert (name, args) == ("pgevents.operations.Watch", [])
    assert kwargs == {"channel": "orders", "model": "shop.Order", "exclude": ["card_token"], "durable": False}
    assert Watch(**kwargs).options == op.options


def test_operation_refuses_unknown_options_and_needs_one_table() -> None:
    with pytest.raises(TypeError, match="colour"):
        Watch(table="t", channel="c", colour="red")
    with pytest.raises(ValueError, match="exactly one"):
        Watch(table="t", model="a.B", channel="c")


def test_operation_resolves_a_model_to_its_table_and_describes_itself() -> None:
    from django.apps import apps
    from django.db.migrations.state import ProjectState

    op = Watch(model="people.Person", channel="people")
    assert op.table_name(ProjectState.from_apps(apps)) == "people"
    assert op.describe() == "Watch people.Person on channel 'people'"
    assert op.migration_name_fragment == "watch_people_person"
    op.state_forwards("people", ProjectState())  # triggers are no part of the model state
