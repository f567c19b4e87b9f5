"""Shared by server_bench.py and its helper processes: latency histograms, file limits, the frame shapes.

Latencies are kept as log-bucketed histograms (0.5% relative precision) so that a
worker can report millions of deliveries in a few hundred numbers and the
orchestrator can merge them across processes.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Iterable

BUCKETS_PER_E = 200  # bucket width: a factor of e**(1/200), about 0.5%


def bucket(us: float) -> int:
    return int(math.log(us if us > 1.0 else 1.0) * BUCKETS_PER_E)


def merge(hists: Iterable[dict]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for k, n in h.items():
            k = int(k)
            out[k] = out.get(k, 0) + n
    return out


def count(hist: dict[int, int]) -> int:
    return sum(hist.values())


def percentile(hist: dict[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram, in microseconds (bucket midpoint); None if empty."""
    total = count(hist)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= rank:
            return math.exp((k + 0.5) / BUCKETS_PER_E)
    return math.exp((max(hist) + 0.5) / BUCKETS_PER_E)


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (1,000 sockets need more than 1,024); returns the new
    soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


SUBPROTOCOL = "qc.msgpack.v1"  # db_core.protocol.SUBPROTOCOL; the baselines accept it too
