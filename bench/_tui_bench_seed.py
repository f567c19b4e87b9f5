"""Seed a ``chat-server start`` data directory with N messages through the embedded database API.

Run: python bench/_tui_bench_seed.py DATA_DIR N [--users 5] [--spread-days 7]

DATA_DIR must already hold the server's layout (``databases/quickstart-chat/<module>.py``
and ``data/``; start the server on it once) and no server may have it open. A few
identities connect (so their user rows exist), name themselves, and call
``send_message`` round-robin; then they disconnect and the database is closed (which
writes a snapshot, as a server that ran for a while would have). Message ``sent``
times are spread evenly over the last ``--spread-days`` days, ending one minute ago
(a chat's history accumulates over time; ``0`` keeps the real commit times, all
within a few seconds). The text of message ``i`` starts with ``#i `` and the newest
one is short, so a screen reader can tell which messages are shown.
Prints one JSON line: {"messages": N, "seconds": ...}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db_core.database import Database  # noqa: E402
from db_core.types import Identity, Timestamp  # noqa: E402

WORDS = ("the quick brown fox jumps over lazy dog lorem ipsum dolor sit amet chat server client message "
         "latency window scroll history page terminal render compositor reducer commit durable").split()
NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi")


def newest_text(n: int) -> str:
    """The text of the newest seeded message (what the bench looks for on screen)."""
    return f"#{n - 1} newest seeded"


def message_text(i: int, n: int, rng: random.Random) -> str:
    if i == n - 1:
        return newest_text(n)
    words = rng.choices(WORDS, k=rng.choice((3, 6, 10, 16, 30)))  # some wrap at 120 columns
    return f"#{i} " + " ".join(words)


def module_file(db_dir: Path) -> Path:
    files = sorted(db_dir.glob("*.py"))
    if len(files) != 1:
        raise SystemExit(f"expected one module file in {db_dir}, found {files}")
    return files[0]


def seed(data_dir: Path, n: int, users: int, spread_days: float, database: str = "quickstart-chat") -> float:
    db_dir = data_dir / "databases" / database
    t0 = time.perf_counter()
    db = Database.open(db_dir / "data", module_file(db_dir))
    try:
        if spread_days > 0 and n:
            end = time.time_ns() // 1000 - 60_000_000
            step = int(spread_days * 86_400_000_000) // max(1, n)
            clock = itertools.count(end - step * (n + 3 * users), step)
            # The database stamps each transaction through this method; replace it on the instance
            # so the history looks accumulated over days rather than written in a few seconds.
            db.store._next_timestamp = lambda: Timestamp(next(clock))
        rng = random.Random(1)
        ids = [Identity(bytes([i + 1]) * 32) for i in range(users)]
        conns = [db.connect(identity) for identity in ids]
        for identity, name in zip(ids, NAMES, strict=False):  # NAMES may be longer
            db.call("set_name", name, sender=identity)
        last = None
        for i in range(n):
            last = db.submit("send_message", message_text(i, n, rng), sender=ids[i % users])
        if last is not None:
            db.wait_durable(last.offset)
        for cid in conns:
            db.disconnect(cid)
    finally:
        db.close()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--spread-days", type=float, default=7.0)
    args = parser.parse_args()
    seconds = seed(args.data_dir, args.n, args.users, args.spread_days)
    print(json.dumps({"messages": args.n, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
