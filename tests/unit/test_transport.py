"""What ``transport`` finds behind a ``send`` it does not recognise, and its timers.

The servers themselves are covered end to end (tests/integration/test_servers.py); here, the
shapes that are none of them must give ``None`` (pgevents then does without), and the
fallbacks must run.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from typing import Any

from pgevents.delivery import transport


def handle_reply(protocol: Any, message: object) -> None:
    """Named like daphne's ``Server.handle_reply``, which daphne binds with ``partial``."""


class NoBuffer:
    """A protocol whose transport is not Twisted's (nothing to read the buffer from)."""

    transport = object()


def test_sends_that_are_not_a_servers_give_nothing() -> None:
    assert transport.daphne_protocol(functools.partial(print, "x")) is None
    assert transport.daphne_protocol(functools.partial(handle_reply, object())) is None  # no transport
    assert transport.find(functools.partial(handle_reply, NoBuffer())) is None

    class Wrapper:
        def __init__(self, inner: Any) -> None:
            self.real_send = inner

        async def send(self, message: object) -> None: ...

    send: Any = functools.partial(handle_reply, NoBuffer())
    for _ in range(9):  # more wrappers than any real stack has
        send = Wrapper(send).send
    assert transport.daphne_protocol(send) is None and transport.find(send) is None


def test_the_kernel_queue_of_no_socket_or_a_closed_one_is_empty() -> None:
    assert transport._kernel_queue(None) == 0
    sock = socket.socket()
    sock.close()
    assert transport._kernel_queue(sock) == 0


def test_a_connection_holding_nothing_is_left_alone_and_no_socket_runs_the_fallback() -> None:
    async def scenario() -> None:
        accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda r, w: accepted.set_result(w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = await asyncio.wait_for(accepted, 5)
        view = transport.AsyncioSocket(writer.transport)  # type: ignore[arg-type]
        assert view.pending() == 0
        transport.abort_later(view, 0)  # nothing undelivered: left alone
        fallback = asyncio.Event()
        transport.abort_later(None, 0, fallback.set)  # due no earlier than the one above
        await asyncio.wait_for(fallback.wait(), 5)
        assert not writer.transport.is_closing()
        writer.close()
        assert view.undelivered() == 0
        await writer.wait_closed()
        peer.close()
        await peer.wait_closed()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
