"""``pgevents.layers.PubSubChannelLayer`` on real Redis: bounded queues, and a broken
subscription connection reported to the receiver instead of silently losing messages."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis.asyncio

from pgevents import layers
from pgevents.layers import LayerReset, PubSubChannelLayer
from tests.faults import PrivateRedis
from tests.support import Client, Stack, run, wait_until

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


async def _receive(layer: PubSubChannelLayer, channel: str) -> dict:
    return dict(await asyncio.wait_for(layer.receive(channel), 10))


async def _pump(layer: PubSubChannelLayer, channel: str, seen: list[object]) -> None:
    """Receive for ever, as the hub does: each message's ``n``, or "reset" for a layer reset."""
    while True:
        try:
            seen.append((await layer.receive(channel))["n"])
        except LayerReset:
            seen.append("reset")


def test_receive_many_takes_what_is_queued_and_stops_at_a_reset() -> None:
    """``receive_many``: the next message and whatever is already queued, in order, up to the
    limit; a reset among them ends the batch and the next receive raises ``LayerReset``."""
    name = f"pgevents-test-many-{os.getpid()}-{time.monotonic_ns()}"

    async def fence(layer: PubSubChannelLayer) -> None:
        # One subscription connection reads in publish order: once a later message to
        # another channel arrived, everything before it is queued.
        marker = await layer.new_channel()
        await layer.group_add("fence", marker)
        await layer.group_send("fence", {"type": "t", "n": "fence"})
        assert (await _receive(layer, marker))["n"] == "fence"
        await layer.group_discard("fence", marker)

    async def scenario() -> None:
        layer = PubSubChannelLayer(hosts=[REDIS_URL], prefix=name, capacity=5)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        try:
            for n in range(4):
                await layer.group_send("g", {"type": "t", "n": n})
            await fence(layer)
            assert [m["n"] for m in await layer.receive_many(channel, 3)] == [0, 1, 2]
            assert [m["n"] for m in await layer.receive_many(channel, 3)] == [3]
            for n in range(7):  # overflows: the queue is emptied, then takes what follows
                await layer.group_send("g", {"type": "t", "n": n})
            await fence(layer)
            with pytest.raises(LayerReset):
                await layer.receive_many(channel, 10)
            assert [m["n"] for m in await layer.receive_many(channel, 10)] == [6]  # 5 overflowed it
            await layer.group_send("g", {"type": "t", "n": "before"})
            await layer.group_send("g", {"type": "t", "n": "next"})
            await fence(layer)
            layers._LoopLayer._reset(layer._get_layer().channels[channel])  # a marker behind nothing
            await layer.group_send("g", {"type": "t", "n": "after"})
            await layer.group_send("g", {"type": "t", "n": "later"})
            await fence(layer)
            layer._get_layer().channels[channel].put_nowait(layers._RESET)  # and one behind "after", "later"
            with pytest.raises(LayerReset):
                await layer.receive_many(channel, 10)
            assert [m["n"] for m in await layer.receive_many(channel, 10)] == ["after", "later"]
            with pytest.raises(LayerReset):
                await layer.receive_many(channel, 10)  # the marker the batch stopped at
        finally:
            await layer.flush()

    run(scenario())


def test_overflow_and_a_killed_connection_raise_layer_reset() -> None:
    name = f"pgevents-test-layer-{os.getpid()}-{time.monotonic_ns()}"

    async def scenario() -> None:
        layer = PubSubChannelLayer(hosts=[{"address": REDIS_URL, "client_name": name}], prefix=name, capacity=5)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        try:
            for n in range(3):
                await layer.group_send("g", {"type": "t", "n": n})
            assert [(await _receive(layer, channel))["n"] for _ in range(3)] == [0, 1, 2]

            for n in range(10):  # more than the capacity, with nobody receiving
                await layer.group_send("g", {"type": "t", "n": n})
            # A fence: one subscription connection reads in publish order, so once a later
            # message to another channel has arrived, the ten were read (and overflowed).
            marker = await layer.new_channel()
            await layer.group_add("fence", marker)
            await layer.group_send("fence", {"type": "t", "n": "fence"})
            assert (await _receive(layer, marker))["n"] == "fence"
            with pytest.raises(LayerReset):
                await _receive(layer, channel)
            await layer.group_send("g", {"type": "t", "n": 99})
            after = [(await _receive(layer, channel))["n"] for _ in range(5)]
            assert after == [6, 7, 8, 9, 99]  # what came after the overflow is kept, in order

            admin = redis.asyncio.Redis.from_url(REDIS_URL)
            try:  # only this test's own connections, found by their client name
                mine = [
                    c["id"]
                    for c in await admin.client_list()
                    if c.get("name") == name and c.get("cmd") != "publish"  # not the listener's
                ]
                assert mine
                for client_id in mine:
                    await admin.execute_command("CLIENT", "KILL", "ID", client_id)
            finally:
                await admin.aclose()
            with pytest.raises(LayerReset):
                await _receive(layer, channel)

            # Then it works again. One receiver all along, as the hub does (a cancelled
            # receive means the receiver is leaving, so nothing here cancels one).
            seen: list[object] = []
            receiver = asyncio.ensure_future(_pump(layer, channel, seen))
            try:
                deadline = time.monotonic() + 20
                while 100 not in seen:
                    assert time.monotonic() < deadline, f"the layer did not recover: {seen}"
                    try:
                        await layer.group_send("g", {"type": "t", "n": 100})
                    except ConnectionError:
                        pass  # the publishing connection was killed too: the next one reconnects
                    await asyncio.sleep(0.2)
            finally:
                receiver.cancel()
        finally:
            await layer.flush()

    run(scenario())


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "receive failed" in record.getMessage()


