"""Who may subscribe to what, and which rows they see. Deny by default.

Every subscription passes, in order: the ``CHANNELS`` list (else ``unknown_channel``); a
signed token when the channel is in ``SIGNED_CHANNELS`` or a token is given; the client's
row filter (grammar in ``filters``); the ``AUTHORIZE`` hook; the ``ROW_POLICY`` hook; and,
when a client filter is given, a check that its columns exist on the channel. Hooks may be
sync (run in a thread with ``database_sync_to_async``, so they can use the ORM) or async. A
hook that raises refuses the subscription (and is logged); it never reaches the client as a
stack trace. A hook that does not answer within ``QUERY_TIMEOUT`` answers ``unavailable``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.utils.module_loading import import_string

from pgevents import conf, signing
from pgevents.core.filters import FilterError, RowFilter, combine, compile_filter
from pgevents.core.names import matches
from pgevents.store.columns import Source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Denial:
    code: str
    message: str


@dataclass(frozen=True)
class Access:
    """A granted subscription: the filter every event (live or replayed) must pass."""

    filter: RowFilter | None = None


# -- ready-made AUTHORIZE hooks -----------------------------------------------------------
def allow_all(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Every channel listed in CHANNELS, to everyone (the default)."""
    return True


def deny_all(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Nothing (for patterns in an ``AUTHORIZE`` dict that must stay closed)."""
    return False


def require_login(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Listed channels, to authenticated users only."""
    return bool(getattr(user, "is_authenticated", False))


def staff_only(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Listed channels, to active staff users only."""
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.is_staff)


def required_permissions(channel: str) -> list[str]:
    """Permissions guarding ``channel``: from ``PERMISSIONS`` (first matching pattern), else
    the ``view_`` permission of every model whose table feeds the channel. Empty: unknown."""
    for pattern, perms in conf.get().permissions.items():
        if matches(channel, (pattern,)):
            return [perms] if isinstance(perms, str) else list(perms)
    from django.apps import apps
    from django.db import connections

    with connections[conf.get().database].cursor() as cursor:
        from pgevents.store.columns import sources_sync

        tables = {s.table for s in sources_sync(cursor, channel)}
    models = [m for m in apps.get_models() if m._meta.db_table in tables]
    if not models or len(models) < len(tables):
        return []  # a table without a model: nothing to derive a permission from
    return [f"{m._meta.app_label}.view_{m._meta.model_name}" for m in models]


def require_permission(user: Any, channel: str, filter: dict[str, Any] | None) -> bool:
    """Active users holding every permission that guards ``channel`` (see
    ``required_permissions``); a channel with no known permission is refused."""
    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return False
    perms = required_permissions(channel)
    return bool(perms) and bool(user.has_perms(perms))


# -- the checks ---------------------------------------------------------------------------
async def _call(path: str, *args: Any) -> Any:
    """Run a hook; ``TimeoutError`` after ``QUERY_TIMEOUT`` (hooks usually read the database,
    and a hung database must not hold a subscription request forever)."""
    hook = import_string(path)
    if hook in (allow_all, deny_all):
        return hook(*args)
    # a sync hook runs in a thread, with Django's connection hygiene
    call = hook(*args) if inspect.iscoroutinefunction(hook) else database_sync_to_async(hook)(*args)
    async with asyncio.timeout(conf.get().query_timeout):  # not wait_for: it can swallow a cancellation
        return await call


UNAVAILABLE = Denial("unavailable", "cannot check access right now; try again")


def _authorize_path(channel: str) -> str | None:
    rule = conf.get().authorize
    if isinstance(rule, str):
        return rule
    for pattern, path in rule.items():
        if matches(channel, (pattern,)):
            return path
    return None


SourcesOf = Callable[[str], Awaitable[list[Source]]]


async def authorize(
    user: Any,
    channel: str,
    filter: dict[str, Any] | None = None,
    *,
    token: object = None,
    sources: SourcesOf | None = None,
) -> Access | Denial:
    """Decide one subscription: the steps of the module docstring, in order; the first
    refusal wins. ``sources`` looks up the tables feeding a channel (needed only to check a
    client filter's columns)."""
    if not matches(channel, conf.get().channels):
        return Denial("unknown_channel", "no such channel")
    signed = _signed(user, channel, filter, token)
    if isinstance(signed, Denial):
        return signed
    client_filter = _compiled(signed)
    if isinstance(client_filter, Denial):
        return client_filter
    allowed = await _allowed(user, channel, signed)
    if isinstance(allowed, Denial):
        return allowed
    if not allowed:
        return Denial("forbidden", "not allowed to subscribe to this channel")
    policy_filter = await _row_policy(user, channel)
    if isinstance(policy_filter, Denial):
        return policy_filter
    if client_filter is not None and sources is not None:
        denial = await _check_columns(client_filter, channel, sources)
        if denial is not None:
            return denial
    return Access(combine(client_filter, policy_filter))


def _signed(user: Any, channel: str, filter: dict[str, Any] | None, token: object) -> dict[str, Any] | Denial | None:
    """The filter to use once the token is checked: a signed channel needs a valid token; a
    token that fixes a filter replaces the client's (which may only repeat it)."""
    if token is None and not matches(channel, conf.get().signed_channels):
        return filter
    if token is None:
        return Denial("forbidden", "this channel needs a signed token from the page")
    try:
        grant = signing.verify(token, channel, user)
    except signing.BadToken as exc:
        return Denial("forbidden", str(exc))
    if grant.filter is None:
        return filter
    if filter is not None and filter != grant.filter:
        return Denial("forbidden", "filter differs from the one the token was signed with")
    return grant.filter


def _compiled(filter: dict[str, Any] | None) -> RowFilter | Denial | None:
    try:
        return None if filter is None else compile_filter(filter)
    except FilterError as exc:
        return Denial("bad_request", f"invalid filter: {exc}")


async def _allowed(user: Any, channel: str, filter: dict[str, Any] | None) -> bool | Denial:
    """What the ``AUTHORIZE`` hook for ``channel`` says; no hook, or one that fails: no; one
    that does not answer in time: ``unavailable`` (the client may try again)."""
    path = _authorize_path(channel)
    if path is None:
        return False
    try:
        return bool(await _call(path, user, channel, filter))
    except TimeoutError:
        logger.warning("AUTHORIZE hook %s timed out for %r", path, channel)
        return UNAVAILABLE
    except Exception:
        logger.exception("AUTHORIZE hook %s failed for %r", path, channel)
        return False


async def _row_policy(user: Any, channel: str) -> RowFilter | Denial | None:
    """The ``ROW_POLICY`` filter for this user and channel; ``False`` or a failure refuses, a
    hook that does not answer in time answers ``unavailable``."""
    path = conf.get().row_policy
    if not path:
        return None
    try:
        spec = await _call(path, user, channel)
        if spec is not False:
            return None if spec is None else compile_filter(spec)
    except TimeoutError:
        logger.warning("ROW_POLICY hook %s timed out for %r", path, channel)
        return UNAVAILABLE
    except Exception:
        logger.exception("ROW_POLICY hook %s failed for %r", path, channel)
    return Denial("forbidden", "not allowed to subscribe to this channel")


async def _check_columns(flt: RowFilter, channel: str, sources: SourcesOf) -> Denial | None:
    try:
        found = await sources(channel)
    except Exception as exc:
        logger.warning("could not read the columns of %r: %s", channel, exc or type(exc).__name__)
        return Denial("unavailable", "cannot check the filter right now; try again")
    if not found:
        return Denial("bad_request", "this channel carries no table rows; filters apply to row events only")
    known = frozenset().union(*(s.columns for s in found))
    missing = sorted(flt.columns - known)
    if missing:
        return Denial("unknown_column", f"no such column on this channel: {', '.join(missing)}")
    return None
