"""The new-messages marker of ``MessageLog``: the messages that arrived below the view while the
reader was scrolled up, in display order, and the bar on the view's last row that counts them.
No widget here: the log says where its view ends and when to redraw."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

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
