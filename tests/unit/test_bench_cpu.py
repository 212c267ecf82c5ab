"""The writer-cost benchmark's CPU accounting (``bench.cpu``): which process lands in which
group, and the arithmetic between two snapshots, on made-up /proc readings."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bench import cpu
from bench.cpu import HZ, Backend, Machine, Proc, Snapshot, take, usage

POSTMASTER, WALWRITER, WRITER1, WRITER2, LISTENER_BE, HANDOVER_BE, SAMPLER_BE = 100, 101, 110, 111, 120, 121, 130
FOREIGN_BE, FOREIGN_LISTENER_BE, UNLISTED_OLD, UNLISTED_NEW = 140, 141, 150, 151
RUNLISTEN, DAPHNE, DAPHNE_CHILD, WORKER, REDIS, BENCH, PGBENCH = 200, 210, 211, 220, 230, 240, 250


@dataclass
class FakeProc:
    """/proc as a dict: pid → reading, pid → children, and the machine's counters."""

    procs: dict[int, Proc]
    kids: dict[int, list[int]] = field(default_factory=dict)
    busy: int = 0
    idle: int = 0
    uptime: int = 1000 * HZ

    def machine(self) -> Machine:
        return Machine(self.busy, self.idle, 2, self.uptime)

    def proc(self, pid: int) -> Proc | None:
        return self.procs.get(pid)

    def children(self, pid: int) -> list[int]:
        return self.kids.get(pid, [])


def _backends(listener_pid: int) -> list[Backend]:
    return [
        Backend(WALWRITER, "", "walwriter", False),
        Backend(WRITER1, "pgbench", "client backend", True),
        Backend(WRITER2, "pgbench", "client backend", True),
        Backend(LISTENER_BE, f"pgevents-listener host:{listener_pid}", "client backend", True),
        Backend(HANDOVER_BE, f"pgevents-handover host:{listener_pid}", "client backend", True),
        Backend(SAMPLER_BE, "", "client backend", True),
        Backend(FOREIGN_BE, "pgbench", "client backend", False),  # someone else's database
        # a listener of another process on our database: not the one under test
        Backend(FOREIGN_LISTENER_BE, f"pgevents-listener host:{listener_pid + 1}", "client backend", True),
    ]


ROOTS = {
    cpu.RUNLISTEN: [RUNLISTEN],
    cpu.SERVER: [DAPHNE],
    cpu.CLIENTS: [WORKER],
    cpu.REDIS: [REDIS],
    cpu.BENCH: [BENCH],
    cpu.PGBENCH: [PGBENCH],
}


def _fake(ticks: int, busy: int, idle: int, uptime: int) -> FakeProc:
    """Every process has used ``ticks`` (times its pid's last digit + 1, to tell them apart)."""
    pids = [POSTMASTER, WALWRITER, WRITER1, WRITER2, LISTENER_BE, HANDOVER_BE, SAMPLER_BE, FOREIGN_BE]
    pids += [FOREIGN_LISTENER_BE, UNLISTED_OLD, RUNLISTEN, DAPHNE, DAPHNE_CHILD, WORKER, REDIS, BENCH, PGBENCH]
    procs = {pid: Proc(pid, POSTMASTER if 100 < pid < 200 else 1, ticks * (pid % 10 + 1), 10 * HZ) for pid in pids}
    kids = {
        POSTMASTER: [p for p in pids if 100 < p < 200],
        DAPHNE: [DAPHNE_CHILD],
        BENCH: [RUNLISTEN, DAPHNE, WORKER, PGBENCH],  # the benchmark's own children stay in their groups
    }
    return FakeProc(procs, kids, busy, idle, uptime)


def test_each_process_lands_in_its_group() -> None:
    snap = take(_fake(1, 0, 0, 1000 * HZ), _backends(RUNLISTEN), ROOTS, commits=0, listener_pid=RUNLISTEN)
    groups = {pid: group for pid, (group, _) in snap.procs.items()}
    assert groups == {
        POSTMASTER: cpu.PG_BACKGROUND,
        WALWRITER: cpu.PG_BACKGROUND,
        UNLISTED_OLD: cpu.PG_BACKGROUND,  # a child pg_stat_activity does not list, old enough
        WRITER1: cpu.WRITERS,
        WRITER2: cpu.WRITERS,
        LISTENER_BE: cpu.LISTENER_BACKENDS,
        HANDOVER_BE: cpu.LISTENER_BACKENDS,
        SAMPLER_BE: cpu.OTHER_BACKENDS,
        FOREIGN_LISTENER_BE: cpu.OTHER_BACKENDS,
        RUNLISTEN: cpu.RUNLISTEN,
        DAPHNE: cpu.SERVER,
        DAPHNE_CHILD: cpu.SERVER,
        WORKER: cpu.CLIENTS,
        REDIS: cpu.REDIS,
        BENCH: cpu.BENCH,
        PGBENCH: cpu.PGBENCH,
    }
    assert FOREIGN_BE not in groups  # another database's session: "everything else"


