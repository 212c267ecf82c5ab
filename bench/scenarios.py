"""The scenarios. Each returns rows for the results table: pgevents and, where it applies,
the floor (a bare ``pg_notify`` trigger and one psycopg LISTEN client) in the same run."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.sql import Composed

from pgevents.core.names import group_name
from pgevents.store import log

from . import cpu, servers, servertrace, stages
from .clients import Result, Workers
from .database import PEER_CHANNEL, PEER_TABLE
from .report import Latency, Row, unpack, window_summary, windows
from .writer import PAYLOAD, burst_offsets, drop_parts, listen_floor, prepare_parts, write

MB = 1024 * 1024


@dataclass
class Context:
    url: str
    env: dict[str, str]
    listener: servers.Server
    client_procs: int = 2
    profile_dir: str | None = None
    client_nice: int = 0
    listener_args: tuple[str, ...] = ()
    server: str = "daphne"
    server_root: Path | None = None
    peer: Peer | None = None
    #: daphne processes on the server's port (``manage.py pgevents_serve`` when more than one).
    processes: int = 1
    #: Cut each delivery's latency where it passes through Redis (``--stages``, see ``stages``).
    stages: bool = False
    #: Also time each event inside daphne (``--server-trace``, see ``bench.servertrace``).
    server_trace: bool = False

    def daphne(self, trace: Path | None = None) -> tuple[servers.Server, int]:
        """A fresh server process per scenario (``server``: daphne unless told otherwise): its
        memory figures are its own. ``trace``: where the server trace goes."""
        port = servers.free_port()
        return servers.start_server(self.env, port, self.server, self.server_root, self.processes, trace), port


def merge(results: list[Result]) -> tuple[int, int, int, list[int], list[float]]:
    """Several client processes' results as one: received, disorder, fewest received, seqnos, times."""
    received = sum(r.received for r in results)
    disorder = sum(r.disorder for r in results)
    seqnos: list[int] = []
    times: list[float] = []
    for r in results:
        s, t = unpack(r.seqnos, r.times)
        seqnos.extend(s)
        times.extend(t)
    return received, disorder, min(r.min_received for r in results), seqnos, times


