"""The benchmark at a tiny size: it runs end to end, nothing is lost or duplicated, and the
latency is cut at Redis when asked (``--stages``), and inside the server (``--server-trace``).

Timing figures are the benchmark's business (docs/benchmarks.md); this only checks that
the harness works and that every expected delivery was made exactly once.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from bench.__main__ import Config, run
from bench.servers import free_port


def test_benchmark_smoke_run_loses_and_duplicates_nothing(isolated_db: str) -> None:
    cfg = Config(
        database_url=isolated_db,
        scenarios=("full", "fanout", "idle"),
        full_events=100,
        fanout=[(4, 100, 1)],
        idle=20,
        client_procs=2,
        stages=True,
    )
    log = io.StringIO()
    rows = run(cfg, out=log)
    measured = [r for r in rows if r.expected]
    assert {r.system for r in measured} == {"pgevents", "floor: NOTIFY → psycopg LISTEN"}, log.getvalue()
    assert len(measured) == 4
    for row in measured:
        assert (row.lost, row.duplicates, row.received) == (0, 0, row.expected), row
        assert row.latency is not None
    idle = [r for r in rows if "idle" in r.scenario]
    assert idle and idle[0].server_rss_mb
    # --stages: every pgevents row is cut at Redis, from a tap that saw the published events
    for row in measured:
        if row.system == "pgevents":
            assert row.extra["stages"]["commit_to_published"] is not None, row.notes
            assert row.extra["stages"]["published_to_client"] is not None, row.notes
            assert "commit→published" in row.notes


def test_the_isolated_scenario_takes_its_size_from_the_command_line(isolated_db: str, tmp_path) -> None:
    """``--isolated 7x50``: seven commits at 50 a second, each delivered once (a tail is
    settled with a few hundred; the default, 50, makes the p99 one event)."""
    import json

    from bench.__main__ import main

    out = tmp_path / "rows.json"
    argv = ["--database-url", isolated_db, "--only", "isolated", "--isolated", "7x50", "--json", str(out)]
    assert main(argv) == 0
    (row,) = [r for r in json.loads(out.read_text()) if r["system"] == "pgevents"]
    assert (row["expected"], row["received"], row["lost"], row["duplicates"]) == (7, 7, 0, 0), row
    assert "50/s" in row["scenario"], row


def test_the_server_trace_cuts_the_servers_stage_for_every_event(isolated_db: str) -> None:
    """``--server-trace``: daphne started through ``bench/servertrace.py`` notes each event's
    Redis read, parse and fan-out; every part of the server's stage is reported, each one
    after the one before it for every event (what happens in one process, in order)."""
    cfg = Config(database_url=isolated_db, scenarios=("fanout",), fanout=[(4, 100, 1)], stages=True, server_trace=True)
    log = io.StringIO()
    rows = run(cfg, out=log)
    (row,) = [r for r in rows if r.system == "pgevents"]
    assert (row.lost, row.duplicates, row.received) == (0, 0, row.expected), row
    parts = row.extra["stages"]
    for key in ("read_to_parsed", "parsed_to_fan_out", "fan_out", "fan_out_to_client"):
        assert parts[key] is not None, (key, row.notes, log.getvalue())
        assert parts[key]["p50"] >= 0, (key, parts[key])
    assert "server p50/p99 ms: read→parsed" in row.notes


def test_benchmark_drives_a_peer_server_and_reports_bursts_by_window(isolated_db: str) -> None:
    """``--peer``: another WebSocket server (here a small stand-in for pg_eventserv fed by the
    bench's bare ``pg_notify(row_to_json(NEW))`` trigger) is measured in the same run, with
    its CPU per delivery; the burst scenario reports latency by window for every system."""
    from bench.database import PEER_CHANNEL
    from bench.scenarios import Peer
    from bench.writer import burst_offsets

    port = free_port()
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.peer_standin", isolated_db, str(port), PEER_CHANNEL],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert standin.stdout is not None and standin.stdout.readline().strip() == "ready"
        cfg = Config(
            database_url=isolated_db,
            scenarios=("fanout", "burst"),
            fanout=[(3, 100, 1)],
            burst=(3, 20, 4),
            client_procs=2,
            peer=Peer(f"ws://127.0.0.1:{port}/listen/{{channel}}", (standin.pid,)),
        )
        log = io.StringIO()
        rows = run(cfg, out=log)
    finally:
        standin.terminate()
        standin.communicate(timeout=10)
    systems = {r.system for r in rows}
    assert systems == {"pgevents", "floor: NOTIFY → psycopg LISTEN", f"peer: {cfg.peer.template}"}, log.getvalue()
    assert len(rows) == 6
    for row in rows:
        assert (row.lost, row.duplicates, row.received) == (0, 0, row.expected), row
    for row in rows:
        if row.system != "floor: NOTIFY → psycopg LISTEN":
            assert row.cpu_us_per_delivery is not None and row.cpu_us_per_delivery > 0, row
    bursts = [r for r in rows if r.scenario.startswith("burst") and r.system != "floor: NOTIFY → psycopg LISTEN"]
    assert len(bursts) == 2
    for row in bursts:
        starts = [w["start"] for w in row.extra["windows"]]
        assert starts[:4] == [0.0, 1.0, 2.0, 3.0] and starts == sorted(starts), row.notes  # by commit time
        assert row.expected == 3 * len(burst_offsets(20, 4, 3)), row


def test_the_writer_parts_scratch_logs_build_up_the_real_log_a_part_at_a_time(isolated_db: str) -> None:
    """Each step's trigger logs what the real one logs (the same row JSON), into a log with
    one part more than the previous step's; the listener's side counts every event once."""
    import psycopg

    from bench.scenarios import sequencer_parts
    from bench.writer import drop_parts, prepare_parts

    steps = prepare_parts(isolated_db)
    try:
        with psycopg.connect(isolated_db, autocommit=True) as conn:
            indexes = []
            for step in steps:
                conn.execute(f"INSERT INTO {step.table} (seqno, payload) VALUES (7, 'p')")
                if not step.log:
                    continue
                log = f"bench_parts.log_{step.table.partition('.')[2]}"
                assert conn.execute(f'SELECT "row", channel, op FROM {log}').fetchall() == [
                    ({"pk": 1, "seqno": 7, "payload": "p"}, "parts", "INSERT")
                ]
                indexes.append(
                    conn.execute(f"SELECT count(*) FROM pg_index WHERE indrelid = '{log}'::regclass").fetchone()
                )
    finally:
        drop_parts(isolated_db)
    assert indexes == [(0,), (0,), (1,), (2,), (3,), (4,), (3,), (3,)]  # the last two: migration 0008's set
    rows = sequencer_parts(isolated_db, events=50, singles=5)
    assert [row.notes.split("(")[-1] for row in rows] == ["50 events)", "5 events)", "55 events)"]


def test_the_listeners_stage_is_taken_apart_for_every_event(isolated_db: str) -> None:
    """``python -m bench.steps``: every event of an isolated run and of a flat-out run is
    accounted for in every step, from the commit to the end of its publish."""
    base, _, name = isolated_db.rpartition("/")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.steps",
            "--isolated",
            "3",
            "--stream",
            "40",
            "--database-url",
            f"{base}/{name}_steps",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "## isolated commits, 10/s: 3 events" in out and "## writer flat out: 40 events" in out, out
    for step in ("→ sequencer call", "sequencer call", "→ publish", "publish", "commit → published"):
        assert f"| {step} |" in out
    assert "| commit → published |" in out and out.count(" | 40 |") >= 5 and out.count(" | 3 |") >= 5, out


def test_the_sequencer_probe_times_every_kind_of_call_on_each_database(isolated_db: str) -> None:
    """``python -m bench.sequencer`` on the same database given twice: each call positions
    exactly what was inserted for it (it raises otherwise), and every figure is reported for
    both."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.sequencer", isolated_db, isolated_db, "--calls", "3", "--batches", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "ms |" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| one event, back to back",
        "| one event, 5 ms pause",
        "| one event, 20 ms pause",
        "| 500 events",
        "| a call that finds nothing",
    ]
    assert all(len(row.split(" | ")) == 3 for row in rows), rows