@pytest.mark.fault
def test_a_redis_outage_is_reported_once_when_it_breaks_and_once_when_it_is_back() -> None:
    """Not once per failed attempt to reconnect: each report makes every hub re-read the log
    for every subscription, and only the one after the outage can find anything."""
    failures = _Failures()
    logging.getLogger("pgevents.layers").addHandler(failures)
    try:
        with PrivateRedis() as server:

            async def scenario() -> list[object]:
                layer = PubSubChannelLayer(hosts=[server.url], prefix="outage")
                channel = await layer.new_channel()
                await layer.group_add("g", channel)
                seen: list[object] = []

                async def until(predicate: object, what: str) -> None:
                    deadline = time.monotonic() + 20
                    while not predicate():  # type: ignore[operator]
                        assert time.monotonic() < deadline, f"{what}: {seen}"
                        await asyncio.sleep(0.05)

                receiver = asyncio.ensure_future(_pump(layer, channel, seen))
                try:
                    await layer.group_send("g", {"type": "t", "n": 1})
                    await until(lambda: 1 in seen, "the first message")
                    server.stop()
                    await until(lambda: failures.count >= 3, "three failed attempts to reconnect")
                    during = list(seen)
                    server.start()
                    deadline = time.monotonic() + 20
                    while 2 not in seen:  # sent until the rebuilt subscription gets one
                        assert time.monotonic() < deadline, f"the layer did not come back: {seen}"
                        try:
                            await layer.group_send("g", {"type": "t", "n": 2})
                        except ConnectionError:
                            pass  # the publishing connection reconnects on the next send
                        await asyncio.sleep(0.2)
                    assert during == [1, "reset"]
                    return seen
                finally:
                    receiver.cancel()
                    await layer.flush()

            seen = run(scenario())
    finally:
        logging.getLogger("pgevents.layers").removeHandler(failures)
    assert seen[:3] == [1, "reset", "reset"] and seen[-1] == 2


@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_the_pipeline_runs_on_either_redis_layer(isolated_db: str, iso_pg: psycopg.Connection, layer: str) -> None:
    """daphne + runlisten end to end with ``pgevents.layers.PubSubChannelLayer`` (the default)
    and with channels-redis' core ``RedisChannelLayer``."""
    with Stack(isolated_db, env={"PGEVENTS_TEST_LAYER": layer}) as stack:

        async def scenario() -> list[dict]:
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
                await client.expect("subscribed")
                for i in range(20):
                    iso_pg.execute("INSERT INTO people (name) VALUES (%s)", (f"ps{i}",))
                return await client.events(20)

        got = run(scenario())
    assert [e["row"]["name"] for e in got] == [f"ps{i}" for i in range(20)]
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)


@pytest.mark.fault
def test_killed_redis_connections_lose_nothing_on_the_pubsub_layer(
    isolated_db: str, iso_pg: psycopg.Connection
) -> None:
    """The server's Redis subscription connection is killed; events published while the
    layer reconnects, with nothing after them, still reach the client: the hub re-syncs
    from the log once the layer is back, without waiting for a next event."""
    before, during = 30, 30
    with Stack(isolated_db, env={"PGEVENTS_TEST_LAYER": "pubsub"}) as stack:
        name = stack.env["PGEVENTS_REDIS_PREFIX"]

        def write(names: list[str]) -> None:
            with psycopg.connect(isolated_db, autocommit=True) as conn:
                for n in names:
                    conn.execute("INSERT INTO people (name) VALUES (%s)", (n,))

        async def kill_mine() -> int:
            admin = redis.asyncio.Redis.from_url(REDIS_URL)
            try:
                mine = [
                    c["id"]
                    for c in await admin.client_list()
                    if c.get("name") == name and c.get("cmd") != "publish"  # not the listener's
                ]
                for client_id in mine:
                    await admin.execute_command("CLIENT", "KILL", "ID", client_id)
                return len(mine)
            finally:
                await admin.aclose()

        async def scenario() -> list[dict]:
            async with Client.connect(f"{stack.ws}/ws/pgevents/people/") as client:
                await client.expect("subscribed")
                await asyncio.to_thread(write, [f"k{i}" for i in range(before)])
                first = await client.events(before)
                assert await kill_mine() >= 1
                assert stack.daphne is not None
                await asyncio.to_thread(  # after the hub's first re-sync, before the layer is back
                    wait_until, lambda: "receivers will re-sync" in stack.daphne.output(), 20, 0.02, "the reset"
                )
                await asyncio.to_thread(write, [f"k{i}" for i in range(before, before + during)])
                rest = await client.events(during, timeout=30)  # nothing written after these
                await asyncio.to_thread(write, ["fence"])
                (fence,) = await client.events(1)
                assert fence["row"]["name"] == "fence"  # and no duplicate before it
                return first + rest

        got = run(scenario())
    assert [e["row"]["name"] for e in got] == [f"k{i}" for i in range(before + during)]
    ids = [e["id"] for e in got]
    assert ids == sorted(set(ids))


