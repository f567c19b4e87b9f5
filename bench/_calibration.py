"""The calibration line every benchmark prints first: this machine's speed varies 2-3x from day to
day, so a figure means something only beside what the machine did in the same run."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def loop_ms() -> float:
    """Milliseconds of a 2M-step pure-Python loop in this process: the CPU's speed right now."""
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i & 7
    return (time.perf_counter() - start) * 1000


def fdatasync_ms(directory: Path, n: int = 50) -> list[float]:
    """``n`` fdatasyncs of a 100-byte append in ``directory`` (on the disk the data goes to), in ms."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".calibrate-")
    syncs = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 100)
            t = time.perf_counter()
            os.fdatasync(fd)
            syncs.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(name)
    return syncs


def line(directory: Path | None = None) -> str:
    """``calibration: ...``: the loop, the fdatasync on ``directory``'s disk (a temporary directory's
    if None), the load average, the cores and the Python."""
    syncs = fdatasync_ms(directory or Path(tempfile.gettempdir()))
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    return (f"calibration: python loop of 2M steps {loop_ms():.0f} ms; fdatasync p50 {statistics.median(syncs):.2f} ms,"
            f" max {max(syncs):.2f} ms; load average {load}; {os.cpu_count()} cores; python {sys.version.split()[0]}")
