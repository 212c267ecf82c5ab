"""A subscription over the in-memory log: resume, dedupe, gap repair, reset, overflow, resync.

Each test offers events the way the hub does and checks what the client would receive, in
order. "Nothing else arrived" is always shown with a fence: one more event, which must be next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.test import override_settings

from pgevents.core.envelope import Event, layer_message
from pgevents.delivery.fastsend import text_frame
from pgevents.delivery.memory import RecordingSink
from pgevents.delivery.subscription import BUFFER_LIMIT, NOT_HANDLED, Subscription
from pgevents.store.log import Replay
from pgevents.store.memory import MemoryLog

C = "c"


def run(body: Callable[[MemoryLog, RecordingSink], Awaitable[None]], log: MemoryLog | None = None) -> None:
    asyncio.run(body(log or MemoryLog(), RecordingSink()))


def ids(messages: list[dict[str, Any]]) -> list[int | None]:
    return [m.get("id") for m in messages]


async def take(sink: RecordingSink, n: int) -> list[dict[str, Any]]:
    return [await sink.next() for _ in range(n)]


def test_a_new_subscription_starts_at_the_head_then_follows_live_events() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        log.commit(C)
        log.commit(C)
        sub = Subscription(C, sink, log)
        sub.start()
        assert await sink.next() == {"type": "subscribed", "channel": C, "last_event_id": 2, "via": "control"}
        await sub.offer(log.commit(C))
        assert (await sink.next())["id"] == 3
        sub.close()

    run(body)


def test_a_resume_replays_what_it_missed_once_and_in_order() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        for _ in range(5):
            log.commit(C)
        log.commit("other")
        sub = Subscription(C, sink, log, last_id=2)
        sub.start()
        live = log.commit(C)
        await sub.offer(live)  # arrives while the replay may still run: buffered, not lost
        await sub.offer(live)  # and a duplicate of it
        got = await take(sink, 5)
        assert got[0]["type"] == "subscribed" and got[0]["last_event_id"] == 2
        assert ids(got[1:]) == [3, 4, 5, 7]
        await sub.offer(log.commit(C))  # fence: the next event is the next thing received
        assert (await sink.next())["id"] == 8
        sub.close()

    run(body)


def test_duplicates_and_old_ids_are_dropped() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        first = log.commit(C)
        sub = Subscription(C, sink, log, last_id=0)
        sub.start()
        await take(sink, 2)  # subscribed, event 1
        await sub.offer(first)
        await sub.offer(first)
        await sub.offer(log.commit(C))
        assert (await sink.next())["id"] == 2
        sub.close()

    run(body)


def test_a_gap_is_repaired_from_the_log_before_going_on() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        sub = Subscription(C, sink, log)
        sub.start()
        await sink.next()
        await sub.offer(log.commit(C))
        log.commit(C)  # 2: lost between the listener and this process
        log.commit(C)  # 3: lost too
        await sub.offer(log.commit(C))  # 4 says its previous was 3
        got = await take(sink, 4)
        assert ids(got) == [1, 2, 3, 4]
        assert [m["via"] for m in got] == ["live", "replay", "replay", "replay"]
        await sub.offer(log.commit(C))
        assert (await sink.next())["id"] == 5
        sub.close()

    run(body)


def test_history_that_is_gone_gets_a_reset_to_the_head() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        for _ in range(3):
            log.commit(C)
        log.prune(0)
        sub = Subscription(C, sink, log, last_id=1)
        sub.start()
        got = await take(sink, 2)
        assert got[1]["type"] == "reset" and got[1]["last_event_id"] == 3
        await sub.offer(log.commit(C))
        assert (await sink.next())["id"] == 4
        sub.close()

    run(body)


def test_a_resume_longer_than_the_replay_limit_is_reset() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        for _ in range(10):
            log.commit(C)
        sub = Subscription(C, sink, log, last_id=0)
        with override_settings(PGEVENTS={**settings.PGEVENTS, "REPLAY_LIMIT": 3}):
            sub.start()
            got = await take(sink, 2)
        assert got[1] == {
            "type": "reset",
            "channel": C,
            "last_event_id": 10,
            "message": got[1]["message"],
            "via": "control",
        }
        sub.close()

    run(body)


class GatedLog(MemoryLog):
    """Replays wait until the test opens the gate (a slow database)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def read_after(self, channel: str, after: int, limit: int) -> Replay:
        await self.gate.wait()
        return await super().read_after(channel, after, limit)


