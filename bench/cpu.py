"""Where the machine's CPU goes during a run: CPU time per group of processes, from /proc.

Two snapshots bound a window: each reads the machine's CPU counters (``/proc/stat``) and
``utime + stime`` of every process it can name (``/proc/<pid>/stat``, clock ticks; a
process's line covers all its threads, so pgbench's threads are in it). Nothing is sampled in
between, so the accounting costs the machine two reads of a few dozen small files and one
query per snapshot.

A process's CPU can only be read while it lives, and the writers' backends live only as long
as the pgbench run. So the window lies inside the run: it opens once pgbench's connections are
up (the query that names the backends finds all of them) and closes shortly before pgbench
stops. That is also the steady state pgbench's TPS describes (it leaves the connection time
out), and the commits counted between the snapshots (the table's ``pk`` sequence) divide the
CPU into µs per transaction.

Groups (:data:`GROUPS`) are named by pid: PostgreSQL backends through ``pg_stat_activity``
(the benchmark database's client backends by ``application_name``; every process that is not a
client backend is background, as is the postmaster itself), the rest through the pids the
benchmark started, with their descendants. Whatever the machine did besides — other work on a
shared machine, processes that started and ended inside the window (autovacuum workers, other
databases' sessions) — is "everything else": the machine's busy time minus the groups.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pgevents.capture.listener import HANDOVER_SESSION
from pgevents.core.identity import parse_application_name
from pgevents.core.names import is_listener_session

HZ = os.sysconf("SC_CLK_TCK")

WRITERS = "writers' backends"
PGBENCH = "pgbench"
LISTENER_BACKENDS = "listener's backends"
PG_BACKGROUND = "PostgreSQL background"
OTHER_BACKENDS = "other backends"
RUNLISTEN = "runlisten"
SERVER = "server"
CLIENTS = "clients"
REDIS = "Redis"
BENCH = "benchmark"
ELSE = "everything else"
#: In the order reports list them; the last is the machine's busy time minus all the others.
GROUPS = (
    WRITERS,
    PGBENCH,
    LISTENER_BACKENDS,
    PG_BACKGROUND,
    OTHER_BACKENDS,
    RUNLISTEN,
    SERVER,
    CLIENTS,
    REDIS,
    BENCH,
    ELSE,
)
#: What a delivered event costs outside the writer: the listener, its backends, the server,
#: the client and Redis.
PIPELINE = (RUNLISTEN, LISTENER_BACKENDS, SERVER, CLIENTS, REDIS)

#: ``application_name`` pgbench gives its connections.
PGBENCH_APP = "pgbench"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    #: utime + stime, clock ticks, all threads.
    ticks: int
    #: When it started, clock ticks after boot.
    start: int


@dataclass(frozen=True)
class Machine:
    """``/proc/stat``'s ``cpu`` line: clock ticks summed over all cores."""

    busy: int
    idle: int
    cores: int
    #: Clock ticks since boot (``/proc/uptime``): when a snapshot was taken, in ``Proc.start``'s unit.
    uptime: int


@dataclass(frozen=True)
class Backend:
    """One row of ``pg_stat_activity``."""

    pid: int
    application_name: str
    backend_type: str
    #: Connected to the benchmark's database.
    ours: bool


class Source(Protocol):
    """What a snapshot reads: /proc (:class:`ProcFS`), or a fake one in the unit tests."""

    def machine(self) -> Machine: ...
    def proc(self, pid: int) -> Proc | None: ...
    def children(self, pid: int) -> list[int]: ...


class ProcFS:
    def __init__(self, root: str = "/proc") -> None:
        self.root = Path(root)

    def machine(self) -> Machine:
        lines = (self.root / "stat").read_text().splitlines()
        # user nice system idle iowait irq softirq steal (guest time is inside user already)
        values = [int(v) for v in lines[0].split()[1:9]]
        cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        uptime = float((self.root / "uptime").read_text().split()[0])
        return Machine(
            busy=sum(values) - values[3] - values[4], idle=values[3] + values[4], cores=cores, uptime=int(uptime * HZ)
        )

    def proc(self, pid: int) -> Proc | None:
        try:
            text = (self.root / str(pid) / "stat").read_text()
        except OSError:
            return None
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
        return Proc(pid, int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19]))

    def children(self, pid: int) -> list[int]:
        out: list[int] = []
        with contextlib.suppress(OSError):
            for task in (self.root / str(pid) / "task").iterdir():
                with contextlib.suppress(OSError):
                    out += [int(c) for c in (task / "children").read_text().split()]
        return out


