"""A/B timing of the in-memory reducer call between two checkouts of this repository.

Usage: ``.venv/bin/python bench/call_ab.py BEFORE_DIR [AFTER_DIR] [--rounds N]``

Each round runs one child process per checkout (before first in odd rounds, after first in even), each timing
``Database.call("send_message", ...)`` on an in-memory quickstart-chat database: the best of
5 batches of 20,000 calls. Rounds alternate so that the machine's drift (2-3x from day to
day) falls on both sides; every round prints its own calibration (a 2M-step Python loop).
The table gives calls/s per round and the ratio after/before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import _calibration

CHILD = r"""
import time
from chat_server.modules import QUICKSTART_CHAT
from db_core import Database
from db_core.types import Identity

db = Database.open(None, QUICKSTART_CHAT)
sender = Identity(b"\x01" * 32)
best = 0.0
for _ in range(5):
    start = time.perf_counter()
    for i in range(20_000):
        db.call("send_message", f"hi {i}", sender=sender)
    best = max(best, 20_000 / (time.perf_counter() - start))
print(best)
"""


def calls_per_second(checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=checkout, env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout to compare against (e.g. a git worktree)")
    parser.add_argument("after", type=Path, nargs="?", default=Path(__file__).resolve().parents[1],
                        help="the checkout measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    print("| round | calibration (2M-step loop) | before calls/s | after calls/s | after/before |")
    print("|---|---|---|---|---|")
    ratios = []
    for n in range(1, args.rounds + 1):
        cal = _calibration.loop_ms()
        if n % 2:  # alternate which goes first: the second child of a round tends to run hotter or colder
            before = calls_per_second(args.before.resolve())
            after = calls_per_second(args.after.resolve())
        else:
            after = calls_per_second(args.after.resolve())
            before = calls_per_second(args.before.resolve())
        ratios.append(after / before)
        print(f"| {n} | {cal:.0f} ms | {before:,.0f} | {after:,.0f} | {after / before:.2f}x |", flush=True)
    print(f"median after/before: {statistics.median(ratios):.2f}x over {args.rounds} rounds")


if __name__ == "__main__":
    main()
