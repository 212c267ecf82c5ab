"""Wake-ups without the NOTIFY lock: writers skip the wake-up while the listener polls, and no
event waits for the safety-net poll (docs/delivery.md, "Wake-ups").

Every listener here polls the log on its own only every ``POLL_INTERVAL`` (10 minutes): an
event the hand-over strands shows up as a missing one, not as a slow one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgevents.capture.handover import STREAM
from pgevents.capture.listener import Listener
from pgevents.capture.pacing import Pacing
from pgevents.core.batch import unpack
from pgevents.setup import installation
from pgevents.store.wake import HANDOVER, KEY_SPACE
from tests.support import manage

POLL_INTERVAL = 600.0


class RecordingLayer:
    """A channel layer that keeps every event the listener publishes (no capacity limit)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if message.get("type") == "pgevents.batch":
            self.events.extend({**json.loads(e["frame"]), "prev": e["prev"]} for e in unpack(message))

    def names(self) -> list[str]:
        return [e["row"]["name"] for e in self.events]


def _flag(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT last_value FROM pgevents_wake").fetchone()
    return int(row[0]) if row else 0


def _holds_handover_key(conn: psycopg.Connection, pid: int, granted: bool = True) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted = %s"
        " AND classid = %s::oid AND objid = %s::oid AND objsubid = 2)",
        (pid, granted, KEY_SPACE, HANDOVER),
    ).fetchone()
    return bool(row and row[0])


def _wake_ups_from(spy: psycopg.Connection, pid: int) -> int:
    """Wake-ups the backend ``pid`` sent that ``spy`` (LISTENing on the internal channel) got."""
    return sum(1 for note in spy.notifies(timeout=0.3) if note.pid == pid)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_writers_skip_the_wake_up_only_while_a_live_listener_polls(isolated_db: str) -> None:
    with _connections(isolated_db) as (owner, spy, writer):
        writer_pid = writer.info.backend_pid

        writer.execute("INSERT INTO people (name) VALUES ('idle')")
        assert _wake_ups_from(spy, writer_pid) == 1  # nobody polls: every commit wakes

        polling = psycopg.connect(isolated_db, autocommit=True)  # stands in for the listener
        assert polling.execute("SELECT pgevents_wake(true)").fetchone() == (True,)
        assert _flag(owner) == polling.info.backend_pid
        with writer.transaction():
            writer.execute("INSERT INTO people (name) VALUES ('skipped')")
            # it holds the hand-over key until it ends: a listener that stops polling waits for it
            assert _holds_handover_key(owner, writer_pid)
        assert not _holds_handover_key(owner, writer_pid)
        assert _wake_ups_from(spy, writer_pid) == 0

        assert polling.execute("SELECT pgevents_wake(false)").fetchone() == (False,)
        writer.execute("INSERT INTO people (name) VALUES ('woke')")
        assert _wake_ups_from(spy, writer_pid) == 1

        # A listener that dies while polling leaves the flag behind; writers wake whoever is next.
        assert polling.execute("SELECT pgevents_wake(true)").fetchone() == (True,)
        writer.execute("INSERT INTO people (name) VALUES ('skipped again')")
        assert _wake_ups_from(spy, writer_pid) == 0
        polling.close()
        _wait_for(
            lambda: not owner.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (_flag(owner),)).fetchone(),
            "the backend to end",
        )
        assert _flag(owner) != 0
        writer.execute("INSERT INTO people (name) VALUES ('after a crash')")
        assert _wake_ups_from(spy, writer_pid) == 1


def test_a_session_holding_the_polling_key_makes_the_listener_stay_awake(isolated_db: str) -> None:
    """Advisory locks need no privilege; squatting the key a polling listener takes only
    keeps writers waking it (as before the hand-over), it cannot make them skip."""
    with psycopg.connect(isolated_db, autocommit=True) as listener, psycopg.connect(isolated_db) as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s, %s)", (KEY_SPACE, listener.info.backend_pid))
        assert listener.execute("SELECT pgevents_wake(true)").fetchone() == (False,)
        assert _flag(listener) == 0


@contextmanager
def _connections(url: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection, psycopg.Connection]]:
    """The table's owner, a spy that LISTENs on the wake-up channel, and a writer."""
    with (
        psycopg.connect(url, autocommit=True) as owner,
        psycopg.connect(url, autocommit=True) as spy,
        psycopg.connect(url, autocommit=True) as writer,
    ):
        spy.execute("LISTEN pgevents")
        yield owner, spy, writer


