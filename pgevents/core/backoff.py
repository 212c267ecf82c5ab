"""Capped exponential backoff with jitter, shared by every reconnecting loop."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``base * 2**n`` capped at ``cap``, each scaled by a random factor in [0.5, 1].

    Jitter keeps many processes that lost the same server from reconnecting in lockstep.
    """

    def __init__(self, base: float = 0.1, cap: float = 10.0) -> None:
        self.base, self.cap, self.attempts = base, cap, 0

    def next(self) -> float:
        delay: float = min(self.cap, self.base * (2.0**self.attempts))
        self.attempts = min(self.attempts + 1, 30)
        return float(delay * random.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.attempts = 0
