"""Shared regions without a server: the signed descriptor, the protocol field, and what a
``SharedSink`` sends for rows, deletes, bursts, resets and renders that fail. Renders come from
a ``RenderCache`` whose renderer answers from a dict and counts what it was asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from typing import Any

import pytest

from pgevents.core.envelope import control, dumps
from pgevents.core.protocol import MAX_REGIONS, ProtocolError, parse, parse_query
from pgevents.delivery import render
from pgevents.delivery.memory import RecordingSink
from pgevents.delivery.render import RegionSpec, RenderCache, Rendered
from pgevents.delivery.shared import BURST, SharedSink, fill, with_html
from pgevents.signing import BadToken, sign_region, verify_region

ROWS = RegionSpec("people", "/people/row/{key}/", "pk", "/people/rows/")
COUNT = RegionSpec("people", None, "id", "/people/count/")


class Pages:
    """The project's views, as the render cache would call them."""

    def __init__(self, pages: dict[str, Rendered]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    async def __call__(self, path: str, prefix: str = "/") -> Rendered:
        self.asked.append(path if prefix == "/" else f"{prefix} {path}")
        await asyncio.sleep(0)
        return self.pages.get(path, Rendered(404, ""))


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> Pages:
    found = Pages(
        {
            "/people/row/1/": Rendered(200, "<tr>one</tr>"),
            "/people/row/2/": Rendered(200, "<tr>two</tr>"),
            "/people/rows/": Rendered(200, "<tr>all</tr>"),
            "/people/count/": Rendered(200, "2"),
        }
    )
    monkeypatch.setattr(render, "render", found)
    return found


def event(id: int, op: str, **row: Any) -> str:
    return dumps({"type": "event", "channel": "people", "id": id, "op": op, "row": row or None, "old": None})


async def deliver(sink: SharedSink, frames: list[tuple[str, int | None]]) -> None:
    for frame, id in frames:
        await sink.send_event(frame, id)


async def drained(recorder: RecordingSink, n: int) -> list[dict[str, Any]]:
    return [await recorder.next() for _ in range(n)]


def test_the_descriptor_is_signed_and_bound_to_its_channel() -> None:
    token = sign_region(ROWS)
    assert verify_region(token, "people") == ROWS
    assert ROWS.id == RegionSpec("people", "/people/row/{key}/", "pk", "/people/rows/").id != COUNT.id
    with pytest.raises(BadToken, match="another channel"):
        verify_region(token, "books")
    with pytest.raises(BadToken, match="not valid"):
        verify_region(token[:-2] + "xx", "people")
    with pytest.raises(BadToken, match="non-empty"):
        verify_region(None, "people")


def test_the_protocol_carries_region_tokens_by_message_and_by_url() -> None:
    command = parse(json.dumps({"type": "subscribe", "channel": "people", "regions": ["a", "b", "a"]}), 65536)
    assert command.regions == ("a", "b")  # type: ignore[union-attr]
    assert parse_query("people", "regions=a,b").regions == ("a", "b")
    assert parse_query("people", "").regions == ()
    for bad in (["a"] * (MAX_REGIONS + 1), [""], [1], "x"):
        with pytest.raises(ProtocolError):
            parse(json.dumps({"type": "subscribe", "channel": "c", "regions": bad if bad != "x" else {"a": 1}}), 65536)


def test_rows_are_rendered_once_for_every_subscriber(pages: Pages) -> None:
    async def body() -> None:
        cache = RenderCache()
        recorders = [RecordingSink() for _ in range(50)]
        sinks = [SharedSink(r, [ROWS, COUNT], cache) for r in recorders]
        for sink in sinks:
            await deliver(sink, [(event(7, "INSERT", pk=1, name="one"), 7)])
        for recorder in recorders:
            (got,) = await drained(recorder, 1)
            assert got["id"] == 7 and got["row"]["name"] == "one"
            assert got["html"] == {
                ROWS.id: {"op": "row", "key": "1", "html": "<tr>one</tr>"},
                COUNT.id: {"op": "region", "html": "2"},
            }
        assert sorted(pages.asked) == ["/people/count/", "/people/row/1/"]  # 50 subscribers, 2 renders
        assert cache.renders == 2

    asyncio.run(body())


def test_live_frames_are_composed_once_and_written_directly(pages: Pages) -> None:
    """Subscribers of one process showing the same regions share one composed frame, written
    to each socket as it is (``write_nowait``, as the hub writes plain events); a replay goes
    through the sink's own paced path."""

    async def body() -> None:
        cache = RenderCache()
        direct = [RecordingSink(direct=True) for _ in range(3)]
        sinks = [SharedSink(r, [ROWS], cache) for r in direct]
        for sink in sinks:
            await sink.send_event(event(7, "INSERT", pk=1), 7)
        got = [await r.next() for r in direct]
        assert [m["via"] for m in got] == ["direct"] * 3
        assert all(m["html"] == {ROWS.id: {"op": "row", "key": "1", "html": "<tr>one</tr>"}} for m in got)
        assert direct[0].writes[0] is direct[1].writes[0]  # the same bytes, framed once
        await sinks[0].send_event(event(7, "INSERT", pk=1), 7, replay=True)
        replayed = await direct[0].next()
        assert replayed["via"] == "replay" and replayed["html"] == got[0]["html"]
        assert cache.renders == 1

    asyncio.run(body())


class CountingLoop(asyncio.SelectorEventLoop):
    """Counts the callbacks scheduled with ``call_soon`` (done callbacks of futures included)."""

    scheduled = 0

    def call_soon(self, *args: Any, **kwargs: Any) -> Any:
        self.scheduled += 1
        return super().call_soon(*args, **kwargs)


def test_a_run_reaches_every_live_subscriber_through_one_callback_and_one_buffer(pages: Pages) -> None:
    """What a live change costs per subscriber does not include a callback of its own:
    the sinks a pass of the hub reached are looked at together, and those waiting for the
    same composed run are written together, every socket with the same bytes."""

    async def body(loop: CountingLoop, subscribers: int) -> tuple[int, list[RecordingSink]]:
        cache = RenderCache()
        direct = [RecordingSink(direct=True) for _ in range(subscribers)]
        sinks = [SharedSink(r, [ROWS], cache) for r in direct]
        before = loop.scheduled
        for sink in sinks:  # one pass of the hub: a run of two events
            await deliver(sink, [(event(7, "INSERT", pk=1), 7), (event(8, "INSERT", pk=2), 8)])
        for recorder in direct:
            assert [(m["id"], m["via"]) for m in await drained(recorder, 2)] == [(7, "direct"), (8, "direct")]
        return loop.scheduled - before, direct

    counts = []
    for subscribers in (2, 200):
        loop = CountingLoop()
        try:
            scheduled, direct = loop.run_until_complete(body(loop, subscribers))
        finally:
            loop.close()
        counts.append(scheduled)
        assert all(r.writes == [direct[0].writes[0]] for r in direct)  # one write each, of one buffer
        assert all(r.writes[0] is direct[0].writes[0] for r in direct)
    assert counts[1] == counts[0]  # a hundred times the subscribers, not one more callback


def test_a_socket_that_fails_to_take_a_run_holds_up_nobody_else(pages: Pages, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        cache = RenderCache()
        broken, fine = RecordingSink(direct=True), RecordingSink(direct=True)

        def fails(data: bytes) -> bool:
            raise OSError("connection reset")

        broken.write_nowait = fails  # type: ignore[method-assign]
        for recorder in (broken, fine):
            await SharedSink(recorder, [ROWS], cache).send_event(event(7, "INSERT", pk=1), 7)
        assert (await fine.next())["id"] == 7

    with caplog.at_level("ERROR", logger="pgevents.delivery.shared"):
        asyncio.run(body())
    assert "writing shared-region frames failed" in caplog.text and "connection reset" in caplog.text


def test_direct_writes_keep_the_order_of_events_and_controls(pages: Pages, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event arriving while the one before it is still being rendered, and a control
    frame behind them, wait for it: the client gets them in order."""

    async def body() -> None:
        slow = asyncio.Event()
        fast = pages.__call__

        async def renders(path: str, prefix: str = "/") -> Rendered:
            if path == "/people/row/1/":
                await slow.wait()
            return await fast(path, prefix)

        monkeypatch.setattr(render, "render", renders)
        recorder = RecordingSink(direct=True)
        sink = SharedSink(recorder, [ROWS], RenderCache())
        await sink.send_event(event(1, "INSERT", pk=1), 1)
        await asyncio.sleep(0.01)
        await sink.send_event(event(2, "INSERT", pk=2), 2)
        await sink.send_control(control("pipeline", state="ok"))
        await asyncio.sleep(0.01)
        assert recorder.received == []  # the first is still rendering: nothing overtakes it
        slow.set()
        got = [await recorder.next() for _ in range(3)]
        assert [(m["type"], m.get("id"), m["via"]) for m in got] == [
            ("event", 1, "direct"),
            ("event", 2, "direct"),
            ("pipeline", None, "control"),
        ]

    asyncio.run(body())


def test_a_direct_write_that_cannot_be_composed_is_logged(
    pages: Pages, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: SharedSink, run: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(SharedSink, "_compose", broken)

    async def body() -> None:
        recorder = RecordingSink(direct=True)
        await SharedSink(recorder, [ROWS], RenderCache()).send_event(event(1, "INSERT", pk=1), 1)
        await asyncio.sleep(0.01)
        assert recorder.received == []

    with caplog.at_level("ERROR", logger="pgevents.delivery.shared"):
        asyncio.run(body())
    assert "composing shared-region frames failed" in caplog.text and "a bug" in caplog.text


def test_a_failed_render_costs_its_wave_one_attempt_and_is_tried_again_later(pages: Pages) -> None:
    async def body() -> None:
        cache = RenderCache(retry_after=0.05)
        pages.pages["/people/row/1/"] = Rendered(500, "")
        wave = [RecordingSink() for _ in range(3)]
        for recorder in wave:
            await SharedSink(recorder, [ROWS], cache).send_event(event(7, "UPDATE", pk=1), 7)
        assert ["html" in await r.next() for r in wave] == [False] * 3  # not sent: the tabs fetch it
        assert pages.asked == ["/people/row/1/"]  # one attempt for the whole wave
        pages.pages["/people/row/1/"] = Rendered(200, "<tr>one again</tr>")
        await asyncio.sleep(0.06)
        later = RecordingSink()  # a replay of the same event, after the blip
        await SharedSink(later, [ROWS], cache).send_event(event(7, "UPDATE", pk=1), 7, replay=True)
        assert (await later.next())["html"] == {ROWS.id: {"op": "row", "key": "1", "html": "<tr>one again</tr>"}}
        assert pages.asked == ["/people/row/1/", "/people/row/1/"]

    asyncio.run(body())


def test_deletes_gone_rows_and_failing_renders(pages: Pages) -> None:
    async def body() -> None:
        recorder = RecordingSink()
        sink = SharedSink(recorder, [ROWS], RenderCache())
        pages.pages["/people/row/2/"] = Rendered(302, "")  # the view wants a login: not for everyone
        await deliver(
            sink,
            [
                (
                    dumps(
                        {"type": "event", "channel": "people", "id": 1, "op": "DELETE", "row": None, "old": {"pk": 9}}
                    ),
                    1,
                ),
                (event(2, "UPDATE", pk=3), 2),  # the row view answers 404: gone for everyone
                (event(3, "UPDATE", pk=2), 3),
                (event(4, "TRUNCATE"), 4),
                (dumps({"type": "event", "channel": "people", "id": None, "op": None, "payload": "x"}), None),
            ],
        )
        deleted, missing, redirected, truncated, plain = await drained(recorder, 5)
        assert deleted["html"] == {ROWS.id: {"op": "row", "key": "9", "html": None}}
        assert missing["html"] == {ROWS.id: {"op": "row", "key": "3", "html": None}}
        assert "html" not in redirected  # the client fetches it itself, as its own user
        assert truncated["html"] == {ROWS.id: {"op": "region", "html": "<tr>all</tr>"}}
        assert "html" not in plain

    asyncio.run(body())


def test_a_burst_is_one_refresh_and_a_region_without_rows_renders_at_the_last_event(pages: Pages) -> None:
    async def body() -> None:
        recorder = RecordingSink()
        sink = SharedSink(recorder, [ROWS, COUNT], RenderCache())
        await deliver(sink, [(event(i, "INSERT", pk=i), i) for i in range(1, BURST + 6)])
        got = await drained(recorder, BURST + 5)
        assert [m["id"] for m in got] == list(range(1, BURST + 6))  # every event, in order
        assert all(m["html"] == {ROWS.id: {"op": "skip"}, COUNT.id: {"op": "skip"}} for m in got[:-1])
        assert got[-1]["html"] == {
            ROWS.id: {"op": "region", "html": "<tr>all</tr>"},
            COUNT.id: {"op": "region", "html": "2"},
        }
        assert sorted(pages.asked) == ["/people/count/", "/people/rows/"]

        pages.asked.clear()
        await deliver(sink, [(event(100, "INSERT", pk=1), 100), (event(101, "INSERT", pk=2), 101)])
        small = await drained(recorder, 2)
        assert small[0]["html"][COUNT.id] == {"op": "skip"}  # the count refreshes once, at the last
        assert small[1]["html"][COUNT.id] == {"op": "region", "html": "2"}
        assert sorted(pages.asked) == ["/people/count/", "/people/row/1/", "/people/row/2/"]

    asyncio.run(body())


def test_a_reset_carries_the_regions_html_and_controls_keep_their_place(pages: Pages) -> None:
    async def body() -> None:
        recorder = RecordingSink()
        sink = SharedSink(recorder, [ROWS, COUNT], RenderCache())
        await sink.send_control(control("subscribed", channel="people", last_event_id=5))
        await sink.send_event(event(6, "INSERT", pk=1), 6)
        await sink.send_control(control("reset", channel="people", last_event_id=40))
        subscribed, inserted, reset = await drained(recorder, 3)
        assert subscribed["type"] == "subscribed" and "html" not in subscribed
        assert inserted["id"] == 6
        assert reset["html"] == {
            ROWS.id: {"op": "region", "html": "<tr>all</tr>"},
            COUNT.id: {"op": "region", "html": "2"},
        }

    asyncio.run(body())


def test_the_cache_is_bounded_and_keyed_by_url_and_version(pages: Pages) -> None:
    async def body() -> None:
        cache = RenderCache(size=2)
        versions: list[Hashable] = [1, 1, 2, 3, 1]
        results = [await cache.get("/people/count/", v) for v in versions]
        assert all(r == Rendered(200, "2") for r in results)
        assert cache.renders == 4  # 1 again after it was dropped: rendered again

        made: list[str] = []

        async def make(name: str) -> tuple[str, bool]:
            made.append(name)
            return name.upper(), True

        for name in ("a", "b", "a", "c", "a"):
            assert await cache.compose(name, lambda n=name: make(n)) == name.upper()
        assert made == ["a", "b", "c", "a"]  # a was kept while within the size, dropped after c

    asyncio.run(body())


def test_a_failed_render_is_shared_for_a_moment_then_tried_again(pages: Pages) -> None:
    """A view that fails once (a database blip): everyone asking meanwhile shares the one
    failed attempt; after ``retry_after`` the next asker renders again and gets the HTML,
    which is then kept. A 404 is an answer, not a failure: it is kept."""

    async def body() -> None:
        now = [0.0]
        cache = RenderCache(retry_after=1.0, clock=lambda: now[0])
        pages.pages["/people/row/5/"] = Rendered(500, "")
        first = [cache.get("/people/row/5/", 7) for _ in range(3)]  # one wave of subscribers
        assert [await f for f in first] == [Rendered(500, "")] * 3 and cache.renders == 1
        now[0] = 0.5
        assert await cache.get("/people/row/5/", 7) == Rendered(500, "") and cache.renders == 1
        pages.pages["/people/row/5/"] = Rendered(200, "<tr>five</tr>")  # the blip is over
        now[0] = 1.0
        assert await cache.get("/people/row/5/", 7) == Rendered(200, "<tr>five</tr>") and cache.renders == 2
        now[0] = 100.0
        assert await cache.get("/people/row/5/", 7) == Rendered(200, "<tr>five</tr>") and cache.renders == 2
        assert await cache.get("/people/row/404/", 7) == Rendered(404, "")
        assert await cache.get("/people/row/404/", 7) == Rendered(404, "") and cache.renders == 3
        assert pages.asked == ["/people/row/5/", "/people/row/5/", "/people/row/404/"]

    asyncio.run(body())


def test_a_failed_render_is_logged_with_what_happens_next(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real renderer: a view that raises, and one that answers a redirect (a login)."""

    def raising(path: str, prefix: str) -> Rendered:
        raise RuntimeError("database blip")

    async def body() -> None:
        assert await render.render("/admin/") == Rendered(302, "")

    with caplog.at_level("WARNING", logger="pgevents.delivery.render"):
        asyncio.run(body())
        monkeypatch.setattr(render, "render_path", raising)
        assert asyncio.run(render.render("/people/count/")) == Rendered(500, "")
    assert "rendering /admin/ for a shared region answered 302, not 200: not sent" in caplog.text
    assert "rendering /people/count/ for a shared region failed: not sent, the tabs fetch it themselves" in caplog.text
    assert "database blip" in caplog.text


def test_helpers() -> None:
    assert fill("/row/{key}/", "a b/c") == "/row/a%20b%2Fc/"
    assert with_html('{"a":1}', {}) == '{"a":1}'
    assert json.loads(with_html('{"a":1}', {"r": {"op": "skip"}})) == {"a": 1, "html": {"r": {"op": "skip"}}}
