"""pgevents: PostgreSQL row changes and NOTIFYs, live in the browser, through Django Channels.

The public API is the modules named in ``__all__`` (imported on first use, so that
``import pgevents`` needs no configured Django), together with the template tag libraries
``{% load pgevents %}`` and ``{% load pgevents_signing %}``, the client
``static/pgevents/pgevents.js``, the ``PGEVENTS`` settings, the management commands and the
system check ids. Their documented names keep working from one release to the next.

Everything else is internal and may change: the sub-packages say which process runs them
(``core``: pure code; ``store``: database access every process shares; ``capture``: the
listener, in ``runlisten``; ``delivery``: each ASGI server process; ``setup``: configuration
time), and the top-level ``apps``, ``admin``, ``checks``, ``conf`` and ``metrics`` are
Django's entry points and pgevents' own wiring. See docs/architecture.md.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.2.0.dev0"

__all__ = [
    "__version__",
    "layers",  # PubSubChannelLayer
    "models",  # Watch (the admin's watches)
    "operations",  # Watch (the migration operation)
    "policy",  # AUTHORIZE hooks: allow_all, require_login, staff_only, require_permission, deny_all
    "routing",  # websocket_application, websocket_urlpatterns, ServerSendMiddleware
    "signing",  # sign_channel
    "testing",  # capture, assert_region_updates, RegionUpdate: for a project's own tests
    "urls",  # include("pgevents.urls"): SSE, health, metrics
]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
