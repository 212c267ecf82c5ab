"""Would a page follow a change? The decisions of ``pgevents.js``'s regions, made in a test.

For each region of the page bound to the event's channel, the same choice the browser makes:
patch the row named by the event's key (fetching the row view), re-render the rows that show
a referenced row (``data-pgevents-fields``), or reload the region (from ``src`` or the page
itself). What the browser would fetch is fetched with the test client you pass, so your
views, permissions and templates take part; the result says what would change.

A shared region (``shared=True``) gets its HTML with the event instead: the server decides
what to render as ``pgevents.delivery.shared.decide`` says and renders it once, anonymously.
The helper does the same with a client of its own that carries no cookies, and marks those
updates ``pushed``. Where the server would push nothing (its anonymous render did not answer
200, or the event names nothing it can render), the tab fetches as a per-user region does,
with your client, and the update is not ``pushed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pgevents.delivery.shared import decide, fill
from pgevents.signing import BadToken, verify_region
from pgevents.testing.html import Element, parse

Action = Literal["insert", "replace", "remove", "reload"]


@dataclass(frozen=True)
class RegionUpdate:
    """One change the page would make: ``html`` is the new row, or the region's new content.

    ``pushed``: the HTML travels with the event (a shared region, rendered once by the
    server, no request from the tab); otherwise the tab fetches ``url`` itself.
    """

    region: str
    action: Action
    key: str | None
    url: str | None
    html: str
    pushed: bool = False


def assert_region_updates(
    page: Any, event: dict[str, Any], client: Any = None, *, url: str | None = None
) -> list[RegionUpdate]:
    """What ``page`` (a test-client response, or its HTML) would change for ``event``.

    ``client`` fetches what the browser would (default: a new ``django.test.Client``; pass
    yours when the views need a login). ``url`` is the page's own URL, for regions that reload
    from the page (taken from the response when ``page`` is one). Shared regions' updates
    are rendered as the server renders them (anonymously, no cookies) and marked
    ``pushed``. Raises ``AssertionError``
    when no region follows the event's channel or when none of them would change.
    """
    if client is None:
        from django.test import Client

        client = Client()
    markup = page if isinstance(page, str) else page.content.decode(getattr(page, "charset", None) or "utf-8")
    if url is None and not isinstance(page, str):
        request = getattr(page, "wsgi_request", None) or getattr(page, "asgi_request", None)
        url = request.get_full_path() if request is not None else None
    document = parse(markup)
    channel = event.get("channel")
    regions = [e for e in document.elements() if "data-pgevents-channel" in e.attrs]
    mine = [r for r in regions if r.attrs["data-pgevents-channel"] == channel]
    if not mine:
        seen = ", ".join(sorted({r.attrs["data-pgevents-channel"] for r in regions})) or "none"
        raise AssertionError(f"the page has no region following channel {channel!r} (regions follow: {seen})")
    updates: list[RegionUpdate] = []
    for region in mine:
        updates.extend(_Region(region, client, url).apply(event))
    if not updates:
        raise AssertionError(
            f"no region following {channel!r} would change for this {event.get('op') or event.get('type')} "
            f"(row {event.get('row') or event.get('old')}): a deleted row is not on the page, or the row "
            "view answered 404 for a row that is not on it either"
        )
    return updates


class _Region:
    def __init__(self, element: Element, client: Any, page_url: str | None) -> None:
        self.el = element
        self.client = client
        self.page_url = page_url
        attrs = element.attrs
        self.id = attrs.get("id", "")
        self.src = attrs.get("data-pgevents-src")
        self.row_src = attrs.get("data-pgevents-row-src")
        self.key_name = attrs.get("data-pgevents-key", "id")

    def apply(self, event: dict[str, Any]) -> list[RegionUpdate]:
        pushed = self._pushed(event)
        return pushed if pushed is not None else self._fetched(event)

    def _pushed(self, event: dict[str, Any]) -> list[RegionUpdate] | None:
        """A shared region's update as the server sends it; None when it sends none."""
        token = self.el.attrs.get("data-pgevents-shared")
        if token is None:
            return None
        try:
            spec = verify_region(token, self.el.attrs["data-pgevents-channel"])
        except BadToken as exc:
            raise AssertionError(
                f"region {self.id!r}: its signed data-pgevents-shared does not verify ({exc}); the server "
                "would refuse the subscription. Was the page rendered with another SECRET_KEY?"
            ) from None
        decided = decide(spec, event)
        if decided is None:
            return None
        kind, key = decided
        if kind == "gone":
            assert key is not None
            return [RegionUpdate(self.id, "remove", key, None, "", pushed=True)] if self._current(key) else []
        url = fill(spec.row, key) if kind == "row" and spec.row else spec.src
        assert url is not None
        from django.test import Client

        response = Client().get(url, headers={"X-Requested-With": "pgevents", "X-Pgevents-Render": "shared"})
        if kind == "row" and key is not None and response.status_code in (404, 410):
            return [RegionUpdate(self.id, "remove", key, url, "", pushed=True)] if self._current(key) else []
        if response.status_code != 200:
            return None  # not sent: the tab fetches it as its own user
        html = response.content.decode(response.charset or "utf-8")
        if kind == "row" and key is not None:
            return self._placed(key, url, html, pushed=True)
        return [RegionUpdate(self.id, "reload", None, url, html, pushed=True)]

    def _fetched(self, event: dict[str, Any]) -> list[RegionUpdate]:
        row: dict[str, Any] = event.get("row") or event.get("old") or {}
        op = "DELETE" if event.get("type") == "leave" else event.get("op")
        can_patch = bool(self.row_src and op and op != "TRUNCATE" and row)
        if can_patch and row.get(self.key_name) is not None:
            return self._patch(str(op), str(row[self.key_name]))
        matching = self._matching(row) if can_patch else None
        if matching is not None:
            return [u for key in matching for u in self._patch("UPDATE", key)]
        return [self._reload()]

    def _rows(self) -> list[Element]:
        return [c for c in self.el.child_elements() if "data-pgevents-row" in c.attrs]

    def _matching(self, row: dict[str, Any]) -> list[str] | None:
        """Keys of the rows whose ``data-pgevents-fields`` match every field of ``row``."""
        keys, declared = [], False
        for child in self.el.child_elements():
            if "data-pgevents-fields" not in child.attrs:
                continue
            fields = json.loads(child.attrs["data-pgevents-fields"])
            if not all(f in fields for f in row):
                continue
            declared = True
            if all(str(fields[f]) == str(row[f]) for f in row):
                keys.append(child.attrs["data-pgevents-row"])
        return keys if declared else None

    def _current(self, key: str) -> Element | None:
        return next((r for r in self._rows() if r.attrs["data-pgevents-row"] == key), None)

    def _patch(self, op: str, key: str) -> list[RegionUpdate]:
        if op == "DELETE":
            return [RegionUpdate(self.id, "remove", key, None, "")] if self._current(key) else []
        assert self.row_src is not None
        row_url = fill(self.row_src, key)
        return self._placed(key, row_url, self._fetch(row_url))

    def _placed(self, key: str, row_url: str, html: str | None, pushed: bool = False) -> list[RegionUpdate]:
        """The row ``html`` put in place: inserted, replacing the current one, or removing it."""
        current = self._current(key)
        node = None if html is None else next(iter(parse(html.strip()).child_elements()), None)
        if node is None:  # gone (404) or empty: the row is removed
            return [RegionUpdate(self.id, "remove", key, row_url, "", pushed)] if current else []
        rendered = node.attrs.get("data-pgevents-row")
        if rendered != key:
            raise AssertionError(
                f"the row view {row_url} renders a root element with data-pgevents-row={rendered!r}, not {key!r}: "
                "put {% pgevents_row obj.pk %} on it, or the page cannot find this row when it changes again"
            )
        return [RegionUpdate(self.id, "replace" if current else "insert", key, row_url, node.outer_html(), pushed)]

    def _reload(self) -> RegionUpdate:
        if self.src:
            html = self._fetch(self.src)
            return RegionUpdate(self.id, "reload", None, self.src, html or "")
        if not self.id or self.page_url is None:
            raise AssertionError(
                "this region reloads from the page itself: pass the page's url= (and give the region an id)"
            )
        fresh = parse(self._fetch(self.page_url) or "").find_id(self.id)
        if fresh is None:
            raise AssertionError(f"the page {self.page_url} no longer has an element with id {self.id!r}")
        return RegionUpdate(self.id, "reload", None, self.page_url, fresh.inner_html())

    def _fetch(self, url: str) -> str | None:
        """GET as the browser's client does; None for 404/410 (the row is gone)."""
        response = self.client.get(url, headers={"X-Requested-With": "pgevents"})
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise AssertionError(f"GET {url} answered {response.status_code}: {response.content[:500]!r}")
        return str(response.content.decode(response.charset or "utf-8"))
