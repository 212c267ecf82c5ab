"""System checks: a misconfigured project is told what is wrong before nothing updates.

Ids are stable; the README lists them. Checks tagged ``database`` look at the database
itself (missing tables, drift, exposed columns) and run only with ``check --database``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from django.utils.module_loading import import_string

from pgevents import conf
from pgevents.core.names import MAX_CHANNEL_BYTES, BadChannel, matches, near_miss, validate_channel

IN_MEMORY = "channels.layers.InMemoryChannelLayer"


def _settings() -> conf.Settings | None:
    try:
        return conf.get()
    except ImproperlyConfigured:
        return None


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        current = conf.get()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See the settings table in the README.", id="pgevents.E000")]
    return [
        *_database(current),
        *_layer(current),
        *_channels(current),
        *_notify_channels(current),
        *_authorize(current),
    ]


def _database(current: conf.Settings) -> Iterator[CheckMessage]:
    db = getattr(settings, "DATABASES", {}).get(current.database)
    if db is None:
        yield Error(
            f"PGEVENTS['DATABASE'] is {current.database!r}, which is not in DATABASES.",
            hint="Name one of the aliases in DATABASES.",
            id="pgevents.E001",
        )
    elif "postgresql" not in db.get("ENGINE", ""):
        yield Error(
            f"Database {current.database!r} is not PostgreSQL ({db.get('ENGINE')}).",
            hint="pgevents needs PostgreSQL's LISTEN/NOTIFY and triggers.",
            id="pgevents.E001",
        )


def _layer(current: conf.Settings) -> Iterator[CheckMessage]:
    layer = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(current.channel_layer)
    if layer is None:
        yield Error(
            f"No channel layer {current.channel_layer!r} in CHANNEL_LAYERS.",
            hint="Configure pgevents.layers.PubSubChannelLayer, the fastest Redis layer (or the in-memory layer "
            "for a single process); see docs/deployment.md.",
            id="pgevents.E002",
        )
    elif layer.get("BACKEND", "") == IN_MEMORY and current.embedded_listener is False:
        yield Error(
            "The in-memory channel layer with EMBEDDED_LISTENER off: events from a separate "
            "runlisten process can never reach the server's clients.",
            hint="Use channels_redis, or leave EMBEDDED_LISTENER unset.",
            id="pgevents.E003",
        )


def _channels(current: conf.Settings) -> Iterator[CheckMessage]:
    for pattern in current.channels:
        try:
            validate_channel(pattern)
        except BadChannel as exc:
            yield Error(
                f"CHANNELS entry {pattern!r} is invalid: {exc}.",
                hint=f"Channels are PostgreSQL identifiers: 1 to {MAX_CHANNEL_BYTES} bytes, no control characters.",
                id="pgevents.E004",
            )
    if not current.channels:
        yield Warning(
            "PGEVENTS['CHANNELS'] is empty: every subscription will be refused.",
            hint="List the channels clients may subscribe to.",
            id="pgevents.W001",
        )


def _notify_channels(current: conf.Settings) -> Iterator[CheckMessage]:
    for name in current.notify_channels:
        try:
            validate_channel(name)
            problem = "a pattern: LISTEN needs exact names" if any(ch in name for ch in "*?[") else ""
        except BadChannel as exc:
            problem = str(exc)
        if problem:
            yield Error(
                f"NOTIFY_CHANNELS entry {name!r} is invalid: {problem}.",
                hint="List the exact channel names runlisten should LISTEN on.",
                id="pgevents.E005",
            )
        elif not matches(name, current.channels):
            yield Warning(
                f"NOTIFY_CHANNELS entry {name!r} matches no CHANNELS entry: runlisten relays it, "
                "but no client can subscribe to it.",
                hint="Add it to CHANNELS, or remove it from NOTIFY_CHANNELS.",
                id="pgevents.W007",
            )


def _authorize(current: conf.Settings) -> Iterator[CheckMessage]:
    """AUTHORIZE (a path, or channel patterns → paths) and ROW_POLICY must name callables."""
    rule = current.authorize
    hooks = [("AUTHORIZE", path) for path in ([rule] if isinstance(rule, str) else list(rule.values()))]
    if current.row_policy is not None:
        hooks.append(("ROW_POLICY", current.row_policy))
    for name, path in hooks:
        try:
            hook = import_string(str(path))
        except ImportError as exc:
            yield Error(
                f"PGEVENTS[{name!r}] {path!r} cannot be imported: {exc}.",
                hint="A dotted path to a callable, e.g. pgevents.policy.require_login "
                "(AUTHORIZE may also map channel patterns to paths).",
                id="pgevents.E006",
            )
            continue
        if not callable(hook):
            yield Error(
                f"PGEVENTS[{name!r}] {path!r} is not callable.", hint="A dotted path to a callable.", id="pgevents.E006"
            )


@register(Tags.models)
def check_watch_channels(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A ``Watch`` in a migration whose channel no ``CHANNELS`` entry admits publishes events
    no client may subscribe to. Read from the migration files, so no database is needed."""
    current = _settings()
    if current is None:
        return []
    from django.db.migrations.loader import MigrationLoader

    from pgevents.operations import Watch

    try:
        loader = MigrationLoader(None, ignore_no_migrations=True)
    except Exception:  # a broken migration is reported by Django's own commands
        return []
    found: list[CheckMessage] = []
    for (app, name), migration in sorted(loader.disk_migrations.items()):
        for operation in migration.operations:
            if isinstance(operation, Watch) and not matches(operation.options.channel, current.channels):
                found.append(
                    Warning(
                        f"Migration {app}.{name} watches {operation.table or operation.model} on channel "
                        f"{operation.options.channel!r}, which no PGEVENTS['CHANNELS'] entry admits: every "
                        "subscription to it is refused (unknown_channel).",
                        hint=channel_hint(operation.options.channel, current.channels),
                        id="pgevents.W005",
                    )
                )
    return found


