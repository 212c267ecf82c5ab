"""``pgevents.testing.assert_region_updates``'s decisions on pages written by hand, with a client
that answers from a dict: the paths the demo's pages do not take (sources, 404s, errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pgevents.testing import RegionUpdate, assert_region_updates


@dataclass
class Response:
    status_code: int
    content: bytes
    charset: str = "utf-8"


class Site:
    """GET answers by URL (404 for anything else); remembers what was asked."""

    def __init__(self, pages: dict[str, tuple[int, str]]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        assert headers == {"X-Requested-With": "pgevents"}  # what pgevents.js sends
        self.asked.append(url)
        status, html = self.pages.get(url, (404, "not found"))
        return Response(status, html.encode())


ROWS = (
    '<ul id="rows" data-pgevents-channel="c" data-pgevents-row-src="/row/{key}/">'
    '<li data-pgevents-row="1">one<br></li><li data-pgevents-row="2">two</li></ul>'
)


def event(op: str, **row: Any) -> dict[str, Any]:
    return {"type": "event", "channel": "c", "op": op, "row": row}


def test_rows_are_patched_removed_and_reported_gone() -> None:
    site = Site({"/row/1/": (200, '<li data-pgevents-row="1">ONE<img src="x.png"/></li>')})
    (replaced,) = assert_region_updates(ROWS, event("UPDATE", id=1), site)
    assert replaced == RegionUpdate(
        "rows", "replace", "1", "/row/1/", '<li data-pgevents-row="1">ONE<img src="x.png"></li>'
    )
    # The row view answers 404: the row is no longer visible to this user, so it goes.
    assert assert_region_updates(ROWS, event("UPDATE", id=2), site) == [
        RegionUpdate("rows", "remove", "2", "/row/2/", "")
    ]
    left = {"type": "leave", "channel": "c", "old": {"id": 2}}  # a row leaving a filtered subscription
    assert assert_region_updates(ROWS, left, site) == [RegionUpdate("rows", "remove", "2", None, "")]
    assert site.asked == ["/row/1/", "/row/2/"]


def test_regions_reload_from_their_source_or_the_page() -> None:
    site = Site({"/count/": (200, "3"), "/page/": (200, '<p id="n">4</p>'), "/old/": (200, "<p>moved</p>")})
    counted = '<span id="count" data-pgevents-channel="c" data-pgevents-src="/count/"></span>'
    assert assert_region_updates(counted, event("TRUNCATE"), site) == [
        RegionUpdate("count", "reload", None, "/count/", "3")
    ]
    on_page = '<p id="n" data-pgevents-channel="c">3</p>'
    assert assert_region_updates(on_page, event("INSERT", id=9), site, url="/page/") == [
        RegionUpdate("n", "reload", None, "/page/", "4")
    ]
    with pytest.raises(AssertionError, match=r"the page /old/ no longer has an element with id 'n'"):
        assert_region_updates(on_page, event("INSERT", id=9), site, url="/old/")


def test_a_failing_view_fails_the_assertion_with_its_answer() -> None:
    site = Site({"/row/1/": (500, "Traceback: boom")})
    with pytest.raises(AssertionError, match=r"GET /row/1/ answered 500: b'Traceback: boom'"):
        assert_region_updates(ROWS, event("UPDATE", id=1), site)


def test_without_a_client_the_projects_own_urls_answer() -> None:
    """No client given: a new ``django.test.Client`` fetches from the project's URLconf."""
    gone = '<span id="s" data-pgevents-channel="c" data-pgevents-src="/no-such-page/"></span>'
    assert assert_region_updates(gone, event("INSERT", id=1)) == [
        RegionUpdate("s", "reload", None, "/no-such-page/", "")
    ]
