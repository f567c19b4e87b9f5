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
    """A bucket that starts full and refills at its rate. ``take`` is on every request's path: it
    reads plain attributes only."""

    __slots__ = ("rate", "per_second", "burst", "tokens", "stamp", "users")

    def __init__(self, rate: Rate, now: float = 0.0) -> None:
        self.rate = rate
        self.per_second = float(rate.per_second)
        self.burst = float(rate.burst)
        self.tokens = self.burst
        self.stamp = now
        self.users = 0  # holders that keep it (KeyedBuckets does not forget a bucket in use)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if it was there, else the seconds until one will be (nothing taken)."""
        per_second = self.per_second
        if per_second <= 0:
            return 0.0
        tokens = self.tokens + (now - self.stamp) * per_second
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / per_second

    def full(self, now: float) -> bool:
        """True if the bucket has refilled completely (forgetting it would change nothing)."""
        return self.per_second <= 0 or self.tokens + (now - self.stamp) * self.per_second >= self.burst


class KeyedBuckets:
    """One bucket per key (identity, address), made on first use. Once there are more than
    ``prune_above`` keys, full buckets nobody holds are forgotten, so memory follows the active keys."""

    def __init__(self, rate: Rate, prune_above: int = 10_000) -> None:
        self.rate = rate
        self.prune_above = prune_above
        self._buckets: dict[Hashable, TokenBucket] = {}

    def bucket(self, key: Hashable, now: float) -> TokenBucket:
        """``key``'s bucket (made if missing)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.prune_above:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
        return bucket

    def take(self, key: Hashable, now: float) -> float:
        """``TokenBucket.take`` of ``key``'s bucket."""
        if self.rate.unlimited:
            return 0.0
        return self.bucket(key, now).take(now)

    def acquire(self, key: Hashable, now: float) -> TokenBucket:
        """``key``'s bucket, kept while held: call ``release`` when done with it."""
        bucket = self.bucket(key, now)
        bucket.users += 1
        return bucket

    @staticmethod
    def release(bucket: TokenBucket) -> None:
        bucket.users -= 1

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if not b.users and b.full(now)]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
