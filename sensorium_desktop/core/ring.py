"""Fixed-capacity numpy ring buffer for recent samples (hot tier of the live views)."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Last ``capacity`` samples: times (float64 s) and values (capacity, channels).

    ``append`` is vectorized and O(n); ``latest`` returns ordered copies. ``version``
    increments on every append so views redraw only what changed.
    """

    def __init__(self, capacity: int, channels: int, dtype: np.dtype | type = np.float32) -> None:
        if capacity < 1 or channels < 1:
            raise ValueError("capacity and channels must be >= 1")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self.t = np.zeros(self.capacity, dtype=np.float64)
        self.v = np.zeros((self.capacity, self.channels), dtype=dtype)
        self.head = 0  # next write position
        self.size = 0
        self.version = 0
        self.total = 0

    def append(self, t: np.ndarray, v: np.ndarray) -> None:
        """Append samples: ``t`` (n,), ``v`` (n, channels)."""
        n = int(t.shape[0])
        if n == 0:
            return
        if v.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {v.shape[1]}")
        self.total += n
        if n >= self.capacity:
            self.t[:] = t[-self.capacity :]
            self.v[:] = v[-self.capacity :]
            self.head = 0
            self.size = self.capacity
            self.version += 1
            return
        end = self.head + n
        if end <= self.capacity:
            self.t[self.head : end] = t
            self.v[self.head : end] = v
        else:
            k = self.capacity - self.head
            self.t[self.head :] = t[:k]
            self.v[self.head :] = v[:k]
            self.t[: n - k] = t[k:]
            self.v[: n - k] = v[k:]
        self.head = end % self.capacity
        self.size = min(self.capacity, self.size + n)
        self.version += 1

    def latest(self, t_min: float | None = None, before: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Samples in time order (copies), optionally only those with t >= ``t_min`` (s) and the
        ``before`` samples just older than them; only the rows returned are copied (a plot
        window is a small tail of a long history)."""
        start = 0 if self.size < self.capacity else self.head
        k = 0
        if t_min is not None and self.size:
            k = max(0, self.size - self._count_since(t_min) - max(0, before))
        idx = (start + np.arange(k, self.size)) % self.capacity
        return self.t[idx], self.v[idx]

    def _count_since(self, t_min: float) -> int:
        """How many of the (time-ordered) samples have t >= ``t_min``, searching both halves of
        the ring in place (no copy of the times)."""
        if self.size < self.capacity:
            return self.size - int(np.searchsorted(self.t[: self.size], t_min, side="left"))
        older, newer = self.t[self.head :], self.t[: self.head]
        in_newer = newer.size - int(np.searchsorted(newer, t_min, side="left"))
        if in_newer < newer.size:  # the boundary is among the newer samples
            return in_newer
        return in_newer + older.size - int(np.searchsorted(older, t_min, side="left"))

    def newest_times(self, count: int) -> np.ndarray:
        """Times (s) of the ``count`` newest samples (at most all held), oldest first (a copy)."""
        count = min(max(0, count), self.size)
        idx = (self.head - count + np.arange(count)) % self.capacity
        return self.t[idx]

    def last_time(self) -> float | None:
        if self.size == 0:
            return None
        return float(self.t[(self.head - 1) % self.capacity])

    def clear(self) -> None:
        self.head = 0
        self.size = 0
        self.version += 1
