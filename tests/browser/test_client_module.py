"""The client as a browser runs it: what it does with the server's close codes and refusals,
a malformed region next to good ones, and a page that includes the script twice.

Close codes are sent by a scripted WebSocket (Playwright's ``route_web_socket``): the real
server sends 4401 only after a logout seen by its session check, and 4403/4404 only on the
single-channel URL; the server's side of those is tested in tests/integration/test_security.py.
The decisions themselves (backoff, codes, ordering) have fast tests in tests/js/."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, Route, WebSocketRoute, expect

from tests.browser.test_live_pages import insert_person, open_live, person_row
from tests.support import Stack

pytestmark = pytest.mark.browser

#: How long a negative check watches for a reconnect that must not come: several times the
#: client's first backoff delays (250 ms, 500 ms). Not a timing assertion on the code.
QUIET_MS = 1_500


def rewrite_page(page: Page, url: str, change: Any) -> None:
    """Serve ``url`` as the real server renders it, with ``change`` applied to its HTML."""

    def handle(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=change(response.text()))

    page.route(url, handle)


class ScriptedServer:
    """A WebSocket endpoint that accepts every subscription unless told to refuse it."""

    def __init__(self, page: Page, refuse: dict[str, str] | None = None) -> None:
        self.sockets: list[WebSocketRoute] = []
        self.subscribes: list[list[dict[str, Any]]] = []
        self.refuse = refuse or {}
        page.route_web_socket("**/ws/pgevents/", self._connect)

    def _connect(self, ws: WebSocketRoute) -> None:
        self.sockets.append(ws)
        received: list[dict[str, Any]] = []
        self.subscribes.append(received)

        def on_message(text: str | bytes) -> None:
            msg = json.loads(text)
            if msg.get("type") != "subscribe":
                return
            received.append(msg)
            channel = msg["channel"]
            if channel in self.refuse:
                ws.send(
                    json.dumps({"type": "error", "channel": channel, "code": self.refuse[channel], "message": "no"})
                )
            else:
                ws.send(json.dumps({"type": "subscribed", "channel": channel, "last_event_id": 1}))

        ws.on_message(on_message)


def test_4401_ends_the_session_and_the_client_does_not_come_back_anonymous(stack: Stack, page: Page) -> None:
    server = ScriptedServer(page)
    page.add_init_script("document.addEventListener('pgevents:ended', (e) => { window.__ended = e.detail; })")
    open_live(page, stack.http + "/")
    server.sockets[0].close(code=4401, reason="session ended")
    status = page.locator("[data-pgevents-status]")
    expect(status).to_have_attribute("data-state", "ended")
    expect(status).to_have_text("session ended")
    assert page.evaluate("window.__ended.code") == "session_ended"
    page.wait_for_timeout(QUIET_MS)
    assert len(server.sockets) == 1
    assert page.evaluate("PgEvents.client.state") == "ended"


def test_4403_drops_the_refused_subscription_and_resumes_the_others(stack: Stack, page: Page) -> None:
    server = ScriptedServer(page, refuse={"secret": "forbidden"})
    open_live(page, stack.http + "/")
    page.evaluate("PgEvents.client.subscribe('secret')")
    status = page.locator("[data-pgevents-status]")
    expect(status).to_have_attribute("data-state", "refused")
    server.sockets[0].close(code=4403)
    page.wait_for_function(
        "() => PgEvents.client.connected && PgEvents.client.channels.get('people').state === 'subscribed'"
    )
    assert len(server.sockets) == 2
    assert [m["channel"] for m in server.subscribes[1]] == ["people"]  # not the refused one again
    expect(status).to_have_attribute("data-state", "refused")
    page.wait_for_timeout(QUIET_MS)
    assert len(server.sockets) == 2


def test_4408_resumes_from_the_last_id_seen(stack: Stack, page: Page) -> None:
    server = ScriptedServer(page)
    open_live(page, stack.http + "/")
    first = server.sockets[0]
    first.send(json.dumps({"type": "event", "channel": "people", "id": 41, "op": "NOTIFY", "row": None}))
    page.wait_for_function("() => PgEvents.client.lastEventId('people') === 41")
    first.close(code=4408)
    page.wait_for_function("() => window.__states.at(-1) === 'live' && PgEvents.client.connected")
    (again,) = server.subscribes[1]
    assert (again["channel"], again["last_event_id"]) == ("people", 41)


def test_an_sse_stream_refused_with_403_is_not_retried(stack: Stack, page: Page) -> None:
    asked: list[str] = []

    def refuse(route: Route) -> None:
        asked.append(route.request.url)
        route.fulfill(status=403, content_type="text/html", body="<h1>Forbidden by a proxy</h1>")

    page.route("**/pgevents/sse/people/**", refuse)
    page.goto(stack.http + "/?transport=sse")
    status = page.locator("[data-pgevents-status]")
    expect(status).to_have_attribute("data-state", "refused")
    page.wait_for_timeout(QUIET_MS)
    # The EventSource's own request and the client's one look at the refusal: then nothing.
    assert len(asked) == 2, asked


def test_a_malformed_region_does_not_keep_the_others_from_binding(
    stack: Stack, pg: psycopg.Connection, page: Page
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    bad = '<div id="broken" data-pgevents-channel="people" data-pgevents-filter="{oops"></div>'
    rewrite_page(page, stack.http + "/", lambda html: html.replace("<h1>People</h1>", "<h1>People</h1>" + bad))
    open_live(page, stack.http + "/")
    expect(page.locator("#broken")).to_have_attribute("data-pgevents-state", "error")
    expect(page.locator("#people-rows")).to_have_attribute("data-pgevents-state", "bound")
    assert any("region #broken not bound: data-pgevents-filter is not JSON" in e for e in errors), errors
    pk = insert_person(pg, "Still bound", 3)
    expect(person_row(page, pk).locator(".name")).to_have_text("Still bound")


def test_the_script_included_twice_opens_one_connection(stack: Stack, pg: psycopg.Connection, page: Page) -> None:
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))

    def twice(html: str) -> str:
        start = html.index('<script type="module"')
        tag = html[start : html.index("</script>", start) + len("</script>")]
        # Once as it is, once under another URL (a second copy of the module, not the same one).
        again = tag.replace("pgevents.js", "pgevents.js?again")
        return html.replace("</body>", again + tag + "</body>")

    rewrite_page(page, stack.http + "/", twice)
    open_live(page, stack.http + "/")
    assert page.locator("script[data-pgevents-url]").count() == 3
    pk = insert_person(pg, "Once", 2)
    expect(person_row(page, pk).locator(".name")).to_have_text("Once")
    expect(person_row(page, pk)).to_have_count(1)
    assert len(sockets) == 1, sockets
    assert page.evaluate("PgEvents.regions.length") == 2