def test_the_difference_per_group_and_the_rest_of_the_machine() -> None:
    start_src = _fake(10, busy=1000, idle=5000, uptime=1000 * HZ)
    end_src = _fake(30, busy=1000 + 10 * HZ, idle=5000 + HZ // 2, uptime=1001 * HZ)
    # a backend that started inside the window counts whole; one that ended inside is lost
    end_src.procs[UNLISTED_NEW] = Proc(UNLISTED_NEW, POSTMASTER, 7, 1000 * HZ + 1)
    backends = _backends(RUNLISTEN)
    start = take(start_src, backends, ROOTS, commits=500, listener_pid=RUNLISTEN)
    end = take(
        end_src,
        [*backends, Backend(UNLISTED_NEW, "", "autovacuum worker", True)],
        ROOTS,
        commits=1500,
        listener_pid=RUNLISTEN,
    )
    start.at, end.at = 0.0, 1.25
    used = usage(start, end)
    # each process used 20 * (last digit + 1) ticks in between
    assert used.ticks[cpu.WRITERS] == 20 * 1 + 20 * 2
    assert used.ticks[cpu.LISTENER_BACKENDS] == 20 * 1 + 20 * 2
    assert used.ticks[cpu.PG_BACKGROUND] == 20 * 1 + 20 * 2 + 20 * 1 + 7  # postmaster, walwriter, unlisted, new
    assert used.ticks[cpu.SERVER] == 20 * 1 + 20 * 2
    named = sum(v for g, v in used.ticks.items() if g != cpu.ELSE)
    assert named < 10 * HZ and used.ticks[cpu.ELSE] == 10 * HZ - named
    assert used.commits == 1000 and used.busy == 10 * HZ and used.cores == 2
    assert used.pct(cpu.WRITERS) == pytest.approx(100 * 60 / HZ / 1.25)
    assert used.us_per_commit(cpu.WRITERS) == pytest.approx(1e6 * 60 / HZ / 1000)
    assert used.idle_share == pytest.approx((HZ / 2) / (10 * HZ + HZ / 2))


def test_a_reused_pid_counts_from_its_new_start_and_the_rest_is_never_negative() -> None:
    procs = {RUNLISTEN: Proc(RUNLISTEN, 1, 500, 10 * HZ)}
    before = Snapshot(0.0, Machine(100, 0, 2, 1000 * HZ), {RUNLISTEN: (cpu.RUNLISTEN, procs[RUNLISTEN])}, 0)
    reused = Proc(RUNLISTEN, 1, 40, 1000 * HZ + 5)
    after = Snapshot(1.0, Machine(120, 0, 2, 1001 * HZ), {RUNLISTEN: (cpu.RUNLISTEN, reused)}, 0)
    used = usage(before, after)
    assert used.ticks[cpu.RUNLISTEN] == 40
    assert used.ticks[cpu.ELSE] == 0  # the groups' ticks can exceed /proc/stat's by rounding
    assert used.us_per_commit(cpu.RUNLISTEN) is None  # nothing committed: no per-commit figure


def test_the_summary_is_the_median_of_the_runs_and_names_every_group() -> None:
    def run(writers: int, commits: int) -> cpu.Usage:
        ticks = dict.fromkeys(cpu.GROUPS, 0)
        ticks[cpu.WRITERS] = writers
        return cpu.Usage(seconds=1.0, commits=commits, cores=2, ticks=ticks, busy=writers, idle=HZ)

    s = cpu.summary([run(HZ, 1000), run(2 * HZ, 1000), run(4 * HZ, 1000)])
    assert s["groups"][cpu.WRITERS] == {"pct": 200.0, "us_per_commit": 2000.0}
    assert set(s["groups"]) == set(cpu.GROUPS) and s["runs"] == 3 and s["cores"] == 2
    assert cpu.notes(s).startswith("CPU % of a core/µs per commit: writers' backends 200/2000, pgbench 0/0")
    assert s["pipeline"] == {"pct": 0.0, "us_per_commit": 0.0}


def test_the_pipeline_is_the_listener_its_backends_the_server_the_clients_and_redis() -> None:
    ticks = dict.fromkeys(cpu.GROUPS, HZ)  # one second of CPU each
    s = cpu.summary([cpu.Usage(seconds=2.0, commits=100, cores=2, ticks=ticks, busy=11 * HZ, idle=0)])
    assert s["pipeline"]["pct"] == pytest.approx(5 * 50.0)
    assert s["pipeline"]["us_per_commit"] == pytest.approx(5 * 1e6 / 100)
    assert "pipeline (runlisten, listener's backends, server, clients, Redis) 250/50000" in cpu.notes(s)
