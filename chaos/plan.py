"""What a run does, decided from its options and seed before anything starts.

Pure code: the same options give the same fault schedule, the same writer mix and the same
sequence of drops for each client, so a failing run can be repeated with its seed. (Timing
on a loaded machine still varies from run to run; the schedule does not.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Server-side faults, in the order ``--kinds`` documents them.
FAULT_KINDS = (
    "listener-kill",  # kill -9 of the active runlisten; it is restarted at once and stands by
    "redis-restart",  # kill -9 of redis-server (no persistence: everything in it is lost), restart
    "pg-restart-immediate",  # pg_ctl restart -m immediate (crash and recovery)
    "pg-restart-fast",  # pg_ctl restart -m fast (clean shutdown, sessions cut)
    "daphne-kill",  # kill -9 of one daphne, restarted on the same port
)
CLIENT_KINDS = ("ws-single", "ws-multi", "sse")
LAYERS = ("core", "pubsub")
CHANNELS = ("chaos_a", "chaos_b")


@dataclass(frozen=True)
class Config:
    #: Seconds the writer writes (faults and client drops happen during this time).
    duration: float = 60.0
    seed: int = 1
    #: Channel layer of the servers and listeners (see ``chaos.settings``).
    layer: str = "core"
    #: Mean seconds between two server-side faults.
    fault_every: float = 12.0
    kinds: tuple[str, ...] = FAULT_KINDS
    #: Clients of each kind (``CLIENT_KINDS``).
    clients: int = 4
    #: Mean seconds a client stays connected before it drops on purpose (0: never).
    drop_every: float = 8.0
    #: Writer transactions per second, over all short-transaction writers.
    rate: float = 20.0
    writers: int = 3
    #: Seconds to wait, after the writer stops, for every client to hold every change.
    settle: float = 120.0
    #: Where logs and the JSON report go (default: ``.pgevents/chaos/<time>-seed<seed>``).
    out: str | None = None

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.fault_every <= 0 or self.rate <= 0 or self.writers < 1:
            raise ValueError("duration, fault-every, rate and writers must be positive")
        if self.layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}")
        unknown = sorted(set(self.kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; known: {', '.join(FAULT_KINDS)}")


@dataclass(frozen=True)
class Fault:
    #: Seconds after the writer starts.
    at: float
    kind: str
    #: Seconds a killed Redis or daphne stays down before it is started again.
    down_for: float = 0.0
    #: Which daphne (0 or 1) a ``daphne-kill`` hits.
    target: int = 0


def faults(cfg: Config) -> list[Fault]:
    """The server-side fault schedule: about one every ``fault_every`` seconds, cycling
    through every enabled kind in a shuffled order, so each kind comes up as often as the
    others; none in the last two seconds of the writer."""
    rng = random.Random(f"{cfg.seed}:faults")
    out: list[Fault] = []
    pending: list[str] = []
    at = cfg.fault_every * rng.uniform(0.5, 1.0)
    while cfg.kinds and at < cfg.duration - 2.0:
        if not pending:
            pending = list(cfg.kinds)
            rng.shuffle(pending)
        kind = pending.pop()
        down = round(rng.uniform(0.5, 2.0), 2) if kind in ("redis-restart", "daphne-kill") else 0.0
        out.append(Fault(round(at, 2), kind, down, rng.randrange(2)))
        at += cfg.fault_every * rng.uniform(0.7, 1.3)
    return out


def join_after(cfg: Config, index: int, name: str) -> float | None:
    """Seconds after the writer starts at which a client first subscribes (with no resume
    point); None: before the writer starts. Every second client of each kind joins late,
    at a seeded moment in the first 60 % of the writing time."""
    if index % 2 == 0:
        return None
    return random.Random(f"{cfg.seed}:join:{name}").uniform(0.1, 0.6) * cfg.duration


@dataclass
class Drops:
    """One client's deliberate drops, drawn one after the other from its own generator."""

    mean_connected: float
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def for_client(cls, cfg: Config, name: str) -> Drops:
        return cls(cfg.drop_every, random.Random(f"{cfg.seed}:client:{name}"))

    def next(self) -> tuple[float, float, bool]:
        """(seconds connected before the drop, seconds away, abort the TCP connection rather
        than closing it politely). Connected time is ``inf`` when drops are off."""
        connected = self.rng.expovariate(1 / self.mean_connected) if self.mean_connected > 0 else float("inf")
        return connected, self.rng.uniform(0.05, 2.0), self.rng.random() < 0.5

    def server(self, count: int) -> int:
        return self.rng.randrange(count)