def channel_hint(channel: str, allowed: tuple[str, ...]) -> str:
    return f"Add {channel!r} (or a pattern matching it) to PGEVENTS['CHANNELS']. {near_miss(channel, allowed)}".strip()


@register(Tags.security)
def check_origins(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """WebSockets are not covered by CSRF or CORS: the Origin check is what stops another site's
    page from opening a socket with the user's session cookie."""
    try:
        origins = conf.get().allowed_origins
    except ImproperlyConfigured:  # reported as pgevents.E000 by check_settings
        origins = None
    if origins is not None and "*" in origins:
        return [
            Warning(
                "The WebSocket origin check accepts every site (PGEVENTS['ALLOWED_ORIGINS'] contains '*'), "
                "so any page a user visits can subscribe with their session.",
                hint="List your sites in PGEVENTS['ALLOWED_ORIGINS'], or leave it unset: pages of this site "
                "(and CSRF_TRUSTED_ORIGINS) are then accepted.",
                id="pgevents.W002",
            )
        ]
    messages: list[CheckMessage] = []
    websocket, http = _asgi_branches()
    if websocket is not None and not _wraps(websocket, _origin_validator):
        messages.append(
            Warning(
                f"The WebSocket application of ASGI_APPLICATION ({settings.ASGI_APPLICATION}) has no origin check.",
                hint="Use pgevents.routing.websocket_application(), or wrap your routes in "
                "channels.security.websocket.AllowedHostsOriginValidator.",
                id="pgevents.W003",
            )
        )
    if http is not None and not _wraps(http, _server_send):
        messages.append(
            Warning(
                f"The HTTP application of ASGI_APPLICATION ({settings.ASGI_APPLICATION}) does not keep the "
                "server's send: under daphne, an SSE client that stops reading grows the server's memory.",
                hint="Wrap it: {'http': pgevents.routing.http_application(get_asgi_application()), ...}.",
                id="pgevents.W006",
            )
        )
    return messages


def _asgi_branches() -> tuple[Any, Any]:
    """The ``websocket`` and ``http`` branches of ``ASGI_APPLICATION`` (None: nothing to inspect)."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return None, None
    try:
        application = import_string(path)
    except Exception:  # the server reports its own import errors; a check must not crash `check`
        return None, None
    mapping = getattr(application, "application_mapping", None)
    if not isinstance(mapping, dict):
        return None, None
    return mapping.get("websocket"), mapping.get("http")


def _origin_validator(application: Any) -> bool:
    from channels.security.websocket import OriginValidator

    return isinstance(application, OriginValidator)


def _server_send(application: Any) -> bool:
    from pgevents.routing import ServerSendMiddleware

    return isinstance(application, ServerSendMiddleware)


def _wraps(application: Any, test: Any) -> bool:
    """Whether ``test`` holds for ``application`` or a middleware it wraps."""
    for _ in range(20):  # follow the middleware chain inwards
        if test(application):
            return True
        inner = (
            getattr(application, "inner", None)
            or getattr(application, "application", None)
            or getattr(application, "app", None)
        )
        if inner is None:
            return False
        application = inner
    return False


@register(Tags.database)
def check_database(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What the database really has: watched tables, drift, exposed columns, listeners."""
    current = _settings()
    if current is None or not databases or current.database not in databases:
        return []
    alias = current.database
    if connections[alias].vendor != "postgresql":
        return []  # E001 says why
    try:
        with connections[alias].cursor() as cursor:
            return [
                *_watches(cursor, alias, current),
                *_exposed(cursor, current),
                *_plain_on_watched(cursor, current),
                *_stray_listener(cursor, current),
                *_not_vacuumed(cursor),
            ]
    except DatabaseError:
        return []  # not reachable or not migrated yet: nothing to compare with


def _watches(cursor: Any, alias: str, current: conf.Settings) -> Iterator[CheckMessage]:
    from pgevents.setup import sync

    watches = sync.configured(alias)
    for watch in watches:  # migration watches: pgevents.W005, without a database
        channel = watch.options.channel
        if watch.source.startswith("admin") and watch.enabled and not matches(channel, current.channels):
            yield Warning(
                f"Watch {watch.options.schema}.{watch.table} ({watch.source}) publishes on channel "
                f"{channel!r}, which no PGEVENTS['CHANNELS'] entry admits: every subscription to it is refused.",
                hint=channel_hint(channel, current.channels),
                id="pgevents.W013",
            )
    for step in sync.plan(cursor, watches):
        where = f"{step.schema}.{step.table} → {step.channel} ({step.source})"
        if step.action == "error":  # a warning: `migrate` runs database checks and must not be blocked
            yield Warning(
                f"Watch {where} cannot be installed: {step.detail}.",
                hint="Fix or delete the watch, or restore the table.",
                id="pgevents.W012",
            )
        elif step.action in ("install", "remove"):
            yield Warning(
                f"The triggers of watch {where} are {step.detail}: the database does not match the configuration.",
                hint="Run manage.py pgevents_sync.",
                id="pgevents.W011",
            )


def _exposed(cursor: Any, current: conf.Settings) -> Iterator[CheckMessage]:
    from pgevents.setup import installation

    for found in installation.installed(cursor):
        exposed = sorted(c for c in found.sent if installation.is_sensitive(c, current.sensitive_columns))
        if exposed:
            yield Warning(
                f"The pgevents triggers on {found.schema}.{found.table} (channel {found.channel!r}) send "
                f"sensitive-looking column(s): {', '.join(exposed)}.",
                hint="Exclude them from the watch (or remove them from its include list), then run "
                "manage.py pgevents_sync. Silence pgevents.W010 if they are meant to be public.",
                id="pgevents.W010",
            )


def _plain_on_watched(cursor: Any, current: conf.Settings) -> Iterator[CheckMessage]:
    """A channel both relayed as plain NOTIFY and fed by a watch: its subscribers cannot tell
    a row change from whatever any role that can connect sends on it."""
    from pgevents.setup import installation

    plain = set(current.notify_channels)
    watched = sorted({found.channel for found in installation.installed(cursor)} & plain)
    for channel in watched:
        yield Warning(
            f"Channel {channel!r} is in NOTIFY_CHANNELS and a watch publishes on it: any database role "
            "that can connect can NOTIFY it, and its subscribers receive that beside the watch's events.",
            hint="Give plain NOTIFYs a channel of their own. Silence pgevents.W014 if every role that "
            "can connect is as trusted as your writers.",
            id="pgevents.W014",
        )


def _stray_listener(cursor: Any, current: conf.Settings) -> Iterator[CheckMessage]:
    layer = (getattr(settings, "CHANNEL_LAYERS", {}) or {}).get(current.channel_layer) or {}
    if layer.get("BACKEND") != IN_MEMORY:
        return
    cursor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND split_part(application_name, ' ', 1) = 'pgevents-listener'"
    )
    if cursor.fetchone()[0]:
        yield Warning(
            "A separate runlisten process is connected to this database, but this project uses the "
            "in-memory channel layer: the events it forwards never reach this server's clients.",
            hint="Use channels_redis in both, or stop runlisten and let the server run the listener "
            "(EMBEDDED_LISTENER).",
            id="pgevents.W004",
        )


def _not_vacuumed(cursor: Any) -> Iterator[CheckMessage]:
    """A log that nothing vacuums grows for ever: positioning and pruning leave dead rows."""
    from pgevents.store import log

    cursor.execute(log.NOT_VACUUMED)
    found = cursor.fetchall()
    if not found:
        return
    tables = ", ".join(name for name, _ in found)
    why = (
        "autovacuum is off on this PostgreSQL server (autovacuum or track_counts)"
        if found[0][1] == "server"
        else f"autovacuum is disabled on {tables} (autovacuum_enabled)"
    )
    yield Warning(
        f"The event log is not vacuumed: {why}. Every positioned event leaves a dead row version and "
        f"every pruned one a dead row, so {tables} and their indexes grow for as long as the server runs, "
        "and the listener's looks at the log slow down with them.",
        hint=f"Turn autovacuum on, or run VACUUM {tables} regularly (from cron, for instance). "
        "Silence pgevents.W015 if the tables are vacuumed another way.",
        id="pgevents.W015",
    )
