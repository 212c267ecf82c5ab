"""Pure pieces of "nothing silent": process identity, the pipeline's rules, hints, descriptions."""

from __future__ import annotations

import asyncio
import os
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from django.core import checks
from django.test import override_settings
from django.utils.functional import SimpleLazyObject

from pgevents import checks as pgchecks
from pgevents.capture import startup
from pgevents.core import identity, names
from pgevents.delivery import sessions
from pgevents.delivery.pipeline import Pipeline
from pgevents.testing.html import parse


def test_application_names_carry_host_and_pid_within_63_bytes() -> None:
    name = identity.application_name("pgevents-listener")
    role, host, pid = identity.parse_application_name(name)
    assert (role, pid) == ("pgevents-listener", os.getpid()) and host and socket.gethostname().startswith(host)
    assert len(name.encode()) <= 63
    long = identity.application_name("pgevents-embedded", "h" * 200 + ":4194304")
    assert len(long.encode()) == 63 and long.endswith(":4194304")  # the host is cut, never the pid
    assert identity.parse_application_name(long) == ("pgevents-embedded", "h" * 37, 4194304)
    assert identity.parse_application_name("pgevents-listener") == ("pgevents-listener", None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pipeline_states_follow_heartbeats_lag_and_the_layer() -> None:
    clock = Clock()
    pipeline = Pipeline(timeout=10, clock=clock)
    assert pipeline.state == "ok" and not pipeline.evaluate()  # a grace period after start
    clock.now += 10.5
    assert pipeline.evaluate() and pipeline.state == "no_listener"
    assert pipeline.frame() == '{"type":"pipeline","state":"no_listener","lag":null}'
    pipeline.heard({"listener": "h:1", "lag": 0.0})
    assert pipeline.evaluate() and pipeline.state == "ok"
    pipeline.heard({"listener": "h:1", "lag": 12.5})  # alive, but far behind
    assert pipeline.evaluate() and pipeline.state == "stalled"
    assert pipeline.frame() == '{"type":"pipeline","state":"stalled","lag":12.5}'
    pipeline.heard({"listener": "h:1", "lag": 0})
    assert pipeline.evaluate() and pipeline.state == "ok"
    clock.now += 5
    assert not pipeline.evaluate(layer_ok=False)  # a layer blip: repaired from the log, not shown
    clock.now += 5.5
    assert pipeline.evaluate(layer_ok=False) and pipeline.state == "stalled"
    pipeline.heard({"listener": "h:2", "lag": 0})
    assert pipeline.evaluate(layer_ok=True) and pipeline.state == "ok"


def test_a_pattern_that_misses_its_base_name_is_explained() -> None:
    assert (
        names.near_miss("orders", ("people", "orders.*"))
        == "'orders.*' admits 'orders.something', not 'orders' itself."
    )
    assert names.near_miss("orders", ("people",)) == ""


def test_layer_descriptions_hide_passwords() -> None:
    config: dict[str, Any] = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://:s3cret@cache:6379/1", {"address": "redis://u:pw@r2:6380"}, ("r3", 6379)]},
    }
    described = startup.layer_description("default", config)
    assert "s3cret" not in described and "pw@" not in described
    assert described == (
        "'default' (channels_redis.core.RedisChannelLayer at redis://:***@cache:6379/1, redis://u:***@r2:6380, r3:6379)"
    )


def test_migration_watches_on_channels_nobody_may_subscribe_to_are_reported() -> None:
    """pgevents.W005, from the migration files alone: the demo's library watches authors and books."""
    assert checks.Tags.models in pgchecks.check_watch_channels.tags  # type: ignore[attr-defined]
    assert pgchecks.check_watch_channels in checks.registry.registry.get_checks()
    with override_settings(PGEVENTS={"CHANNELS": ["people", "authors", "books"]}):
        assert pgchecks.check_watch_channels() == []
    with override_settings(PGEVENTS={"CHANNELS": ["people", "books.*"]}):
        found = pgchecks.check_watch_channels()
    assert {m.id for m in found} == {"pgevents.W005"}
    by_channel = {m.msg.split("channel ")[1].split(",")[0]: m for m in found}
    assert set(by_channel) == {"'authors'", "'books'"}
    assert "library.0002_watch" in by_channel["'books'"].msg
    assert "'books.*' admits 'books.something', not 'books' itself." in (by_channel["'books'"].hint or "")


@pytest.mark.parametrize(
    ("markup", "inner"),
    [
        (
            '<ul id="a"><li data-x="1">a &amp; b</li><li>c<br>d</li></ul>',
            '<li data-x="1">a &amp; b</li><li>c<br>d</li>',
        ),
        ('<table><tbody id="a"><tr><td>x</td></tr></tbody></table>', "<tr><td>x</td></tr>"),
        ('<div id="a"><p>unclosed</div>', "<p>unclosed</p>"),
    ],
)
def test_the_test_helpers_read_html_as_written(markup: str, inner: str) -> None:
    found = parse(markup).find_id("a")
    assert found is not None and found.inner_html() == inner


def test_server_process_names_give_host_and_pid() -> None:
    assert identity.parse_process("web-1:4242:7f3a") == ("web-1", 4242)
    assert identity.parse_process("web-1") == ("web-1", None)


class SilentLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """Accepts every message and never delivers one (a layer that does not answer)."""

    async def receive(self, channel: str) -> Any:
        await asyncio.Event().wait()


class CrossedLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """Delivers another message than the one sent (a layer shared with something else)."""

    async def receive(self, channel: str) -> Any:
        await super().receive(channel)
        return {"type": "something.else"}


class RefusingLayer(InMemoryChannelLayer):  # type: ignore[misc]
    async def new_channel(self, prefix: str = "specific.") -> str:
        raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 6390).")


@pytest.mark.parametrize(
    ("layer", "said"),
    [
        (SilentLayer(), "no answer within 0s"),
        (CrossedLayer(), "the round trip returned another message ('something.else')"),
        (RefusingLayer(), "ConnectionRefusedError: Connect call failed ('127.0.0.1', 6390)"),
    ],
    ids=["silent", "crossed", "refused"],
)
def test_the_start_up_round_trip_says_what_went_wrong(layer: InMemoryChannelLayer, said: str) -> None:
    with pytest.raises(startup.LayerUnavailable) as error:
        asyncio.run(startup.check_layer(layer, timeout=0.2))
    assert str(error.value) == said
    asyncio.run(startup.check_layer(InMemoryChannelLayer(), timeout=5))  # and a working one passes


def test_the_sse_view_finds_the_user_with_and_without_auser() -> None:
    """Django 5 requests have ``auser()``; on 4.2 the lazy ``request.user`` is resolved in a thread."""
    resolved: list[str] = []

    def load() -> SimpleNamespace:
        resolved.append("loaded")
        return SimpleNamespace(is_authenticated=True, name="ada")

    async def auser() -> str:
        return "from auser"

    assert asyncio.run(sessions.request_user(SimpleNamespace(auser=auser))) == "from auser"
    user = asyncio.run(sessions.request_user(SimpleNamespace(user=SimpleLazyObject(load))))
    assert resolved == ["loaded"] and user.name == "ada"  # resolved in the thread, not later
