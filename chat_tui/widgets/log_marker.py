"""The markers of ``MessageLog``; no widget here: the log says where its view is and when to redraw.

``Unseen``: the messages that arrived below the view while the reader was scrolled up, in display
order, and the bar on the view's last row that counts them.

``ReadLine``: the unread line, a row of its own above the first unread entry (``chat_tui.unread``
says which), and the mapping between the widget's rows (with that row) and ``LogRows``' (without).
It takes a row only while its entry is in the log and shown::

    12:01     alice │ still here?
    ──────────────────────────── unread ─────────────────────────────
    12:07       bob │ back now
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterable

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from chat_tui.entries import EntryKind
from chat_tui.widgets.log_rows import Item, LogRows, sort_key


def first_hidden(rows: LogRows, bottom: int) -> tuple[int, int] | None:
    """The sort key of the first item that starts at row ``bottom`` (the row the marker covers)
    or later, or None if there is none."""
    # ends[k] >= bottom first at k, so items[k + 1] is the first to start at or below it.
    index = 0 if bottom <= 0 else bisect_left(rows.ends, bottom) + 1
    return rows.items[index].sort if index < len(rows.items) else None


class Unseen:
    """New messages below the view, sorted. ``bottom`` is always the row of the log on the view's
    last row, under the marker; the methods that return True changed what the marker says (the
    caller redraws)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Item] = []

    def arrived(self, new: Iterable[Item], rows: LogRows, bottom: int) -> bool:
        """Count the messages among ``new`` (sorted, in ``rows``) that are below the view."""
        threshold = first_hidden(rows, bottom)
        if threshold is None:
            return False
        fresh = [it for it in new if it.entry.kind is EntryKind.MESSAGE and it.sort >= threshold]
        if not fresh:
            return False
        self.items.extend(fresh)
        self.items.sort(key=sort_key)
        return True

    def seen(self, rows: LogRows, bottom: int | None) -> bool:
        """Forget those now in view (``bottom`` None: every one, the view follows the end)."""
        items = self.items
        threshold = None if bottom is None else first_hidden(rows, bottom)
        count = len(items) if threshold is None else bisect_left(items, threshold, key=sort_key)
        if count:
            del items[:count]
        return count > 0

    def discard(self, item: Item) -> None:
        """Forget ``item`` (removed from the log), if it is counted."""
        if item in self.items:
            self.items.remove(item)

    def strip(self, width: int, end_key: str, style: Style) -> Strip:
        """The marker bar, ``width`` cells in ``style``: `` ↓ N new messages (End) `` centred."""
        count = len(self.items)
        label = f" ↓ {count} new message{'s' if count != 1 else ''} ({end_key}) "
        return Strip([Segment(label.center(width), style)]).crop_extend(0, width, style)


class ReadLine:
    """The unread line: drawn above the entry ``key`` on the widget's row ``row`` (None: not drawn).
    Widget rows above ``row`` are the log's rows, those below it one more; ``place`` after any change
    to the rows."""

    __slots__ = ("key", "row", "_was_in_view")

    LABEL = " unread "

    def __init__(self) -> None:
        self.key: Hashable | None = None
        self.row: int | None = None
        self._was_in_view = False

    @property
    def extra(self) -> int:
        """The rows the line takes: 1 while drawn, else 0."""
        return 0 if self.row is None else 1

    def move(self, key: Hashable | None) -> None:
        """Draw the line above the entry ``key`` from now on (None: nowhere); ``place`` next."""
        self.key = key
        self._was_in_view = False

    def place(self, rows: LogRows) -> None:
        """Find the line's row again: where its entry starts (above its day line, if any)."""
        item = rows.by_key.get(self.key) if self.key is not None else None
        index = rows.index(item) if item is not None and item.shown and rows.ends else -1
        self.row = rows.start(index) if index >= 0 else None

    def to_log(self, line: int) -> int:
        """The log row shown on widget row ``line`` (the line's own row: the entry's first row)."""
        return line - 1 if self.row is not None and line > self.row else line

    def to_view(self, line: int) -> int:
        """The widget row showing log row ``line``."""
        return line + 1 if self.row is not None and line >= self.row else line

    def in_view(self, top: int, height: int) -> bool:
        """Whether the line is on one of the ``height`` rows from ``top``."""
        return self.row is not None and top <= self.row < top + height

    def came_into_view(self, top: int, height: int) -> bool:
        """True once each time the line comes on screen (it was not, at the previous call)."""
        now = self.in_view(top, height)
        came, self._was_in_view = now and not self._was_in_view, now
        return came

    def text(self, width: int) -> str:
        """The line's plain text, ``width`` cells: `──── unread ────` across the whole row."""
        return self.LABEL.center(width, "─")

    def strip(self, width: int, style: Style) -> Strip:
        """The line, ``width`` cells in ``style``."""
        return Strip([Segment(self.text(width), style)], width)