@dataclass
class Snapshot:
    at: float
    machine: Machine
    #: pid → (group, its reading)
    procs: dict[int, tuple[str, Proc]]
    commits: int


def classify(backends: Iterable[Backend], listener_pid: int | None) -> dict[int, str]:
    """The group of each PostgreSQL process ``pg_stat_activity`` lists. Client backends of
    other databases belong to no group (they are someone else's work)."""
    out: dict[int, str] = {}
    for b in backends:
        if b.backend_type != "client backend":
            out[b.pid] = PG_BACKGROUND
        elif not b.ours:
            continue
        elif b.application_name == PGBENCH_APP:
            out[b.pid] = WRITERS
        elif _listeners(b.application_name, listener_pid):
            out[b.pid] = LISTENER_BACKENDS
        else:
            out[b.pid] = OTHER_BACKENDS
    return out


def _listeners(application_name: str, listener_pid: int | None) -> bool:
    role, _, pid = parse_application_name(application_name)
    if not (is_listener_session(application_name) or role == HANDOVER_SESSION):
        return False
    return listener_pid is None or pid is None or pid == listener_pid


def take(
    source: Source,
    backends: Sequence[Backend],
    roots: Mapping[str, Sequence[int]],
    commits: int,
    listener_pid: int | None = None,
) -> Snapshot:
    """Read every named process: the PostgreSQL ones (``backends``, the postmaster and its
    other children), then each group's ``roots`` with their descendants (a pid a group names
    itself is never taken into another group's tree)."""
    machine = source.machine()
    named = classify(backends, listener_pid)
    listed = {b.pid for b in backends}
    procs: dict[int, tuple[str, Proc]] = {}
    postmaster: int | None = None
    for pid, group in named.items():
        proc = source.proc(pid)
        if proc is not None:
            procs[pid] = (group, proc)
            postmaster = proc.ppid
    if postmaster is not None:
        for pid in [postmaster, *source.children(postmaster)]:
            if pid not in procs and pid not in listed:
                proc = source.proc(pid)
                # a child pg_stat_activity does not list: a background process (or a session
                # too young to be listed, as likely someone else's as ours)
                if proc is not None and (pid == postmaster or proc.start < machine.uptime - HZ):
                    procs[pid] = (PG_BACKGROUND, proc)
    claimed = {pid for pids in roots.values() for pid in pids} | set(procs)
    for group, pids in roots.items():
        todo = list(pids)
        while todo:
            pid = todo.pop()
            proc = source.proc(pid)
            if proc is None:
                continue
            procs[pid] = (group, proc)
            todo += [c for c in source.children(pid) if c not in claimed]
            claimed.update(todo)
    return Snapshot(time.monotonic(), machine, procs, commits)


@dataclass
class Usage:
    """CPU per group over one window, in clock ticks."""

    seconds: float
    commits: int
    cores: int
    ticks: dict[str, int]
    busy: int
    idle: int

    def pct(self, group: str) -> float:
        """Percent of one core."""
        return 100 * self.ticks[group] / HZ / self.seconds if self.seconds > 0 else 0.0

    def us_per_commit(self, group: str) -> float | None:
        return 1e6 * self.ticks[group] / HZ / self.commits if self.commits > 0 else None

    @property
    def idle_share(self) -> float:
        """Of the whole machine (all cores), 0 to 1."""
        return self.idle / (self.busy + self.idle) if self.busy + self.idle else 0.0


def usage(start: Snapshot, end: Snapshot) -> Usage:
    """What each group used between two snapshots. A process in both counts its difference;
    one that started after ``start`` was taken counts whole; one that ended in between is lost
    to "everything else" (as is one that started and ended in between). A pid reused in
    between is told apart by its start time."""
    ticks = dict.fromkeys(GROUPS, 0)
    for pid, (group, proc) in end.procs.items():
        before = start.procs.get(pid)
        if before is not None and before[1].start == proc.start:
            ticks[group] += max(0, proc.ticks - before[1].ticks)
        elif proc.start >= start.machine.uptime:
            ticks[group] += proc.ticks
    busy = end.machine.busy - start.machine.busy
    ticks[ELSE] = max(0, busy - sum(ticks.values()))
    return Usage(
        seconds=end.at - start.at,
        commits=end.commits - start.commits,
        cores=end.machine.cores,
        ticks=ticks,
        busy=busy,
        idle=end.machine.idle - start.machine.idle,
    )


