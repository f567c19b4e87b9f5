"""Where the server's CPU goes under the 10-client load: user and system time per committed call.

Run: .venv/bin/python bench/server_cpu_split.py [--clients 10] [--dur 8]

Runs chat-server and then baseline (b) of ``server_bench.py`` under the same
closed-loop load and reads the server process's user and system CPU time
(all its threads, from /proc; Linux only) over the middle of the window.
System time is mostly socket writes and fdatasync; user time is Python.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_bench as sb  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(user, system) clock ticks of every thread of ``pid``."""
    user = system = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that just ended
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user, system


async def measure(kind: str, clients: int, dur: float) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="cpu_split-"))
    if kind == "ours":
        server, path, label = sb.our_server(tmp, "ours"), f"/v1/database/{sb.DB}/subscribe", "chat-server"
    else:
        server, path, label = sb.baseline_server(tmp, "base", "per-batch"), "/", "baseline (b)"
    await server.start()
    samples: list[tuple[float, tuple[int, int]]] = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), cpu_ticks(server.proc.pid)))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    try:
        run = await sb.run_load(server, path, sb.throughput_layout(clients), sb.Timing(1.0, dur, 1.0), tmp, kind)
    finally:
        sampler.cancel()
        await server.stop()
    row = sb.summarize(sb.Row(label, str(clients)), run, clients - 1, server)
    # The middle of the run: past connecting and warming up, before draining.
    middle = [s for s in samples if samples[0][0] + 3 < s[0] < samples[-1][0] - 1.5]
    (t0, (u0, s0)), (t1, (u1, s1)) = middle[0], middle[-1]
    user, system = (u1 - u0) / TICKS / (t1 - t0), (s1 - s0) / TICKS / (t1 - t0)
    return (f"| {label} | {clients} | {row.calls_s:,.0f} | {user * 100:.0f}% | {system * 100:.0f}% "
            f"| {user * 1e6 / row.calls_s:.0f} us | {system * 1e6 / row.calls_s:.0f} us |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--dur", type=float, default=8.0, help="seconds of load (default 8)")
    args = parser.parse_args()
    sb.raise_file_limit()
    print("| server | clients | calls/s | user CPU | system CPU | user per call | system per call |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("ours", "per-batch"):
        print(await measure(kind, args.clients, args.dur), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