def test_an_overflowing_buffer_is_dropped_and_read_again_from_the_log() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        assert isinstance(log, GatedLog)
        sub = Subscription(C, sink, log, last_id=0)
        sub.start()
        for _ in range(BUFFER_LIMIT + 5):  # live events while the replay waits
            await sub.offer(log.commit(C))
        log.gate.set()
        got = await take(sink, BUFFER_LIMIT + 6)
        assert ids(got[1:]) == list(range(1, BUFFER_LIMIT + 6))
        await sub.offer(log.commit(C))
        assert (await sink.next())["id"] == BUFFER_LIMIT + 6
        sub.close()

    asyncio.run(body(GatedLog(), RecordingSink()))


def test_resync_reads_what_the_layer_may_have_lost() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        sub = Subscription(C, sink, log)
        sub.start()
        await sink.next()
        log.commit(C)  # lost while the channel layer reconnected
        sub.resync()
        assert (await sink.next())["id"] == 1
        await sub.offer(log.commit(C))
        assert (await sink.next())["id"] == 2
        sub.close()

    run(body)


def test_plain_notifications_pass_without_ids() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        sub = Subscription(C, sink, log)
        sub.start()
        await sink.next()
        await sub.offer(layer_message(C, '{"type":"event","channel":"c","id":null,"payload":"hi"}'))
        assert (await sink.next())["payload"] == "hi"
        sub.close()

    run(body)


class FlakyLog(MemoryLog):
    def __init__(self, failures: int = 1) -> None:
        super().__init__()
        self.failures = failures

    async def head(self, channel: str) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("database unreachable")
        return await super().head(channel)


def test_a_failed_catch_up_is_retried_and_the_client_told_once() -> None:
    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        sub = Subscription(C, sink, log)
        sub.start()
        notice = await sink.next()
        assert (notice["type"], notice["code"], notice["retrying"]) == ("error", "unavailable", True)
        assert (await sink.next())["type"] == "subscribed"  # two failures, one notice
        assert log.failures == 0  # type: ignore[attr-defined]
        sub.close()

    asyncio.run(body(FlakyLog(failures=2), RecordingSink()))


def test_direct_writes_dedupe_and_hand_gaps_back() -> None:
    """The hub's synchronous paths (a socket written directly) keep the same guarantees."""

    async def body(log: MemoryLog, sink: RecordingSink) -> None:
        sub = Subscription(C, sink, log)
        sub.start()
        await sink.next()
        e1, e2, e3 = (log.commit(C) for _ in range(3))
        w1, w2, w3 = (text_frame(e["frame"]) for e in (e1, e2, e3))
        assert sub.offer_nowait(e1, w1) == 1 and sub.offer_nowait(e1, w1) == 0
        assert sub.offer_nowait(e3, w3) == NOT_HANDLED  # a gap: the async path repairs it
        assert sub.offer_run_nowait(e2, e3, w2 + w3)
        assert not sub.offer_run_nowait(e3, e3, w3)  # overlaps what was sent
        e5: Event = {**log.commit(C), "prev": 4}
        assert not sub.offer_run_nowait(e5, e5, text_frame(e5["frame"]))  # starts after a gap
        plain = layer_message(C, '{"type":"event","id":null}')
        assert sub.offer_nowait(plain, text_frame(plain["frame"])) == 1  # no id: always sent
        assert sub.offer_run_nowait(plain, plain, text_frame(plain["frame"]) * 2)  # a run without ids
        assert sink.writes == [w1, w2 + w3, text_frame(plain["frame"]), text_frame(plain["frame"]) * 2]
        assert sub.last_id == 3 and ids(sink.received[1:]) == [1, 2, 3, None, None, None]
        sub.close()
        late = log.commit(C)
        assert sub.offer_nowait(late, text_frame(late["frame"])) == NOT_HANDLED
        assert not sub.offer_run_nowait(late, late, text_frame(late["frame"]))
        await sub.offer(late)  # a closed subscription takes nothing
        assert len(sink.received) == 7

    asyncio.run(body(MemoryLog(), RecordingSink(direct=True)))
