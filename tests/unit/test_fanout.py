"""Pure parts of the fan-out: batching of layer messages and ready-made WebSocket frames."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer

from pgevents.core import batch
from pgevents.core.envelope import Event, layer_message
from pgevents.delivery import transport
from pgevents.delivery.fastsend import direct, text_frame
from pgevents.delivery.hub import Hub
from pgevents.store.memory import MemoryLog


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frames_follow_rfc6455_length_encoding(size: int) -> None:
    text = "é" * (size // 2) + "a" * (size % 2)
    data = text.encode()
    frame = text_frame(text)
    assert frame[0] == 0x81  # FIN + text opcode
    n = frame[1]
    assert not n & 0x80  # server frames are never masked
    if len(data) < 126:
        assert n == len(data) and frame[2:] == data
    elif len(data) < 65536:
        assert n == 126 and int.from_bytes(frame[2:4], "big") == len(data) and frame[4:] == data
    else:
        assert n == 127 and int.from_bytes(frame[2:10], "big") == len(data) and frame[10:] == data


def test_batches_keep_each_channels_order_and_round_trip() -> None:
    events = [layer_message("a" if i % 3 else "b", f"frame{i}", i, i - 1 if i else None) for i in range(1, 10)]
    messages = batch.batches(events)
    assert [m["channel"] for m in messages] == ["a", "b"]
    back = [e for m in messages for e in batch.unpack(m)]
    assert sorted(back, key=lambda e: e["id"]) == events
    for m in messages:
        ids = [e["id"] for e in batch.unpack(m)]
        assert ids == sorted(ids)


def test_batches_are_capped_in_bytes_but_a_big_event_still_goes() -> None:
    big = "x" * (batch.BATCH_BYTES + 1)
    events = [layer_message("a", "small", 1), layer_message("a", big, 2), layer_message("a", "small", 3)]
    messages = batch.batches(events)
    assert [[e["id"] for e in batch.unpack(m)] for m in messages] == [[1], [2], [3]]


def test_a_single_event_message_still_unpacks() -> None:
    message = layer_message("a", "f", 7, 6)
    assert batch.unpack(dict(message)) == [message]


def test_no_direct_writer_outside_daphne() -> None:
    async def send(message: object) -> None:
        pass

    assert transport.daphne_protocol(send) is None and transport.find(send) is None
    assert direct(transport.daphne_protocol(send), limit=1024, on_slow=lambda: None) is None


class Taker:
    """A subscription stand-in that takes every event it is offered."""

    channel = "a"
    direct = None

    def __init__(self) -> None:
        self.got: list[object] = []

    def offer_run_nowait(self, first: Event, last: Event, wire: bytes) -> bool:
        return False

    def offer_nowait(self, event: Event, wire: bytes) -> int:
        if event["id"] == 13:
            raise RuntimeError("this one fails")
        self.got.append(event["id"])
        return 1


@pytest.mark.parametrize(
    "bad",
    [
        {"type": batch.BATCH_TYPE, "channel": "a", "events": [[1, None]]},
        {"type": batch.BATCH_TYPE, "channel": "a", "events": None},
        {"type": batch.BATCH_TYPE, "channel": "a", "events": [[1, None, 5]]},
        {"type": "pgevents.event", "channel": "a"},
    ],
)
def test_malformed_layer_messages_are_skipped_and_one_failing_event_stops_nothing(bad: dict[str, object]) -> None:
    hub = Hub(InMemoryChannelLayer(), MemoryLog())
    taker = Taker()
    hub.subscriptions["a"] = {taker}  # type: ignore[arg-type]
    good = batch.batches([layer_message("a", "f", i, None) for i in (12, 13, 14)])[0]
    asyncio.run(hub._dispatch(bad))
    asyncio.run(hub._dispatch(good))
    assert taker.got == [12, 14]
