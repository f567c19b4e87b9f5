"""The server process's garbage-collection policy: never rescan the rows.

A database keeps all its rows in memory for the life of the process, and rows
are never cyclic garbage. CPython's full collections still walk every tracked
object, each time the long-lived objects have grown by a quarter: measured
under ``bench/server_bench.py`` at 10 clients, 8 full collections in 16 s
paused the server for up to 87 ms each (437 ms in all) and cost 4-6% of its
calls/s; with a million rows one pause is about a second.

So every full collection ends by freezing its survivors (``gc.freeze``): the
next one scans only what survived since, which is cheap however large the
tables are. The cost: a frozen object that later becomes cyclic garbage is not
collected. On this server that would be what a closed connection leaves: the
server breaks its own cycles when a connection ends, asyncio's (a transport
refers to itself through a bound method, about 8 objects per connection) too
(``frames.FastConnection.connection_lost``), and what a library may still leave
is reclaimed after ``reclaim_after`` disconnects by one complete collection
(unfreeze, collect, freeze): memory stays bounded, and the one long pause comes
per thousands of disconnects rather than per quarter of growth.

That pause walks every row (measured: 70-80 ms at 100,000 messages), so it waits
for a quiet moment: the server calls ``idle`` when no client has sent, connected
or gone for a while. Under a connect-churn attack there is none, and then the
pause comes only once ``force_after`` disconnects are waiting (about 50 MB at
the default, minutes of churn at the connect rate limit).

Young collections come every 10,000 allocations instead of 700: each walks
the young containers, and a query under way holds big ones. Under an
attacker's self-joins (``bench/abuse_bench.py``, timed with ``gc.callbacks``
in the server) 10 s saw 286 collections taking 27 ms in all, two of them full
ones of 7 ms; with 10,000, 19 collections taking 14 ms, none full.
"""

from __future__ import annotations

import gc
from typing import Any


# Allocations between two young collections (CPython: 700). A young collection walks every young
# container, and a query under way holds big ones (a scan's copy, a join's bucket: 100,000
# references, 1-2 ms to walk): under an attacker's queries, 30 a second took 1-2.5 ms each.
YOUNG_THRESHOLD = 10_000


class GcPolicy:
    """Install with ``start``, remove with ``stop``; tell it of each ``disconnected`` session."""

    def __init__(self, reclaim_after: int = 5000, force_after: int = 50_000) -> None:
        self.reclaim_after = reclaim_after
        self.force_after = force_after
        self.disconnects = 0
        self.reclaims = 0
        self._installed = False
        self._thresholds = gc.get_threshold()

    def start(self) -> None:
        """Collect once and freeze what the start-up loaded (the rows); freeze after every full collection."""
        gc.collect()
        gc.freeze()
        self._thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, *self._thresholds[1:])
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True

    def stop(self) -> None:
        """Back to CPython's own policy (an embedding process goes on as before the server ran)."""
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            self._installed = False
            gc.set_threshold(*self._thresholds)
            gc.unfreeze()

    def disconnected(self) -> None:
        """A client went away (its objects may be frozen garbage now)."""
        self.disconnects += 1
        if self.disconnects >= self.force_after:
            self.reclaim()

    def idle(self) -> None:
        """Nobody is waiting on the server: a good moment for the long pause, if one is due."""
        if self.disconnects >= self.reclaim_after:
            self.reclaim()

    def reclaim(self) -> None:
        """One complete collection, frozen objects included, then freeze again."""
        self.disconnects = 0
        self.reclaims += 1
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    @staticmethod
    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        # Runs on whichever thread triggered the collection, after it finished: freezing only
        # moves the survivors' list heads, so this is cheap and safe here.
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()