def settle(url: str, timeout: float = 60) -> None:
    """Wait until the listener has positioned and published everything already written."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pgevents_event WHERE id IS NULL),"
                " (SELECT value FROM pgevents_cursor WHERE name = 'assigned')"
                " - (SELECT value FROM pgevents_cursor WHERE name = 'published')"
            ).fetchone()
            if row is not None and row[0] == 0 and row[1] <= 0:
                return
            time.sleep(0.1)


@dataclass
class Peer:
    """Another WebSocket server driven in the same run (``--peer``): a URL template with
    ``{channel}``, and optionally the pids whose CPU is its cost. It is fed by a bare
    ``pg_notify(row_to_json(NEW))`` trigger on ``bench_peer`` (channel ``bench_peer``): what
    pg_eventserv forwards to ``/listen/<channel>``."""

    template: str
    pids: tuple[int, ...] = ()

    def target(self, channel: str = PEER_CHANNEL) -> tuple[str, int, str]:
        parts = urlsplit(self.template.replace("{channel}", channel))
        if parts.scheme != "ws" or parts.hostname is None:
            raise ValueError(f"--peer needs a ws:// URL template, got {self.template!r}")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return parts.hostname, parts.port or 80, path or "/"


def stream(
    ctx: Context,
    name: str,
    clients: int,
    rate: float | None,
    count: int,
    channel: str = "bench",
    offsets: list[float] | None = None,
    window: float | None = None,
) -> list[Row]:
    """``clients`` sockets on one channel; the writer inserts ``count`` rows at ``rate`` (or
    on the schedule ``offsets``). Then the same writes through the peer (``--peer``), if one
    is given, and through the floor: every system in the same run, one after the other."""
    rows = [_pgevents(ctx, name, clients, rate, count, channel, offsets, window)]
    if ctx.peer is not None and channel == "bench":
        rows.append(peer(ctx, ctx.peer, name, clients, rate, count, offsets, window))
    rows.append(floor(ctx, name, rate, count, offsets, window))
    return rows


def _timeout(rate: float | None, count: int, offsets: list[float] | None) -> float:
    if offsets:
        return 30 + offsets[-1] * 1.5
    return 30 + count / (rate or 1000) * 0.5


def _row(
    name: str,
    system: str,
    clients: int,
    count: int,
    acks: list[float],
    results: list[Result],
    window: float | None,
) -> Row:
    """A row of measured deliveries: loss, order, throughput, latency (and its windows)."""
    received, disorder, lowest, seqnos, times = merge(results)
    first, last_rx = acks[0], max(times, default=acks[-1])
    writer_rate = (len(acks) - 1) / (acks[-1] - acks[0]) if len(acks) > 1 else 0.0
    span = max(last_rx - first, 1e-9)
    row = Row(
        scenario=name,
        system=system,
        expected=count * clients,
        received=received,
        duplicates=disorder,
        events_per_s=count / span,
        deliveries_per_s=received / span,
        latency=Latency.of(acks, seqnos, times),
        notes=f"writer {writer_rate:,.0f}/s; slowest socket got {lowest:,}/{count:,}",
    )
    if window:
        series = windows(acks, seqnos, times, window)
        row.notes += f"; p50/p99 ms by {window:g} s of commit time: {window_summary(series)}"
        row.extra["windows"] = [asdict(w) for w in series]
    return row


def _pgevents(
    ctx: Context,
    name: str,
    clients: int,
    rate: float | None,
    count: int,
    channel: str,
    offsets: list[float] | None,
    window: float | None,
) -> Row:
    table = {"bench": "bench_events"}.get(channel, channel)
    settle(ctx.url)
    trace = Path(tempfile.mkdtemp(prefix="pgevents-bench-trace-")) / "daphne" if ctx.server_trace else None
    daphne, port = ctx.daphne(trace)
    workers = Workers(min(ctx.client_procs, clients), ctx.client_nice)
    profiler = None
    tap: stages.Tap | None = None
    try:
        workers.connect("127.0.0.1", port, f"/ws/pgevents/{channel}/", clients)
        pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
        if ctx.profile_dir and pyspy:
            stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
            profiler = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "-p",
                    str(daphne.proc.pid),
                    "-o",
                    f"{ctx.profile_dir}/{stem}.txt",
                    "-f",
                    "raw",
                    "-r",
                    "200",
                    *(["--idle"] if os.environ.get("PGEVENTS_BENCH_IDLE") else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        monitor = servers.Monitor(
            {"daphne": [daphne.proc.pid], "listener": [ctx.listener.proc.pid], "clients": workers.pids}
        )
        if ctx.stages:
            tap = stages.Tap(ctx.env["REDIS_URL"], ctx.env["PGEVENTS_REDIS_PREFIX"], group_name(channel))
        with monitor:
            acks = write(ctx.url, table, count, rate, offsets=offsets)
            results = workers.wait(len(acks), timeout=_timeout(rate, count, offsets))
    finally:
        if tap is not None:
            tap.close()
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
        workers.close()
        daphne.stop()
    u = monitor.usage
    system = "pgevents" if ctx.processes == 1 else f"pgevents, {ctx.processes} daphne processes"
    row = _row(name, system, clients, len(acks), acks, results, window)
    if channel in WITHOUT_IDS:  # the clients' order check reads ids: count repeated rows instead
        _, _, _, seqnos, _ = merge(results)
        row.duplicates = sum(max(0, n - clients) for n in Counter(seqnos).values())
    server_cpu = u["daphne"].cpu + u["listener"].cpu
    row.server_cpu_pct = u["daphne"].cpu_pct + u["listener"].cpu_pct
    row.server_rss_mb = u["daphne"].rss_max / MB
    row.client_cpu_pct = u["clients"].cpu_pct
    row.cpu_us_per_delivery = 1e6 * server_cpu / row.received if row.received else None
    row.notes += f"; {ctx.server} {u['daphne'].cpu_pct:.0f} % + runlisten {u['listener'].cpu_pct:.0f} % CPU"
    if tap is not None:
        _, _, _, seqnos, times = merge(results)
        to_redis, to_client = stages.split(acks, tap.seen, seqnos, times)
        row.notes += "; " + stages.summary(to_redis, to_client)
        row.extra["stages"] = {
            "commit_to_published": asdict(to_redis) if to_redis else None,
            "published_to_client": asdict(to_client) if to_client else None,
        }
        if trace is not None:
            parts = stages.server_split(tap.seen, *servertrace.read(str(trace)), seqnos, times)
            row.notes += "; " + stages.server_summary(parts)
            row.extra["stages"].update({k: asdict(v) if v else None for k, v in parts.items()})
            shutil.rmtree(trace.parent, ignore_errors=True)
    return row


def peer(
    ctx: Context,
    target: Peer,
    name: str,
    clients: int,
    rate: float | None,
    count: int,
    offsets: list[float] | None = None,
    window: float | None = None,
) -> Row:
    """The same load through another server (``--peer``), clients and writer as for pgevents."""
    host, port, path = target.target()
    workers = Workers(min(ctx.client_procs, clients), ctx.client_nice)
    try:
        workers.connect(host, port, path, clients, raw=True)
        time.sleep(0.5)  # the peer may start its LISTEN when its first client arrives
        monitor = servers.Monitor({"peer": list(target.pids), "clients": workers.pids})
        with monitor:
            acks = write(ctx.url, PEER_TABLE, count, rate, offsets=offsets)
            results = workers.wait(len(acks), timeout=_timeout(rate, count, offsets))
    finally:
        workers.close()
    row = _row(name, f"peer: {target.template}", clients, len(acks), acks, results, window)
    row.client_cpu_pct = monitor.usage["clients"].cpu_pct
    if target.pids:
        u = monitor.usage["peer"]
        row.server_cpu_pct = u.cpu_pct
        row.server_rss_mb = u.rss_max / MB
        row.cpu_us_per_delivery = 1e6 * u.cpu / row.received if row.received else None
    else:
        row.notes += "; its CPU is not measured (no --peer-pid)"
    return row


def burst(ctx: Context, clients: int, rate: float, seconds: float, at: float = 3.0, factor: float = 10) -> list[Row]:
    """A steady ``rate`` with ``factor`` times the rate for 2 s from ``at``: latency by 1 s
    window of commit time shows the backlog and whether (and when) the server recovers."""
    offsets = burst_offsets(rate, seconds, at, factor)
    name = f"burst: {clients:,} clients x {rate:,.0f} events/s, x{factor:g} for 2 s at t={at:g}s, {seconds:g} s"
    return stream(ctx, name, clients, rate, len(offsets), offsets=offsets, window=1.0)


def floor(
    ctx: Context,
    name: str,
    rate: float | None,
    count: int,
    offsets: list[float] | None = None,
    window: float | None = None,
) -> Row:
    """The same writes through a bare ``pg_notify`` trigger to one psycopg LISTEN client."""
    mp = multiprocessing.get_context("spawn")
    ready = mp.Event()
    parent, child = mp.Pipe()
    proc = mp.Process(target=listen_floor, args=(ctx.url, count, _timeout(rate, count, offsets), ready, child))
    proc.start()
    try:
        if not ready.wait(30):
            raise TimeoutError("the floor's LISTEN client did not start")
        acks = write(ctx.url, "bench_floor", count, rate, offsets=offsets)
        seqnos, times = parent.recv()
    finally:
        proc.join(10)
    span = max(max(times, default=acks[-1]) - acks[0], 1e-9)
    row = Row(
        scenario=name,
        system="floor: NOTIFY → psycopg LISTEN",
        expected=count,
        received=len(seqnos),
        duplicates=len(seqnos) - len(set(seqnos)),
        events_per_s=len(seqnos) / span,
        deliveries_per_s=len(seqnos) / span,
        latency=Latency.of(acks, seqnos, times),
        notes="one LISTEN connection (one per browser would slow every commit)",
    )
    if window:
        row.notes += f"; p50/p99 ms by {window:g} s: {window_summary(windows(acks, seqnos, times, window))}"
    return row


def idle(ctx: Context, connections: int) -> list[Row]:
    """``connections`` subscribed, idle sockets on one server process: memory per connection."""
    daphne, port = ctx.daphne()
    workers = Workers(ctx.client_procs)
    try:
        import psutil

        proc = psutil.Process(daphne.proc.pid)
        workers.connect("127.0.0.1", port, "/ws/pgevents/bench/", 1, record=False)
        time.sleep(0.5)
        before = proc.memory_info().rss
        t0 = time.monotonic()
        workers.connect("127.0.0.1", port, "/ws/pgevents/bench/", connections - 1, record=False, concurrency=200)
        took = time.monotonic() - t0
        time.sleep(1.0)
        after = proc.memory_info().rss
    finally:
        workers.close()
        daphne.stop()
    per = (after - before) / max(connections - 1, 1)
    return [
        Row(
            scenario=f"{connections:,} idle connections",
            system="pgevents",
            server_rss_mb=after / MB,
            notes=f"{per / 1024:.1f} KiB per connection ({before / MB:.0f} MB with one); "
            f"opened and subscribed in {took:.1f} s ({connections / took:,.0f}/s)",
        )
    ]


# seqno -1: rows no scenario's latency accounting will ever match.
PGBENCH_SCRIPT = "INSERT INTO {table} (seqno, payload) VALUES (-1, '{payload}');\n"

NO_TRIGGER, BARE_NOTIFY = "no trigger", "bare pg_notify(row_to_json(NEW)) trigger"
WRITER_MODES = [
    ("bench_plain", NO_TRIGGER),
    ("bench_floor", BARE_NOTIFY),
    ("bench_events", "pgevents durable (log + wake-up hand-over)"),
    ("bench_transient", "pgevents non-durable (unlogged table + wake-up)"),
    ("bench_quiet", "pgevents durable notify=False (log only, found by polling)"),
]
#: ``--compare-v2``: the same watches through the previous trigger function.
V2_WRITER_MODES = [
    ("bench_v2_events", "previous version (v2): log + NOTIFY wake-up"),
    ("bench_v2_transient", "previous version (v2) durable=False: NOTIFY payload"),
]
#: Channels whose events carry no id (non-durable).
WITHOUT_IDS = ("bench_transient",)
#: Tables whose events go through the log (the backlog the sequencer has to keep up with).
DURABLE_TABLES = ("bench_events", "bench_quiet")
#: Tables whose trigger fires on INSERT only: the bulk scenario reports no UPDATE for them.
BULK_INSERT_ONLY = ("bench_floor", "bench_v2_events", "bench_v2_transient")
#: Where each table's events arrive: a WebSocket path, or the bare trigger's NOTIFY channel.
DELIVERED_AT = {
    "bench_events": "/ws/pgevents/bench/",
    "bench_transient": "/ws/pgevents/bench_transient/",
    "bench_quiet": "/ws/pgevents/bench_quiet/",
    "bench_floor": "bench_floor",
}


class _NotifyCounter:
    """Counts the bare trigger's notifications on one LISTEN connection, in a thread."""

    def __init__(self, url: str, channel: str) -> None:
        import threading

        import psycopg

        self.count = 0
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(pgsql_listen(channel))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in self._conn.notifies(timeout=0.2):
                self.count += 1

    def wait(self, expected: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.count < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


class _PendingSampler:
    """The largest backlog of unpositioned events seen (sampled every ``every`` seconds, in a
    thread) while a run goes on: whether the sequencer keeps up with the writers."""

    def __init__(self, url: str, every: float = 0.05) -> None:
        import threading

        import psycopg

        self.peak = 0
        self._every = every
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            row = self._conn.execute("SELECT count(*) FROM pgevents_event WHERE id IS NULL").fetchone()
            self.peak = max(self.peak, int(row[0]) if row else 0)

    def close(self) -> int:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()
        return self.peak


def pgsql_listen(channel: str) -> Composed:
    from psycopg import sql as pgsql

    return pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel))


