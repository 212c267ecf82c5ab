"""``python -m bench`` (or ``scripts/bench``): run the scenarios and print the results table.

Sizes are configurable; ``--quick`` is a smoke run of a few seconds. The benchmark creates
its own database (``pgevents_bench``, dropped at the end) unless ``--database-url`` names an
existing, migrated one, and its own Redis key prefix (deleted at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import database, scenarios, servers, stalled
from .report import Row, table
from .scenarios import Peer

ALL = ("full", "isolated", "fanout", "burst", "idle", "quiet", "writers", "bulk")
#: Run only when named with --only.
EXTRA = ("stalled", "writer-parts", "transient", "empty-look")


@dataclass
class Config:
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    scenarios: tuple[str, ...] = ALL
    full_events: int = 10_000
    #: Commits far apart (the listener asleep for each): how many, and per second.
    isolated_events: int = 50
    isolated_rate: float = 10
    #: (clients, events/s, seconds)
    fanout: list[tuple[int, float, float]] = field(default_factory=lambda: [(100, 200, 10), (1000, 50, 10)])
    #: (clients, events/s, seconds) of the burst scenario: ten times the rate for 2 s from t=3 s
    burst: tuple[int, float, float] = (1000, 50, 10)
    idle: int = 10_000
    writers: tuple[int, ...] = (1, 16)
    writer_seconds: float = 5
    writer_rounds: int = 3
    quiet_rate: float = 200
    quiet_seconds: float = 5
    quiet_poll: float = 0.05
    client_procs: int = 2
    profile_dir: str | None = None
    #: Latency cut at Redis: commit → published, published → client (``--stages``).
    stages: bool = False
    #: The server's stage cut further inside daphne (``--server-trace``; implies ``stages``).
    server_trace: bool = False
    layer: str = "pgpubsub"
    #: Niceness of the client processes: 0, as equals of the server (see --client-nice).
    client_nice: int = 0
    #: Another server driven in the same run (``--peer``).
    peer: Peer | None = None
    #: daphne processes on one port (``--processes``).
    processes: int = 1
    listener_args: tuple[str, ...] = ()
    #: Writer cost also through the previous (v2) trigger function, side by side.
    compare_v2: bool = False
    #: Rows of the one-statement INSERT (``bulk``), and its rounds.
    bulk_rows: int = 10_000
    bulk_rounds: int = 5
    server: str = "daphne"
    server_root: str | None = None
    #: (kind, readers, events/s, seconds, row bytes) of the stalled-readers scenario
    stalled: tuple[str, int, float, float, int] = ("sse", 5, 200, 30, 2000)

    @classmethod
    def quick(cls, **kw: object) -> Config:
        return cls(
            full_events=300,
            isolated_events=5,
            fanout=[(10, 100, 2), (20, 50, 2)],
            burst=(20, 50, 6),
            idle=200,
            writer_seconds=1,
            writer_rounds=1,
            quiet_rate=100,
            quiet_seconds=1,
            bulk_rows=500,
            bulk_rounds=1,
            **kw,  # type: ignore[arg-type]
        )


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(cfg: Config, out: object = sys.stderr) -> list[Row]:
    """Run the configured scenarios against a stack of its own; return the table's rows."""

    def say(msg: str) -> None:
        print(f"[bench] {msg}", file=out, flush=True)  # type: ignore[call-overload]

    raise_fd_limit()
    os.environ.setdefault("REDIS_URL", cfg.redis_url)
    own_db = cfg.database_url is None
    url = cfg.database_url or "postgresql://postgres@127.0.0.1:5432/pgevents_bench"
    prefix = f"pgevents-bench-{os.getpid()}"
    env = servers.env_for(url, prefix, REDIS_URL=cfg.redis_url, PGEVENTS_BENCH_LAYER=cfg.layer)
    rows: list[Row] = []
    ctx: scenarios.Context | None = None
    try:
        if own_db:
            say(f"creating and migrating {url}")
            database.create(url)
            database.migrate(url, env)
        database.prepare(url, cfg.compare_v2)
        ctx = scenarios.Context(
            url,
            env,
            servers.start_listener(env, *cfg.listener_args),
            cfg.client_procs,
            cfg.profile_dir,
            cfg.client_nice,
            cfg.listener_args,
            cfg.server,
            Path(cfg.server_root) if cfg.server_root else None,
            cfg.peer,
            cfg.processes,
            cfg.stages and cfg.layer != "core",
            cfg.server_trace and cfg.layer != "core",
        )
        if "full" in cfg.scenarios:
            say(f"1 client, writer at full speed, {cfg.full_events:,} events")
            rows += scenarios.stream(ctx, "1 client, writer at full speed", 1, None, cfg.full_events)
        if "isolated" in cfg.scenarios:
            say(f"{cfg.isolated_events} isolated commits, {cfg.isolated_rate:g}/s")
            rows += scenarios.isolated(ctx, cfg.isolated_events, cfg.isolated_rate)
        if "fanout" in cfg.scenarios:
            for clients, rate, seconds in cfg.fanout:
                name = f"{clients:,} clients x {rate:,.0f} events/s"
                say(f"{name} for {seconds:.0f} s")
                rows += scenarios.stream(ctx, name, clients, rate, int(rate * seconds))
        if "burst" in cfg.scenarios:
            clients, rate, seconds = cfg.burst
            say(f"burst: {clients:,} clients x {rate:,.0f} events/s for {seconds:.0f} s, x10 for 2 s")
            rows += scenarios.burst(ctx, clients, rate, seconds)
        if "transient" in cfg.scenarios:
            say(f"non-durable: {cfg.isolated_events} isolated commits, then {cfg.full_events:,} at full speed")
            rows += scenarios.transient(ctx, cfg.isolated_events, cfg.isolated_rate, cfg.full_events)
        if "empty-look" in cfg.scenarios:
            say("a look at an empty log, with and without the transient table")
            rows += scenarios.empty_look(ctx)
        if "idle" in cfg.scenarios:
            say(f"{cfg.idle:,} idle connections")
            rows += scenarios.idle(ctx, cfg.idle)
        if "quiet" in cfg.scenarios:
            say("notify=False latency")
            rows += scenarios.quiet(ctx, cfg.quiet_rate, int(cfg.quiet_rate * cfg.quiet_seconds), cfg.quiet_poll)
        if "bulk" in cfg.scenarios:  # rolled back: leaves nothing behind
            say(f"one-statement INSERT and UPDATE of {cfg.bulk_rows:,} rows, {cfg.bulk_rounds} rounds")
            rows += scenarios.bulk(ctx, cfg.bulk_rows, cfg.bulk_rounds, cfg.compare_v2)
        if "stalled" in cfg.scenarios:
            say(f"stalled readers {cfg.stalled}")
            rows += stalled.stalled(ctx, *cfg.stalled)
        if "writer-parts" in cfg.scenarios:
            say(f"writer cost part by part with {cfg.writers} writers, {cfg.writer_seconds:.0f} s each")
            rows += scenarios.writer_parts(ctx, cfg.writers, cfg.writer_seconds, cfg.writer_rounds)
        if "writers" in cfg.scenarios:  # last: it leaves a backlog the listener drains afterwards
            say(f"writer cost with {cfg.writers} writers, {cfg.writer_seconds:.0f} s each")
            rows += scenarios.writer_cost(ctx, cfg.writers, cfg.writer_seconds, cfg.writer_rounds, cfg.compare_v2)
    finally:
        if ctx is not None:
            ctx.listener.stop()
        _clean_redis(cfg.redis_url, prefix)
        if own_db:
            with contextlib.suppress(Exception):
                database.drop(url)
    return rows


