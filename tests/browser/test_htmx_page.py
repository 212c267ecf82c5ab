"""htmx without the pgevents client, in Chromium: the demo's /htmx/ page connects htmx's
``sse`` extension (htmx 2.0.11 and htmx-ext-sse 2.2.4, vendored in the demo's static files
under their 0BSD licences) to the HTML stream; one INSERT swaps in the rows and, out of band,
the count; a server restart is resumed by ``Last-Event-ID``."""

from __future__ import annotations

import psycopg
import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.test_live_pages import insert_person
from tests.support import Stack

pytestmark = pytest.mark.browser


def open_htmx(page: Page, url: str) -> None:
    page.add_init_script(
        "window.__opened = 0; document.addEventListener('htmx:sseOpen', () => { window.__opened++; });"
    )
    page.goto(url)
    page.wait_for_function("() => window.__opened >= 1")


def row(page: Page, pk: int) -> object:
    return page.locator(f'#people-rows > tr[data-pgevents-row="{pk}"]')


def test_htmx_swaps_the_streamed_html_and_the_count_out_of_band(
    fresh_stack: Stack, iso_pg: psycopg.Connection, page: Page
) -> None:
    stack = fresh_stack
    open_htmx(page, stack.http + "/htmx/")
    assert page.evaluate("typeof window.PgEvents") == "undefined"  # no pgevents client here
    pk = insert_person(iso_pg, "Via htmx", 9)
    expect(row(page, pk).locator(".name")).to_have_text("Via htmx")  # type: ignore[attr-defined]
    count = iso_pg.execute("SELECT count(*) FROM people").fetchone()
    assert count is not None
    expect(page.locator("#people-count")).to_have_text(str(count[0]))
    expect(page.locator("#people-count")).to_have_count(1)  # swapped out of band, not appended

    iso_pg.execute("DELETE FROM people WHERE pk = %s", (pk,))
    expect(row(page, pk)).to_have_count(0)  # type: ignore[attr-defined]
    expect(page.locator("#people-count")).to_have_text(str(count[0] - 1))


def test_the_html_stream_resumes_by_last_event_id(fresh_stack: Stack, iso_pg: psycopg.Connection, page: Page) -> None:
    stack = fresh_stack
    resumed: list[str] = []

    def seen(request: Request) -> None:
        if "/pgevents/html/" in request.url:
            resumed.append(request.all_headers().get("last-event-id", ""))

    page.on("request", seen)
    open_htmx(page, stack.http + "/htmx/")
    first = insert_person(iso_pg, "Before the restart", 1)
    expect(row(page, first)).to_have_count(1)  # type: ignore[attr-defined]
    assert stack.daphne is not None
    stack.daphne.stop()
    missed = insert_person(iso_pg, "While the server was away", 2)
    stack.start_daphne()
    page.wait_for_function("() => window.__opened >= 2")
    expect(row(page, missed).locator(".name")).to_have_text("While the server was away")  # type: ignore[attr-defined]
    assert resumed[0] == "" and resumed[-1] != "", resumed  # the reconnection said where it was
