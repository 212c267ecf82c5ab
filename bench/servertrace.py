"""The server's stage taken apart per event (``--server-trace``): daphne with timestamps inside.

``--stages`` cuts a delivery where it passes through Redis; this cuts the second half
(published → client) further, inside the server process, without changing the code under
test: the benchmark starts daphne through this file, which wraps three places once Django is
set up and appends one line per event to ``$PGEVENTS_BENCH_SERVER_TRACE.<pid>``:

- ``read``: the last time bytes from a stream (the Redis subscription connection's) were fed
  to the event loop before the message was parsed (``asyncio.StreamReader.feed_data``);
- ``parsed``: the message handed to the layer's receivers (``pgevents.layers._Shard.
  _receive_message``);
- ``fan-out start`` / ``end``: the hub's ``_fan_out`` for the event's run (the first socket's
  ``send()`` is at its start, the last one's at its end).

The same private names exist in every version of the server measured side by side
(``--server-root``), so one trace serves A and B. The wrapping costs a regular expression
and a line per event, per process, not per socket; the CPU figures of a traced run include
it, so compare CPU only between runs with the same flags. Run as a script (``python
bench/servertrace.py DAPHNE-ARGS``) so that the checkout it runs in may be another one.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import sys
import time
from typing import Any

SEQNO = re.compile(rb'"seqno": (\d+)')


def install(path: str) -> None:
    """Wrap the three places (see the module's docstring); lines go to ``path``."""
    out = open(path, "a", buffering=1 << 16)  # noqa: SIM115 - open for the process' lifetime
    atexit.register(out.close)
    fed = [0.0]

    feed = asyncio.StreamReader.feed_data

    def feed_data(self: asyncio.StreamReader, data: Any) -> None:
        fed[0] = time.time()
        feed(self, data)

    asyncio.StreamReader.feed_data = feed_data  # type: ignore[method-assign]

    from pgevents import layers
    from pgevents.delivery import hub

    receive = layers._Shard._receive_message

    def _receive_message(self: Any, message: Any) -> None:
        if message is not None and message.get("type") == "message":
            now = time.time()
            for match in SEQNO.finditer(message["data"]):
                out.write(f"P {match.group(1).decode()} {fed[0]:.6f} {now:.6f}\n")
        receive(self, message)

    layers._Shard._receive_message = _receive_message  # type: ignore[method-assign]

    fan_out = hub.Hub._fan_out

    async def _fan_out(self: Any, channel: str, events: list[Any]) -> None:
        start = time.time()
        await fan_out(self, channel, events)
        end = time.time()
        for event in events:
            for match in SEQNO.finditer(event["frame"].encode()):
                out.write(f"F {match.group(1).decode()} {start:.6f} {end:.6f}\n")

    hub.Hub._fan_out = _fan_out  # type: ignore[method-assign]


def read(stem: str) -> tuple[dict[int, tuple[float, float]], dict[int, tuple[float, float]]]:
    """Per seqno, (read, parsed) and (fan-out start, end), from every process' file."""
    parsed: dict[int, tuple[float, float]] = {}
    fanned: dict[int, tuple[float, float]] = {}
    folder, prefix = os.path.split(stem)
    for name in os.listdir(folder or "."):
        if not name.startswith(os.path.basename(prefix) + "."):
            continue
        with open(os.path.join(folder, name)) as f:
            for line in f:
                kind, seqno, a, b = line.split()
                into = parsed if kind == "P" else fanned
                into.setdefault(int(seqno), (float(a), float(b)))
    return parsed, fanned


def main() -> None:
    # As ``python -m daphne`` would: the working directory (the checkout under test) first,
    # and not this file's folder (its modules are not top-level ones).
    sys.path[0] = os.getcwd()
    path = f"{os.environ['PGEVENTS_BENCH_SERVER_TRACE']}.{os.getpid()}"
    import django

    setup = django.setup

    def traced_setup(*args: Any, **kwargs: Any) -> None:
        setup(*args, **kwargs)
        if django.setup is traced_setup:  # once, however often Django is set up
            django.setup = setup
            install(path)

    django.setup = traced_setup
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