def test_group_add_returns_once_redis_confirmed_the_subscription() -> None:
    """The hub reads a channel's head right after joining its group and relies on everything
    published after that read reaching it: ``group_add`` must not return while Redis has not
    processed the SUBSCRIBE. Redis is paused (``CLIENT PAUSE``) with the subscription
    connection already open; the SUBSCRIBE waits in Redis, and so must ``group_add``."""
    with PrivateRedis() as server:

        async def scenario() -> None:
            layer = PubSubChannelLayer(hosts=[server.url], prefix="confirm")
            other = redis.asyncio.Redis.from_url(server.url)
            try:
                channel = await layer.new_channel()
                await layer.group_add("first", channel)  # the subscription connection is open
                await other.execute_command("CLIENT", "PAUSE", 2000, "ALL")
                adding = asyncio.ensure_future(layer.group_add("second", channel))
                await asyncio.sleep(0.5)
                assert not adding.done()  # Redis has not seen the SUBSCRIBE yet
                await asyncio.wait_for(adding, 10)
                [(_, subscribers)] = await other.pubsub_numsub("confirm__group__second")
                assert subscribers == 1
                await layer.group_send("second", {"type": "t", "n": "after"})
                assert (await _receive(layer, channel))["n"] == "after"
            finally:
                await other.aclose()
                await layer.flush()

        run(scenario())


@pytest.mark.parametrize("option", ["socket_timeout", "health_check_interval"])
def test_an_idle_subscription_is_not_a_failure(option: str) -> None:
    """The receive loop waits for the next message without a timer of its own; a connection
    configured to time out reads (or to ping) while idle must still not be taken for a broken
    one: no ``LayerReset`` after a quiet spell several timeouts long, and what is published
    next arrives."""
    name = f"pgevents-test-idle-{os.getpid()}-{time.monotonic_ns()}"

    async def scenario() -> None:
        layer = PubSubChannelLayer(hosts=[{"address": REDIS_URL, option: 0.2}], prefix=name)
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        try:
            await layer.group_send("g", {"type": "t", "n": "first"})
            assert (await _receive(layer, channel))["n"] == "first"
            await asyncio.sleep(1.0)
            await layer.group_send("g", {"type": "t", "n": "after a quiet second"})
            assert (await _receive(layer, channel))["n"] == "after a quiet second"
        finally:
            await layer.flush()

    run(scenario())


#: Run in a process of its own, so that it can be given a Python without hiredis.
_BURST = """
import asyncio, sys
import redis.utils
from pgevents.layers import PubSubChannelLayer

async def main():
    layer = PubSubChannelLayer(hosts=[sys.argv[1]], prefix=sys.argv[2])
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    try:
        for n in range(200):
            await layer.group_send("g", {"type": "t", "n": n})
        got = []
        while len(got) < 200:
            got += [m["n"] for m in await asyncio.wait_for(layer.receive_many(channel, 1000), 10)]
        parser = type(layer._get_layer()._shards[0]._pubsub.connection._parser).__name__
        print(redis.utils.HIREDIS_AVAILABLE, parser, got == list(range(200)))
    finally:
        await layer.flush()

asyncio.run(main())
"""


@pytest.mark.parametrize("hiredis", [True, False], ids=["hiredis", "without-hiredis"])
def test_the_layer_reads_every_message_in_order_with_and_without_hiredis(tmp_path: Path, hiredis: bool) -> None:
    """hiredis is a dependency (redis-py parses replies with it, in C); an installation
    without it falls back to redis-py's parser in Python and must lose nothing either."""
    path = [str(ROOT)]
    if not hiredis:
        (tmp_path / "hiredis").mkdir()
        (tmp_path / "hiredis" / "__init__.py").write_text('raise ImportError("not installed")\n')
        path.insert(0, str(tmp_path))
    name = f"pgevents-test-parser-{os.getpid()}-{time.monotonic_ns()}"
    done = subprocess.run(
        [sys.executable, "-c", _BURST, REDIS_URL, name],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    parser = "_AsyncHiredisParser" if hiredis else "_AsyncRESP2Parser"
    assert done.stdout.split() == [str(hiredis), parser, "True"]
