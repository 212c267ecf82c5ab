"""The run's findings: a JSON-able dict (kept beside the logs) and the text printed at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import verdict
from .plan import CLIENT_KINDS, FAULT_KINDS
from .run import Outcome

COLUMNS = ("streams", "expected", "received", "lost", "duplicated", "out_of_order", "corrupt")


def build(o: Outcome) -> dict[str, Any]:
    """Everything the report says, in plain data."""
    w = o.writer
    time_of = {**w.unknown_at, **w.committed_at}
    tallies = {kind: verdict.Tally() for kind in CLIENT_KINDS}
    views: list[verdict.ClientView] = []
    resumes: dict[str, list[float]] = {kind: [] for kind in CLIENT_KINDS}
    delays: dict[str, list[float]] = {kind: [] for kind in CLIENT_KINDS}
    problems: Counter[str] = Counter()
    notes: dict[str, list[str]] = {}
    streams: list[dict[str, Any]] = []
    for c in o.clients:
        timed = []
        for s in c.streams.values():
            changes = {x for x in o.truth if x[0] == s.channel}
            owed = verdict.owed_to(s.start_at, changes, w.sent_at)
            tally = verdict.judge(s.got, owed, {(k, r) for _, k, r in changes} - owed)
            tallies[c.kind] += tally
            joined = None if s.start_at is None else round(s.start_at - o.started, 2)
            streams.append({"client": c.name, "channel": s.channel, "joined": joined, **vars(tally)})
            timed.append(verdict.Timed(s.got, verdict.in_commit_order(s.channel, owed, time_of)))
            if s.start_at is None:
                problems["never subscribed"] += 1
        view = verdict.ClientView(c.kind, timed, c.away)
        views.append(view)
        resumes[c.kind] += verdict.resumes(view)
        delays[c.kind] += view.delays()
        problems.update(c.problems)
        if c.notes:
            notes[c.name] = c.notes
    overall = verdict.Tally()
    for t in tallies.values():
        overall += t
    timeline: list[dict[str, Any]] = []
    ends = [*(item.began for item in o.timeline[1:]), verdict.INF][: len(o.timeline)]
    for item, until in zip(o.timeline, ends, strict=True):
        closed = verdict.closing(views, item.began, until)
        timeline.append(
            {
                "at": round(item.began - o.started, 2),
                "kind": item.fault.kind,
                "took": round(item.over - item.began, 2),
                "closed": _round(closed.overall),
                "closed_by_kind": {k: _round(v) for k, v in closed.by_kind.items()},
                "worst_delay": _round(closed.worst_delay),
                "detail": item.detail,
            }
        )
    kinds: dict[str, Any] = {}
    for kind in CLIENT_KINDS:
        gaps = [f["closed_by_kind"].get(kind) for f in timeline]
        clients = [c for c in o.clients if c.kind == kind]
        kinds[kind] = {
            **{col: getattr(tallies[kind], col) for col in COLUMNS},
            "gap_closed": _summary([g for g in gaps if g is not None]),
            "resume_caught_up": _summary(resumes[kind]),
            "delay": _summary(delays[kind]),
            "drops": sum(len(c.away) for c in clients),
            "involuntary": sum(len(c.involuntary) for c in clients),
        }
    closed_all = [f["closed"] for f in timeline if f["closed"] is not None]
    return {
        "config": {k: v for k, v in vars(o.cfg).items()},
        "load": o.load,
        "writer": {
            "transactions": dict(w.transactions),
            "failed": dict(w.failures),
            "changes": len(o.truth),
        },
        "kinds": kinds,
        "overall": {
            **{col: getattr(overall, col) for col in COLUMNS},
            "gap_closed": _summary(closed_all),
            "resume_caught_up": _summary([r for v in resumes.values() for r in v]),
            "delay": _summary([d for v in delays.values() for d in v]),
            "drops": sum(k["drops"] for k in kinds.values()),
            "involuntary": sum(k["involuntary"] for k in kinds.values()),
        },
        "faults": timeline,
        "streams": streams,
        "fault_counts": dict(Counter(f["kind"] for f in timeline)),
        "problems": dict(problems),
        "notes": notes,
        "converged": o.converged,
        "settle_seconds": round(o.settle_seconds, 2),
        "passed": overall.clean and not problems and o.converged,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else (value if value == verdict.INF else round(value, 3))


def _summary(values: list[float]) -> dict[str, float] | None:
    s = verdict.summary(values)
    return None if s is None else {k: _round(v) for k, v in s.items()}  # type: ignore[misc]


def _secs(s: dict[str, float] | None, *keys: str) -> str:
    if s is None:
        return "-"
    return " / ".join(_short(s[k]) for k in keys)


def _secs_or_never(value: float) -> str:
    return "never" if value == verdict.INF else f"{value:.2f} s"


def _short(value: float | None) -> str:
    return "-" if value is None else "never" if value == verdict.INF else f"{value:.2f}"


def render(r: dict[str, Any]) -> str:
    cfg, w, o = r["config"], r["writer"], r["overall"]
    rows = [*r["kinds"].items(), ("overall", o)]
    lines = [
        f"chaos run: seed {cfg['seed']}, {cfg['duration']:g} s of writing, layer {cfg['layer']}, "
        f"{cfg['clients']} clients of each kind, a fault every ~{cfg['fault_every']:g} s, "
        f"client drops every ~{cfg['drop_every']:g} s",
        "load average (1, 5, 15 min): "
        + "; ".join(f"{k} {' '.join(f'{x:.2f}' for x in v)}" for k, v in r["load"].items()),
        f"writer: {sum(w['transactions'].values()):,} transactions committed "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(w['transactions'].items()))}); "
        f"{sum(w['failed'].values())} failed (whether each committed, the tables say); "
        f"{w['changes']:,} changes in the tables",
        "",
        f"{'clients':<10} {'streams':>7} {'expected':>10} {'received':>10} {'lost':>6} {'dup':>6} {'order':>6} {'bad':>6}",
    ]
    for name, k in rows:
        lines.append(
            f"{name:<10} {k['streams']:>7} {k['expected']:>10,} {k['received']:>10,} {k['lost']:>6} "
            f"{k['duplicated']:>6} {k['out_of_order']:>6} {k['corrupt']:>6}"
        )
    lines += [
        "",
        f"{'seconds':<10} {'drops':>6} {'forced':>6}  {'delay p50 / p99 / max':>22}  {'gap closed med / max':>20}  "
        f"{'resume p50 / p95 / max':>22}",
    ]
    for name, k in rows:
        lines.append(
            f"{name:<10} {k['drops']:>6} {k['involuntary']:>6}  {_secs(k['delay'], 'median', 'p99', 'max'):>22}  "
            f"{_secs(k['gap_closed'], 'median', 'max'):>20}  {_secs(k['resume_caught_up'], 'median', 'p95', 'max'):>22}"
        )
    lines += [
        "",
        "dup: duplicated; order: out of order; bad: a corrupt row or a change the tables do not hold.",
        "drops: deliberate disconnects; forced: connections that ended any other way. delay: from commit",
        f"to arrival. gap closed: from a fault until the last change delayed over {verdict.LATE:g} s arrived at",
        f"the slowest client. worst delay: of a change committed in the fault's window ({verdict.LATE:g} s before it",
        f"to {verdict.LATE:g} s before the next). resume: from a deliberate reconnect until the client held every",
        "change committed before it.",
        "",
        f"{'t (s)':>7}  {'fault':<22} {'took':>6}  {'worst delay':>11}  {'gap closed':>10}  "
        f"{'ws-single ws-multi sse':<24}  detail",
    ]
    for f in r["faults"]:
        by_kind = " ".join(f"{_short(f['closed_by_kind'].get(k)):>7}" for k in CLIENT_KINDS)
        lines.append(
            f"{f['at']:>7.1f}  {f['kind']:<22} {f['took']:>5.1f}s  {_secs_or_never(f['worst_delay']):>11}  "
            f"{_secs_or_never(f['closed']):>10}  "
            f"{by_kind:<24}  {f['detail']}"
        )
    counts = r["fault_counts"]
    lines.append("faults: " + ", ".join(f"{k} x{counts[k]}" for k in FAULT_KINDS if k in counts))
    if r["problems"]:
        lines.append(f"protocol problems: {r['problems']}")
    if not r["converged"]:
        lines.append(f"NOT CONVERGED: clients still missed changes {r['settle_seconds']} s after the writer stopped")
    lines.append(
        f"{'PASS' if r['passed'] else 'FAIL'}: {o['received']:,} deliveries of {o['expected']:,} expected, "
        f"{o['lost']} lost, {o['duplicated']} duplicated, {o['out_of_order']} out of order, {o['corrupt']} corrupt"
    )
    return "\n".join(lines)