def _clean_redis(url: str, prefix: str) -> None:
    """Delete this run's keys (its own prefix only)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


def machine() -> str:
    import psutil

    load = os.getloadavg()
    return (
        f"{platform.node()}: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, load average before the run {load[0]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few seconds")
    p.add_argument("--only", help=f"comma-separated scenarios to run, from {', '.join(ALL + EXTRA)}")
    p.add_argument("--server", choices=sorted(servers.COMMANDS), default="daphne", help="ASGI server under test")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="daphne processes on the server's port (manage.py pgevents_serve, SO_REUSEPORT; default 1)",
    )
    p.add_argument(
        "--server-root", metavar="DIR", help="run the server from another checkout (to compare code side by side)"
    )
    p.add_argument(
        "--stalled",
        metavar="KIND,READERS,RATE,SECONDS,BYTES",
        help="the stalled scenario: sse or ws readers that never read (default sse,5,200,30,2000)",
    )
    p.add_argument("--database-url", help="use this migrated database instead of creating pgevents_bench")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--full-events", type=int, help="events in the full-speed scenario (default 10,000)")
    p.add_argument(
        "--isolated",
        metavar="EVENTSxRATE",
        help="the isolated scenario: how many commits, how many a second (default 50x10); its p99 is the "
        "slowest 1 %%, so settle a tail with a few hundred",
    )
    p.add_argument(
        "--fanout",
        action="append",
        metavar="CLIENTSxRATExSECONDS",
        help="a fan-out scenario, e.g. 100x200x10; repeat for several (default 100x200x10 and 1000x50x10)",
    )
    p.add_argument(
        "--burst",
        metavar="CLIENTSxRATExSECONDS",
        help="the burst scenario: a steady rate with ten times that rate for 2 s from t=3 s, latency reported "
        "by 1 s window of commit time (default 1000x50x10)",
    )
    p.add_argument(
        "--peer",
        metavar="URL_TEMPLATE",
        help="also drive another WebSocket server in the same run, e.g. 'ws://127.0.0.1:7700/listen/{channel}' "
        "(pg_eventserv): its clients read the raw NOTIFY payloads of a bare pg_notify(row_to_json(NEW)) trigger on "
        "table and channel bench_peer",
    )
    p.add_argument(
        "--peer-pid",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="a process of the peer whose CPU counts as its cost (repeat for several); without it the peer's CPU "
        "per delivery is not reported",
    )
    p.add_argument("--idle", type=int, help="idle connections to hold (default 10,000)")
    p.add_argument("--writer-seconds", type=float, help="seconds per writer-cost run (default 5)")
    p.add_argument("--writer-rounds", type=int, help="interleaved rounds of the writer-cost runs (default 3)")
    p.add_argument(
        "--compare-v2",
        action="store_true",
        help="writer cost also through the previous trigger function (schema v2), interleaved with the others",
    )
    p.add_argument("--quiet-poll", type=float, help="listener poll interval for notify=False (default 0.05 s)")
    p.add_argument(
        "--layer",
        choices=("core", "pubsub", "pgpubsub"),
        default="pgpubsub",
        help="channel layer: pgpubsub (pgevents.layers.PubSubChannelLayer, the default), core (channels-redis "
        "RedisChannelLayer) or pubsub (channels-redis RedisPubSubChannelLayer)",
    )
    p.add_argument("--client-procs", type=int, default=2, help="client processes (default 2)")
    p.add_argument(
        "--client-nice",
        type=int,
        default=0,
        metavar="N",
        help="niceness of the client processes (default 0: normal priority, the server's equals). A positive "
        "value lets the server under test preempt its own clients on a small machine, which flatters it: "
        "figures taken that way must say so",
    )
    p.add_argument("--listener-args", default="", help='extra runlisten arguments, e.g. "--coalesce 0.002"')
    p.add_argument(
        "--stages",
        action="store_true",
        help="cut each pgevents delivery's latency where it passes through Redis: commit → published (the listener) "
        "and published → client (the server), from a tap on the layer's pub/sub channel (see bench/stages.py)",
    )
    p.add_argument(
        "--server-trace",
        action="store_true",
        help="with --stages: also cut the server's stage per event inside daphne (Redis read, parse, hub, fan-out; "
        "see bench/servertrace.py); it adds a little CPU per event, so compare CPU only between runs with it",
    )
    p.add_argument("--profile", metavar="DIR", help="record py-spy flame graphs of daphne into DIR")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)

    cfg = Config.quick() if args.quick else Config()
    cfg.database_url = args.database_url
    cfg.redis_url = args.redis_url
    cfg.client_procs = args.client_procs
    cfg.profile_dir = args.profile
    cfg.layer = args.layer
    cfg.client_nice = args.client_nice
    cfg.listener_args = tuple(args.listener_args.split())
    cfg.server = args.server
    cfg.server_root = args.server_root
    cfg.processes = args.processes
    cfg.stages = args.stages or args.server_trace
    cfg.server_trace = args.server_trace
    if args.stalled:
        kind, readers, rate, seconds, size = args.stalled.split(",")
        cfg.stalled = (kind, int(readers), float(rate), float(seconds), int(size))
    if args.only:
        cfg.scenarios = tuple(s.strip() for s in args.only.split(","))
    if args.full_events:
        cfg.full_events = args.full_events
    if args.isolated:
        events, rate = args.isolated.split("x")
        cfg.isolated_events, cfg.isolated_rate = int(events), float(rate)
    if args.fanout:
        cfg.fanout = [(int(c), float(r), float(s)) for c, r, s in (f.split("x") for f in args.fanout)]
    if args.idle:
        cfg.idle = args.idle
    if args.burst:
        c, r, sec = args.burst.split("x")
        cfg.burst = (int(c), float(r), float(sec))
    if args.peer:
        cfg.peer = scenarios.Peer(args.peer, tuple(args.peer_pid))
        cfg.peer.target()  # a bad template fails here, before anything starts
    if args.writer_seconds:
        cfg.writer_seconds = args.writer_seconds
    if args.writer_rounds:
        cfg.writer_rounds = args.writer_rounds
    if args.quiet_poll:
        cfg.quiet_poll = args.quiet_poll
    cfg.compare_v2 = args.compare_v2
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)

    started = time.monotonic()
    print(f"# {machine()}", flush=True)
    rows = run(cfg)
    print(table(rows))
    print(
        f"\n# {len(rows)} rows in {time.monotonic() - started:.0f} s; command: python -m bench {' '.join(argv or sys.argv[1:])}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.as_dict() for r in rows], f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
