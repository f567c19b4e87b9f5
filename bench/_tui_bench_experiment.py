"""What would fix key-to-echo under load: the in-process key measurement with candidate changes patched in.

Run (a server with history and a 50 msg/s sender must be running):
    .venv/bin/chat-server start --listen 127.0.0.1:0 --data-dir DIR &   # DIR seeded by _tui_bench_seed.py
    sleep 60 | .venv/bin/python bench/_tui_bench_load.py 127.0.0.1:PORT 50 &   # sends until its stdin closes
    .venv/bin/python bench/_tui_bench_experiment.py 127.0.0.1:PORT MODE [KEYS]

MODE is ``baseline`` or a ``+``-joined set of changes, applied by patching classes in
this process only (chat_tui itself is not modified):
  coalesce  ChatApp._log buffers entries and hands them to the log at most every 100 ms
            (one repaint for a burst of messages instead of one per message);
  nolayout  MessageLog sets its virtual_size without a layout refresh (Widget.virtual_size
            is a layout=True reactive, so each appended message re-runs the screen layout);
  cache128  MessageLog's block cache holds 128 entries instead of 1024 (each cached block
            keeps Strips, each with several FIFOCaches: ~100k extra objects for the garbage
            collector to walk);
  gcthresh  gc.set_threshold(20000, 20, 100): fewer, rarer collections;
  gcfreeze  gc.freeze() 2 s after start (start-up objects leave the collector's scans).
Prints p50/p90/p99/max, the process's CPU use and its garbage collections.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tui_bench_inproc as inproc  # noqa: E402
from textual.cache import LRUCache  # noqa: E402
from textual.widget import Widget  # noqa: E402

from chat_tui.app import ChatApp  # noqa: E402
from chat_tui.widgets.message_log import MessageLog  # noqa: E402


def apply(mode: str) -> None:
    if "coalesce" in mode:
        original_log = ChatApp._log

        def _log(self: ChatApp, entries: list) -> None:
            buf = self.__dict__.setdefault("_bench_buf", [])
            buf.extend(entries)
            if not self.__dict__.get("_bench_timer"):
                self.__dict__["_bench_timer"] = True

                def flush() -> None:
                    self.__dict__["_bench_timer"] = False
                    batch = list(buf)
                    buf.clear()
                    original_log(self, batch)

                self.set_timer(0.1, flush)

        ChatApp._log = _log  # type: ignore[method-assign]
    if "cache128" in mode:
        original_init = MessageLog.__init__

        def __init__(self: MessageLog, *args: object, **kwargs: object) -> None:
            original_init(self, *args, **kwargs)  # type: ignore[arg-type]
            self._cache = LRUCache(128)

        MessageLog.__init__ = __init__  # type: ignore[method-assign]
    if "nolayout" in mode:
        original_setattr = MessageLog.__setattr__

        def __setattr__(self: MessageLog, name: str, value: object) -> None:
            if name == "virtual_size" and getattr(self, "_width", 0):
                if value != self.virtual_size:
                    self.set_reactive(Widget.virtual_size, value)
                    self._scroll_update(value)
                    self.refresh()
            else:
                original_setattr(self, name, value)

        MessageLog.__setattr__ = __setattr__  # type: ignore[method-assign]


async def run(server: str, mode: str, keys: int) -> dict:
    if "gcfreeze" in mode:
        asyncio.get_running_loop().call_later(2.0, gc.freeze)
    if "gcthresh" in mode:
        gc.set_threshold(20000, 20, 100)
    return await inproc.keys(server, keys)


def main() -> None:
    server, mode = sys.argv[1], sys.argv[2]
    keys = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    apply(mode)
    r = asyncio.run(run(server, mode, keys))
    lat = sorted(r["latencies_ms"])
    n = len(lat)
    print(f"{mode}: p50 {lat[n // 2]:.1f} ms, p90 {lat[int(n * 0.9)]:.1f} ms, p99 {lat[min(n - 1, int(n * 0.99))]:.1f} ms, "
          f"max {lat[-1]:.1f} ms; CPU {r['cpu_pct']:.0f}%; {r['gc_full']} full GCs, longest {r['gc_full_max_ms']:.0f} ms, "
          f"longest GC of any generation {r['gc_max_ms']:.0f} ms; {r['entries_added']} log entries added")


if __name__ == "__main__":
    main()