@contextmanager
def running(listener: Listener) -> Iterator[None]:
    """``listener`` in a thread of its own (the writers here are blocking psycopg calls)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(listener.run(),), daemon=True)
    thread.start()
    try:
        _wait_for(lambda: listener.active, "the listener to be active")
        # and past its catch-up look, which positions without ever making it poll
        _wait_for(lambda: listener._last_drain > 0, "the listener's catch-up")
        yield
    finally:
        loop.call_soon_threadsafe(listener.stop)
        thread.join(10)
        loop.close()


def _listener(
    url: str, layer: RecordingLayer, linger: float, stream: float = math.inf, pacing: Pacing | None = None
) -> Listener:
    """A listener that polls from its first event on (``stream`` infinite), unless told otherwise."""
    return Listener(
        layer=layer,
        connect=lambda: psycopg.AsyncConnection.connect(url, autocommit=True),
        channels=[],
        poll_interval=POLL_INTERVAL,
        linger=linger,
        prune_interval=POLL_INTERVAL,
        stream=stream,
        pacing=pacing,
    )


def test_commits_far_apart_keep_waking_the_listener_and_a_stream_makes_it_poll(isolated_db: str) -> None:
    """With the default ``STREAM``, one commit at a time (each delivered before the next is
    written) never makes the listener poll: every commit wakes it, and between commits it
    sleeps on LISTEN, with no look at the log. Commits of many rows written back to back make
    it poll; every event arrives either way, in order."""
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=0.05, stream=STREAM)
    with running(listener), _connections(isolated_db) as (owner, spy, writer):
        for n in range(5):
            writer.execute("INSERT INTO people (name) VALUES (%s)", (f"alone {n}",))
            _wait_for(lambda n=n: len(layer.events) == n + 1, f"event {n}")  # type: ignore[misc]
            time.sleep(STREAM * 2)  # the next commit comes well after this one was delivered
        assert listener.polling_counts["started"] == 0 and _flag(owner) == 0
        assert _wake_ups_from(spy, writer.info.backend_pid) == 5

        names = [f"burst {n}" for n in range(1000)]
        for n in range(0, len(names), 50):
            writer.execute("INSERT INTO people (name) SELECT unnest(%s::text[])", (names[n : n + 50],))
        _wait_for(lambda: len(layer.events) == 1005, "the burst")
        assert listener.polling_counts["started"] >= 1
        assert layer.names() == [f"alone {n}" for n in range(5)] + names


def test_a_writer_that_skipped_its_wake_up_is_delivered_when_it_commits_after_the_listener_stopped_polling(
    isolated_db: str,
) -> None:
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=0.2)
    with running(listener), _connections(isolated_db) as (owner, spy, writer):
        owner.execute("INSERT INTO people (name) VALUES ('wakes it')")
        _wait_for(lambda: layer.names() == ["wakes it"], "the first event")
        _wait_for(lambda: _flag(owner) != 0, "the listener to poll")  # commits came: it polls

        with writer.transaction():
            writer.execute("INSERT INTO people (name) VALUES ('late')")
            assert _holds_handover_key(owner, writer.info.backend_pid)  # it skipped its wake-up
            # No other commit: the listener stops polling, and waits for this transaction.
            _wait_for(lambda: _flag(owner) == 0, "the listener to stop polling")
            _wait_for(lambda: listener.polling_counts["waited"] == 1, "the hand-over to wait for the writer")
            assert layer.names() == ["wakes it"]
        _wait_for(lambda: layer.names() == ["wakes it", "late"], "the late event (stranded?)")
        assert _wake_ups_from(spy, writer.info.backend_pid) == 0


def _race(url: str, listener: Listener, layer: RecordingLayer, table: Callable[[random.Random], str]) -> list[str]:
    """Rounds of concurrent writers whose short and long transactions (each row into
    ``table(rnd)``) commit around the listener's ``linger``, so it stops polling while
    transactions that skipped their wake-up are still open or just committing. After each
    round no one writes until every committed row of the round has arrived: a row the
    hand-over stranded is not rescued by a later commit's wake-up, and only the 10-minute
    poll would find it. Returns the committed rows; checks that the races happened."""
    writers, rounds = 8, 60
    committed: list[str] = []
    lock = threading.Lock()

    def write(conn: psycopg.Connection, rnd: random.Random, tag: str) -> None:
        time.sleep(rnd.uniform(0, 0.03))
        for t in range(rnd.choice((1, 1, 2))):
            rows = [f"{tag}-{t}-{k}" for k in range(rnd.choice((1, 1, 1, 3)))]
            for k, name in enumerate(rows):
                insert = sql.SQL("INSERT INTO {} (name) VALUES (%s)").format(sql.Identifier(table(rnd)))
                conn.execute(insert, (name,))
                if k == 0 and rnd.random() < 0.4:
                    time.sleep(rnd.uniform(0, 0.03))  # a long transaction, across the linger
            if rnd.random() < 0.1:
                conn.rollback()  # never committed: never delivered
                continue
            conn.commit()
            with lock:
                committed.extend(rows)

    conns = [psycopg.connect(url) for _ in range(writers)]
    try:
        with running(listener):
            for r in range(rounds):
                threads = [
                    threading.Thread(target=write, args=(conn, random.Random(r * writers + n), f"r{r}w{n}"))
                    for n, conn in enumerate(conns)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                _wait_for(lambda: len(layer.events) >= len(committed), f"round {r}'s events (stranded?)", timeout=5)
    finally:
        for conn in conns:
            conn.close()
    counts = listener.polling_counts
    # the races the test is for did happen
    assert counts["started"] >= rounds // 2 and counts["stopped"] >= rounds // 2 and counts["waited"] >= 1, counts
    return committed


@pytest.mark.race
def test_no_event_is_stranded_by_commits_racing_the_hand_over(isolated_db: str) -> None:
    """Every committed row of the races (``_race``) arrives, once, in id order."""
    layer = RecordingLayer()
    committed = _race(isolated_db, _listener(isolated_db, layer, linger=0.01), layer, lambda rnd: "people")
    names = layer.names()
    assert sorted(names) == sorted(committed) and len(names) == len(set(names))
    ids = [e["id"] for e in layer.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e["prev"] == p for e, p in zip(layer.events[1:], ids, strict=False))


@pytest.mark.parametrize(
    ("migration", "said", "polls"),
    [
        ("0006_sequencer_custom_plans", "the database has no wake-up hand-over (run migrate)", False),
        ("0009_sequencer_one_plan", "no wake-up hand-over for non-durable watches (run migrate)", True),
    ],
)
def test_a_database_without_the_hand_over_wakes_the_listener_on_every_commit(
    isolated_db: str, caplog: pytest.LogCaptureFixture, migration: str, said: str, polls: bool
) -> None:
    """A database migrated only up to 0006 (no ``pgevents_wake``, the trigger function of
    0004): the listener says so, never claims to poll, and every commit sends its wake-up
    and arrives without the safety-net poll, also while commits come faster than the linger.
    A non-durable watch works the same. Up to 0009 (the hand-over for durable rows only):
    durable commits make it poll, and every non-durable commit still wakes it."""
    manage(isolated_db, "migrate", "pgevents", migration, "--noinput", "-v", "0")
    _fleeting(isolated_db)
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=0.05)
    expected: list[str] = []
    with (
        caplog.at_level(logging.INFO, logger="pgevents.capture.handover"),
        running(listener),
        psycopg.connect(isolated_db, autocommit=True) as spy,
        psycopg.connect(isolated_db, autocommit=True) as writer,
    ):
        spy.execute("LISTEN pgevents")
        for burst in range(3):
            for n in range(20):
                table = "fleeting" if n % 5 == 4 else "people"
                writer.execute(
                    sql.SQL("INSERT INTO {} (name) VALUES (%s)").format(sql.Identifier(table)), (f"{burst}-{n}",)
                )
                expected.append(f"{burst}-{n}")
            _wait_for(lambda: sorted(layer.names()) == sorted(expected), f"burst {burst} (stranded?)")
            time.sleep(0.1)  # past the linger: the next burst starts from an idle listener
        notes = [note.payload for note in spy.notifies(timeout=0.3) if note.pid == writer.info.backend_pid]
    assert notes.count("t") == 12  # each non-durable commit woke the listener
    assert (notes.count("") < 48, listener.polling_counts["started"] >= 1) == (polls, polls)
    assert said in caplog.text
    durable = [e for e in layer.events if e["id"] is not None]
    assert len(durable) == 48 and [e["id"] for e in durable] == sorted({e["id"] for e in durable})


@dataclass(frozen=True)
class RecordingPacing(Pacing):
    """The pacing policy, noting every pause it decides."""

    pauses: list[float] = field(default_factory=list)

    def pause(self, events: int, took: float) -> float:
        pause = super().pause(events, took)
        self.pauses.append(pause)
        return pause


def test_a_paced_listener_delivers_every_event_once_in_order_and_still_hands_over(isolated_db: str) -> None:
    """Pacing (a pause after a look that found several events) under writers committing many
    rows at a time, with a long pause: it pauses, and every committed row arrives once, with
    increasing ids and each ``prev`` the channel's previous id. Then a transaction that
    skipped its wake-up and commits after the listener stopped polling arrives as well."""
    layer = RecordingLayer()
    pacing = RecordingPacing(20.0, 0.02)
    listener = _listener(isolated_db, layer, linger=0.5, pacing=pacing)
    names = [f"paced {n}" for n in range(2000)]
    with (
        running(listener),
        psycopg.connect(isolated_db, autocommit=True) as owner,
        psycopg.connect(isolated_db, autocommit=True) as writer,
    ):
        for n in range(0, len(names), 50):
            writer.execute("INSERT INTO people (name) SELECT unnest(%s::text[])", (names[n : n + 50],))
        _wait_for(lambda: len(layer.events) >= len(names), "the stream (stranded?)")
        assert any(pause > 0 for pause in pacing.pauses)
        with writer.transaction():
            writer.execute("INSERT INTO people (name) VALUES ('late')")
            assert _holds_handover_key(owner, writer.info.backend_pid)  # it skipped its wake-up
            _wait_for(lambda: _flag(owner) == 0, "the listener to stop polling")
        _wait_for(lambda: len(layer.events) == len(names) + 1, "the late event (stranded?)")
    assert layer.names() == [*names, "late"]
    ids = [e["id"] for e in layer.events]
    assert ids == sorted(set(ids))
    assert all(e["prev"] == p for e, p in zip(layer.events[1:], ids, strict=False))


# -- non-durable watches ----------------------------------------------------------------------
def _fleeting(url: str) -> None:
    """A table ``fleeting`` with a non-durable watch on channel ``t.fleeting``."""
    with psycopg.connect(url, autocommit=True) as owner:
        owner.execute("CREATE TABLE fleeting (id serial PRIMARY KEY, name text)")
        with owner.cursor() as cur:
            installation.install(
                cur, installation.build_spec(cur, table="fleeting", channel="t.fleeting", durable=False)
            )


def _transient_flag(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT last_value FROM pgevents_wake_transient").fetchone()
    return int(row[0]) if row else 0


def test_non_durable_writers_skip_the_wake_up_only_while_a_listener_that_takes_their_table_polls(
    isolated_db: str,
) -> None:
    """``pgevents_wake(true)`` is what a listener that polls the log alone says (an older
    one): writers of non-durable rows keep sending ``'t'``. ``pgevents_wake(true, true)``:
    they skip it like durable writers, holding the hand-over key; idle again, both wake it,
    and a flag left by a listener that died reads as "wake it"."""
    _fleeting(isolated_db)
    with _connections(isolated_db) as (owner, spy, writer):
        writer_pid = writer.info.backend_pid

        def wake_ups(*tables: str) -> list[str]:
            for table in tables:
                writer.execute(sql.SQL("INSERT INTO {} (name) VALUES ('x')").format(sql.Identifier(table)))
            return [note.payload for note in spy.notifies(timeout=0.3) if note.pid == writer_pid]

        assert wake_ups("fleeting", "people") == ["t", ""]  # nobody polls: every commit wakes

        polling = psycopg.connect(isolated_db, autocommit=True)
        assert polling.execute("SELECT pgevents_wake(true)").fetchone() == (True,)  # the log alone
        assert (_flag(owner), _transient_flag(owner)) == (polling.info.backend_pid, 0)
        assert wake_ups("fleeting", "people") == ["t"]

        assert polling.execute("SELECT pgevents_wake(true, true)").fetchone() == (True,)
        assert _transient_flag(owner) == polling.info.backend_pid
        with writer.transaction():
            writer.execute("INSERT INTO fleeting (name) VALUES ('skipped')")
            assert _holds_handover_key(owner, writer_pid)  # a stop waits for this transaction
        assert wake_ups("fleeting", "people") == []

        assert polling.execute("SELECT pgevents_wake(false, true)").fetchone() == (False,)
        assert (_flag(owner), _transient_flag(owner)) == (0, 0)
        assert wake_ups("fleeting", "people") == ["t", ""]

        assert polling.execute("SELECT pgevents_wake(true, true)").fetchone() == (True,)
        assert wake_ups("fleeting") == []
        polling.close()
        _wait_for(
            lambda: not owner.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (_flag(owner),)).fetchone(),
            "the backend to end",
        )
        assert _transient_flag(owner) != 0
        assert wake_ups("fleeting", "people") == ["t", ""]


def test_a_stream_of_non_durable_commits_makes_the_listener_poll_and_a_late_one_is_delivered(
    isolated_db: str,
) -> None:
    """Non-durable commits written back to back make the listener poll (they count towards
    the stream like durable ones) and skip their wake-ups; a non-durable writer that skipped
    its wake-up and commits after the listener stopped polling arrives without one."""
    _fleeting(isolated_db)
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=0.2, stream=STREAM)
    names = [f"fleeting {n}" for n in range(1000)]
    with running(listener), _connections(isolated_db) as (owner, spy, writer):
        for n in range(0, len(names), 50):
            writer.execute("INSERT INTO fleeting (name) SELECT unnest(%s::text[])", (names[n : n + 50],))
        _wait_for(lambda: len(layer.events) == len(names), "the stream (stranded?)")
        assert listener.polling_counts["started"] >= 1
        assert layer.names() == names and all(e["id"] is None for e in layer.events)
        woken = len([note for note in spy.notifies(timeout=0.3) if note.pid == writer.info.backend_pid])
        assert woken < len(names) // 50  # some commits skipped their wake-up

        more = 0
        while _transient_flag(owner) == 0:  # the stream ended with its linger: another one
            batch = [f"more {more + k}" for k in range(50)]
            owner.execute("INSERT INTO fleeting (name) SELECT unnest(%s::text[])", (batch,))
            names += batch
            more += 50
            assert more < 50_000, "the listener never polled again"
        with writer.transaction():
            writer.execute("INSERT INTO fleeting (name) VALUES ('late')")
            assert _holds_handover_key(owner, writer.info.backend_pid)  # it skipped its wake-up
            _wait_for(lambda: _transient_flag(owner) == 0, "the listener to stop polling")
        _wait_for(lambda: len(layer.events) == len(names) + 1, "the late event (stranded?)")
        assert _wake_ups_from(spy, writer.info.backend_pid) == 0
    assert layer.names() == [*names, "late"]


@pytest.mark.race
def test_no_non_durable_event_is_stranded_by_commits_racing_the_hand_over(isolated_db: str) -> None:
    """The races (``_race``) with non-durable rows, and a durable one now and then: every
    non-durable row committed while the listener runs arrives, once (nothing waits for the
    10-minute poll), and the durable ones in id order."""
    _fleeting(isolated_db)
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=0.01)
    committed = _race(isolated_db, listener, layer, lambda rnd: "people" if rnd.random() < 0.2 else "fleeting")
    names = layer.names()
    assert sorted(names) == sorted(committed) and len(names) == len(set(names))
    durable = [e["id"] for e in layer.events if e["id"] is not None]
    assert durable == sorted(durable) and 0 < len(durable) < len(names)


def test_a_polling_listener_takes_the_transient_table_only_once_non_durable_events_come(isolated_db: str) -> None:
    """Durable commits make the listener poll without touching the transient table: its flag
    stays 0, so a non-durable commit wakes the listener (``'t'``); the look that takes it
    makes every later look take the table too, and says so. The stop clears both flags."""
    _fleeting(isolated_db)
    layer = RecordingLayer()
    listener = _listener(isolated_db, layer, linger=2.0)  # the steps below fit in it on a busy machine
    with running(listener), _connections(isolated_db) as (owner, spy, writer):
        writer.execute("INSERT INTO people (name) VALUES ('durable')")
        _wait_for(lambda: _flag(owner) != 0, "the listener to poll")
        assert _transient_flag(owner) == 0
        writer.execute("INSERT INTO fleeting (name) VALUES ('non-durable')")
        _wait_for(lambda: _transient_flag(owner) == _flag(owner) != 0, "the listener to take the transient table")
        writer.execute("INSERT INTO fleeting (name) VALUES ('skipped')")
        _wait_for(lambda: len(layer.events) == 3, "the events")
        _wait_for(lambda: (_flag(owner), _transient_flag(owner)) == (0, 0), "the listener to stop polling")
        notes = [note.payload for note in spy.notifies(timeout=0.3) if note.pid == writer.info.backend_pid]
    assert layer.names() == ["durable", "non-durable", "skipped"]
    assert notes == ["", "t"]  # the first commit woke the idle listener; the last skipped its wake-up
