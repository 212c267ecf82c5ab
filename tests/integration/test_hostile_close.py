"""A client that closes while the server is answering it, against the real daphne.

autobahn marks a WebSocket closed as soon as it has read the peer's close frame (it answers
it and drops the TCP connection), but daphne learns of the disconnect only once the TCP
connection is gone, a turn of the loop later. An answer the consumer sends in between, such
as the ``error`` for a bad frame that arrived in the same TCP segment as the close, must not
crash the consumer: the connection must still be cleaned up like any other.
"""

from __future__ import annotations

import json
import os
import re
import struct
import uuid

import pytest

from tests.integration.test_observability import get, sample
from tests.support import RawStream, Stack, wait_until


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _subscriptions(stack: Stack, channel: str) -> float:
    _, text = get(f"{stack.http}/pgevents/metrics")
    return sample(text, "pgevents_connected_clients", f'channel="{channel}"')


@pytest.mark.parametrize(
    "provoke",
    [
        pytest.param(b"hello", id="bad-request"),  # an error answer, the connection stays open
        pytest.param(json.dumps({"type": "unsubscribe", "channel": "people"}).encode(), id="not-subscribed"),
        pytest.param(json.dumps({"type": "ping"}).encode(), id="ping"),  # a pong, no error at all
    ],
)
def test_a_close_frame_behind_a_bad_frame_still_cleans_up(stack: Stack, provoke: bytes) -> None:
    assert stack.daphne is not None
    log_start = len(stack.daphne.output())
    channel = f"t.{uuid.uuid4().hex[:12]}"
    ws = RawStream.websocket(stack, "/ws/pgevents/", rcvbuf=None)
    try:
        ws.read_until(b"\r\n\r\n")
        assert ws.data.startswith(b"HTTP/1.1 101"), ws.data
        ws.sock.sendall(_frame(0x1, json.dumps({"type": "subscribe", "channel": channel}).encode()))
        ws.read_until(b'"subscribed"')
        assert _subscriptions(stack, channel) == 1
        # One write: autobahn reads both frames in one go, closes, and only then the consumer runs.
        ws.sock.sendall(_frame(0x1, provoke) + _frame(0x8, struct.pack("!H", 1000)))
        ws.read_until(re.compile(rb"\x88\x02\x03\xe8"))  # the server's answer to the close
    finally:
        ws.close()
    wait_until(lambda: _subscriptions(stack, channel) == 0, 20, what=f"the subscription to {channel} to end")
    log = stack.daphne.output()[log_start:]
    assert "Attempt to send on a closed protocol" not in log and "Traceback" not in log, log
