"""Pure pieces of "nothing silent": process identity, the pipeline's rules, hints, descriptions."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from pgevents import checks as pgchecks
from pgevents.capture import startup
from pgevents.core import identity, names
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
