"""In-process measurements of chat-tui for the TUI benchmark (``App.run_test``, headless, 120x40).

Run: python bench/_tui_bench_inproc.py startup SERVER NEWEST_TEXT
     python bench/_tui_bench_inproc.py keys SERVER N_KEYS
     python bench/_tui_bench_inproc.py search SERVER N_MESSAGES

The app is the real ``ChatApp`` with one hook: ``_display``, which Textual calls with
each compositor update it has rendered (headless, the terminal write is skipped; the
layout, the widgets' render and the compositing are done). Times are perf_counter
seconds, printed as one ``RESULT {json}`` line.

startup: from constructing the app (imports already done) to
  - ``paint``: the first rendered screen;
  - ``welcome_posted``: the connection worker has subscribed and posts Welcome;
  - ``interactive``: the first rendered update after which the status is online and
    NEWEST_TEXT's message is on one of the log's visible rows.
keys: connected and idle, then N_KEYS times: a Key event handed to the driver (as the
  terminal driver's input thread does), and the time until the first rendered update
  after which ``composer.value`` ends with that key's text. The composer is cleared
  (unmeasured) every 40 keys. Random 20-60 ms gaps between keys. Also reported: the
  process's CPU use in the window and its garbage collections (count of full ones,
  longest pause, wall time from gc.callbacks start to stop).
search: connected, ctrl+f, then, each timed from the Key event (or the search text set) to the first
  rendered update that shows its result in the bar (and, for a match, on a visible row of the log):
  - ``typed_loaded_ms``: each key of ``lazy dog`` typed, matched over the messages loaded at start;
  - ``none_older_ms``: a text no message holds, and Enter: the server's N_MESSAGES older messages
    searched through SQL until the bar says there is no match;
  - ``middle_ms`` / ``oldest_ms``: the text of the message N/2 back (``#N/2``), then of the oldest
    (``#0``), and Enter: found by the server, its page and everything after it loaded into the log,
    the match scrolled into view;
  - ``typed_all_ms``: each key of ``lazy dog`` again, now matched over all N_MESSAGES in the log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from chat_tui.app import ChatApp  # noqa: E402
from chat_tui.connection import Welcome  # noqa: E402

SIZE = (120, 40)


class BenchApp(ChatApp):
    """ChatApp plus a callback on every rendered update."""

    CSS_PATH = str(ROOT / "chat_tui" / "app.tcss")   # relative paths resolve against this module
    on_display: Any = None

    def _display(self, screen: Any, renderable: Any) -> None:
        super()._display(screen, renderable)
        if renderable is not None and self.on_display is not None:
            self.on_display()


def newest_shown(app: ChatApp, newest: str | None) -> bool:
    """Online, and (if given) the newest seeded message is on one of the log's visible rows."""
    if app.status_bar.state != "online" or app.state.me is None:
        return False
    if newest is None:
        return True
    log = app.log_view
    if not log.entry_count:
        return False
    top = round(log.scroll_offset.y)
    rows = log.lines_text()[top:top + log.scrollable_content_region.height]
    return any(newest in row for row in rows)


async def startup(server: str, newest: str | None) -> dict[str, Any]:
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    app = BenchApp(server=server, tune_gc=True)   # as chat-tui's main() runs it
    post = app.connection.post

    def spy(msg: Any) -> Any:
        if isinstance(msg, Welcome) and "welcome_posted" not in marks:
            marks["welcome_posted"] = time.perf_counter()
        return post(msg)

    app.connection.post = spy
    done = asyncio.get_running_loop().create_future()

    def on_display() -> None:
        now = time.perf_counter()
        marks.setdefault("paint", now)
        if "interactive" not in marks and newest_shown(app, newest):
            marks["interactive"] = now
            if not done.done():
                done.set_result(None)

    app.on_display = on_display
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(done, 60)
        entries = app.log_view.entry_count
        await pilot.pause(0.05)
        await app.connection.close()
    return {k: v - t0 for k, v in marks.items()} | {"entries": entries}


