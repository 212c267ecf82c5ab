"""Results: latency percentiles from (seqno, receipt) pairs, and the table printed at the end."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Latency:
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, acks: Sequence[float], seqnos: Iterable[int], times: Iterable[float]) -> Latency | None:
        samples = sorted(t - acks[s] for s, t in zip(seqnos, times, strict=True) if 0 <= s < len(acks))
        if not samples:
            return None

        def pct(p: float) -> float:
            return 1000 * samples[min(len(samples) - 1, int(p * len(samples)))]

        return cls(pct(0.50), pct(0.90), pct(0.99), 1000 * samples[-1])

    def __str__(self) -> str:
        return f"{_ms(self.p50)} / {_ms(self.p90)} / {_ms(self.p99)} / {_ms(self.max)}"


@dataclass
class Window:
    """Latency of the events committed in one time window (``start`` s after the first commit)."""

    start: float
    events: int
    latency: Latency


def windows(acks: Sequence[float], seqnos: Iterable[int], times: Iterable[float], width: float) -> list[Window]:
    """Latency by commit-time window of ``width`` seconds: how a backlog builds up and drains."""
    if not acks:
        return []
    by: dict[int, tuple[list[int], list[float]]] = {}
    for s, t in zip(seqnos, times, strict=True):
        if 0 <= s < len(acks):
            entry = by.setdefault(int((acks[s] - acks[0]) / width), ([], []))
            entry[0].append(s)
            entry[1].append(t)
    out = []
    for k in sorted(by):
        s_, t_ = by[k]
        latency = Latency.of(acks, s_, t_)
        if latency is not None:
            out.append(Window(k * width, len({*s_}), latency))
    return out


def window_summary(series: Sequence[Window]) -> str:
    """``t=0s 2.1/8.0`` … : p50/p99 ms per window, for the notes column."""
    return "; ".join(f"t={w.start:.0f}s {_ms(w.latency.p50)}/{_ms(w.latency.p99)}" for w in series)


def _ms(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def unpack(seqnos: bytes, times: bytes) -> tuple[array[int], array[float]]:
    s, t = array("q"), array("d")
    s.frombytes(seqnos)
    t.frombytes(times)
    return s, t


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    system: str
    expected: int = 0
    received: int = 0
    duplicates: int = 0
    events_per_s: float = 0.0
    deliveries_per_s: float = 0.0
    latency: Latency | None = None
    server_cpu_pct: float | None = None
    server_rss_mb: float | None = None
    client_cpu_pct: float | None = None
    #: CPU time of the server's processes (daphne and runlisten, or a peer's given pids) per
    #: delivered message, in µs: what one delivery costs, whatever the machine's load.
    cpu_us_per_delivery: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return max(0, self.expected - (self.received - self.duplicates))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lost"] = self.lost
        return d


HEADER = (
    "scenario",
    "system",
    "expected",
    "received",
    "lost",
    "dup",
    "events/s",
    "deliveries/s",
    "latency ms p50/p90/p99/max",
    "server CPU %",
    "server CPU µs/delivery",
    "server RSS MB",
    "client CPU %",
    "notes",
)


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (pastes straight into docs/benchmarks.md)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = [
            r.scenario,
            r.system,
            f"{r.expected:,}" if r.expected else "",
            f"{r.received:,}" if r.expected else "",
            str(r.lost) if r.expected else "",
            str(r.duplicates) if r.expected else "",
            f"{r.events_per_s:,.0f}" if r.events_per_s else "",
            f"{r.deliveries_per_s:,.0f}" if r.deliveries_per_s else "",
            str(r.latency) if r.latency else "",
            f"{r.server_cpu_pct:.0f}" if r.server_cpu_pct is not None else "",
            f"{r.cpu_us_per_delivery:.1f}" if r.cpu_us_per_delivery is not None else "",
            f"{r.server_rss_mb:.0f}" if r.server_rss_mb is not None else "",
            f"{r.client_cpu_pct:.0f}" if r.client_cpu_pct is not None else "",
            r.notes,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sides_table(heading: str, sides: int, rows: Sequence[tuple[str, list[str]]]) -> str:
    """The probes' markdown table: one row per measurement, one column per database given
    (A, B, …)."""
    labels = [chr(ord("A") + i) for i in range(sides)]
    lines = [f"| {heading} | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---|" * sides)
    lines += [f"| {what} | " + " | ".join(cells) + " |" for what, cells in rows]
    return "\n".join(lines)
