"""MessageLog's unread line: a row of its own above an entry, only while that entry is shown; the
log's rows, the view and the new-messages count stay right around it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.geometry import Offset
from textual.pilot import Pilot
from textual.selection import Selection

from chat_tui.widgets.message_log import MessageLog

from .test_message_log import DAY, LogApp, drive as log_drive, many, msg, presence, screen, utc  # noqa: F401  (utc: autouse)

LINE = " unread ".center(39, "─")   # 39 content cells at 40 columns


class RecordingApp(LogApp):
    def __init__(self) -> None:
        super().__init__()
        self.at_end: list[bool] = []
        self.shown = 0

    def on_message_log_at_end(self, message: MessageLog.AtEnd) -> None:
        self.at_end.append(message.at_end)

    def on_message_log_read_line_shown(self) -> None:
        self.shown += 1


def drive(body: Callable[[RecordingApp, MessageLog, Pilot[None]], Awaitable[None]],
          size: tuple[int, int] = (40, 8)) -> None:
    log_drive(body, size, RecordingApp)


def test_the_line_takes_a_row_above_its_entry_only_while_the_entry_is_there() -> None:
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(4))
        log.set_read_line(("m", 9))   # not in the log yet (the feed shows entries a moment later)
        await pilot.pause()
        assert log.line_count == 5 and LINE not in log.lines_text()
        log.add(many(2, 8))
        await pilot.pause()
        expected = [" " + DAY, "09:00 al │ message 0", "09:01 al │ message 1", "09:02 al │ message 2",
                    "09:03 al │ message 3", "09:08 al │ message 8", LINE, "09:09 al │ message 9"]
        assert log.lines_text() == expected and log.line_count == 8
        assert screen(app) == expected, "the screen shows what the rows say"
        # Selecting across the line copies it as drawn.
        assert log.get_selection(Selection(Offset(11, 5), Offset(8, 7))) == (
            "message 8\n" + LINE + "\n09:09 al", "\n")
        log.set_read_line(("m", 1))
        await pilot.pause()
        assert log.lines_text()[1:4] == ["09:00 al │ message 0", LINE, "09:01 al │ message 1"]
        assert log.lines_text().count(LINE) == 1
        log.set_read_line(None)
        await pilot.pause()
        assert LINE not in log.lines_text() and log.line_count == 7

    drive(body)


def test_the_line_goes_above_the_day_line_and_follows_wrapping_and_resizing() -> None:
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(1, 0, "before"), msg(2, 24 * 60, "the quick brown fox jumps over the lazy dog")])
        log.set_read_line(2)
        await pilot.pause()
        assert log.lines_text() == [
            " " + DAY,
            "09:00 al │ before",
            LINE,
            "  ──── Sunday, 29 November 2026 ────",
            "09:00 al │ the quick brown fox jumps",
            "         │ over the lazy dog",
        ]
        await pilot.resize_terminal(30, 8)   # 18 text cells: three rows
        await pilot.pause()
        rows = log.lines_text()
        assert rows[2] == " unread ".center(29, "─")
        assert rows[4:] == ["09:00 al │ the quick brown", "         │ fox jumps over the", "         │ lazy dog"]
        assert log.line_count == len(rows) == 7
        shown = screen(app)   # (the day lines are wider than the view: cut)
        assert shown[1:3] == rows[1:3] and shown[4:7] == rows[4:]

    drive(body)


def test_a_scrolled_up_view_stays_put_as_the_line_and_older_pages_come_above() -> None:
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(40, 100))
        await pilot.pause()
        log.scroll_to(y=20, animate=False, immediate=True)
        await pilot.pause()
        before = screen(app)
        assert before[0] == "10:59 al │ message 119"
        log.set_read_line(("m", 105))   # above the view
        await pilot.pause()
        assert screen(app) == before and log.scroll_offset.y == 21
        # Older history inserted above: 30 entries and their day line.
        log.add([msg(("old", i), i - 24 * 60, f"old {i}") for i in range(30)])
        await pilot.pause()
        assert screen(app) == before and log.scroll_offset.y == 21 + 31
        # With the line itself on the top row, it stays the top row.
        log.scroll_to(y=log.lines_text().index(LINE), animate=False, immediate=True)
        await pilot.pause()
        assert screen(app)[:2] == [LINE, "10:45 al │ message 105"]
        log.add([msg(("older", i), i - 2 * 24 * 60, f"older {i}") for i in range(5)])
        await pilot.pause()
        assert screen(app)[:2] == [LINE, "10:45 al │ message 105"]
        # And it leaves a row behind when it goes.
        log.set_read_line(None)
        await pilot.pause()
        assert screen(app)[0] == "10:45 al │ message 105"

    drive(body)


def test_hidden_entries_and_the_trim_keep_the_rows_right() -> None:
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add([msg(("m", 0), 0, "message 0"), presence("p1", 1, "bo connected."), msg(("m", 2), 2, "message 2"),
                 presence("p3", 3, "cy connected."), msg(("m", 4), 4, "message 4")])
        log.set_read_line(("m", 2))
        await pilot.pause()
        assert log.lines_text()[3:5] == [LINE, "09:02 al │ message 2"]
        log.set_hidden_kinds(["presence"])  # type: ignore[list-item]  # EntryKind is a StrEnum
        await pilot.pause()
        assert log.lines_text() == [" " + DAY, "09:00 al │ message 0", LINE, "09:02 al │ message 2",
                                    "09:04 al │ message 4"]
        assert screen(app)[:5] == log.lines_text()
        log.set_hidden_kinds([])
        await pilot.pause()
        assert log.lines_text()[3:5] == [LINE, "09:02 al │ message 2"] and log.line_count == 7
        # The trim drops the entry under the line: the line goes with it.
        log.add(many(3, 10))
        log.trim(4)
        await pilot.pause()
        assert LINE not in log.lines_text() and log.line_count == len(log.lines_text()) == 5
        assert screen(app)[:5] == log.lines_text()

    drive(body)


def test_new_messages_below_are_counted_past_the_line() -> None:
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(20))
        await pilot.pause()
        log.scroll_to(y=0, animate=False, immediate=True)
        log.set_read_line(("m", 20))
        log.add(many(3, 20))
        await pilot.pause()
        assert log.new_count == 3
        assert log.lines_text()[-4:] == [LINE, "09:20 al │ message 20", "09:21 al │ message 21",
                                         "09:22 al │ message 22"]
        # Two rows above the end: the bar covers message 20's row, the line is just above it.
        log.scroll_to(y=log.max_scroll_y - 2, animate=False, immediate=True)
        await pilot.pause()
        assert log.new_count == 3
        assert screen(app)[-2:] == [LINE, "↓ 3 new messages (End)".center(39).rstrip()]
        # One row down: message 20 is seen, the bar covers message 21's row.
        log.scroll_to(y=log.max_scroll_y - 1, animate=False, immediate=True)
        await pilot.pause()
        assert log.new_count == 2
        assert screen(app)[-2] == "09:20 al │ message 20"
        await pilot.press("end")
        await pilot.pause()
        assert log.new_count == 0 and screen(app)[-4] == LINE

    drive(body)


def test_leaving_the_end_and_seeing_the_line_are_posted() -> None:
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(30))
        await pilot.pause()
        assert app.at_end == [] and log.following
        await pilot.press("pageup")
        await pilot.pause()
        assert app.at_end == [False] and not log.following
        log.set_read_line(("m", 30))
        log.add(many(2, 30))   # below the view
        await pilot.pause()
        assert app.shown == 0 and not log.read_line_in_view
        await pilot.press("end")
        await pilot.pause()
        assert app.at_end == [False, True] and app.shown == 1 and log.read_line_in_view
        log.add(many(1, 40))   # still on screen: not posted again
        await pilot.pause()
        assert app.shown == 1
        await pilot.press("pageup", "pageup", "pageup", "end")
        await pilot.pause()
        assert app.shown == 2, "posted each time it comes on screen"

    drive(body)


def test_a_search_jump_and_its_way_back_count_the_line_row() -> None:
    """The search's view hooks (``scroll_to_item``, ``view_anchor``/``restore_view``) in widget rows:
    with the line above, the entry jumped to is on screen, and the view comes back to its top row."""
    async def body(app: RecordingApp, log: MessageLog, pilot: Pilot[None]) -> None:
        log.add(many(30))
        log.set_read_line(("m", 3))
        await pilot.pause()
        log.scroll_to(y=8, animate=False, immediate=True)   # below the line: widget row = log row + 1
        await pilot.pause()
        anchor = log.view_anchor()
        top = screen(app)[0]
        target = next(it for it in log.items if it.entry.key == ("m", 25))
        log.scroll_to_item(target)
        await pilot.pause()
        assert any("message 25" in row for row in screen(app))
        log.restore_view(anchor)
        await pilot.pause()
        assert screen(app)[0] == top

    drive(body)
