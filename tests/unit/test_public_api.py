"""The declared public API: what ``pgevents.__all__`` names, and the documented paths in it."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.template import engines

import pgevents

#: Top-level modules that are Django's entry points or pgevents' own wiring, not API.
ENTRY_POINTS = {"admin", "apps", "checks", "conf", "metrics"}
#: Sub-packages named after the process that runs them (internal).
RUNTIME_PACKAGES = {"core", "store", "capture", "delivery", "setup"}
#: Packages Django finds by name.
DJANGO_PACKAGES = {"management", "migrations", "templatetags"}

DOCUMENTED = [
    "pgevents.operations.Watch",
    "pgevents.models.Watch",
    "pgevents.routing.websocket_application",
    "pgevents.routing.websocket_urlpatterns",
    "pgevents.routing.ServerSendMiddleware",
    "pgevents.urls.urlpatterns",
    "pgevents.policy.allow_all",
    "pgevents.policy.deny_all",
    "pgevents.policy.require_login",
    "pgevents.policy.staff_only",
    "pgevents.policy.require_permission",
    "pgevents.signing.sign_channel",
    "pgevents.layers.PubSubChannelLayer",
    "pgevents.testing.capture",
    "pgevents.testing.assert_region_updates",
    "pgevents.testing.RegionUpdate",
]


@pytest.mark.parametrize("path", DOCUMENTED)
def test_documented_names_are_where_the_docs_say(path: str) -> None:
    module, _, name = path.rpartition(".")
    assert module.removeprefix("pgevents.") in pgevents.__all__
    assert hasattr(importlib.import_module(module), name)


def test_every_top_level_module_is_public_or_declared_internal() -> None:
    here = Path(pgevents.__file__).parent
    found = {m.name for m in pkgutil.iter_modules([str(here)])}
    public = set(pgevents.__all__) - {"__version__"}
    assert found == public | ENTRY_POINTS | RUNTIME_PACKAGES | DJANGO_PACKAGES


def test_public_modules_load_on_first_use_and_unknown_names_fail() -> None:
    assert pgevents.policy is importlib.import_module("pgevents.policy")
    with pytest.raises(AttributeError):
        pgevents.nothing_here  # noqa: B018


def test_template_tags_and_client_script_are_where_the_docs_say() -> None:
    engine = engines["django"].engine
    assert {"pgevents", "pgevents_signing"} <= set(engine.template_libraries)
    assert finders.find("pgevents/pgevents.js")
