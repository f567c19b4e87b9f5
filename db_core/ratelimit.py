"""Token buckets: how often a connection, an identity or an address may do something.

Sans-I/O: every method takes ``now`` (seconds on a monotonic clock) from the caller.

    bucket = TokenBucket(Rate(100, 200))     # 100 per second, bursts of 200
    wait = bucket.take(now)                   # 0.0: go ahead; else seconds until one is free
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable


@dataclasses.dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` on average, up to ``burst`` at once; ``per_second`` 0 means unlimited."""

    per_second: float
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0


class TokenBucket:
    """A bucket that starts full and refills at its rate."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: Rate, now: float = 0.0) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.rate.burst, self.tokens + (now - self.stamp) * self.rate.per_second)
            self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if it was there, else the seconds until one will be (nothing taken)."""
        if self.rate.unlimited:
            return 0.0
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate.per_second

    def full(self, now: float) -> bool:
        """True if the bucket has refilled completely (forgetting it would change nothing)."""
        self._refill(now)
        return self.tokens >= self.rate.burst


class KeyedBuckets:
    """One bucket per key (identity, address), made on first use; full buckets are forgotten
    once there are more than ``prune_above`` keys, so memory follows the active keys only."""

    def __init__(self, rate: Rate, prune_above: int = 10_000) -> None:
        self.rate = rate
        self.prune_above = prune_above
        self._buckets: dict[Hashable, TokenBucket] = {}

    def take(self, key: Hashable, now: float) -> float:
        """``TokenBucket.take`` of ``key``'s bucket."""
        if self.rate.unlimited:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.prune_above:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
