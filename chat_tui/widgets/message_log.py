"""The chat message log: a line-API `ScrollView` of chat entries.

Modelled on Textual's `Log`: entries are kept as records with their row
count at the widget's width, and only the rows on screen are rendered (as
`Strip`s, cached per entry and width). A prefix sum of per-entry row counts maps a row
to its entry with one bisect, so a huge backlog opens at once and a resize
re-wraps in one linear pass. The records and their prefix sum (`LogRows`) and how one
entry is laid out and drawn are in `log_rows`; the text wrapping in `chat_tui.wrap`; the
count of new messages below the view and its bar, and the unread line, in `log_marker`; drawing
and copying a selection in `log_selection`; a search's matches in `log_search`. This widget keeps
the view: which row is on top, following the end, when the marker counts and shows.

Scrolling: at the end the view follows new entries; scrolled up it stays put,
counts new messages below it and shows ` ↓ N new messages (End) ` on its last
row. Reaching the top with `has_older` set posts `LoadOlder` once; older
entries added later keep the reader's top row in place. Reaching the end or leaving it posts
`AtEnd`. `set_read_line` draws the unread line above an entry (a row of its own); it posts
`ReadLineShown` each time it comes on screen.

Searching: `show_matches` draws a query's matches (the current one apart); `items`, `sender_name`,
`view_anchor`, `bottom_item`, `scroll_to_item` and `restore_view` are what a search needs of the
log, and `EntriesChanged` says when to match again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import ClassVar

from rich.style import Style
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget

from chat_tui.entries import EntryKind, LogEntry
from chat_tui.search import Query
from chat_tui.widgets.log_rows import (SEPARATOR_WIDTH, TIME_WIDTH, Block, Item, LogRows, local_day, render_block,
                                       shown_text)
from chat_tui.widgets.log_marker import ReadLine, Unseen
from chat_tui.widgets.log_names import Senders
from chat_tui.widgets.log_search import mark_matches
from chat_tui.widgets.log_selection import highlight, selected_text
from chat_tui.wrap import wrap_text

__all__ = ["MessageLog", "ViewAnchor"]

ViewAnchor = tuple[Item, int]
"""Where the view is (`MessageLog.view_anchor`): the item on its top row, and the row within it."""

class MessageLog(ScrollView, can_focus=True):
    """A scrolling log of chat entries, rendered line by line.

    All mutation goes through `add`, `replace`, `remove_entry`, `trim` and `clear`;
    `set_hidden_kinds` hides the entries of some kinds (they stay, taking no rows). Rows are
    wrapped at the widget's width once it is laid out; before that entries are
    only stored.
    """

    ALLOW_SELECT = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end", "scroll_to_end", "Newest", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-log--time",
        "message-log--separator",
        "message-log--system",
        "message-log--error",
        "message-log--day",
        "message-log--highlight",
        "message-log--highlight-name",
        "message-log--mention",
        "message-log--marker",
        "message-log--unread-line",
        "message-log--pending",
        "message-log--link",
        "message-log--match",
        "message-log--match-current",
    }
    DEFAULT_CSS = """
    MessageLog {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        /* Always shown: a scrollbar that comes and goes would change the
           width, re-wrap everything, and could flip back and forth. */
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        & > .message-log--time { color: $text-muted; }
        & > .message-log--separator { color: $text-muted; }
        & > .message-log--system { color: $text-muted; text-style: italic; }
        & > .message-log--error { color: $text-error; }
        & > .message-log--day { color: $text-muted; }
        & > .message-log--highlight { background: $warning 15%; }
        & > .message-log--highlight-name { background: $warning; color: $background; text-style: bold; }
        & > .message-log--mention { color: $text-warning; text-style: bold underline; }
        & > .message-log--marker { background: $accent; color: $text; text-style: bold; }
        & > .message-log--unread-line { color: $text-warning; }
        & > .message-log--pending { color: $text-muted; text-style: italic; }
        & > .message-log--link { color: $text-accent; text-style: underline; }
        /* Blue, not the mention's orange: a match is not a mention. */
        & > .message-log--match { background: $primary 45%; }
        & > .message-log--match-current { background: $primary; color: $text; text-style: bold underline; }
    }
    """

    end_key: str = "End"
    """The key named on the new-messages marker (an app whose focus stays elsewhere binds another)."""

    NAME_WIDTH_MIN: ClassVar[int] = 2
    """The name column fits the `--` and `!!` markers at least."""
    NAME_WIDTH_MAX: ClassVar[int] = 12
    """Longer names are truncated with `…` (an unnamed user's 16 hex digits too: the user list
    shows them whole)."""

    class _FromLog(Message):
        """A message the log posts about itself (``control`` is the log)."""

        def __init__(self, log: MessageLog) -> None:
            super().__init__()
            self.log = log

        @property
        def control(self) -> MessageLog:
            return self.log

    class LoadOlder(_FromLog):
        """The view reached the top and `has_older` is set: load a page of history.

        Posted at most once until `set_has_older` is called again.
        """

        def __init__(self, log: MessageLog, oldest: LogEntry | None) -> None:
            super().__init__(log)
            self.oldest = oldest
            """The oldest entry shown (page from before it), or None if empty."""

    class AtEnd(_FromLog):
        """The view reached the end (``at_end``) or left it."""

        def __init__(self, log: MessageLog, at_end: bool) -> None:
            super().__init__(log)
            self.at_end = at_end

    class ReadLineShown(_FromLog):
        """The unread line came on screen."""

    class EntriesChanged(_FromLog):
        """While matches are shown (`show_matches`): entries came, went or changed, or names did."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._rows = LogRows()
        self._senders = Senders(self.NAME_WIDTH_MIN, self.NAME_WIDTH_MAX)
        self._rows.name_of = self._senders.name
        self._width = 0  # the width the rows are wrapped at; 0 = not laid out yet
        self._following = True  # the reader is at the end: new entries scroll in
        self._unseen = Unseen()  # new messages below the view
        self._read_line = ReadLine()
        self._has_older = False
        self._older_armed = True
        # A few screens' worth: a bigger cache keeps many small Strip objects alive, and the
        # garbage collector's full passes over them showed up as 100-300 ms key-echo stalls.
        self._cache: LRUCache[tuple[object, ...], Block] = LRUCache(128)
        self._styles: dict[str, Style] = {}
        self._query: Query | None = None  # a search's matches are drawn
        self._current: Item | None = None  # the current match

    # ------------------------------------------------------------------ state

    @property
    def entry_count(self) -> int:
        """How many entries the log holds."""
        return len(self._rows.items)

    @property
    def new_count(self) -> int:
        """New messages below the view; 0 once the view reaches the end."""
        return len(self._unseen.items)

    @property
    def line_count(self) -> int:
        """Rows at the current width, the unread line's included (0 before the first layout)."""
        return self._rows.line_count + self._read_line.extra

    @property
    def following(self) -> bool:
        """The view is at the end (and follows new entries)."""
        return self._following

    @property
    def read_line_in_view(self) -> bool:
        """The unread line is on screen, or there is none to see."""
        return self._read_line.row is None or self._read_line.in_view(self.scroll_offset.y, self._view_height)

    @property
    def _text_width(self) -> int:
        # At least 2 cells so a wide character always fits a row of its own.
        return max(2, self._width - TIME_WIDTH - self._name_column - SEPARATOR_WIDTH)

    @property
    def _name_column(self) -> int:
        """The name column's width: the widest sender's name (see `add`, `set_names`), at most
        `NAME_WIDTH_MAX` and a quarter of a narrow view, so the text keeps room to breathe."""
        if not self._width:
            return self._senders.column
        room = (self._width - TIME_WIDTH - SEPARATOR_WIDTH) // 4
        return max(self.NAME_WIDTH_MIN, min(self._senders.column, room))

    @property
    def _view_height(self) -> int:
        # As `max_scroll_y` computes it; no screen lookup (render_line calls this).
        return self.container_size.height - self.scrollbar_size_horizontal

    @property
    def _bottom_row(self) -> int:
        """The log's row on the view's last row (where the new-messages marker shows)."""
        return self._read_line.to_log(self.scroll_offset.y + self._view_height - 1)

    @property
    def _view_width(self) -> int:
        return self.container_size.width - self.scrollbar_size_vertical

    # --------------------------------------------------------------- mutation

    def add(self, entries: Iterable[LogEntry]) -> None:
        """Add entries in any order; keys already present are skipped.

        Appending after the newest entry costs O(new); older entries (a history
        page) are merged in O(total) and keep the reader's view in place. At the
        end the view follows; scrolled up, new messages below count as unseen.
        """
        rows = self._rows
        new = rows.new_items(entries)
        if not new:
            return
        senders = self._senders
        # (An action's name is in its text: "* Alice waves".)
        name_width = senders.added(item.entry for item in new
                                   if item.entry.kind is EntryKind.MESSAGE and not item.entry.action)
        appending = not rows.items or new[0].sort >= rows.items[-1].sort

        if not self._width:  # not laid out: the first resize wraps everything
            senders.column = name_width
            rows.insert(new)
            return

        def mutate() -> None:
            if name_width != senders.column:
                # The text column moved: every entry re-wraps (rare: the name column
                # only ever grows, up to NAME_WIDTH_MAX, so the layout stays calm).
                senders.column = name_width
                rows.insert(new)
                self._rewrap_all()
            elif appending:
                rows.append(new, self._text_width)
            else:
                rows.insert(new)
                rows.reindex(self._text_width)

        following = self._following
        self._preserving_view(mutate)
        if not following:
            self._count_unseen(new)

    def replace(self, old_key: Hashable, entry: LogEntry) -> None:
        """Swap the entry `old_key` for `entry` (e.g. a pending message was sent).

        In place when the order allows, re-wrapping that entry only. If `old_key`
        is unknown this is `add([entry])`; if `entry.key` is already present
        (the sent message arrived first), the old entry is just removed.
        """
        rows = self._rows
        item = rows.by_key.get(old_key)
        if item is None:
            self.add([entry])
            return
        if entry.key != old_key and entry.key in rows.by_key:
            self.remove_entry(old_key)
            return
        index = rows.index(item)
        sort = (entry.time, item.seq)
        in_order = (index == 0 or rows.items[index - 1].sort <= sort) and (
            index == len(rows.items) - 1 or sort <= rows.items[index + 1].sort
        )
        same_day = local_day(entry.time // 1_000_000) == item.day
        fits = entry.kind is not EntryKind.MESSAGE or entry.action or self._senders.fits(entry)
        if not (in_order and same_day and fits):
            self.remove_entry(old_key)
            self.add([entry])
            return
        del rows.by_key[old_key]
        rows.by_key[entry.key] = item

        def mutate() -> None:
            item.entry, item.sort = entry, sort
            if self._width:
                height = len(wrap_text(shown_text(entry, self._senders.name(entry)), self._text_width))
                if height != item.rows:
                    item.rows = height
                    rows.restack(index)

        self._preserving_view(mutate)

    def remove_entry(self, key: Hashable) -> bool:
        """Remove the entry with `key`; False if there is none. O(total)."""
        item = self._rows.by_key.pop(key, None)
        if item is None:
            return False
        self._unseen.discard(item)

        def mutate() -> None:
            del self._rows.items[self._rows.index(item)]
            if self._width:
                self._rows.reindex(self._text_width)

        self._preserving_view(mutate)
        return True

    def trim(self, keep: int) -> list[LogEntry]:
        """Drop the oldest entries so that `keep` remain, if the view is at the end (scrolled
        back, nothing goes until the reader returns); returns the dropped ones, oldest first."""
        rows = self._rows
        extra = len(rows.items) - keep
        if extra <= 0 or not self._following:
            return []
        dropped = rows.items[:extra]

        def mutate() -> None:
            del rows.items[:extra]
            for item in dropped:
                rows.by_key.pop(item.entry.key, None)
            if self._width:
                rows.reindex(self._text_width)

        self._preserving_view(mutate)
        return [item.entry for item in dropped]

    def clear(self) -> None:
        """Remove every entry; `has_older` is reset too."""
        self._rows.clear()
        self._unseen.items.clear()
        self._cache.clear()
        self._senders.clear()
        self._has_older = False
        self._older_armed = True
        self._read_line.place(self._rows)
        self._set_following(True)
        if self._width:
            self.virtual_size = Size(self._width, 0)
            self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()
        self._entries_changed()

    def set_names(self, names: Mapping[bytes, str]) -> None:
        """The users' current display names by identity (``ChatState.names``, not yet visible):
        every message is drawn under its sender's name as it is now, so a rename shows at once
        on what they wrote before it."""
        name_width = self._senders.update(names)
        if name_width is None:
            return
        self._cache.clear()
        self._entries_changed()
        actions = any(item.entry.action for item in self._rows.items)  # their text holds the name
        if (name_width != self._senders.column or actions) and self._width:
            self._senders.column = name_width
            self._preserving_view(self._rewrap_all)
        else:
            self._senders.column = name_width
            self.refresh()

    @property
    def hidden_kinds(self) -> frozenset[EntryKind]:
        """The kinds of entry not shown (see `set_hidden_kinds`)."""
        return self._rows.hidden

    def set_hidden_kinds(self, kinds: Iterable[EntryKind]) -> None:
        """Show no entries of `kinds` (the others again): they stay in the log, the view keeps its place."""
        kinds = frozenset(kinds)
        if kinds == self._rows.hidden:
            return

        def mutate() -> None:
            self._rows.set_hidden(kinds)
            if self._width:
                self._rows.reindex(self._text_width)

        self._preserving_view(mutate)

    def set_has_older(self, value: bool) -> None:
        """Whether reaching the top should post `LoadOlder`; re-arms it.

        If the view is at the top already (e.g. the log is shorter than the
        screen) the message is posted at once, so pages keep coming until the
        screen is full or `value` is False.
        """
        self._has_older = value
        self._older_armed = True
        self._maybe_load_older()

    def set_read_line(self, key: Hashable | None) -> None:
        """Draw the unread line above the entry ``key`` (while it is in the log), or nowhere (None)."""
        if key == self._read_line.key:
            return

        def mutate() -> None:
            self._read_line.move(key)

        self._preserving_view(mutate)

    def scroll_to_end(self) -> None:
        """Jump to the newest entry and clear the new-messages marker."""
        self._unseen.items.clear()
        self._set_following(True)
        if self._width:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.refresh()

    def action_scroll_to_end(self) -> None:
        self.scroll_to_end()

    # --------------------------------------------------------------- search

    def show_matches(self, query: Query | None, current: Item | None = None) -> None:
        """Draw the matches of `query` (`message-log--match`), those in `current` apart
        (`message-log--match-current`); None draws none. Only rows on screen are drawn again."""
        if (query, current) != (self._query, self._current):
            self._query, self._current = query, current
            self.refresh()

    @property
    def items(self) -> list[Item]:
        """The entries with their layout, oldest first (hidden kinds too: ``Item.shown``); read only."""
        return self._rows.items

    def sender_name(self, entry: LogEntry) -> str:
        """The name a message is drawn under (not yet visible)."""
        return self._senders.name(entry)

    def view_anchor(self) -> ViewAnchor | None:
        """Where the view is, for `restore_view`; None while it follows the end."""
        anchor = None if self._following else self._anchor()
        return None if anchor is None else (anchor[0], anchor[1])

    def restore_view(self, anchor: ViewAnchor | None) -> None:
        """Back to `anchor` (`view_anchor`): to the end if None or its entry is gone."""
        index = -1 if anchor is None else self._rows.index(anchor[0])
        if anchor is None or index < 0 or not self._width:
            self.scroll_to_end()
            return
        item, row = anchor
        start = self._rows.start(index)
        y = self._read_line.to_view(start + item.header + min(row, max(0, item.rows - 1)))
        self.scroll_to(y=y, animate=False, immediate=True)

    def bottom_item(self) -> Item | None:
        """The entry on the view's last row; None while the view follows the end."""
        if self._following or not self._width or not self.line_count:
            return None
        return self._rows.items[self._rows.at(min(self._bottom_row, self._rows.line_count - 1))]

    def scroll_to_item(self, item: Item) -> None:
        """Bring `item` into view (centred, unless it is in view already); the view stops following."""
        index = self._rows.index(item)
        if index < 0 or not self._width or not item.shown:
            return
        first = self._read_line.to_view(self._rows.start(index) + item.header)
        top, height = self.scroll_offset.y, self._view_height
        if top <= first and first + item.rows <= top + height:
            return
        y = max(0, first - max(0, (height - item.rows) // 2))
        self.scroll_to(y=min(y, self.max_scroll_y), animate=False, immediate=True)

    def _entries_changed(self) -> None:
        if self._query is not None:
            self.post_message(self.EntriesChanged(self))

    def lines_text(self) -> list[str]:
        """The plain text of every row at the current width (trailing spaces cut)."""
        if not self._width:
            return []
        lines: list[str] = []
        for item in self._rows.items:
            if item.shown:
                lines.extend(self._block(item)[0])
        if self._read_line.row is not None:
            lines.insert(self._read_line.row, self._read_line.text(self._width).rstrip())
        return lines

    # ----------------------------------------------------------- bookkeeping

    def _rewrap_all(self) -> None:
        self._cache.clear()
        self._rows.rewrap(self._text_width)

    def _anchor(self) -> tuple[Item, int, bool] | None:
        """The item on the view's top row, the text row within it shown there, and whether the
        top row is the unread line (above that item)."""
        rows = self._rows
        if not rows.items or not rows.ends:
            return None
        top = self.scroll_offset.y
        y = self._read_line.to_log(top)
        index = min(rows.at(y), len(rows.items) - 1)
        item = rows.items[index]
        return item, y - rows.start(index) - item.header, top == self._read_line.row

    def _preserving_view(self, mutate: Callable[[], None]) -> None:
        """Run `mutate`, then keep the view at the end or on the same top row."""
        anchor = None if self._following else self._anchor()
        mutate()
        read_line = self._read_line
        read_line.place(self._rows)
        self._entries_changed()
        if not self._width:
            return
        self._set_virtual_size(Size(self._width, self.line_count))
        if self._following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        elif anchor is not None and (index := self._rows.index(anchor[0])) >= 0:
            item, row, on_line = anchor
            start = self._rows.start(index)
            y = read_line.to_view(max(start, start + item.header + min(row, item.rows - 1)))
            if on_line and read_line.key == item.entry.key and read_line.row is not None:
                y = read_line.row   # the line stays the top row
            self.scroll_to(y=y, animate=False, immediate=True)
        self._check_read_line()
        self.refresh()

    def _set_virtual_size(self, size: Size) -> None:
        """Like assigning `virtual_size`, without the layout pass that assignment triggers: the
        vertical scrollbar is always shown, so a taller log never changes the layout, and a
        whole-screen layout per arriving message cost most of the app's time under load."""
        if size != self.virtual_size:
            self.set_reactive(Widget.virtual_size, size)
            self._scroll_update(size)

    def _count_unseen(self, new: list[Item]) -> None:
        if self._unseen.arrived(new, self._rows, self._bottom_row):
            self.refresh()

    def _update_unseen(self) -> None:
        """Forget unseen messages that scrolled into view (every one, at the end)."""
        if self._unseen.items and self._unseen.seen(self._rows, None if self._following else self._bottom_row):
            self.refresh()

    def _set_following(self, following: bool) -> None:
        if following != self._following:
            self._following = following
            self.post_message(self.AtEnd(self, following))

    def _check_read_line(self) -> None:
        if self._read_line.came_into_view(self.scroll_offset.y, self._view_height):
            self.post_message(self.ReadLineShown(self))

    def _maybe_load_older(self) -> None:
        if self._has_older and self._older_armed and self._width and self.scroll_offset.y == 0:
            self._older_armed = False
            self.post_message(self.LoadOlder(self, self._rows.items[0].entry if self._rows.items else None))

    # ------------------------------------------------------------ events

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._width:
            return
        self._set_following(self.scroll_offset.y >= self.max_scroll_y)
        self._update_unseen()
        self._check_read_line()
        self._maybe_load_older()

    def _on_resize(self, event: Resize) -> None:
        width = self._view_width
        if width <= 0:
            return
        if width != self._width:
            first = not self._width
            self._width = width

            def mutate() -> None:
                self._rewrap_all()

            self._preserving_view(mutate)
            if first:
                self._maybe_load_older()
        elif self._following:
            # Only the height changed: a shorter view must still show the end.
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self._update_unseen()
        self._check_read_line()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._cache.clear()

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()

    # ------------------------------------------------------------ rendering

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self.rich_style if name == "base" else self.get_component_rich_style(name)
            self._styles[name] = style
        return style

    def _block(self, item: Item) -> Block:
        query, current = self._query, item is self._current
        key = (item.entry, item.header, self._width, self._name_column, query, current)
        block = self._cache.get(key)
        if block is None:
            entry = item.entry
            if entry.kind is EntryKind.MESSAGE:
                name, nick = self._senders.name(entry), self._senders.nick(entry, self.app.current_theme.dark)
            else:
                name, nick = "", None
            block = render_block(entry, item.header, self._width, self._name_column, self._text_width,
                                 self._style, name, nick)
            if query is not None:
                style = self._style("message-log--match-current" if current else "message-log--match")
                block = mark_matches(block, entry, item.header, query, style, name, self._name_column,
                                     self._text_width)
            self._cache[key] = block
        return block

    def render_line(self, y: int) -> Strip:
        """Render the view's row `y`: the marker bar, or a row of an entry."""
        width = self.size.width
        base = self.rich_style
        if self._unseen.items and not self._following and y == self._view_height - 1:
            return self._unseen.strip(width, self.end_key, self._style("message-log--marker"))
        line = self.scroll_offset.y + y
        if not self._width or line >= self.line_count:
            return Strip.blank(width, base)
        if line == self._read_line.row:
            strip = self._read_line.strip(self._width, self._style("message-log--unread-line"))
        else:
            rows = self._rows
            at = self._read_line.to_log(line)
            index = rows.at(at)
            strip = self._block(rows.items[index])[1][at - rows.start(index)]
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(line)) is not None:
            strip = highlight(strip, span, self.screen.get_component_rich_style("screen--selection"), self.app.console)
        return strip.crop_extend(0, width, base).apply_offsets(0, line)

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected text; only the selected rows are built."""
        if not self._width or not self._rows.items:
            return None
        return selected_text(selection, self.line_count, self._row_text)

    def _row_text(self, line: int) -> str:
        """The plain text of row ``line`` (< ``line_count``)."""
        if line == self._read_line.row:
            return self._read_line.text(self._width).rstrip()
        rows = self._rows
        at = self._read_line.to_log(line)
        index = rows.at(at)
        return self._block(rows.items[index])[0][at - rows.start(index)]
