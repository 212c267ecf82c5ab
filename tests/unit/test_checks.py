"""Each configuration check: one case that triggers it, one that shows it silent."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from pgevents import checks as pgchecks

REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://x"]}}}
MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SQLITE = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
GOOD = {"CHANNELS": ["people"]}


def ids(**overrides: Any) -> list[str]:
    settings = {"PGEVENTS": GOOD, "CHANNEL_LAYERS": REDIS, **overrides}
    with override_settings(**settings):
        return [m.id for m in [*pgchecks.check_settings(), *pgchecks.check_origins()]]


def test_a_good_configuration_is_silent() -> None:
    assert ids() == []


def test_checks_are_registered() -> None:
    registered = checks.registry.registry.get_checks(include_deployment_checks=True)
    for check in (pgchecks.check_settings, pgchecks.check_origins, pgchecks.check_database):
        assert check in registered
    assert checks.Tags.database in pgchecks.check_database.tags  # type: ignore[attr-defined]
    assert checks.Tags.security in pgchecks.check_origins.tags  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"PGEVENTS": {"CHANELS": ["people"]}}, "pgevents.E000"),
        ({"PGEVENTS": {"CHANNELS": ["people"], "DURABLE": "yes"}}, "pgevents.E000"),
        ({"PGEVENTS": {"CHANNELS": "people"}}, "pgevents.E000"),
        pytest.param(
            {"DATABASES": SQLITE},
            "pgevents.E001",
            marks=pytest.mark.filterwarnings("ignore:Overriding setting DATABASES"),
        ),
        ({"PGEVENTS": {**GOOD, "DATABASE": "other"}}, "pgevents.E001"),
        ({"CHANNEL_LAYERS": {}}, "pgevents.E002"),
        ({"PGEVENTS": {**GOOD, "CHANNEL_LAYER": "fast"}}, "pgevents.E002"),
        ({"CHANNEL_LAYERS": MEMORY, "PGEVENTS": {**GOOD, "EMBEDDED_LISTENER": False}}, "pgevents.E003"),
        ({"PGEVENTS": {"CHANNELS": ["people", ""]}}, "pgevents.E004"),
        ({"PGEVENTS": {"CHANNELS": ["orders." + "x" * 60]}}, "pgevents.E004"),
        ({"PGEVENTS": {"CHANNELS": ["bell\x07"]}}, "pgevents.E004"),
        ({"PGEVENTS": {**GOOD, "NOTIFY_CHANNELS": ["orders.*"]}}, "pgevents.E005"),
        ({"PGEVENTS": {**GOOD, "NOTIFY_CHANNELS": ["n" * 64]}}, "pgevents.E005"),
        ({"PGEVENTS": {**GOOD, "NOTIFY_CHANNELS": ["people", "audit"]}}, "pgevents.W007"),
        ({"PGEVENTS": {**GOOD, "AUTHORIZE": "pgevents.policy.nobody_wrote_this"}}, "pgevents.E006"),
        ({"PGEVENTS": {**GOOD, "AUTHORIZE": "pgevents.conf.DEFAULT_SENSITIVE"}}, "pgevents.E006"),
        ({"PGEVENTS": {}}, "pgevents.W001"),
        ({"PGEVENTS": {**GOOD, "ALLOWED_ORIGINS": ["*"]}}, "pgevents.W002"),
        ({"ASGI_APPLICATION": "tests.asgi_without_origin_check.application"}, "pgevents.W003"),
        ({"ASGI_APPLICATION": "tests.asgi_without_origin_check.application"}, "pgevents.W006"),
    ],
)
def test_each_check_fires(overrides: dict[str, Any], expected: str) -> None:
    assert expected in ids(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"CHANNEL_LAYERS": MEMORY},  # E003 silent: the in-memory layer runs the listener in the server
        {"PGEVENTS": {"CHANNELS": ["orders.*", "x" * 63, "Mixed Case"]}},  # E004 silent at 63 bytes
        {"PGEVENTS": {"CHANNELS": ["people", "audit.*"], "NOTIFY_CHANNELS": ["people", "audit.x"]}},  # E005, W007
        {"PGEVENTS": {**GOOD, "AUTHORIZE": "pgevents.policy.require_login"}},  # E006
        {"ALLOWED_HOSTS": ["example.com", ".example.org"]},  # W002
        {"ALLOWED_HOSTS": ["*"]},  # W002: the default origin check is same-origin, whatever the hosts
        {"ASGI_APPLICATION": "demo_project.asgi.application"},  # W003, W006: the demo uses both helpers
    ],
)
def test_checks_are_silent_when_all_is_well(overrides: dict[str, Any]) -> None:
    assert ids(**overrides) == []


def test_messages_have_hints() -> None:
    with override_settings(PGEVENTS={**GOOD, "NOTIFY_CHANNELS": ["a*"], "ALLOWED_ORIGINS": ["*"]}, CHANNEL_LAYERS={}):
        found = [*pgchecks.check_settings(), *pgchecks.check_origins()]
    assert {m.id for m in found} == {"pgevents.E002", "pgevents.E005", "pgevents.W002"}
    assert all(m.hint for m in found)


def test_the_database_checks_skip_what_they_cannot_judge() -> None:
    with override_settings(PGEVENTS={"CHANELS": []}):  # malformed: E000 says so, not this
        assert pgchecks.check_database(databases=["default"]) == []
    with override_settings(PGEVENTS=GOOD):
        assert pgchecks.check_database(databases=None) == []
        assert pgchecks.check_database(databases=["other"]) == []


def test_an_asgi_application_that_cannot_be_imported_is_left_to_the_server() -> None:
    with override_settings(PGEVENTS=GOOD, ASGI_APPLICATION="no.such.module.application"):
        assert pgchecks.check_origins() == []
    with override_settings(PGEVENTS=GOOD, ASGI_APPLICATION="pgevents.routing.websocket_urlpatterns"):
        assert pgchecks.check_origins() == []  # not a protocol router: nothing to inspect
