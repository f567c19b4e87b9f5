"""Abuse benchmark: what one hostile client does to everyone else's latency, and to the server's memory.

Run: .venv/bin/python bench/abuse_bench.py [--seconds 10] [--rounds 3] [--messages 100000] [--only SCENARIO ...]

``chat-server start`` runs as its own process on a database seeded with 100,000 messages. A
victim client (this process) is connected as a chat user is (subscribed to every user and to
the messages from now on) and calls ``send_message`` every 100 ms, timing each call until its
result. For each scenario, in turn, the victim first runs alone (idle) and then beside one
attacker in a separate process (``_abuse_attacker.py``, at nice 19: it stands for another
machine), each for ``--seconds``, ``--rounds`` times:

- scans: 16 pipelined ``SELECT * FROM message`` at a time, sent again as they are answered;
- filtered-scans: the same with ``SELECT * FROM message WHERE text = 'no such text'``, which
  reads every row and returns none (within the budget: the costliest scan it lets through);
- self-join: the same with ``SELECT a.* FROM message a JOIN message b ON a.sender = b.sender``;
- subscribe-64: subscribes of 64 x ``SELECT * FROM message``, 4 at a time;
- subscribe-64-filtered: subscribes of 64 different filtered scans like the above, 4 at a time;
- message-flood: ``send_message`` as fast as the server answers, 256 in flight;
- ping-flood: websocket pings as fast as the socket takes them, never reading the pongs, and
  connecting again (same token) when the server hangs up;
- connect-churn: 8 loops connecting anonymously (a new identity each) and hanging up.

It prints a calibration line (this machine's speed varies 2-3x from day to day), then one table
row per scenario: the victim's p50/p99/max over all its calls under that attack (``--rounds``
x 100 calls) beside the p99 of its idle calls in the same rounds (one idle p99 of 100 calls, its
second slowest, swings 2-10 ms here from one run to the next; pooled over the rounds it holds
still), and the server's RSS growth (the largest VmRSS during an attack, less VmRSS before it). Targets: p99
under 50 ms and within 3x the idle p99, RSS growth under 100 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import _calibration  # noqa: E402
from chat_server.client import Client  # noqa: E402

PY = sys.executable
DB = "quickstart-chat"
SCENARIOS = ["scans", "filtered-scans", "self-join", "subscribe-64", "subscribe-64-filtered", "message-flood",
             "ping-flood", "connect-churn"]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.victim_token: str | None = None

    def start(self) -> "Server":
        exe = Path(PY).parent / "chat-server"
        cmd = [str(exe)] if exe.exists() else [PY, "-m", "chat_server.cli"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CONFIG_HOME": str(self.data_dir / "config")}
        self.proc = subprocess.Popen(cmd + ["start", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.search(r"listening on ws://[^ ]*:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise SystemExit("the server did not start")
        # Keep reading its log so that it never blocks on a full pipe.
        threading_drain(self.proc)
        return self

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def threading_drain(proc: subprocess.Popen[str]) -> None:
    import threading

    def drain() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    threading.Thread(target=drain, daemon=True).start()


def seed(data_dir: Path, n: int) -> None:
    """``n`` messages from two senders, written straight into the (stopped) server's database."""
    from db_core import Database, Identity, Timestamp

    path = data_dir / "databases" / DB
    module = next(path.glob("*.py"))
    senders = [Identity(bytes([1]) * 32), Identity(bytes([2]) * 32)]
    with Database.open(path / "data", module) as db:
        table = db.tables["message"]
        row = table.tdef.row_type
        start = int(time.time() * 1_000_000) - n

        def body(tx: Any) -> None:
            for i in range(n):
                tx.insert(table, row(sender=senders[i % 2], sent=Timestamp(start + i), text=f"seeded message {i}"))

        db.wait_durable(db.transact(body, sender=senders[0]).offset)
        db.snapshot()


