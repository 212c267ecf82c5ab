"""The synchronous delivery paths of a live subscription keep its guarantees: each id once,
in order, and a gap handed back to the path that repairs it from the log."""

from __future__ import annotations

import time

from pgevents.core.envelope import layer_message
from pgevents.delivery.subscription import NOT_HANDLED, Subscription
from pgevents.store.db import SharedConnection
from pgevents.store.log import Reader
from tests.support import run


class ListSink:
    """A sink that keeps what it is given (direct writes and async sends apart)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.sent: list[int | None] = []
        self.controls: list[str] = []

    async def send_event(self, frame: str, id: int | None, *, replay: bool = False) -> None:
        self.sent.append(id)

    async def send_control(self, frame: str) -> None:
        self.controls.append(frame)

    def write_nowait(self, data: bytes) -> bool:
        self.written.append(data)
        return True


def test_fast_paths_dedupe_and_hand_gaps_back(db_url: str) -> None:
    channel = f"fastpath{time.monotonic_ns()}"

    async def scenario() -> None:
        connection, sink = SharedConnection("pgevents-test"), ListSink()
        reader = Reader(connection)
        sub = Subscription(channel, sink, reader)
        try:
            sub.start()
            assert sub._task is not None
            await sub._task  # live from the current head
            head = sub.last_id
            assert head is not None and '"subscribed"' in sink.controls[0]

            def ev(i: int) -> dict:
                return dict(layer_message(channel, f"f{i}", head + i, head + i - 1))

            assert sub.offer_nowait(ev(1), b"w1") == 1
            assert sub.offer_nowait(ev(1), b"w1") == 0  # a duplicate is dropped
            assert sub.offer_nowait(ev(3), b"w3") == NOT_HANDLED  # a gap goes to the repairing path
            assert sub.offer_run_nowait(ev(2), ev(3), b"w2w3")
            assert not sub.offer_run_nowait(ev(3), ev(4), b"w3w4")  # overlaps what was sent
            assert not sub.offer_run_nowait(ev(5), ev(6), b"w5w6")  # starts after a gap
            assert sub.offer_nowait(dict(layer_message(channel, "plain")), b"wp") == 1  # no id: always sent
            assert sink.written == [b"w1", b"w2w3", b"wp"]
            assert sub.last_id == head + 3
            assert sink.sent == []
        finally:
            sub.close()
            await connection.close()

    run(scenario())