def summary(runs: Sequence[Usage]) -> dict[str, Any]:
    """Medians over ``runs`` (one window each): per group % of one core and µs per commit,
    the machine's busy time (% of one core) and idle share (% of the machine)."""

    def median(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return {
        "groups": {
            g: {"pct": median(u.pct(g) for u in runs), "us_per_commit": median(u.us_per_commit(g) for u in runs)}
            for g in GROUPS
        },
        "pipeline": {
            "pct": median(sum(u.pct(g) for g in PIPELINE) for u in runs),
            "us_per_commit": median(_sum(u.us_per_commit(g) for g in PIPELINE) for u in runs),
        },
        "machine_busy_pct": median(100 * u.busy / HZ / u.seconds for u in runs if u.seconds > 0),
        "idle_pct": median(100 * u.idle_share for u in runs),
        "cores": runs[0].cores if runs else None,
        "window_s": median(u.seconds for u in runs),
        "runs": len(runs),
    }


def _sum(values: Iterable[float | None]) -> float | None:
    present = list(values)
    return None if None in present else sum(v for v in present if v is not None)


def notes(s: dict[str, Any]) -> str:
    """``CPU % of a core / µs per commit: writers' backends 126/141, …; machine idle 3 %``."""
    parts = []
    for g in GROUPS:
        v = s["groups"][g]
        if v["pct"] is None:
            continue
        us = "-" if v["us_per_commit"] is None else f"{v['us_per_commit']:.0f}"
        parts.append(f"{g} {v['pct']:.0f}/{us}")
    pipeline = s["pipeline"]
    per_event = "" if pipeline["us_per_commit"] is None else f"/{pipeline['us_per_commit']:.0f}"
    return (
        f"CPU % of a core/µs per commit: {', '.join(parts)}; pipeline ({', '.join(PIPELINE)})"
        f" {pipeline['pct']:.0f}{per_event}; machine idle {s['idle_pct']:.0f} %"
    )


@dataclass
class Window:
    """Opens and closes the window of one pgbench run (see the module's docstring).

    ``query(sql)`` runs a statement on a connection opened before the run; ``roots``: the
    groups' pids (pgbench's own is added by :meth:`during`)."""

    query: Callable[[str], list[tuple[Any, ...]]]
    commits_sql: str
    roots: dict[str, list[int]]
    listener_pid: int | None = None
    source: Source = field(default_factory=ProcFS)

    def _backends(self) -> list[Backend]:
        rows = self.query(
            "SELECT pid, coalesce(application_name, ''), coalesce(backend_type, ''),"
            " coalesce(datname = current_database(), false) FROM pg_stat_activity"
        )
        return [Backend(*r) for r in rows]

    def _snapshot(self) -> Snapshot:
        backends = self._backends()
        commits = int(self.query(self.commits_sql)[0][0])
        return take(self.source, backends, self.roots, commits, self.listener_pid)

    def during(self, pgbench_pid: int, writers: int, seconds: float, started: float) -> Usage | None:
        """Open the window once ``writers`` pgbench backends are connected, close it a little
        before the run (``seconds`` from ``started``, monotonic) ends. None when the run is
        too short to leave a window of its own."""
        self.roots = {**self.roots, PGBENCH: [pgbench_pid]}
        end = started + seconds - min(0.3, seconds / 10)
        while time.monotonic() < end:
            if sum(b.application_name == PGBENCH_APP and b.ours for b in self._backends()) >= writers:
                break
            time.sleep(0.02)
        time.sleep(min(0.1, seconds / 20))  # past the connections' first statements
        if end - time.monotonic() < min(0.5, seconds / 4):
            return None
        first = self._snapshot()
        time.sleep(max(0.0, end - time.monotonic()))
        return usage(first, self._snapshot())