async def keys(server: str, n: int) -> dict[str, Any]:
    app = BenchApp(server=server, tune_gc=True)   # as chat-tui's main() runs it
    loop = asyncio.get_running_loop()
    waiting: dict[str, Any] = {}

    def on_display() -> None:
        fut = waiting.get("fut")
        if fut is not None and not fut.done() and app.composer.value.endswith(waiting["text"]):
            fut.set_result(time.perf_counter())

    app.on_display = on_display
    rng = random.Random(2)
    lat: list[float] = []
    async with app.run_test(size=SIZE):
        deadline = time.monotonic() + 30
        while not (app.status_bar.state == "online" and app.state.me is not None):
            if time.monotonic() > deadline:
                raise RuntimeError("not online")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        entries0 = app.log_view.entry_count
        driver = app._driver
        assert driver is not None
        typed = ""
        pauses: list[tuple[int, float]] = []   # (generation, ms) of each garbage collection in the window
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append((info["generation"], (time.perf_counter() - started[0]) * 1000))

        gc.callbacks.append(on_gc)
        cpu0 = time.process_time()
        t_start = time.perf_counter()
        for i in range(n):
            if len(typed) >= 40:
                app.composer.value = ""
                typed = ""
                await asyncio.sleep(0.05)
            ch = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]
            typed += ch
            fut = loop.create_future()
            waiting.update(fut=fut, text=typed)
            ev = events.Key(ch, ch)
            ev.set_sender(app)
            t = time.perf_counter()
            driver.send_message(ev)
            t1 = await asyncio.wait_for(fut, 10)
            lat.append((t1 - t) * 1000)
            await asyncio.sleep(rng.uniform(0.02, 0.06))
        elapsed = time.perf_counter() - t_start
        cpu = time.process_time() - cpu0
        gc.callbacks.remove(on_gc)
        entries = app.log_view.entry_count - entries0
        await app.connection.close()
    full = [ms for gen, ms in pauses if gen == 2]
    return {"latencies_ms": lat, "seconds": elapsed, "entries_added": entries, "cpu_pct": 100 * cpu / elapsed,
            "gc_full": len(full), "gc_full_max_ms": max(full, default=0.0),
            "gc_max_ms": max((ms for _, ms in pauses), default=0.0)}


async def search(server: str, n: int) -> dict[str, Any]:
    app = BenchApp(server=server, tune_gc=True)
    loop = asyncio.get_running_loop()
    waiting: dict[str, Any] = {}

    def on_display() -> None:
        fut = waiting.get("fut")
        if fut is not None and not fut.done() and waiting["shown"]():
            fut.set_result(time.perf_counter())

    app.on_display = on_display

    def visible_rows() -> list[str]:
        log = app.log_view
        top = round(log.scroll_offset.y)
        return log.lines_text()[top:top + log.scrollable_content_region.height]

    async def timed(act: Any, shown: Any, timeout: float = 60) -> float:
        fut = loop.create_future()
        waiting.update(fut=fut, shown=shown)
        t = time.perf_counter()
        act()
        t1 = await asyncio.wait_for(fut, timeout)
        await asyncio.sleep(0.2)
        return (t1 - t) * 1000

    def key(name: str, char: str | None) -> Any:
        def act() -> None:
            ev = events.Key(name, char)
            ev.set_sender(app)
            driver.send_message(ev)
        return act

    def searched(text: str) -> Any:
        return lambda: app.search_feed.matches.query.text == text and "searching" not in app.search_bar.status

    def found(text: str) -> Any:
        def shown() -> bool:
            current = app.search_feed.matches.current
            return (searched(text)() and current is not None and text in current.entry.text
                    and any(text + " " in row for row in visible_rows()))
        return shown

    def set_text(text: str) -> Any:
        def act() -> None:
            app.search_bar.field.value = text
        return act

    async def type_keys(text: str) -> list[float]:
        await timed(set_text(""), searched(""))
        out = []
        for i in range(len(text)):
            ch = text[i]
            out.append(await timed(key("space" if ch == " " else ch, ch), searched(text[:i + 1])))
        return out

    result: dict[str, Any] = {}
    async with app.run_test(size=SIZE):
        deadline = time.monotonic() + 30
        while not (app.status_bar.state == "online" and app.state.me is not None and app.log_view.entry_count):
            if time.monotonic() > deadline:
                raise RuntimeError("not online")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        driver = app._driver
        assert driver is not None
        result["loaded_at_start"] = app.log_view.entry_count
        await timed(key("ctrl+f", None), lambda: app.search_bar.is_open)
        result["typed_loaded_ms"] = await type_keys("lazy dog")
        none = "no message says this"
        await timed(set_text(none), searched(none))
        result["none_older_ms"] = await timed(key("enter", None), lambda: searched(none)() and
                                              app.search_bar.status.startswith("no match"))
        middle = f"#{n // 2}"
        await timed(set_text(middle), searched(middle))
        result["middle_ms"] = await timed(key("enter", None), found(middle))
        result["loaded_after_middle"] = app.log_view.entry_count
        await timed(set_text("#0"), searched("#0"))
        result["oldest_ms"] = await timed(key("enter", None), found("#0"))
        result["loaded_after_oldest"] = app.log_view.entry_count
        result["typed_all_ms"] = await type_keys("lazy dog")
        await app.connection.close()
    return result


def main() -> None:
    what, server = sys.argv[1], sys.argv[2]
    if what == "startup":
        newest = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
        result = asyncio.run(startup(server, newest))
    elif what == "search":
        result = asyncio.run(search(server, int(sys.argv[3])))
    else:
        result = asyncio.run(keys(server, int(sys.argv[3])))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