async def victim(server: Server, seconds: float) -> tuple[list[float], int]:
    """Calls every 100 ms for ``seconds``; returns the latencies (s) and the largest server RSS seen."""
    client = await Client.connect(server.url, DB, server.victim_token)
    server.victim_token = client.token  # one user throughout (connect churn uses up new identities)
    now = int(time.time() * 1_000_000)
    await client.subscribe(["SELECT * FROM user", f"SELECT * FROM message WHERE sent >= {now}"])

    async def read_events() -> None:  # as a chat client does; unread, they would pile up in this process
        async for _ in client.events():
            pass

    reader = asyncio.create_task(read_events())
    latencies: list[float] = []
    top = server.rss()
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    failures = 0
    while time.monotonic() < end:
        t = time.perf_counter()
        result = await client.call("send_message", f"victim {len(latencies)}")
        latencies.append(time.perf_counter() - t)
        if result.status != "committed":
            failures += 1
        top = max(top, server.rss())
        nxt += 0.1
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
    await client.close()
    reader.cancel()
    if failures:
        print(f"  victim: {failures} calls did not commit", file=sys.stderr)
    return latencies, top


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``q`` of them at or below it
    (the p99 of 100 calls is the second slowest, of 300 the fourth)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s) - 1e-9) - 1))]


async def round_of(server: Server, scenario: str, seconds: float) -> dict[str, Any]:
    idle, _ = await victim(server, seconds)
    before = server.rss()
    # At nice 19 the attacker stands for another machine: it takes all the CPU the server and the
    # victim leave (most of a core), but the kernel does not make the victim's process wait for it.
    attacker = await asyncio.create_subprocess_exec(PY, str(HERE / "_abuse_attacker.py"), scenario, server.url,
                                                    str(seconds + 1), stdout=asyncio.subprocess.PIPE,
                                                    preexec_fn=lambda: os.nice(19))
    await asyncio.sleep(0.5)  # the attack is under way before the victim starts timing
    busy, top = await victim(server, seconds)
    out, _ = await attacker.communicate()
    after = server.rss()
    return {"scenario": scenario, "idle": idle, "busy": busy, "rss_before": before, "rss_top": max(top, after),
            "attacker": json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each idle and attack run")
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the database")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--rounds", type=int, default=3,
                        help="idle and attack runs, alternating, per scenario (their calls are pooled)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="abuse-bench-"))
    try:
        print(_calibration.line(tmp))
        first = Server(tmp).start()
        first.stop()
        seed(tmp, args.messages)
        server = Server(tmp).start()
        print(f"server: chat-server, {args.messages:,} messages, RSS {server.rss() / 2**20:.0f} MiB after start;"
              f" started again for each scenario (each meets fresh rate limits)")
        print()
        print(f"{args.rounds} rounds of {args.seconds:g} s idle then {args.seconds:g} s attacked;"
              " percentiles (nearest rank) over the calls of all rounds")
        print()
        print("| attack (one attacker process) | victim p50 | victim p99 | victim max | idle p99 (same rounds)"
              " | p99 / idle | server RSS growth (most) | attacker saw (last round) |")
        print("|---|---|---|---|---|---|---|---|")
        missed = []
        for n, scenario in enumerate(args.only or SCENARIOS):
            if n:
                token, server = server.victim_token, Server(tmp).start()
                server.victim_token = token
            rounds = [await round_of(server, scenario, args.seconds) for _ in range(args.rounds)]
            server.stop()
            busy = [t for r in rounds for t in r["busy"]]
            idle = [t for r in rounds for t in r["idle"]]
            busy50, busy99, idle99 = pct(busy, 0.5), pct(busy, 0.99), pct(idle, 0.99)
            growth = max(r["rss_top"] - r["rss_before"] for r in rounds) / 2**20
            ok = busy99 < 0.05 and busy99 <= 3 * idle99 and growth < 100
            if not ok:
                missed.append(scenario)
            print(f"| {scenario} | {ms(busy50)} | {ms(busy99)} | {ms(max(busy))} | {ms(idle99)}"
                  f" | {busy99 / idle99:.2f}x | {growth:+.0f} MiB | {summary(rounds[-1]['attacker'])} |"
                  f"{'' if ok else ' **missed**'}", flush=True)
        print()
        print("every target met" if not missed else f"targets missed in: {', '.join(missed)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summary(stats: dict[str, Any]) -> str:
    parts = []
    for key in ("sent", "answers", "errors", "connected", "refused", "closed"):
        value = stats.get(key)
        if isinstance(value, int) and value:
            parts.append(f"{key} {value:,}")
        elif value:
            parts.append(f"{key}: {value}")
    reason = stats.get("last_error") or stats.get("close_reason")
    if reason:
        parts.append(f"`{str(reason)[:60]}`")
    return ", ".join(parts) or "-"


if __name__ == "__main__":
    asyncio.run(main())
