"""What a live region needs from the server: its attributes, its URLs, the id it was rendered at.

Used by the template tags. The rendered-at id closes the window between the page's query and
the browser's subscription: the client resumes from it, so a change committed in between is
delivered instead of lost (a change already on the page is merely patched again).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connections
from django.urls import NoReverseMatch, get_resolver, get_urlconf, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from pgevents import conf
from pgevents.store import log

KEY = "{key}"
#: Arguments tried when reversing a row URL, for str/slug/path, int and uuid converters.
_PROBES: tuple[Any, ...] = (KEY, 9_876_543_210_123, uuid.UUID("00000000-0000-4000-8000-00000000cafe"))
INSERT_MODES = ("append", "prepend")


def current_id(channel: str) -> int:
    """The head of ``channel`` (``pgevents.store.log.HEAD``), read before the region's rows.

    Events committed before this read have an id at most this one and are visible to the
    queries that follow; later ones get larger ids, so resuming from here loses nothing. The
    same definition as a new subscription's starting point: a region on a quiet channel whose
    events were pruned resumes from the prune point instead of being reset on every view.
    """
    with connections[conf.get().database].cursor() as cursor:
        return log.head_sync(cursor, channel)


def row_url(row: str) -> str:
    """A row URL template with ``{key}``: given as such (contains ``/``) or as a URL name.

    Raises ``NoReverseMatch`` naming the problem: no URL has that name, or it does not take
    exactly one argument (the row's key).
    """
    if "/" in row:
        if KEY not in row:
            raise ValueError(f"row URL {row!r} has no {KEY} placeholder")
        return row
    if not url_name_exists(row):
        raise NoReverseMatch(
            f"pgevents: row={row!r} names no URL pattern (no path(..., name={row.rpartition(':')[2]!r})"
            + (f" in namespace {row.rpartition(':')[0]!r}" if ":" in row else "")
            + "). Give the name of the view that renders one row, or a path with {key}."
        )
    for probe in _PROBES:
        try:
            url = reverse(row, args=[probe])
        except NoReverseMatch:
            continue
        return url.replace("%7Bkey%7D", KEY).replace(str(probe), KEY)
    raise NoReverseMatch(
        f"pgevents: the URL named {row!r} does not take exactly one argument (the row's key), "
        "as row= needs: e.g. path('orders/row/<int:pk>/', views.order_row, name='order-row')."
    )


def url_name_exists(name: str) -> bool:
    """Whether some URL pattern is named ``name`` (``namespace:name`` allowed), whatever its arguments."""
    resolver = get_resolver(get_urlconf())
    *namespaces, view = name.split(":")
    for namespace in namespaces:
        if namespace not in resolver.namespace_dict and namespace in resolver.app_dict:
            namespace = resolver.app_dict[namespace][0]  # an application namespace: its default instance
        found = resolver.namespace_dict.get(namespace)
        if found is None:
            return False
        resolver = found[1]
    return view in resolver.reverse_dict


def attributes(
    channel: str,
    *,
    src: str | None = None,
    row: str | None = None,
    key: str = "id",
    debounce: int | None = None,
    insert: str = "append",
    resume: bool = True,
) -> dict[str, str]:
    """The ``data-pgevents-*`` attributes of a region (see ``pgevents.js``)."""
    if insert not in INSERT_MODES:
        raise ValueError(f"insert must be one of {INSERT_MODES}, got {insert!r}")
    attrs = {"data-pgevents-channel": channel}
    if src:
        attrs["data-pgevents-src"] = src if "/" in src else reverse(src)
    if row:
        attrs["data-pgevents-row-src"] = row_url(row)
        attrs["data-pgevents-key"] = key
    if debounce is not None:
        attrs["data-pgevents-debounce"] = str(int(debounce))
    if insert != "append":
        attrs["data-pgevents-insert"] = insert
    if resume:
        attrs["data-pgevents-since"] = str(current_id(channel))
    return attrs


def render(attrs: dict[str, str]) -> SafeString:
    """``name="value"`` pairs, every value escaped."""
    return format_html_join(" ", '{}="{}"', attrs.items())
