"""What the page says when something is wrong, in a real headless Chromium: a refused
subscription, no listener, a client script that cannot load; and no 404 on the demo's pages."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_live_pages import insert_person, open_live, person_row
from tests.support import Stack

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("transport", ["websocket", "sse"])
@pytest.mark.parametrize(("channel", "code"), [("nosuchchannel", "unknown_channel"), ("sec.closed", "forbidden")])
def test_a_refused_subscription_is_shown_not_live(
    stack: Stack, page: Page, transport: str, channel: str, code: str
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_live(page, f"{stack.http}/?transport={transport}")
    page.evaluate(
        "(c) => { window.__refused = []; document.addEventListener('pgevents:refused',"
        " (e) => window.__refused.push([e.detail.channel, e.detail.code])); PgEvents.client.subscribe(c); }",
        channel,
    )
    status = page.locator("[data-pgevents-status]")
    expect(status).to_have_attribute("data-state", "refused")
    expect(status).to_have_text("refused")
    assert page.evaluate("window.__refused") == [[channel, code]]
    assert any(f'subscription to "{channel}" refused ({code})' in e for e in errors), errors
    assert page.evaluate("PgEvents.client.state") == "refused"

    page.evaluate("(c) => PgEvents.client.unsubscribe(c)", channel)  # the page gives it up: live again
    expect(status).to_have_attribute("data-state", "live")


@pytest.fixture
def stalling_stack(isolated_db: str) -> Iterator[Stack]:
    """A stack whose server notices a missing listener within STALL_TIMEOUT = 1 s."""
    with Stack(isolated_db, env={"PGEVENTS_TEST_STALL": "1"}) as running:
        yield running


def test_the_page_says_when_no_listener_delivers(stalling_stack: Stack, iso_pg: psycopg.Connection, page: Page) -> None:
    stack = stalling_stack
    open_live(page, stack.http + "/")
    status = page.locator("[data-pgevents-status]")
    stack.listeners[0].stop()
    expect(status).to_have_attribute("data-state", "stalled")
    expect(status).to_have_attribute("data-reason", "no_listener")
    expect(status).to_have_text("no listener")
    pk = insert_person(iso_pg, "Waiting for a listener", 1)
    stack.start_listener()
    expect(status).to_have_attribute("data-state", "live")
    expect(person_row(page, pk).locator(".name")).to_have_text("Waiting for a listener")
    assert page.evaluate("window.__states").count("stalled") == 1


def test_a_client_script_that_does_not_load_says_so(stack: Stack, page: Page) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.route("**/pgevents.js", lambda route: route.abort())
    page.goto(stack.http + "/")
    status = page.locator("[data-pgevents-status]")
    expect(status).to_have_attribute("data-state", "failed")
    expect(status).to_have_text("pgevents.js did not load")
    assert any("did not load: are static files served?" in e for e in errors), errors


def test_the_console_connects_by_itself_and_no_page_has_a_missing_file(stack: Stack, page: Page) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(stack.http + "/console/?channel=demo")
    expect(page.locator("#log")).to_contain_text('{"type":"subscribed","channel":"demo"')
    for path in ("/", "/books/", "/admin/login/", "/favicon.ico"):
        page.goto(stack.http + path)
        page.wait_for_load_state("load")
        if path == "/":
            icon = page.evaluate("document.querySelector('link[rel=icon]').href")
            assert page.request.get(icon).headers["content-type"] == "image/svg+xml"
    assert page.evaluate("document.contentType") == "image/svg+xml"  # /favicon.ico: the icon, after a redirect
    assert failed == []
