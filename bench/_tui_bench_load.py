"""A paced sender for the TUI benchmark: one client calling ``send_message`` RATE times a second.

Run: python bench/_tui_bench_load.py SERVER RATE

Connects (a new identity), prints ``READY``, then sends at a fixed schedule (calls are
not awaited one by one, so a slow result does not slow the pace) until stdin closes.
Then prints ``RESULT {json}``: messages sent, committed, the achieved rate, and how
late the schedule ran at worst.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat_server.client import Client  # noqa: E402

TEXTS = ("load {k}: ping", "load {k}: a line of chat about the benchmark that is a little longer",
         "load {k}: " + "a long message that wraps over two rows of the log at a hundred and twenty columns " * 2)


async def main(server: str, rate: float) -> None:
    client = await Client.connect(server, "quickstart-chat")
    await client.call("set_name", "Loader")
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096) else None)
    results: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(text: str) -> None:
        res = await client.call("send_message", text)
        results.append(getattr(res, "status", "refused"))

    t0 = time.perf_counter()
    k, worst_late = 0, 0.0
    while not stop.is_set():
        due = t0 + k / rate
        now = time.perf_counter()
        if due > now:
            try:
                await asyncio.wait_for(stop.wait(), due - now)
                break
            except TimeoutError:
                pass
        worst_late = max(worst_late, time.perf_counter() - due)
        task = asyncio.ensure_future(one(TEXTS[k % len(TEXTS)].format(k=k)))
        pending.add(task)
        task.add_done_callback(pending.discard)
        k += 1
    elapsed = time.perf_counter() - t0
    if pending:
        await asyncio.wait(pending, timeout=5)
    await client.close()
    print("RESULT " + json.dumps({"sent": k, "committed": results.count("committed"), "seconds": elapsed,
                                  "rate": k / elapsed if elapsed else 0.0, "worst_late_ms": worst_late * 1000}),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