def _rows(url: str, table: str) -> int:
    import psycopg
    from psycopg import sql as pgsql

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def _pgbench(
    pgbench: str, script: str, clients: int, seconds: float, url: str, window: cpu.Window | None = None
) -> tuple[float, float, cpu.Usage | None]:
    """Run ``script`` with ``clients`` pgbench connections for ``seconds``: (TPS, average
    latency in ms, and with a ``window``, the CPU each group of processes used inside the run)."""
    duration = max(1, int(seconds))
    started = time.monotonic()
    proc = subprocess.Popen(
        [pgbench, "-n", "-f", script, "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(duration), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    used = None
    try:
        if window is not None:
            used = window.during(proc.pid, clients, duration, started)
    finally:
        out, err = proc.communicate()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    found = re.search(r"latency average = ([\d.]+) ms", out)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return tps, float(found.group(1)) if found else float("nan"), used


def writer_cost(
    ctx: Context, writers: tuple[int, ...], seconds: float, rounds: int = 3, compare_v2: bool = False
) -> list[Row]:
    """Inserts/s through each kind of table, one row per transaction, with pgbench, while the
    listener runs and one client is subscribed to each watched channel (a WebSocket client
    through the server; a LISTEN connection for the bare trigger).

    After every run the client must have received each row committed in it exactly once
    (durable: strictly increasing ids). The modes are interleaved and repeated ``rounds``
    times; the median is reported with the range, and with its ratio to no trigger and to the
    bare ``pg_notify`` trigger (medians of the same run): a shared machine's background load
    moves single runs a lot.
    """
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return [Row(scenario="writer cost", system="-", notes="pgbench not found (it ships with PostgreSQL)")]
    modes = WRITER_MODES + (V2_WRITER_MODES if compare_v2 else [])
    tps: dict[tuple[str, int], list[float]] = {}
    lat: dict[tuple[str, int], list[float]] = {}
    delivery: dict[tuple[str, int], list[tuple[int, int, int]]] = {}  # (committed, received, disorder)
    backlog: dict[tuple[str, int], list[int]] = {}  # the largest number of unpositioned events
    used: dict[tuple[str, int], list[cpu.Usage]] = {}  # CPU per group of processes, per run
    settle(ctx.url)
    daphne, port = ctx.daphne()
    clients: dict[str, Workers] = {}
    floor_counter = _NotifyCounter(ctx.url, DELIVERED_AT["bench_floor"])
    accounting = psycopg.connect(ctx.url, autocommit=True)
    try:
        for table, path in DELIVERED_AT.items():
            if path.startswith("/"):
                clients[table] = Workers(1, ctx.client_nice)
                clients[table].connect("127.0.0.1", port, path, 1, record=False)
        roots = _cpu_roots(ctx, daphne, clients.values())
        with tempfile.TemporaryDirectory() as tmp:
            for table, _ in modes:
                with open(f"{tmp}/{table}.sql", "w") as f:
                    f.write(PGBENCH_SCRIPT.format(table=table, payload=PAYLOAD))
            for _ in range(rounds):
                for n in writers:
                    for table, _ in modes:
                        settle(ctx.url)
                        if table in clients:
                            clients[table].reset()
                        seen_before = floor_counter.count
                        before = _rows(ctx.url, table)
                        sampler = _PendingSampler(ctx.url) if table in DURABLE_TABLES else None
                        window = cpu.Window(
                            lambda q: accounting.execute(q).fetchall(),
                            _commits_sql(accounting, table),
                            roots,
                            ctx.listener.proc.pid,
                        )
                        rate, latency, usage = _pgbench(pgbench, f"{tmp}/{table}.sql", n, seconds, ctx.url, window)
                        tps.setdefault((table, n), []).append(rate)
                        lat.setdefault((table, n), []).append(latency)
                        if usage is not None:
                            used.setdefault((table, n), []).append(usage)
                        if sampler is not None:
                            backlog.setdefault((table, n), []).append(sampler.close())
                        committed = _rows(ctx.url, table) - before
                        if table in clients:
                            clients[table].wait(committed, 60 + committed / 1000)
                            time.sleep(0.5)  # anything more (a duplicate) arrives meanwhile
                            (result,) = clients[table].wait(committed, 0)
                            got = (committed, result.received, result.disorder)
                        elif table == "bench_floor":
                            floor_counter.wait(seen_before + committed, 60 + committed / 1000)
                            time.sleep(0.5)
                            got = (committed, floor_counter.count - seen_before, 0)
                        else:
                            continue
                        delivery.setdefault((table, n), []).append(got)
    finally:
        accounting.close()
        floor_counter.close()
        for workers in clients.values():
            workers.close()
        daphne.stop()
    rows = []
    for n in writers:
        base = statistics.median(tps[("bench_plain", n)])
        bare = statistics.median(tps[("bench_floor", n)])
        for table, label in modes:
            runs = sorted(tps[(table, n)])
            median = statistics.median(runs)
            ratios = f"{median / base:.2f}x no trigger" + (
                f", {median / bare:.2f}x bare notify" if table != "bench_floor" else ""
            )
            checked = delivery.get((table, n), [])
            spent = cpu.summary(used[(table, n)]) if (table, n) in used else None
            committed = sum(c for c, _, _ in checked)
            received = sum(r for _, r, _ in checked)
            disorder = sum(d for _, _, d in checked) if table not in ("bench_transient",) else 0
            rows.append(
                Row(
                    scenario=f"writer cost, {n} writer{'s' if n > 1 else ''}",
                    system=label,
                    expected=committed,
                    received=received,
                    duplicates=disorder,
                    events_per_s=median,
                    notes=f"inserts/s, median of {len(runs)} (range {runs[0]:,.0f}-{runs[-1]:,.0f}); {ratios}; "
                    f"commit latency {statistics.median(lat[(table, n)]):.2f} ms"
                    + ("; delivered to a subscribed client" if checked else "")
                    + (f"; unpositioned backlog at most {max(backlog[(table, n)]):,}" if (table, n) in backlog else "")
                    + (f"; {cpu.notes(spent)}" if spent else ""),
                    extra={"runs": runs, "delivery": checked, "backlog": backlog.get((table, n)), "cpu": spent},
                )
            )
    return rows


def _cpu_roots(ctx: Context, daphne: servers.Server, clients: Iterable[Workers]) -> dict[str, list[int]]:
    """The pids of the writer-cost run's groups of processes that are not PostgreSQL's (see
    ``bench.cpu``): Redis's own, as it reports it."""
    import redis

    info: dict[str, Any] = redis.Redis.from_url(ctx.env["REDIS_URL"]).info("server")  # type: ignore[assignment]
    return {
        cpu.RUNLISTEN: [ctx.listener.proc.pid],
        cpu.SERVER: [daphne.proc.pid],
        cpu.CLIENTS: [pid for workers in clients for pid in workers.pids],
        cpu.REDIS: [int(info["process_id"])],
        cpu.BENCH: [os.getpid()],
    }


def _commits_sql(conn: psycopg.Connection[Any], table: str) -> str:
    """A statement returning how many rows ``table`` has had inserted: its ``pk`` sequence
    (each pgbench transaction inserts one row)."""
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'pk')", (table,)).fetchone()
    assert row is not None and row[0], table
    return f"SELECT last_value FROM {row[0]}"


def writer_parts(ctx: Context, writers: tuple[int, ...], seconds: float, rounds: int = 3) -> list[Row]:
    """What each part of the writer's work costs: inserts/s with pgbench (as in the writer-cost
    scenario) through tables whose trigger does one more part than the previous one (scratch
    logs in schema ``bench_parts``, see :func:`bench.writer.writer_parts`), then the real
    watch without and with the wake-up check (``notify=False`` and durable). Then the
    listener's side: what positioning (``pgevents_assign``) and pruning cost per event, with
    the WAL they write. Interleaved and repeated; medians with ranges and ratios to no trigger.
    """
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return [Row(scenario="writer parts", system="-", notes="pgbench not found (it ships with PostgreSQL)")]
    steps: list[tuple[str, str, str]] = [(NO_TRIGGER, "bench_plain", "")]
    steps += [(part.label, part.table, "") for part in prepare_parts(ctx.url)]
    steps += [
        ("the real watch, notify=False: its log, nothing positions (listener paused)", "bench_quiet", _PAUSED),
        ("+ positioned by a bare pgevents_assign loop every 5 ms, nothing forwarded", "bench_quiet", _BARE),
        ("+ positioned and forwarded by the listener instead (polls every --quiet-poll)", "bench_quiet", ""),
        ("+ the wake-up check (durable watch, listener running)", "bench_events", ""),
    ]
    tps: dict[tuple[str, int], list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _, table, _ in steps:
                with open(f"{tmp}/{table}.sql", "w") as f:
                    f.write(PGBENCH_SCRIPT.format(table=table, payload=PAYLOAD))
            for _ in range(rounds):
                for n in writers:
                    for label, table, mode in steps:
                        settle(ctx.url, timeout=120)
                        with _positioning(ctx, mode):
                            rate, _, _ = _pgbench(pgbench, f"{tmp}/{table}.sql", n, seconds, ctx.url)
                        tps.setdefault((label, n), []).append(rate)
    finally:
        drop_parts(ctx.url)
    rows = []
    for n in writers:
        base = statistics.median(tps[(NO_TRIGGER, n)])
        previous = base
        for label, table, _ in steps:
            runs = sorted(tps[(label, n)])
            median = statistics.median(runs)
            step_us = (1 / median - 1 / previous) * 1e6 * n if table != "bench_plain" else 0.0
            previous = median
            rows.append(
                Row(
                    scenario=f"writer parts, {n} writer{'s' if n > 1 else ''}",
                    system=label,
                    events_per_s=median,
                    notes=f"inserts/s, median of {len(runs)} (range {runs[0]:,.0f}-{runs[-1]:,.0f}); "
                    f"{median / base:.2f}x no trigger; this step {step_us:+.0f} µs per commit per writer",
                    extra={"runs": runs},
                )
            )
    ctx.listener.stop()
    try:
        rows += sequencer_parts(ctx.url)
        rows.append(_listener_drain(ctx, 20_000))
    finally:
        if ctx.listener.proc.poll() is not None:
            ctx.listener = servers.start_listener(ctx.env, *ctx.listener_args)
    return rows


#: How a ``writer-parts`` step positions the log while pgbench writes: the listener paused
#: (nothing positions: the ceiling of a watch whose log write is all it costs), or paused
#: with a bare loop of sequencer calls instead (positioning without forwarding).
_PAUSED, _BARE = "paused", "bare"


@contextlib.contextmanager
def _positioning(ctx: Context, mode: str, every: float = 0.005) -> Iterator[None]:
    """Run the body with the log positioned as ``mode`` says ("": by the listener, as
    always). The listener is paused with SIGSTOP once the log is settled (it then sleeps on
    LISTEN or runs an autocommit look, so it holds no lock the loop needs) and resumed after."""
    if not mode:
        yield
        return
    stop = threading.Event()

    def bare_loop() -> None:
        # Each call records the last id the previous one returned as published, so the
        # cursor ends level with what was positioned (nothing waits to be forwarded).
        with psycopg.connect(ctx.url, autocommit=True) as conn:
            published = 0
            while True:
                row = conn.execute("SELECT max(event_id) FROM pgevents_assign(500, %s)", (published,)).fetchone()
                last = row[0] if row is not None else None
                if last is not None:
                    published = last
                elif stop.is_set():
                    return
                else:
                    time.sleep(every)

    os.killpg(ctx.listener.proc.pid, signal.SIGSTOP)
    loop = threading.Thread(target=bare_loop, daemon=True) if mode == _BARE else None
    try:
        if loop is not None:
            loop.start()
        yield
    finally:
        stop.set()
        if loop is not None:
            loop.join()
        os.killpg(ctx.listener.proc.pid, signal.SIGCONT)


def _listener_drain(ctx: Context, events: int) -> Row:
    """A backlog of ``events`` committed while the listener was stopped, then the listener
    started: how fast one listener positions and forwards (to the channel layer)."""
    import psycopg

    with psycopg.connect(ctx.url, autocommit=True) as conn:
        conn.execute(_FILL, (PAYLOAD, events))
    t0 = time.perf_counter()
    ctx.listener = servers.start_listener(ctx.env, *ctx.listener_args)
    settle(ctx.url, timeout=120)
    elapsed = time.perf_counter() - t0
    return Row(
        scenario="listener's work on the log, per event",
        system=f"one listener drains a backlog of {events:,}",
        events_per_s=events / elapsed,
        notes=f"positioned and forwarded in {elapsed:.2f} s, listener start-up included",
    )


#: Pending events written straight into the log (as its owner), as a trigger would.
_FILL = (
    'INSERT INTO pgevents_event (channel, op, schema_name, table_name, "row")'
    " SELECT 'bench_parts', 'INSERT', 'public', 'bench_parts',"
    " jsonb_build_object('pk', g, 'seqno', -1, 'payload', %s::text) FROM generate_series(1, %s) g"
)


def sequencer_parts(url: str, events: int = 20_000, singles: int = 1_000) -> list[Row]:
    """The listener's side of the log, the listener stopped: ``events`` pending events
    positioned by ``pgevents_assign`` in batches of 500, ``singles`` one at a time, then all
    of them pruned in chunks of 5,000 — time and WAL bytes per event."""
    import psycopg

    def timed(conn: psycopg.Connection, statement: str, args: tuple[object, ...]) -> tuple[float, int, int]:
        """(seconds, WAL bytes, events) of running ``statement`` until it returns 0."""
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        done = 0
        t0 = time.perf_counter()
        while True:
            count = int(conn.execute(statement, args).fetchone()[0])  # type: ignore[index]
            if not count:
                break
            done += count
        elapsed = time.perf_counter() - t0
        wal = conn.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (lsn,)).fetchone()[0]  # type: ignore[index]
        return elapsed, int(wal), done

    rows = []
    with psycopg.connect(url, autocommit=True) as conn:
        settle_cursor = (
            "SELECT count(*) FROM pgevents_assign(0, (SELECT value FROM pgevents_cursor WHERE name = 'assigned'))"
        )
        conn.execute(settle_cursor)
        results = []
        for batch, count in ((500, events), (1, singles)):
            conn.execute(_FILL, (PAYLOAD, count))
            results.append(
                (
                    f"pgevents_assign, batches of {batch}",
                    *timed(conn, "SELECT count(*) FROM pgevents_assign(%s, 0)", (batch,)),
                )
            )
        conn.execute(settle_cursor)
        results.append(("pgevents_prune, chunks of 5,000", *timed(conn, "SELECT pgevents_prune(0, 5000)", ())))
        for label, elapsed, wal, done in results:
            rows.append(
                Row(
                    scenario="listener's work on the log, per event",
                    system=label,
                    events_per_s=done / elapsed if elapsed else 0.0,
                    notes=f"{elapsed / max(done, 1) * 1e6:.1f} µs and {wal / max(done, 1):,.0f} WAL bytes per event ({done:,} events)",
                )
            )
    return rows


#: A look at an empty log, without and with the transient table in the same statement.
EMPTY_LOOKS = {
    "the sequencer alone": (log.ASSIGN, (500, 0)),
    "the sequencer + the transient take, one statement": (log.LOOK, (500, 0, 500)),
}


def empty_look(ctx: Context, calls: int = 5_000, rounds: int = 3) -> list[Row]:
    """What a polling listener pays per look while nothing is pending (the listener stopped,
    the log and the transient table empty): a round trip of each statement in ``EMPTY_LOOKS``,
    ``calls`` at a time, in alternating rounds, on one connection (statements prepared)."""
    import psycopg

    settle(ctx.url)
    ctx.listener.stop()
    took: dict[str, list[float]] = {}
    try:
        with psycopg.connect(ctx.url, autocommit=True, prepare_threshold=0) as conn:
            for _ in range(rounds):
                for label, (statement, params) in EMPTY_LOOKS.items():
                    for _ in range(50):
                        conn.execute(statement, params).fetchall()
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        conn.execute(statement, params).fetchall()
                    took.setdefault(label, []).append((time.perf_counter() - t0) / calls * 1e6)
    finally:
        ctx.listener = servers.start_listener(ctx.env, *ctx.listener_args)
    rows = []
    for label, runs in took.items():
        runs.sort()
        rows.append(
            Row(
                scenario="a look at an empty log, per round trip",
                system=label,
                events_per_s=1e6 / statistics.median(runs),
                notes=f"{statistics.median(runs):.0f} µs per look, median of {len(runs)} rounds of {calls:,} "
                f"(range {runs[0]:.0f}-{runs[-1]:.0f})",
                extra={"us": runs},
            )
        )
    return rows


def isolated(ctx: Context, count: int, rate: float) -> list[Row]:
    """Commits far enough apart that the listener is asleep on LISTEN for each one: the
    latency of a lone change on an idle system (the wake-up path, not the polling one)."""
    return stream(ctx, f"isolated commits on an idle system ({rate:g}/s)", 1, rate, count)


def transient(ctx: Context, count: int, rate: float, stream_events: int) -> list[Row]:
    """Non-durable events (``durable=False``), one client: commits far apart (each wakes the
    listener) and one writer at full speed (a stream: the listener polls)."""
    channel = "bench_transient"
    return [
        _pgevents(ctx, f"non-durable: isolated commits ({rate:g}/s)", 1, rate, count, channel, None, None),
        _pgevents(ctx, "non-durable: 1 client, writer at full speed", 1, None, stream_events, channel, None, None),
    ]


def quiet(ctx: Context, rate: float, count: int, poll: float) -> list[Row]:
    """notify=False: what polling costs in latency (the listener restarted with ``poll``)."""
    ctx.listener.stop()
    ctx.listener = servers.start_listener(ctx.env, *ctx.listener_args, "--poll-interval", str(poll))
    try:
        rows = stream(
            ctx,
            f"notify=False, 1 client x {rate:.0f}/s, poll {poll * 1000:.0f} ms",
            1,
            rate,
            count,
            channel="bench_quiet",
        )
    finally:
        ctx.listener.stop()
        ctx.listener = servers.start_listener(ctx.env, *ctx.listener_args)
    return rows[:1]


def bulk(ctx: Context, rows: int, rounds: int = 5, compare_v2: bool = False) -> list[Row]:
    """One ``INSERT … SELECT`` of ``rows`` rows into each kind of table, then one ``UPDATE`` of
    all of them, rolled back: what the trigger costs per row inside a statement, apart from
    commits (which a bulk statement pays once). The watched tables fire on both; the bare
    trigger only on INSERT. Interleaved and repeated; the median and the range are reported."""
    import psycopg
    from psycopg import sql as pgsql

    modes = WRITER_MODES + (V2_WRITER_MODES if compare_v2 else [])
    per_row: dict[tuple[str, str], list[float]] = {}
    statements = (
        ("INSERT", pgsql.SQL("INSERT INTO {} (seqno, payload) SELECT -1, %s FROM generate_series(1, %s)")),
        ("UPDATE", pgsql.SQL("UPDATE {} SET seqno = -2, payload = %s || 'y' WHERE seqno = -1 AND %s > 0")),
    )
    with psycopg.connect(ctx.url) as conn:
        for _ in range(rounds):
            for table, _ in modes:
                for op, statement in statements:
                    t0 = time.perf_counter()
                    conn.execute(statement.format(pgsql.Identifier(table)), (PAYLOAD, rows))
                    per_row.setdefault((table, op), []).append((time.perf_counter() - t0) / rows * 1e6)
                conn.rollback()
    out = []
    for op, _ in statements:
        base = statistics.median(per_row[("bench_plain", op)])
        for table, label in modes:
            if op == "UPDATE" and table in BULK_INSERT_ONLY:
                continue
            runs = sorted(per_row[(table, op)])
            median = statistics.median(runs)
            out.append(
                Row(
                    scenario=f"bulk {op} of {rows:,} rows in one statement",
                    system=label,
                    events_per_s=1e6 / median,
                    notes=f"{median:.1f} µs per row, median of {len(runs)} (range {runs[0]:.1f}-{runs[-1]:.1f}); "
                    f"{median * rows / 1000:.0f} ms for the statement, {median / base:.1f}x no trigger; rolled back",
                    extra={"us_per_row": runs},
                )
            )
    return out
