"""db_core benchmark: reducer throughput in memory and on disk, against sqlite3, and start-up at 1M rows.

Run: .venv/bin/python bench/db_core_bench.py [--quick]

Everything is measured in one run on the same machine and printed as one table
with ratios, since absolute numbers on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _calibration

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat_server.modules import QUICKSTART_CHAT  # noqa: E402
from db_core import Database, Identity  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_memory(n: int) -> float:
    with Database.open(None, QUICKSTART_CHAT) as db:
        me = Identity.random()
        conn = db.connect(me)
        call = db.call
        for _ in range(1000):
            call("send_message", "warm up", sender=me, connection_id=conn)
        t = time.perf_counter()
        for _ in range(n):
            call("send_message", "Hello, World!", sender=me, connection_id=conn)
        return n / (time.perf_counter() - t)


def bench_durable_serial(tmp: Path, n: int) -> float:
    with Database.open(tmp / "serial", QUICKSTART_CHAT) as db:
        me = Identity.random()
        conn = db.connect(me)
        t = time.perf_counter()
        for _ in range(n):
            db.call("send_message", "Hello, World!", sender=me, connection_id=conn)
        return n / (time.perf_counter() - t)


def bench_durable_inflight(tmp: Path, n: int, inflight: int = 64) -> float:
    """At most ``inflight`` calls outstanding: when the window is full, wait for the oldest to be durable."""
    with Database.open(tmp / "inflight", QUICKSTART_CHAT) as db:
        me = Identity.random()
        conn = db.connect(me)
        pending: collections.deque[int] = collections.deque()
        t = time.perf_counter()
        for _ in range(n):
            if len(pending) >= inflight:
                db.wait_durable(pending[0])
                durable = db.durable_offset
                while pending and pending[0] <= durable:
                    pending.popleft()
            pending.append(db.submit("send_message", "Hello, World!", sender=me, connection_id=conn).offset)
        db.wait_durable(pending[-1])
        return n / (time.perf_counter() - t)


def bench_sqlite(tmp: Path, n: int, synchronous: str) -> float:
    path = tmp / f"sqlite-{synchronous}.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute("CREATE TABLE message (sender BLOB NOT NULL, sent INTEGER NOT NULL, text TEXT NOT NULL)")
    sender = os.urandom(32)
    t = time.perf_counter()
    for _ in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO message VALUES (?, ?, ?)", (sender, time.time_ns() // 1000, "Hello, World!"))
        con.execute("COMMIT")
    rate = n / (time.perf_counter() - t)
    con.close()
    return rate


STARTUP_CHILD = """
import sys, time, os
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from db_core import Database
from chat_server.modules import QUICKSTART_CHAT
db = Database.open({path!r}, QUICKSTART_CHAT)
t1 = time.perf_counter()
import gc; gc.collect()
with open("/proc/self/statm") as fh:
    rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
print(t1 - t0, rss, len(db.tables["message"]))
db._release()
"""

BASELINE_CHILD = """
import sys, os
sys.path.insert(0, {root!r})
from db_core import Database
from chat_server.modules import QUICKSTART_CHAT
import gc; gc.collect()
with open("/proc/self/statm") as fh:
    print(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
"""


def build_million(tmp: Path, rows: int, tail: int) -> Path:
    """A data directory with ``rows`` messages: most in a snapshot, the last ``tail`` only in the log."""
    path = tmp / "million"
    senders = [Identity.random() for _ in range(100)]
    db = Database.open(path, QUICKSTART_CHAT, snapshot_every=10**9)
    conns = [db.connect(s) for s in senders]
    for c in conns:
        db.disconnect(c)
    for i in range(rows - tail):
        db.submit("send_message", f"message number {i}", sender=senders[i % 100])
    db.snapshot()
    for i in range(rows - tail, rows):
        db.submit("send_message", f"message number {i}", sender=senders[i % 100])
    db.durability.log.flush()
    db._release()  # as after a crash: the tail must be replayed from the log
    return path


def bench_startup(tmp: Path, rows: int, tail: int) -> tuple[float, int, int, int]:
    path = build_million(tmp, rows, tail)
    out = subprocess.run([sys.executable, "-c", STARTUP_CHILD.format(root=str(ROOT), path=str(path))],
                         capture_output=True, text=True, check=True).stdout.split()
    base = int(subprocess.run([sys.executable, "-c", BASELINE_CHILD.format(root=str(ROOT))],
                              capture_output=True, text=True, check=True).stdout)
    seconds, rss, count = float(out[0]), int(out[1]), int(out[2])
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return seconds, (rss - base) // max(count, 1), count, disk // max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, not for the record)")
    args = parser.parse_args()
    n_mem = 50_000 if args.quick else 300_000
    n_disk = 20_000 if args.quick else 100_000
    n_serial = 2_000 if args.quick else 5_000
    n_sqlite_full = 2_000 if args.quick else 5_000
    rows = 100_000 if args.quick else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="dbbench-"))
    try:
        print(_calibration.line(tmp), flush=True)
        gc.collect()
        mem = bench_memory(n_mem)
        serial = bench_durable_serial(tmp, n_serial)
        inflight = bench_durable_inflight(tmp, n_disk)
        sq_full = bench_sqlite(tmp, n_sqlite_full, "FULL")
        sq_normal = bench_sqlite(tmp, n_disk, "NORMAL")
        startup, per_row, count, disk_per_row = bench_startup(tmp, rows, rows // 10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"db_core benchmark (python {sys.version.split()[0]}, {os.cpu_count()} cores)\n")
    print("| measurement | result | vs baseline | target |")
    print("|---|---|---|---|")
    print(f"| in-memory send_message | {mem:,.0f} calls/s | | >= 100,000 calls/s |")
    print(f"| durable send_message, 1 caller waiting | {serial:,.0f} calls/s | {serial / sq_full:.2f}x sqlite FULL | |")
    print(f"| durable send_message, 64 in flight | {inflight:,.0f} calls/s | {inflight / sq_full:.2f}x sqlite FULL,"
          f" {inflight / sq_normal:.2f}x sqlite NORMAL | >= 5x FULL, >= 1x NORMAL |")
    print(f"| sqlite3 WAL synchronous=FULL, 1 tx/message | {sq_full:,.0f} inserts/s | 1.00x | |")
    print(f"| sqlite3 WAL synchronous=NORMAL, 1 tx/message | {sq_normal:,.0f} inserts/s | | |")
    print(f"| start-up with {count:,} messages (90% snapshot + 10% log) | {startup:.2f} s | | < 3 s |")
    print(f"| resident memory per message row | {per_row} bytes | | <= 400 bytes |")
    print(f"| disk per message row (snapshot + log) | {disk_per_row} bytes | | |")


if __name__ == "__main__":
    main()
