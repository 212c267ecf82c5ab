"""Shared regions in Chromium: the server renders a change once and pushes the HTML to every
tab, so the tabs ask Django for nothing. Requests are counted server-side, by a middleware
of the test settings (``tests.hooks.RequestLog``): ``http`` lines came from the network,
``shared`` lines are the server's own in-process renders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.test_live_pages import insert_person, insert_while_history_is_pruned, open_live, person_row
from tests.support import Stack

pytestmark = pytest.mark.browser

#: Tabs open on the people page at once. 20 is what the issue measured; a 2-core machine
#: running daphne, runlisten, PostgreSQL, Redis and Chromium bears it.
TABS = 20


class CountedStack(Stack):
    def __init__(self, db_url: str, log: Path) -> None:
        super().__init__(db_url, env={"PGEVENTS_TEST_REQUEST_LOG": str(log)})
        self.log = log

    def requests(self) -> list[str]:
        """What reached Django since the last ``forget()`` (static files aside)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if " /static/" not in line]

    def forget(self) -> None:
        self.log.write_text("")


@pytest.fixture
def counted(isolated_db: str, tmp_path: Path) -> Iterator[CountedStack]:
    with CountedStack(isolated_db, tmp_path / "requests.log") as running:
        yield running


def test_one_insert_reaches_every_tab_with_no_request_to_django(
    counted: CountedStack, iso_pg: psycopg.Connection, context: BrowserContext
) -> None:
    pages = [open_live(context.new_page(), counted.http + "/") for _ in range(TABS)]
    assert len([r for r in counted.requests() if r == "http /"]) == TABS  # every tab loaded the page
    counted.forget()

    pk = insert_person(iso_pg, "Shared", 40)
    before = int(pages[0].locator("#people-count").inner_text())
    for page in pages:
        expect(person_row(page, pk).locator(".name")).to_have_text("Shared")
    for page in pages:
        expect(page.locator("#people-count")).not_to_have_text(str(before - 1))
    requests = counted.requests()
    assert [r for r in requests if r.startswith("http ")] == []  # at most 2 allowed; none needed
    # One render of each URL for all the tabs: one server process, one render per change.
    assert sorted(requests) == ["shared /people/count/", f"shared /people/row/{pk}/"], requests

    counted.forget()
    iso_pg.execute("UPDATE people SET name = 'Shared again' WHERE pk = %s", (pk,))
    iso_pg.execute("DELETE FROM people WHERE pk = %s", (pk,))
    for page in pages:
        expect(person_row(page, pk)).to_have_count(0)
    assert [r for r in counted.requests() if r.startswith("http ")] == []


def test_a_burst_is_one_refresh_rendered_once(
    counted: CountedStack, iso_pg: psycopg.Connection, context: BrowserContext
) -> None:
    pages = [open_live(context.new_page(), counted.http + "/") for _ in range(3)]
    counted.forget()
    with iso_pg.transaction():
        for i in range(60):
            insert_person(iso_pg, f"Burst {i}", i)
    count = iso_pg.execute("SELECT count(*) FROM people").fetchone()
    assert count is not None
    for page in pages:
        expect(page.locator("#people-rows > tr")).to_have_count(int(count[0]))
        expect(page.locator("#people-count")).to_have_text(str(count[0]))
    requests = counted.requests()
    assert [r for r in requests if r.startswith("http ")] == []
    assert len([r for r in requests if r.startswith("shared /people/row/")]) <= 20, requests  # no 60 row renders


def test_reset_brings_the_regions_html(fresh_stack: Stack, iso_pg: psycopg.Connection, page: Page) -> None:
    """History pruned while the page was away: the `reset` carries the shared regions' HTML."""
    open_live(page, fresh_stack.http + "/")
    pk = insert_while_history_is_pruned(fresh_stack, iso_pg, page, "After prune, shared")
    assert page.evaluate("Object.keys(window.__reset.html || {}).length") == 2
    expect(person_row(page, pk).locator(".name")).to_have_text("After prune, shared")


def test_per_user_regions_ask_once_per_page_for_all_they_need(
    counted: CountedStack, iso_pg: psycopg.Connection, context: BrowserContext
) -> None:
    """The books page's regions are per-user (no ``shared``): each tab fetches, but all the
    rows one change needs go in one coalesced request, sent after a jittered pause."""
    tabs = 5
    author = iso_pg.execute("INSERT INTO authors (name) VALUES ('Zora Q.') RETURNING id").fetchone()
    assert author is not None
    pages = [open_live(context.new_page(), counted.http + "/books/") for _ in range(tabs)]
    counted.forget()
    with iso_pg.transaction():
        for year in range(1966, 1971):
            iso_pg.execute(
                "INSERT INTO books (title, year, author_id) VALUES (%s, %s, %s)", (f"Y{year}", year, author[0])
            )
    for page in pages:
        expect(page.locator("#book-rows > tr", has_text="Zora Q.")).to_have_count(5)
    requests = counted.requests()
    asked = [r for r in requests if r.startswith("http ")]
    assert len(asked) == tabs and all(r.startswith("http /pgevents/fragments/?u=") for r in asked), requests
    assert len([r for r in requests if r.startswith("fragment /books/row/")]) == 5 * tabs

    counted.forget()
    iso_pg.execute("UPDATE authors SET name = 'Zora Q. Renamed' WHERE id = %s", (author[0],))
    for page in pages:
        expect(page.locator("#book-rows > tr", has_text="Zora Q. Renamed")).to_have_count(5)
        expect(page.locator(f'#author-rows > tr[data-pgevents-row="{author[0]}"]')).to_have_text("Zora Q. Renamed")
    asked = [r for r in counted.requests() if r.startswith("http ")]
    assert all(r.startswith("http /pgevents/fragments/?u=") for r in asked), asked
    # Two regions, two channels, one change: one request per tab (two when a tab's regions
    # flush on either side of its window).
    assert tabs <= len(asked) <= 2 * tabs, asked
    assert any("authors" in r and "books" in r for r in asked), asked  # both regions in one request


def test_shared_regions_over_server_sent_events(counted: CountedStack, iso_pg: psycopg.Connection, page: Page) -> None:
    open_live(page, counted.http + "/?transport=sse")
    counted.forget()
    pk = insert_person(iso_pg, "Shared over SSE", 6)
    expect(person_row(page, pk).locator(".name")).to_have_text("Shared over SSE")
    assert [r for r in counted.requests() if r.startswith("http ")] == []
