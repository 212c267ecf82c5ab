"""``{% load pgevents %}``: live regions without writing JavaScript or data attributes.

- ``{% pgevents_script %}`` — the client; it binds every region on the page.
- ``{% pgevents_region "people" tag="tbody" row="person-row" key="pk" %}…{% endpgevents_region %}``
  — an element that follows a channel: rows are re-rendered by the ``row`` view, or the
  whole region by ``src`` (default: this very page).
- ``{% pgevents_attrs "people" … %}`` — the same, as attributes for an element you write.
- ``{% pgevents_row book.pk sort=book.title author_id=book.author_id %}`` — marks a row of a region.
- ``{% pgevents_status %}`` — the connection indicator (live / reconnecting / offline).
- ``{% pgevents_htmx "people" src="people-rows" %}`` — htmx ``sse`` attributes for a region
  that follows the channel without the pgevents client (an HTML stream of the ``src`` view).

A channel no ``PGEVENTS["CHANNELS"]`` entry admits can never update the page: with ``DEBUG``
the tags raise ``ImproperlyConfigured`` (the debug page points at the tag), otherwise they log
a warning and render, and the page's client shows the refused subscription.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template.base import FilterExpression, Parser, Token
from django.templatetags.static import static
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify

from pgevents import conf
from pgevents.core.names import matches, near_miss
from pgevents.delivery import regions
from pgevents.delivery.render import RegionSpec
from pgevents.signing import sign_region

logger = logging.getLogger(__name__)
register = template.Library()

#: Milliseconds per-user regions gather their fetches before one coalesced request (at random
#: within it, so many tabs spread out). Small against a person's eye, wide against a wave.
DEFAULT_JITTER = 100

_REGION_OPTIONS = {"src", "row", "key", "debounce", "insert", "resume", "shared"}


def _sse_url() -> str:
    try:
        return reverse("pgevents:sse", args=["_"])[:-2]
    except NoReverseMatch:
        return "/pgevents/sse/"


def _fragments_url() -> str:
    """Empty when ``pgevents.urls`` is not included: each region then fetches on its own."""
    try:
        return reverse("pgevents:fragments")
    except NoReverseMatch:
        return ""


@register.simple_tag
def pgevents_script(
    channels: str = "",
    url: str = "",
    transport: str = "websocket",
    sse_url: str = "",
    jitter: int = DEFAULT_JITTER,
) -> SafeString:
    """The client script; it connects and binds every region on the page.

    A native ES module (``type="module"``: deferred, no build step); it imports its parts
    (``logic.js``, ``client.js``, ``regions.js``) from beside it. Included twice, one client.

    ``channels`` (comma-separated) subscribes to channels without a region, for pages that
    listen for ``pgevents:<channel>`` DOM events themselves. ``transport="sse"`` uses
    Server-Sent Events instead of the WebSocket (for proxies that refuse upgrades).
    ``url``: the WebSocket path, default ``ws/pgevents/`` under the script prefix (``/ws/pgevents/``,
    or ``/app/ws/pgevents/`` for a project mounted under ``/app/``).
    ``jitter`` (ms): per-user regions gather what they fetch for up to this long, at random,
    then ask for all of it in one request (``pgevents:fragments``), so a change seen by many
    tabs does not reach the server as one wave.
    """
    for channel in filter(None, channels.split(",")):
        check_channel(channel, "pgevents_script")
    return format_html(
        '<script type="module" src="{}" data-pgevents-url="{}" data-pgevents-sse-url="{}"'
        ' data-pgevents-transport="{}" data-pgevents-channels="{}" data-pgevents-fragments-url="{}"'
        ' data-pgevents-jitter="{}" onerror="{}"></script>',
        static("pgevents/pgevents.js"),
        url or get_script_prefix() + "ws/pgevents/",
        sse_url or _sse_url(),
        transport,
        channels,
        _fragments_url(),
        int(jitter),
        _SCRIPT_FAILED,
    )


#: The script element's ``onerror``: when pgevents.js itself cannot load (a static-files set-up
#: that does not serve it), the indicator says so instead of "connecting" forever.
_SCRIPT_FAILED = (
    "document.querySelectorAll('[data-pgevents-status]').forEach(function (e) {"
    " e.textContent = 'pgevents.js did not load'; e.dataset.state = 'failed'; });"
    " console.error('pgevents: ' + this.src + ' did not load: are static files served?')"
)


def check_channel(channel: str, tag: str) -> None:
    """Refuse (``DEBUG``) or log a channel that no ``CHANNELS`` entry admits."""
    allowed = conf.get().channels
    if matches(channel, allowed):
        return
    message = (
        f"{tag}: channel {channel!r} is not in PGEVENTS['CHANNELS'] ({', '.join(allowed) or 'empty'}): "
        "clients cannot subscribe to it, so this part of the page would never update."
    )
    message = f"{message} {near_miss(channel, allowed)}".rstrip()
    if settings.DEBUG:
        raise ImproperlyConfigured(message + " Add it (or a pattern matching it) to PGEVENTS['CHANNELS'].")
    if channel not in _warned:  # once per channel and process: a busy page must not flood the log
        _warned.add(channel)
        logger.warning(message)


_warned: set[str] = set()


@register.simple_tag
def pgevents_attrs(channel: str, **options: Any) -> SafeString:
    """Region attributes for an element of your own: ``<tbody id="rows" {% pgevents_attrs "people" %}>``.

    Without ``src`` or ``row`` the region reloads itself from the page, so the element needs an id.
    """
    _check(options)
    check_channel(str(channel), "pgevents_attrs")
    return regions.render(region_attributes(str(channel), options, "pgevents_attrs"))


def region_attributes(channel: str, options: dict[str, Any], tag: str) -> dict[str, str]:
    """``regions.attributes``, plus the signed descriptor of a ``shared=True`` region.

    A shared region's HTML is the same for every viewer: the server renders its ``row`` and
    ``src`` URLs once per change and sends the HTML with the event (docs/templates.md). The
    descriptor is signed, so a page cannot have other URLs rendered in its name.
    """
    options = dict(options)
    shared = bool(options.pop("shared", False))
    attrs = regions.attributes(channel, **options)
    if shared:
        row, src = attrs.get("data-pgevents-row-src"), attrs.get("data-pgevents-src")
        if row is None and src is None:
            raise template.TemplateSyntaxError(
                f"{tag}: a shared region needs row= (a view rendering one row) or src= (a view rendering the"
                " region's inner HTML): the server renders those URLs once for every viewer."
            )
        spec = RegionSpec(channel, row, attrs.get("data-pgevents-key", "id"), src, prefix=get_script_prefix())
        attrs["data-pgevents-shared"] = sign_region(spec)
        attrs["data-pgevents-region"] = spec.id
    return attrs


@register.simple_tag
def pgevents_htmx(channel: str, src: str, name: str = "", resume: bool = True) -> SafeString:
    """htmx attributes for an element that follows ``channel`` without the pgevents client:
    ``<tbody {% pgevents_htmx "people" src="people-rows" %}>`` writes ``hx-ext="sse"``,
    ``sse-connect`` (the HTML stream, with the signed region and the id the page was rendered
    at) and ``sse-swap`` (the event name: ``name``, default the channel). The ``src`` view is
    rendered once per change per server process and streamed to every page (a shared
    region: the same HTML for everyone). Needs htmx and its ``sse`` extension on the page.
    """
    check_channel(str(channel), "pgevents_htmx")
    attrs = regions.attributes(str(channel), src=src, resume=resume)
    event = name or str(channel)
    spec = RegionSpec(str(channel), None, "id", attrs["data-pgevents-src"], event, get_script_prefix())
    query = {"regions": sign_region(spec)}
    if "data-pgevents-since" in attrs:
        query["last_event_id"] = attrs["data-pgevents-since"]
    try:
        stream = reverse("pgevents:html", args=[channel])
    except NoReverseMatch:
        raise ImproperlyConfigured(
            "pgevents_htmx needs pgevents' URLs: path('pgevents/', include('pgevents.urls'))"
        ) from None
    return regions.render({"hx-ext": "sse", "sse-connect": f"{stream}?{urlencode(query)}", "sse-swap": event})


@register.simple_tag
def pgevents_row(key: Any, sort: Any = None, **fields: Any) -> SafeString:
    """Marks a row of a region by its key, optionally the value it is sorted by, and the
    foreign keys it shows (``author_id=book.author_id``): a change to that author then
    re-renders this row only."""
    attrs = {"data-pgevents-row": str(key)}
    if sort is not None:
        attrs["data-pgevents-sort"] = str(sort)
    if fields:
        attrs["data-pgevents-fields"] = json.dumps(fields, default=str)
    return regions.render(attrs)


@register.simple_tag
def pgevents_status() -> SafeString:
    return mark_safe(  # a constant: nothing to escape
        '<span class="pgevents-status" data-pgevents-status data-state="connecting" role="status">connecting</span>'
    )


class RegionNode(template.Node):
    def __init__(self, channel: FilterExpression, options: dict[str, FilterExpression], nodelist: Any) -> None:
        self.channel, self.options, self.nodelist = channel, options, nodelist

    def render(self, context: template.Context) -> SafeString:
        channel = str(self.channel.resolve(context))
        values = {name: expr.resolve(context) for name, expr in self.options.items()}
        tag = str(values.pop("tag", "div"))
        if not tag.isalnum():
            raise template.TemplateSyntaxError(f"pgevents_region: bad tag name {tag!r}")
        element_id = values.pop("id", None) or self._auto_id(context, channel)
        css = values.pop("class", None)
        _check(values)
        check_channel(channel, "pgevents_region")
        # Attributes first: the rendered-at id is read before the rows' queries run.
        attrs = {"id": str(element_id), **({"class": str(css)} if css else {})}
        attrs.update(region_attributes(channel, values, "pgevents_region"))
        inner = self.nodelist.render(context)
        return format_html("<{} {}>{}</{}>", tag, regions.render(attrs), SafeString(inner), tag)

    @staticmethod
    def _auto_id(context: template.Context, channel: str) -> str:
        """Stable across renders of the page, so a region can reload itself from it."""
        base = f"pgevents-{slugify(channel) or 'region'}"
        seen = cast(dict[str, int], context.render_context.setdefault("pgevents_region_ids", {}))  # type: ignore[arg-type]
        seen[base] = seen.get(base, 0) + 1
        return base if seen[base] == 1 else f"{base}-{seen[base]}"


@register.tag("pgevents_region")
def pgevents_region(parser: Parser, token: Token) -> RegionNode:
    """``{% pgevents_region channel [tag=… id=… class=… src=… row=… key=… debounce=… insert=… resume=… shared=…] %}``."""
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("pgevents_region needs a channel")
    channel = parser.compile_filter(bits[1])
    options: dict[str, FilterExpression] = {}
    for bit in bits[2:]:
        name, sep, value = bit.partition("=")
        if not sep or name not in {*_REGION_OPTIONS, "tag", "id", "class"}:
            raise template.TemplateSyntaxError(f"pgevents_region: unknown option {bit!r}")
        options[name] = parser.compile_filter(value)
    nodelist = parser.parse(("endpgevents_region",))
    parser.delete_first_token()
    return RegionNode(channel, options, nodelist)


def _check(options: dict[str, Any]) -> None:
    unknown = set(options) - _REGION_OPTIONS
    if unknown:
        raise template.TemplateSyntaxError(f"unknown pgevents region option(s): {', '.join(sorted(unknown))}")
