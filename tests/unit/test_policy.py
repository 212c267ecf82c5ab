"""policy.authorize() decisions that need no database: hooks, tokens, filters, columns."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings

from pgevents import policy
from pgevents.signing import sign_channel
from pgevents.store.columns import Source

PEOPLE = [Source("public", "people", frozenset({"pk", "name", "age"}))]


async def _people(channel: str) -> list[Source]:
    return PEOPLE if channel == "c" else []


async def _down(channel: str) -> list[Source]:
    raise OSError("database unavailable")


def decide(
    settings: dict[str, Any], channel: str = "c", flt: Any = None, **kwargs: Any
) -> policy.Access | policy.Denial:
    with override_settings(PGEVENTS={"CHANNELS": ["c", "d", "x.*"], **settings}):
        return asyncio.run(policy.authorize(AnonymousUser(), channel, flt, **kwargs))


def code(result: policy.Access | policy.Denial) -> str:
    return result.code if isinstance(result, policy.Denial) else "ok"


def test_unlisted_channels_are_unknown_whatever_the_hook() -> None:
    assert code(decide({}, "nope")) == "unknown_channel"


def test_failing_or_missing_hooks_refuse(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("pgevents")  # it does not propagate (see the demo's LOGGING)
    logger.addHandler(caplog.handler)
    try:
        assert code(decide({"AUTHORIZE": "tests.hooks.broken"})) == "forbidden"
    finally:
        logger.removeHandler(caplog.handler)
    assert "bug in a hook" in caplog.text
    assert code(decide({"ROW_POLICY": "tests.hooks.broken"})) == "forbidden"
    assert code(decide({"ROW_POLICY": "tests.hooks.bad_filter"})) == "forbidden"
    assert code(decide({"AUTHORIZE": {"d": "pgevents.policy.allow_all"}})) == "forbidden"  # no pattern matched


def test_hooks_that_do_not_answer_in_time_are_unavailable_not_forbidden() -> None:
    """A hung hook must not hold the subscription request: the client may try again."""
    assert code(decide({"AUTHORIZE": "tests.hooks.hangs", "QUERY_TIMEOUT": 0.05})) == "unavailable"
    assert code(decide({"ROW_POLICY": "tests.hooks.hangs", "QUERY_TIMEOUT": 0.05})) == "unavailable"


def test_authorize_dict_first_match_and_async_hooks() -> None:
    rule = {"x.*": "tests.hooks.async_allow", "*": "pgevents.policy.deny_all"}
    assert code(decide({"AUTHORIZE": rule}, "x.ok")) == "ok"
    assert code(decide({"AUTHORIZE": rule}, "x.no")) == "forbidden"
    assert code(decide({"AUTHORIZE": rule}, "c")) == "forbidden"


def test_filters_are_checked_against_the_channel_columns() -> None:
    ok = decide({}, flt={"age": {"gte": 18}}, sources=_people)
    assert isinstance(ok, policy.Access) and ok.filter is not None and ok.filter.columns == {"age"}
    assert code(decide({}, flt={"salary": 1}, sources=_people)) == "unknown_column"
    assert code(decide({}, "d", flt={"age": 1}, sources=_people)) == "bad_request"  # no table feeds d
    assert code(decide({}, flt={"age": {"like": 1}}, sources=_people)) == "bad_request"
    assert code(decide({}, flt={"age": 1}, sources=_down)) == "unavailable"
    unfiltered = decide({}, sources=_down)  # no filter, no lookup
    assert isinstance(unfiltered, policy.Access) and unfiltered.filter is None


def test_signed_filters_are_fixed() -> None:
    token = sign_channel("c", filter={"age": 5})
    same = decide({"SIGNED_CHANNELS": ["c"]}, token=token, flt={"age": 5}, sources=_people)
    assert isinstance(same, policy.Access) and same.filter is not None
    implied = decide({"SIGNED_CHANNELS": ["c"]}, token=token, sources=_people)
    assert isinstance(implied, policy.Access) and implied.filter is not None and implied.filter.columns == {"age"}
    assert code(decide({"SIGNED_CHANNELS": ["c"]}, token=token, flt={"age": 6})) == "forbidden"
    assert code(decide({"SIGNED_CHANNELS": ["c"]})) == "forbidden"


def test_ready_made_hooks_refuse_anonymous_users() -> None:
    anonymous = AnonymousUser()
    assert policy.allow_all(anonymous, "c", None)
    assert not policy.deny_all(anonymous, "c", None)
    assert not policy.require_login(anonymous, "c", None)
    assert not policy.staff_only(anonymous, "c", None)
    assert not policy.require_permission(anonymous, "c", None)
