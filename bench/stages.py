"""Where the time goes: each event's latency cut where it passes through Redis (``--stages``).

A tap subscribes to the Redis pub/sub channel that the listener publishes the bench
channel's group to (what ``pgevents.layers.PubSubChannelLayer`` and channels-redis' pub/sub
layer use) and notes when each event's message arrives. That cuts every delivery in two,
without touching the code under test:

- **commit → published**: the writer's commit acknowledgement to the message in Redis: the
  listener's side (NOTIFY or poll, reading and positioning the log, encoding, publishing);
- **published → client**: Redis to the server process, the hub, the socket write, the
  kernel and the client's read: the delivery side.

The floor row of the same run (commit → one raw psycopg LISTEN) is the part of the first
stage that no listener can avoid. The tap adds one Redis subscriber, as one more server
process would. Only the pub/sub layers publish per group; with ``--layer core`` there is
nothing to tap.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence

import redis

from .report import Latency

SEQNO = re.compile(rb'"seqno": (\d+)')


class Tap:
    """Arrival time in Redis of each event published to ``channel``'s group, by seqno (or
    by the integer ``pattern`` captures)."""

    def __init__(self, redis_url: str, prefix: str, group: str, pattern: re.Pattern[bytes] = SEQNO) -> None:
        self._pattern = pattern
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        self._pubsub.subscribe(f"{prefix}__group__{group}")
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            now = time.time()
            for match in self._pattern.finditer(message["data"]):
                self.seen.setdefault(int(match.group(1)), now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


def split(
    acks: Sequence[float], published: dict[int, float], seqnos: Sequence[int], times: Sequence[float]
) -> tuple[Latency | None, Latency | None]:
    """(commit → published, published → client) percentiles; the second over every delivery."""
    tapped = [s for s in range(len(acks)) if s in published]
    to_redis = Latency.of(acks, tapped, [published[s] for s in tapped])
    pairs = [(published[s], t) for s, t in zip(seqnos, times, strict=True) if s in published]
    to_client = Latency.of([p for p, _ in pairs], range(len(pairs)), [t for _, t in pairs])
    return to_redis, to_client


def summary(to_redis: Latency | None, to_client: Latency | None) -> str:
    """For the notes column: p50/p99 ms of each stage."""

    def one(latency: Latency | None) -> str:
        return "-" if latency is None else f"{latency.p50:.2f}/{latency.p99:.2f}"

    return f"stages p50/p99 ms: commit→published {one(to_redis)}, published→client {one(to_client)}"


def _spans(pairs: Sequence[tuple[float, float]]) -> Latency | None:
    return Latency.of([a for a, _ in pairs], range(len(pairs)), [b for _, b in pairs])


def server_split(
    published: dict[int, float],
    parsed: dict[int, tuple[float, float]],
    fanned: dict[int, tuple[float, float]],
    seqnos: Sequence[int],
    times: Sequence[float],
) -> dict[str, Latency | None]:
    """The server's stage cut per event (``--server-trace``, see ``bench.servertrace``): from
    the tap to the process' read of the Redis socket, the read to the parsed message, the
    message to the hub's fan-out, the fan-out itself (first to last socket written), and from
    its start to each client's read (over every delivery)."""
    events = sorted(s for s in parsed if s in fanned)
    return {
        "published_to_read": _spans([(published[s], parsed[s][0]) for s in events if s in published]),
        "read_to_parsed": _spans([parsed[s] for s in events]),
        "parsed_to_fan_out": _spans([(parsed[s][1], fanned[s][0]) for s in events]),
        "fan_out": _spans([fanned[s] for s in events]),
        "fan_out_to_client": _spans([(fanned[s][0], t) for s, t in zip(seqnos, times, strict=True) if s in fanned]),
    }


def server_summary(parts: dict[str, Latency | None]) -> str:
    """For the notes column: p50/p99 ms of each part of the server's stage."""
    labels = {
        "read_to_parsed": "read→parsed",
        "parsed_to_fan_out": "parsed→fan-out",
        "fan_out": "fan-out",
        "fan_out_to_client": "fan-out start→client",
    }
    cells = []
    for key, label in labels.items():
        latency = parts.get(key)
        cells.append(f"{label} {'-' if latency is None else f'{latency.p50:.2f}/{latency.p99:.2f}'}")
    return "server p50/p99 ms: " + ", ".join(cells)
