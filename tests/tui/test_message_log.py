"""MessageLog: a tiny app per behaviour, driven by Pilot, asserting on the rows it shows."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import TypeVar
from datetime import datetime, timezone

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Offset
from textual.pilot import Pilot
from textual.selection import Selection

from chat_tui.entries import NICK_HUES, EntryKind, LogEntry, contrast, nick_colour, nick_hue, nick_style
from chat_tui.widgets.message_log import MessageLog
from chat_tui.wrap import wrap_text

# Saturday, 28 November 2026, 09:00 UTC, in microseconds.
T0 = int(datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc).timestamp()) * 1_000_000
MINUTE = 60 * 1_000_000
DAY = "──── Saturday, 28 November 2026 ────"


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Local time is UTC here (HH:MM and dates are local); restored afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


class LogApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.animation_level = "none"  # key presses scroll at once
        self.older: list[MessageLog.LoadOlder] = []

    def compose(self) -> ComposeResult:
        yield MessageLog()

    def on_message_log_load_older(self, message: MessageLog.LoadOlder) -> None:
        self.older.append(message)


A = TypeVar("A", bound=LogApp)


def drive(body: Callable[[A, MessageLog, Pilot[None]], Awaitable[None]], size: tuple[int, int] = (40, 8),
          app_type: Callable[[], A] = LogApp) -> None:  # type: ignore[assignment]  # (A is LogApp by default)
    """Run `body` against a fresh ``app_type()`` with a focused MessageLog filling the screen."""

    async def main() -> None:
        app = app_type()
        async with app.run_test(size=size) as pilot:
            log = app.query_one(MessageLog)
            log.focus()
            await pilot.pause()
            await body(app, log, pilot)

    asyncio.run(asyncio.wait_for(main(), 30))


def msg(key: Hashable, minute: int, text: str, name: str = "al", **kw: bool) -> LogEntry:
    return LogEntry(key=key, time=T0 + minute * MINUTE, kind=EntryKind.MESSAGE, text=text, name=name, **kw)


def screen(app: App[None]) -> list[str]:
    """The composed screen left of the scrollbar, one string per row (trailing spaces cut)."""
    width = app.query_one(MessageLog).scrollable_content_region.width
    strips = app.screen._compositor.render_strips()
    return ["".join(seg.text for seg in strip.crop(0, width)).rstrip() for strip in strips]


def many(n: int, start: int = 0) -> list[LogEntry]:
    return [msg(("m", i), i, f"message {i}") for i in range(start, start + n)]


def test_order_by_time_then_insertion_and_dedupe() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(3, 2, "third"), msg(1, 0, "first"), msg("b", 1, "same minute, added first")])
        log.add([msg(2, 1, "same minute, added second"), msg(1, 0, "a duplicate key is ignored")])
        log.add([msg(3, 9, "also ignored")])
        await pilot.pause()
        assert log.entry_count == 4
        assert log.lines_text() == [
            " " + DAY,  # centred in 39 cells
            "09:00 al │ first",
            "09:01 al │ same minute, added first",
            "09:01 al │ same minute, added second",
            "09:02 al │ third",
        ]

    drive(body)


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("UTC", [DAY, "09:00", "14:59", "15:01", "23:59"]),
        # Nine hours ahead of UTC: from 15:00 UTC it is Sunday there.
        ("JST-9", [DAY, "18:00", "23:59", "──── Sunday, 29 November 2026 ────", "00:01", "08:59"]),
    ],
)
def test_day_change_lines_follow_the_local_date(tz: str, expected: list[str]) -> None:
    os.environ["TZ"] = tz  # the autouse fixture restores it
    time.tzset()

    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        # 09:00, 14:59, 15:01 and 23:59 UTC, added out of order.
        log.add([msg(i, m, "x") for i, m in [(3, 899), (0, 0), (2, 361), (1, 359)]])
        await pilot.pause()
        rows = [row.strip() for row in log.lines_text()]
        assert [row if row.startswith("────") else row[:5] for row in rows] == expected

    drive(body, size=(60, 10))


def test_wrapping_and_the_aligned_name_column() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        # 39 content cells (one for the scrollbar); name column 3 ("bob"): text column 27 cells.
        log.add([
            msg(1, 0, "the quick brown fox jumps over the lazy dog"),
            msg(2, 1, "x" * 30, name="bob"),
            msg(3, 2, "line one\nline two", name="bob"),
            msg(4, 3, "😀" * 15),
            LogEntry(key=5, time=T0 + 4 * MINUTE, kind=EntryKind.SYSTEM, text="al renamed to Al."),
            LogEntry(key=6, time=T0 + 5 * MINUTE, kind=EntryKind.ERROR, text="Failed to set name"),
        ])
        await pilot.pause()
        assert log.lines_text() == [
            " " + DAY,
            "09:00  al │ the quick brown fox jumps",
            "          │ over the lazy dog",
            "09:01 bob │ " + "x" * 27,
            "          │ xxx",
            "09:02 bob │ line one",
            "          │ line two",
            "09:03  al │ " + "😀" * 13,
            "          │ 😀😀",
            "09:04  -- │ al renamed to Al.",
            "09:05  !! │ Failed to set name",
        ]
        # A long name widens the column, up to 12 cells but here (a narrow view) to a quarter
        # of what is left after the time and separator: (39 - 6 - 3) // 4 = 7 cells.
        log.add([msg(7, 6, "hi", name="bartholomew_the_great")])
        await pilot.pause()
        rows = log.lines_text()
        assert rows[-1] == "09:06 bartho… │ hi"
        # Everything re-wrapped to the narrower text column (39 - 6 - 7 - 3 = 23 cells).
        assert rows[1:3] == [
            "09:00 " + "al".rjust(7) + " │ the quick brown fox",
            " " * 14 + "│ jumps over the lazy dog",
        ]
        # A wide view gives long names the full 12 cells, no more: an unnamed user's 16 hex
        # digits are cut too (the user list shows them whole), however wide the screen.
        await pilot.resize_terminal(100, 10)
        await pilot.pause()
        assert log.lines_text()[-1] == "09:06 bartholomew… │ hi"
        log.add([msg(8, 7, "hello", name="c0ffee00c0ffee00")])
        await pilot.resize_terminal(250, 10)
        await pilot.pause()
        assert log.lines_text()[-1] == "09:07 c0ffee00c0f… │ hello"

    drive(body)


def test_wrap_text_breaks_words_and_counts_cells() -> None:
    assert wrap_text("", 10) == [""]
    assert wrap_text("ab cd ef", 5) == ["ab cd", "ef"]
    assert wrap_text("abcdefghij k", 4) == ["abcd", "efgh", "ij k"]
    assert wrap_text("日本語のテキスト", 6) == ["日本語", "のテキ", "スト"]
    # Controls are shown, not obeyed: a bell as its picture, a CR (which would go back to
    # overwrite the row) too; a tab is expanded, each newline starts a row.
    assert wrap_text("tab\there\x07", 40) == ["tab here␇"]
    assert wrap_text("over\rwrite\x1b[2J\nnext", 40) == ["over␍write␛[2J", "next"]
    assert wrap_text("a\u2028b\u202ec", 40) == ["a<U+2028>b<U+202E>c"]


def test_rewrap_after_the_terminal_is_resized() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(1, 0, "the quick brown fox jumps over the lazy dog", name="bob")])
        await pilot.pause()
        assert log.lines_text()[1:] == ["09:00 bob │ the quick brown fox jumps over the lazy dog"]
        await pilot.resize_terminal(30, 8)  # 29 cells: 17 for the text
        await pilot.pause()
        assert log.lines_text()[1:] == [
            "09:00 bob │ the quick brown",
            "          │ fox jumps over",
            "          │ the lazy dog",
        ]
        assert log.virtual_size.height == 4
        assert screen(app)[1:4] == log.lines_text()[1:4]

    drive(body, size=(60, 8))


def test_resize_keeps_the_reader_on_the_same_entry() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(i, i, f"entry {i} " + "word " * 3) for i in range(40)])
        await pilot.pause()
        log.scroll_to(y=21, animate=False, immediate=True)  # one row per entry at 59 cells
        await pilot.pause()
        assert screen(app)[0].startswith("09:20 al │ entry 20 ")
        await pilot.resize_terminal(30, 8)  # 17 text cells: two rows per entry
        await pilot.pause()
        assert screen(app)[0].startswith("09:20 al │ entry 20")
        assert log.scroll_offset.y == 1 + 2 * 20

    drive(body, size=(60, 8))


def test_follows_at_the_end_and_stays_put_when_scrolled_up() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(20))  # 21 rows with the day line, 8 on screen
        await pilot.pause()
        assert log.scroll_offset.y == 13
        log.add(many(1, 20))
        await pilot.pause()
        assert log.scroll_offset.y == 14 and log.new_count == 0
        assert screen(app)[-1] == "09:20 al │ message 20"

        await pilot.press("pageup")
        await pilot.pause()
        top = log.scroll_offset.y
        assert top < 14
        before = screen(app)[:-1]
        log.add(many(3, 21) + [LogEntry(key="s", time=T0 + 30 * MINUTE, kind=EntryKind.SYSTEM, text="bo connected.")])
        await pilot.pause()
        assert log.scroll_offset.y == top, "the view must not move while the reader is scrolled up"
        assert log.new_count == 3, "system lines are not counted"
        rows = screen(app)
        assert rows[:-1] == before
        assert rows[-1].strip() == "↓ 3 new messages (End)"

        await pilot.press("end")
        await pilot.pause()
        assert log.new_count == 0
        assert log.scroll_offset.y == log.max_scroll_y == 18
        assert screen(app)[-1] == "09:30 -- │ bo connected."

    drive(body)


def presence(key: Hashable, minute: int, text: str) -> LogEntry:
    return LogEntry(key=key, time=T0 + minute * MINUTE, kind=EntryKind.PRESENCE, text=text)


def test_hidden_kinds_take_no_rows_and_the_view_stays_on_its_entry() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        # A presence line first on its day, then every other entry: hidden, the day line moves down.
        entries = [presence(("p", 0), 0, "bo connected.")]
        for i in range(1, 60):
            entries.append(msg(("m", i), i, f"message {i}") if i % 2 else presence(("p", i), i, f"bo left {i}."))
        log.add(entries)
        await pilot.pause()
        assert log.line_count == 61
        log.scroll_to(y=20, animate=False, immediate=True)   # the top row shows minute 19
        await pilot.pause()
        assert screen(app)[0] == "09:19 al │ message 19"
        log.set_hidden_kinds([EntryKind.PRESENCE])
        await pilot.pause()
        assert log.hidden_kinds == {EntryKind.PRESENCE}
        assert log.line_count == 31 and log.entry_count == 60
        assert log.lines_text()[:2] == [" " + DAY, "09:01 al │ message 1"]
        assert screen(app)[0] == "09:19 al │ message 19"
        # Arriving while hidden: kept, not shown; rows still map to the shown entries.
        log.add([presence("late", 70, "cy connected."), msg("last", 71, "the last")])
        await pilot.pause()
        assert "cy connected." not in "\n".join(log.lines_text())
        log.scroll_to_end()
        await pilot.pause()
        assert screen(app)[-1] == "10:11 al │ the last"
        # A hidden entry starts no day: the next shown one of that day does.
        log.add([presence("sun", 24 * 60, "cy left.")])
        log.add([msg("sun msg", 24 * 60 + 1, "sunday")])
        await pilot.pause()
        assert screen(app)[-2:] == ["  ──── Sunday, 29 November 2026 ────", "09:01 al │ sunday"]
        log.set_hidden_kinds([])
        await pilot.pause()
        assert log.line_count == 66
        assert "10:10 -- │ cy connected." in log.lines_text()
        assert screen(app)[-2:] == ["09:00 -- │ cy left.", "09:01 al │ sunday"]

    drive(body)


def test_new_count_drops_as_new_messages_scroll_into_view() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(20))
        await pilot.pause()
        log.scroll_to(y=0, animate=False, immediate=True)
        log.add(many(3, 20))
        await pilot.pause()
        assert log.new_count == 3
        # One row above the end: the last two messages are still at or under the marker row.
        log.scroll_to(y=log.max_scroll_y - 1, animate=False, immediate=True)
        await pilot.pause()
        assert log.new_count == 2
        assert screen(app)[-1].strip() == "↓ 2 new messages (End)"
        await pilot.press("down")
        await pilot.pause()
        assert log.new_count == 0
        assert screen(app)[-1] == "09:22 al │ message 22"

    drive(body)


def test_older_entries_added_above_keep_the_view_in_place() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(40, 100))
        await pilot.pause()
        log.scroll_to(y=10, animate=False, immediate=True)
        await pilot.pause()
        before = screen(app)
        assert before[0] == "10:49 al │ message 109"
        # A page from the previous day: 30 entries and one more day line above the view.
        log.add([msg(("old", i), i - 24 * 60, f"old {i}") for i in range(30)])
        await pilot.pause()
        assert log.scroll_offset.y == 10 + 31
        assert screen(app) == before
        assert log.new_count == 0
        assert log.lines_text()[0].strip() == "──── Friday, 27 November 2026 ────"

    drive(body)


def test_load_older_is_posted_once_per_arming_at_the_top() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(20, 100))
        await pilot.pause()
        await pilot.press("home")
        await pilot.pause()
        assert app.older == [], "has_older is False: nothing to ask for"

        await pilot.press("end")
        log.set_has_older(True)
        await pilot.pause()
        assert app.older == [], "not at the top"
        await pilot.press("home")
        await pilot.pause()
        assert len(app.older) == 1
        assert app.older[0].oldest is not None and app.older[0].oldest.key == ("m", 100)
        await pilot.press("end", "home")
        await pilot.pause()
        assert len(app.older) == 1, "posted once until re-armed"

        log.add(many(10, 50))  # the page arrives above: the view stays where it was
        log.set_has_older(True)
        await pilot.pause()
        # The day line on the top row moved up to the new first entry; its entry stays on top.
        assert screen(app)[0] == "10:40 al │ message 100"
        assert log.scroll_offset.y == 11 and len(app.older) == 1
        await pilot.press("home")
        await pilot.pause()
        assert len(app.older) == 2

    drive(body)


def test_replace_swaps_a_pending_entry_in_place() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(1, 0, "before"), msg(("p", 1), 1, "hello there", pending=True), msg(3, 2, "after")])
        await pilot.pause()
        assert log.lines_text()[2] == "09:01 al … hello there"
        log.replace(("p", 1), msg(("m", 9), 1, "hello there"))
        await pilot.pause()
        assert log.lines_text()[1:] == ["09:00 al │ before", "09:01 al │ hello there", "09:02 al │ after"]
        assert log.entry_count == 3
        log.add([msg(("p", 1), 5, "the old key is free again")])
        assert log.entry_count == 4

        # The sent message already arrived: replacing just drops the pending copy.
        log.add([msg(("p", 2), 6, "twice", pending=True), msg(("m", 10), 6, "twice")])
        log.replace(("p", 2), msg(("m", 10), 6, "twice"))
        await pilot.pause()
        assert log.entry_count == 5
        assert log.lines_text()[-1] == "09:06 al │ twice"

        log.replace(("m", 10), msg(("f", 10), 6, "twice", failed=True))
        await pilot.pause()
        assert log.lines_text()[-1] == "09:06 al ✗ twice"
        assert screen(app)[5] == "09:06 al ✗ twice"

    drive(body)


def test_selection_copies_the_selected_rows() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(1, 0, "hello world"), msg(2, 1, "second line")])
        await pilot.pause()
        assert log.get_selection(Selection(Offset(11, 1), Offset(16, 1))) == ("hello", "\n")
        assert log.get_selection(Selection(Offset(17, 1), Offset(17, 2))) == ("world\n09:01 al │ second", "\n")

    drive(body)


def test_clear_and_remove() -> None:
    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(3))
        assert log.remove_entry(("m", 1)) and not log.remove_entry(("m", 1))
        await pilot.pause()
        assert [row[-9:] for row in log.lines_text()[1:]] == ["message 0", "message 2"]
        log.clear()
        await pilot.pause()
        assert log.entry_count == 0 and log.lines_text() == [] and log.virtual_size.height == 0
        log.add(many(1))  # keys are free again
        assert log.entry_count == 1

    drive(body)


def test_nick_colours_are_stable_distinct_hues_readable_on_the_theme() -> None:
    """Colour by identity, the same in every run; the palette's hues at least 40 degrees apart (Bobby
    and Carol once got near-identical oranges, 20 degrees apart), each one contrasting with a dark
    and with a light background."""
    import colorsys

    from textual.theme import BUILTIN_THEMES

    hues = {nick_hue(bytes([i]) * 32) for i in range(200)}
    assert hues == set(range(len(NICK_HUES)))
    one = bytes([1]) * 32
    assert nick_style(one) == nick_style(bytes(one)) == "bold " + nick_colour(one)
    for dark in (True, False):
        colours = [nick_colour(bytes([i]) * 32, dark=dark) for i in range(200)]
        palette = sorted(set(colours))
        assert len(palette) == len(NICK_HUES)
        measured = sorted(colorsys.rgb_to_hls(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)))[0] * 360
                          for c in palette)
        gaps = [b - a for a, b in zip(measured, measured[1:], strict=False)] + [360 - measured[-1] + measured[0]]
        assert min(gaps) >= 39, (dark, measured)
        for name in ("textual-dark", "nord", "gruvbox", "dracula") if dark else ("textual-light", "solarized-light"):
            surface = BUILTIN_THEMES[name].to_color_system().generate()["surface"].lower()
            for colour in palette:
                assert contrast(colour, surface) >= 3.0, (name, colour)


@pytest.mark.slow
def test_ten_thousand_entries_add_and_rewrap_quickly() -> None:
    """The widget's own work; the numbers in the report came from this shape of data."""

    async def body(app: LogApp, log: MessageLog, pilot: Pilot[None]) -> None:
        entries = [msg(("m", i), i, f"message number {i} " * (1 + i % 8), name=f"user{i % 37}") for i in range(10_000)]
        log.add(entries[:1])
        await pilot.pause()
        started = time.perf_counter()
        log.add(entries[1:])
        added = time.perf_counter() - started
        await pilot.pause()
        await pilot.resize_terminal(90, 40)
        started = time.perf_counter()
        await pilot.pause()  # the Resize event re-wraps everything
        rewrapped = time.perf_counter() - started
        assert sum(row.startswith("07:39  user9 │ message number 9999") for row in log.lines_text()) == 1
        assert added < 0.3 and rewrapped < 0.3, (added, rewrapped)

    drive(body, size=(120, 40))
