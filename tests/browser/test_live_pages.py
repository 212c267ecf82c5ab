"""The demo pages in a real headless Chromium against the real stack (daphne, runlisten,
Redis, PostgreSQL). Every change is written by a separate psycopg connection, as psql
would; the tests wait for DOM conditions and never for a fixed time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.support import Stack

pytestmark = pytest.mark.browser


def open_live(page: Page, url: str) -> Page:
    """Open ``url`` and wait until its client is connected and subscribed."""
    page.goto(url)
    expect(page.locator("[data-pgevents-status]")).to_have_attribute("data-state", "live")
    page.wait_for_function(
        "() => PgEvents.client && [...PgEvents.client.channels.keys()].every(c => window.__subscribed.has(c))"
    )
    return page


def person_row(page: Page, pk: int) -> Any:
    return page.locator(f'#people-rows > tr[data-pgevents-row="{pk}"]')


def insert_person(pg: psycopg.Connection, name: str, age: int) -> int:
    row = pg.execute("INSERT INTO people (name, age, height) VALUES (%s, %s, 1.8) RETURNING pk", (name, age)).fetchone()
    assert row is not None
    return int(row[0])


def insert_while_history_is_pruned(stack: Stack, pg: psycopg.Connection, page: Page, name: str) -> int:
    """Stop the page's server, insert a person and prune past it, then bring the server back:
    the page's resume point is outside the log, so the server answers ``reset``. The page
    records the reset's detail in ``window.__reset``. Returns the new row's key."""
    assert stack.daphne is not None
    stack.daphne.stop()
    expect(page.locator("[data-pgevents-status]")).not_to_have_attribute("data-state", "live")
    pk = insert_person(pg, name, 4)
    pg.execute("UPDATE pgevents_cursor SET value = value + 1000 WHERE name IN ('pruned', 'assigned')")
    page.evaluate("document.addEventListener('pgevents:reset', (e) => { window.__reset = e.detail || true; })")
    stack.start_daphne()
    page.wait_for_function("() => window.__reset !== undefined")
    return pk


def test_insert_update_delete_patch_the_people_page(
    stack: Stack, pg: psycopg.Connection, page: Page, screenshots: Path
) -> None:
    open_live(page, stack.http + "/")
    rows = page.locator("#people-rows > tr")
    before = rows.count()

    pk = insert_person(pg, "Paul", 51)
    expect(person_row(page, pk).locator(".name")).to_have_text("Paul")
    expect(rows).to_have_count(before + 1)

    pg.execute("UPDATE people SET age = 52 WHERE pk = %s", (pk,))
    expect(person_row(page, pk).locator(".age")).to_have_text("52")
    expect(rows).to_have_count(before + 1)  # changed in place, not appended

    for name, age in (("Ada", 36), ("Grace", 85)):
        insert_person(pg, name, age)
    expect(rows).to_have_count(before + 3)
    expect(page.locator("#people-count")).to_have_text(str(before + 3))  # a region without rows: its src
    keys = [int(k) for k in rows.evaluate_all("rs => rs.map(r => r.dataset.pgeventsRow)")]
    assert keys == sorted(keys)  # new rows take their place in the page's order
    page.screenshot(path=screenshots / "people.png")

    pg.execute("DELETE FROM people WHERE pk = %s", (pk,))
    expect(person_row(page, pk)).to_have_count(0)
    expect(rows).to_have_count(before + 2)


def test_two_pages_open_at_once_both_update(stack: Stack, pg: psycopg.Connection, context: BrowserContext) -> None:
    first = open_live(context.new_page(), stack.http + "/")
    second = open_live(context.new_page(), stack.http + "/")
    pk = insert_person(pg, "Twin", 7)
    for page in (first, second):
        expect(person_row(page, pk).locator(".name")).to_have_text("Twin")
    pg.execute("UPDATE people SET name = 'Twins' WHERE pk = %s", (pk,))
    for page in (first, second):
        expect(person_row(page, pk).locator(".name")).to_have_text("Twins")


def test_dom_events_per_channel_and_operation_without_duplicates(
    stack: Stack, pg: psycopg.Connection, page: Page
) -> None:
    """What htmx (`hx-trigger="pgevents:people from:body"`), Alpine or plain JS listen to."""
    open_live(page, stack.http + "/")
    page.evaluate(
        """() => {
          window.__seen = [];
          for (const name of ["pgevents:event", "pgevents:people", "pgevents:people:insert",
                              "pgevents:people:update", "pgevents:people:delete"]) {
            document.body.addEventListener(name, (e) => window.__seen.push([name, e.detail.op, e.detail.id]));
          }
        }"""
    )
    pk = insert_person(pg, "Evented", 9)
    pg.execute("UPDATE people SET age = 10 WHERE pk = %s", (pk,))
    pg.execute("DELETE FROM people WHERE pk = %s", (pk,))
    page.wait_for_function("() => window.__seen.length >= 9")
    seen = page.evaluate("window.__seen")
    names = [name for name, _, _ in seen]
    assert names == [
        *("pgevents:event", "pgevents:people", "pgevents:people:insert"),
        *("pgevents:event", "pgevents:people", "pgevents:people:update"),
        *("pgevents:event", "pgevents:people", "pgevents:people:delete"),
    ]
    ids = [event_id for _, _, event_id in seen]
    assert ids[0] < ids[3] < ids[6]
    # The same event again (as after a reconnect overlapping what was seen): dropped.
    page.evaluate(
        "(id) => PgEvents.client._receive(JSON.stringify({type: 'event', channel: 'people', id: id, op: 'DELETE',"
        " row: null, old: {pk: 0}}))",
        ids[6],
    )
    pg.execute("NOTIFY people, 'after the duplicate'")
    page.wait_for_function("() => window.__seen.length >= 11")
    assert [name for name, _, _ in page.evaluate("window.__seen")[9:]] == ["pgevents:event", "pgevents:people"]


def test_a_burst_reloads_the_region_once_and_misses_nothing(stack: Stack, pg: psycopg.Connection, page: Page) -> None:
    open_live(page, stack.http + "/")
    reloads = page.evaluate_handle(
        "() => { const n = {count: 0}; document.getElementById('people-rows').addEventListener("
        "'pgevents:patched', (e) => { if (e.detail.op === 'reload') n.count++; }); return n; }"
    )
    with pg.transaction():
        pg.execute("INSERT INTO people (name, age) SELECT 'burst ' || i, i FROM generate_series(1, 60) i")
    expect(page.locator("#people-rows > tr", has_text="burst ")).to_have_count(60)
    assert reloads.evaluate("n => n.count") >= 1


def test_renaming_an_author_updates_the_books_page(
    stack: Stack, pg: psycopg.Connection, page: Page, screenshots: Path
) -> None:
    author = pg.execute("INSERT INTO authors (name) VALUES ('Mary Shelley') RETURNING id").fetchone()
    assert author is not None
    open_live(page, stack.http + "/books/")
    pg.execute(
        "INSERT INTO books (title, year, author_id) VALUES ('Frankenstein', 1818, %s), ('The Last Man', 1826, %s)",
        (author[0], author[0]),
    )
    books = page.locator("#book-rows > tr", has_text="Mary Shelley")
    expect(books).to_have_count(2)

    patched = page.evaluate_handle(
        "() => { const ops = []; document.getElementById('book-rows').addEventListener("
        "'pgevents:patched', (e) => ops.push([e.detail.op, e.detail.key])); return ops; }"
    )
    pg.execute("UPDATE authors SET name = 'Mary Wollstonecraft Shelley' WHERE id = %s", (author[0],))
    expect(page.locator("#book-rows > tr", has_text="Mary Wollstonecraft Shelley")).to_have_count(2)
    expect(page.locator(f'#author-rows > tr[data-pgevents-row="{author[0]}"]')).to_have_text(
        "Mary Wollstonecraft Shelley"
    )
    # Only the two books showing that author were re-rendered: no reload of the listing.
    shelley = page.locator("#book-rows > tr", has_text="Shelley").evaluate_all(
        "rs => rs.map(r => r.dataset.pgeventsRow)"
    )
    assert sorted(patched.evaluate("ops => ops.map(o => o[1])")) == sorted(shelley)
    assert {op for op, _ in patched.evaluate("ops => ops")} == {"UPDATE"}
    page.screenshot(path=screenshots / "books.png")


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_the_page_reconnects_by_itself_and_catches_up(
    fresh_stack: Stack, iso_pg: psycopg.Connection, page: Page, transport: str
) -> None:
    stack, pg = fresh_stack, iso_pg
    kept = insert_person(pg, "Kept", 1)
    gone = insert_person(pg, "Gone", 2)
    open_live(page, f"{stack.http}/?transport={transport}")
    expect(person_row(page, gone)).to_have_count(1)

    assert stack.daphne is not None
    stack.daphne.stop()  # every socket is dropped by the server
    expect(page.locator("[data-pgevents-status]")).not_to_have_attribute("data-state", "live")
    new = insert_person(pg, "While away", 3)
    pg.execute("UPDATE people SET name = 'Kept, renamed' WHERE pk = %s", (kept,))
    pg.execute("DELETE FROM people WHERE pk = %s", (gone,))

    stack.start_daphne()  # same port: the page finds its server again
    expect(page.locator("[data-pgevents-status]")).to_have_attribute("data-state", "live")
    expect(person_row(page, new).locator(".name")).to_have_text("While away")
    expect(person_row(page, kept).locator(".name")).to_have_text("Kept, renamed")
    expect(person_row(page, gone)).to_have_count(0)
    states = page.evaluate("window.__states")
    assert states[:2] == ["connecting", "live"] and states[-1] == "live"
    assert "reconnecting" in states[2:], states


def test_reset_reloads_the_region(fresh_stack: Stack, iso_pg: psycopg.Connection, page: Page) -> None:
    """History pruned while the page was away: the server says `reset`, the region reloads."""
    open_live(page, fresh_stack.http + "/")
    pk = insert_while_history_is_pruned(fresh_stack, iso_pg, page, "After prune")
    expect(person_row(page, pk).locator(".name")).to_have_text("After prune")


def test_server_sent_events_transport(stack: Stack, pg: psycopg.Connection, page: Page) -> None:
    open_live(page, stack.http + "/?transport=sse")
    assert page.evaluate("PgEvents.client.transportName") == "sse"
    pk = insert_person(pg, "Over SSE", 5)
    expect(person_row(page, pk).locator(".name")).to_have_text("Over SSE")
    pg.execute("DELETE FROM people WHERE pk = %s", (pk,))
    expect(person_row(page, pk)).to_have_count(0)


def test_channel_console_shows_messages_as_text(
    stack: Stack, pg: psycopg.Connection, page: Page, screenshots: Path
) -> None:
    page.goto(stack.http + "/console/")
    log = page.locator("#log")
    expect(log).to_contain_text('{"type":"subscribed","channel":"people"')  # connected by itself
    page.fill("#channel", "demo")
    page.click("#connect")
    expect(log).to_contain_text('{"type":"subscribed","channel":"demo"')
    pg.execute("SELECT pg_notify('demo', '<img src=x onerror=\"window.__pwned=1\">hello')")
    expect(log).to_contain_text("<img src=x")
    assert page.locator("#log img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=screenshots / "console.png")
