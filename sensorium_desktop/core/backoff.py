"""Reconnect delays (pure): exponential backoff with jitter, used by every reconnecting part."""

from __future__ import annotations

import random


class Backoff:
    """Reconnect delays: 1 s * 2^(n-1), capped at 30 s, with +-20 % jitter."""

    def __init__(
        self, base: float = 1.0, cap: float = 30.0, jitter: float = 0.2, rng: random.Random | None = None
    ) -> None:
        self.base, self.cap, self.jitter = base, cap, jitter
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        self.attempt += 1
        raw = min(self.cap, self.base * 2 ** (self.attempt - 1))
        return raw * (1.0 + self.rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.attempt = 0