def test_the_floor_probe_delivers_every_event_exactly_once_in_every_pipeline(isolated_db: str, tmp_path: Path) -> None:
    """``python -m bench.floorprobe`` at a tiny size: in each pipeline (the bare NOTIFY, the
    minimal durable positioner in-process, through Redis, and with its commits not waiting
    for the flush), flat out and isolated, every committed event arrives exactly once, and
    the positioner gave each of them one id in its calls."""
    out = tmp_path / "floor.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "bench.floorprobe", "--database-url", isolated_db),
            *("--events", "60", "--isolated", "2", "--rounds", "2", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert len(results) == 8, results
    for r in results:
        expected = 2 * (60 if r["scenario"] == "writer flat out" else 2)
        assert (r["expected"], r["received"], r["lost"], r["duplicates"]) == (expected, expected, 0, 0), r
        if not r["pipeline"].startswith("floor"):
            assert r["calls"] >= 1 and round(r["events_per_call"] * r["calls"]) == expected, r


def test_the_trigger_probe_times_each_kind_of_statement_on_each_database(isolated_db: str) -> None:
    """``python -m bench.triggercost`` on the same database given twice: each block logs one
    event per statement through each watch (it raises otherwise), and every figure is
    reported for both."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.triggercost", isolated_db, isolated_db, "--statements", "5", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| one-row")]
    assert len(rows) == 8 and all(len(row.split(" | ")) == 3 for row in rows), result.stdout


def test_the_region_benchmark_cuts_each_change_into_stages(isolated_db: str) -> None:
    """``bench.regions --stages`` at a tiny size: every subscriber gets every change (with the
    row's HTML when subscribed to the region), one render per change, and each change is cut
    at the stages the server's probe (``bench.trace``) and the Redis tap noted."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.regions", "--clients", "4", "--seconds", "2"),
            *("--compare", "--stages", "--workers", "1", "--database-url", isolated_db),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    shared, plain = out.split("round 1 (shared)")[1].split("round 1 (plain)")
    assert "frames received: 8 of 8; with the row's HTML: 8" in shared, out
    assert "renders per change: 1.00" in shared and "HTTP requests to Django: 0" in shared, out
    for stage in ("published in Redis", "received by the hub", "rendered", "frames composed", "last socket written"):
        assert stage in shared, out
    assert "frames received: 8 of 8; with the row's HTML: 0" in plain, out
    assert "first socket written" in plain and "rendered" not in plain, out


def test_the_non_durable_and_empty_look_scenarios_run(isolated_db: str) -> None:
    """``--only transient``: non-durable events isolated and at full speed, each delivered
    once without an id; ``--only empty-look``: both statements timed."""
    cfg = Config(
        database_url=isolated_db,
        scenarios=("transient", "empty-look"),
        full_events=200,
        isolated_events=3,
        isolated_rate=20,
        client_procs=1,
    )
    log = io.StringIO()
    rows = run(cfg, out=log)
    measured = [r for r in rows if r.expected]
    assert [r.scenario for r in measured] == [
        "non-durable: isolated commits (20/s)",
        "non-durable: 1 client, writer at full speed",
    ], log.getvalue()
    for row in measured:
        assert (row.lost, row.duplicates, row.received) == (0, 0, row.expected), row
    looks = [r for r in rows if r.scenario == "a look at an empty log, per round trip"]
    assert len(looks) == 2 and all(len(r.extra["us"]) == 3 for r in looks), looks


def test_the_writer_cost_says_where_the_cpu_went(isolated_db: str) -> None:
    """``--only writers``: every insert is delivered once, and each run's CPU is accounted per
    group of processes (``bench.cpu``): every group present, none negative, and the groups
    together no more than the machine had."""
    from bench import cpu

    cfg = Config(database_url=isolated_db, scenarios=("writers",), writers=(2,), writer_seconds=3, writer_rounds=1)
    log = io.StringIO()
    rows = run(cfg, out=log)
    assert len(rows) == 5, log.getvalue()
    for row in rows:
        if row.expected:
            assert (row.lost, row.duplicates, row.received) == (0, 0, row.expected), row
        spent = row.extra["cpu"]
        assert spent is not None and spent["runs"] == 1, row.notes
        assert set(spent["groups"]) == set(cpu.GROUPS), spent
        for group, figures in spent["groups"].items():
            assert figures["pct"] >= 0 and figures["us_per_commit"] >= 0, (group, spent)
        assert sum(f["pct"] for f in spent["groups"].values()) <= 100 * spent["cores"], spent
        assert spent["pipeline"]["pct"] >= 0 and spent["pipeline"]["us_per_commit"] >= 0, spent
        assert 0 <= spent["idle_pct"] <= 100, spent
        assert spent["groups"][cpu.WRITERS]["pct"] > 0 and spent["groups"][cpu.PGBENCH]["pct"] > 0, spent
        assert "µs per commit: writers' backends" in row.notes and "machine idle" in row.notes, row.notes
