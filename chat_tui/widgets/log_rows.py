"""The rows of ``MessageLog``: each entry's local day, height and strips (``Item``, ``render_block``),
and all of them in order with a prefix sum of their heights (``LogRows``). No widget here.

Layout (the name column is as wide as the widest sender's name, capped by the widget;
longer names are cut with `…`)::

    ──── Saturday, 28 November 2026 ────                      (each new local date, centred)
    12:01     alice │ hello there, this is a long message
                    │ that wraps to the text column
    12:02       bob │ hi
    12:03        -- │ Alice renamed to Al.                    (system: dim italic)
    12:04        !! │ Failed to set name to "": ...           (error: red)
    12:05     alice … typed while offline                     (pending: dim italic)
    12:05     alice ✗ could not be sent                       (failed: red marker)
    12:06       bob │ alice: look at this                     (a mention: the row tinted, the
                                                               name and the mention highlighted)
    12:06           │ * alice waves                           (an action: /me waves)

Names and texts are someone else's: they are drawn only as `db_core.visible`
makes them (a control or invisible character shown as `␛` or `<U+202E>`, a
message's newlines kept, a system or error line kept on one line), and only as
plain segments, never parsed as markup.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache
from itertools import accumulate

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from chat_tui.entries import ACTION_PREFIX, EntryKind, LogEntry
from chat_tui.wrap import fit_name, wrap_text
from db_core.visible import visible

TIME_WIDTH = 6  # "HH:MM "
SEPARATOR_WIDTH = 3  # " │ "

Block = tuple[list[str], list[Strip]]
"""Plain text and rendered rows of one item."""


def shown_text(entry: LogEntry, name: str = "") -> str:
    """What `wrap_text` is given for an entry: only a message keeps its line breaks; an action
    (``/me waves``) reads ``* name waves``, with the sender's current ``name`` if given."""
    if entry.kind is not EntryKind.MESSAGE:
        return visible(entry.text)
    if entry.action:
        return f"* {visible(name or entry.name)} {entry.text[len(ACTION_PREFIX):]}"
    return entry.text


# (time.tzname when computed, first second, end second, day number) of the last
# local day looked up. Entries mostly arrive in time order, so one cached day
# saves a localtime() call per entry (slow when glibc re-checks /etc/localtime).
_day_cache: tuple[object, int, int, int] = ((), 0, 0, 0)


def local_day(seconds: int) -> int:
    """A number naming the local date of `seconds` since the epoch (year * 1000 + day of year)."""
    global _day_cache
    zone, first, end, day = _day_cache
    if first <= seconds < end and zone is time.tzname:  # tzset() makes a new tzname tuple
        return day
    local = time.localtime(seconds)
    day = local.tm_year * 1000 + local.tm_yday
    midnight = (local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1)
    first = int(time.mktime(midnight))
    end = int(time.mktime((*midnight[:2], local.tm_mday + 1, *midnight[3:])))  # mktime normalises the day
    if first <= seconds < end:  # not so around odd DST rules: then just don't cache
        _day_cache = (time.tzname, first, end, day)
    return day


class Item:
    """An entry plus what the log knows about it at the current layout."""

    __slots__ = ("entry", "seq", "sort", "day", "rows", "header", "shown", "search_for", "search_text")

    def __init__(self, entry: LogEntry, seq: int, shown: bool = True) -> None:
        self.entry = entry
        self.seq = seq
        self.sort = (entry.time, seq)  # time, then insertion order
        self.day = local_day(entry.time // 1_000_000)
        self.rows = 0  # wrapped text rows at the current width; 0 = not wrapped yet
        self.header = False  # a day-change row comes first
        self.shown = shown  # False: its kind is filtered out, it takes no rows
        self.search_text = ""
        """What ``chat_tui.search`` matches it by, made on first use for ``search_for``."""
        self.search_for: object = None

    @property
    def height(self) -> int:
        return self.rows + self.header if self.shown else 0


def sort_key(item: Item) -> tuple[int, int]:
    return item.sort


@lru_cache(maxsize=64)
def _word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def _marked(text: str, style: Style, word: str, word_style: Style) -> list[Segment]:
    """`text` as segments, each whole-word occurrence of `word` (in any case) in `word_style`."""
    if not word or word.casefold() not in text.casefold():
        return [Segment(text, style)]
    out: list[Segment] = []
    at = 0
    for found in _word(word).finditer(text):
        if found.start() > at:
            out.append(Segment(text[at:found.start()], style))
        out.append(Segment(found.group(), word_style))
        at = found.end()
    if at < len(text):
        out.append(Segment(text[at:], style))
    return out


# A web address in a message: drawn as a link (OSC 8, which Textual writes for a style's ``link``:
# a terminal that knows it opens the address on click, one that does not shows the style).
_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]")


def _url_spans(rows: list[str], text: str) -> list[list[tuple[int, int, str]]]:
    """Per wrapped row of ``text``: (start, end, address) of each link piece on it. An address cut
    by the wrap links every piece of it to the whole address."""
    urls = [m.group() for m in _URL.finditer(text)]
    if not urls:
        return [[] for _ in rows]
    out: list[list[tuple[int, int, str]]] = []
    rest, whole = "", ""  # the part of an address not drawn yet, and the address
    for row in rows:
        spans: list[tuple[int, int, str]] = []
        at = 0
        if rest:
            n = 0
            while n < len(row) and n < len(rest) and row[n] == rest[n]:
                n += 1
            if n:
                spans.append((0, n, whole))
            rest, at = rest[n:], n
        for m in _URL.finditer(row, at):
            piece = m.group()
            whole = next((u for u in urls if u.startswith(piece)), piece)
            spans.append((m.start(), m.end(), whole))
            rest = whole[len(piece):] if m.end() == len(row) else ""
        out.append(spans)
    return out


def _linked(body: list[Segment], spans: list[tuple[int, int, str]], link: Style) -> list[Segment]:
    """``body`` (one row's text as segments) with the characters in ``spans`` also in ``link``
    and linked to their address."""
    if not spans:
        return body
    out: list[Segment] = []
    at = 0
    for seg in body:
        text, style = seg.text, seg.style or Style()
        end = at + len(text)
        cut = at
        for start, stop, url in spans:
            lo, hi = max(start, at), min(stop, end)
            if lo >= hi:
                continue
            if lo > cut:
                out.append(Segment(text[cut - at:lo - at], style))
            out.append(Segment(text[lo - at:hi - at], style + link + Style(link=url)))
            cut = hi
        if cut < end:
            out.append(Segment(text[cut - at:], style))
        at = end
    return out


def render_block(entry: LogEntry, header: bool, width: int, name_column: int, text_width: int,
                 style: Callable[[str], Style], name: str = "", nick: Style | None = None) -> Block:
    """Plain text and full-width strips of one entry's rows; `style` maps a component class
    (or "base", the widget's own) to its Rich style. A message is drawn under `name` (the sender's
    current name, not yet visible; else the entry's own) in `nick` (the sender's colour)."""
    base = style("base")
    tint: Style | None = None
    if entry.highlight:
        tint = Style(bgcolor=style("message-log--highlight").bgcolor)
        base += tint
    plain: list[str] = []
    rows: list[list[Segment]] = []

    if header:
        local = time.localtime(entry.time // 1_000_000)
        label = f"──── {time.strftime('%A', local)}, {local.tm_mday} {time.strftime('%B %Y', local)} ────"
        line = " " * max(0, (width - cell_len(label)) // 2) + label
        plain.append(line)
        rows.append([Segment(line, style("message-log--day"))])

    time_text = time.strftime("%H:%M", time.localtime(entry.time // 1_000_000)) + " "
    separator = style("message-log--separator")
    marker, marker_style = "│", separator
    if entry.kind is EntryKind.SYSTEM or entry.kind is EntryKind.PRESENCE:
        label, label_style = "--", style("message-log--system")
        text_style = label_style
    elif entry.kind is EntryKind.ERROR:
        label, label_style = "!!", style("message-log--error")
        text_style = label_style
    else:
        label = visible(name or entry.name)
        label_style = style("message-log--highlight-name") if entry.highlight else base + (nick or Style())
        text_style = base
        if entry.action:
            label = ""   # the name starts the text: "* Alice waves"
        if entry.failed:
            marker, marker_style = "✗", style("message-log--error")
        elif entry.pending:
            marker, marker_style = "…", style("message-log--pending")
            text_style = style("message-log--pending")
    label = fit_name(label, name_column)
    pad = " " * (len(label) - len(label.lstrip(" ")))  # right-aligned: only the name itself is styled
    indent = " " * (TIME_WIDTH + name_column + 1)

    shown = shown_text(entry, name)
    wrapped = wrap_text(shown, text_width)
    links = _url_spans(wrapped, shown) if entry.kind is EntryKind.MESSAGE else [[] for _ in wrapped]
    link_style = style("message-log--link")
    for number, text in enumerate(wrapped):
        if number == 0:
            head = [
                Segment(time_text, style("message-log--time")),
                Segment(pad, base),
                Segment(label[len(pad):], label_style),
                Segment(" ", base),
                Segment(marker, marker_style),
            ]
            line = f"{time_text}{label} {marker} {text}"
        else:
            head = [Segment(indent, base), Segment("│", separator)]
            line = f"{indent}│ {text}"
        body = (_marked(text, text_style, entry.mention, base + style("message-log--mention")) if entry.highlight
                else [Segment(text, text_style)])
        if number == 0 and entry.action:
            # "* Alice waves": the name in its colour, as in the name column.
            shown = visible(name or entry.name)
            if text.startswith(f"* {shown}"):
                body = [Segment("* ", text_style), Segment(shown, text_style + (nick or Style())),
                        Segment(text[2 + len(shown):], text_style)]
        rows.append([*head, Segment(" ", base), *_linked(body, links[number], link_style)])
        plain.append(line.rstrip())

    strips: list[Strip] = []
    for segments in rows:
        used = Segment.get_line_length(segments)
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        if tint is not None:
            # Over every segment but the highlighted name, which keeps its own background.
            segments = [seg if seg.style is label_style else Segment(seg.text, (seg.style or Style()) + tint)
                        for seg in segments]
        strips.append(Strip(segments, max(used, width)))
    return plain, strips



class LogRows:
    """The log's items in display order (time, then arrival) and the prefix sum of their heights
    at the current text width, so a row maps to its item with one bisect. Plain data: the widget
    chooses the width, keeps the view and renders.

    Items of a ``hidden`` kind stay in order but take no rows (nor a day line): a bisect never
    lands on them, and showing them again is a ``reindex``."""

    __slots__ = ("items", "ends", "by_key", "hidden", "name_of", "_seq")

    def __init__(self) -> None:
        self.items: list[Item] = []  # sorted by (time, seq)
        self.ends: list[int] = []  # ends[i]: rows of items 0..i; empty until laid out
        self.by_key: dict[Hashable, Item] = {}
        self.hidden: frozenset[EntryKind] = frozenset()
        self.name_of: Callable[[LogEntry], str] = lambda entry: entry.name
        """The name an entry is drawn under (the widget's current names): an action's text holds it."""
        self._seq = 0

    @property
    def line_count(self) -> int:
        return self.ends[-1] if self.ends else 0

    def new_items(self, entries: Iterable[LogEntry]) -> list[Item]:
        """Items for the entries whose keys are new (now registered), sorted: the caller places
        them with ``append``, ``merge`` or ``insert``."""
        by_key, seq, hidden = self.by_key, self._seq, self.hidden
        new: list[Item] = []
        for entry in entries:
            if entry.key in by_key:
                continue
            item = by_key[entry.key] = Item(entry, seq, entry.kind not in hidden)
            seq += 1
            new.append(item)
        self._seq = seq
        new.sort(key=sort_key)
        return new

    def insert(self, new: list[Item]) -> None:
        """Place sorted `new` items without laying them out (the caller reindexes or rewraps)."""
        appending = not self.items or new[0].sort >= self.items[-1].sort
        self.items.extend(new)
        if not appending:
            self.items.sort(key=sort_key)  # Timsort merges the two sorted runs in linear time

    def append(self, new: list[Item], text_width: int) -> None:
        """Lay out and append sorted `new` items that sort after every present one: O(len(new))."""
        items, ends = self.items, self.ends
        prev_day = next((it.day for it in reversed(items) if it.shown), None)
        total = ends[-1] if ends else 0
        for item in new:
            if item.shown:
                item.header = item.day != prev_day
                prev_day = item.day
                item.rows = len(wrap_text(shown_text(item.entry, self.name_of(item.entry)), text_width))
                total += item.rows + item.header
            items.append(item)
            ends.append(total)

    def reindex(self, text_width: int) -> None:
        """Recompute the day headers and the prefix sum, wrapping only unwrapped items."""
        prev_day = None
        heights: list[int] = []
        for item in self.items:
            if not item.shown:
                heights.append(0)
                continue
            item.header = item.day != prev_day
            prev_day = item.day
            if not item.rows:
                item.rows = len(wrap_text(shown_text(item.entry, self.name_of(item.entry)), text_width))
            heights.append(item.rows + item.header)
        self.ends = list(accumulate(heights))

    def set_hidden(self, kinds: frozenset[EntryKind]) -> None:
        """Hide the items of ``kinds`` (and show the others); the caller reindexes."""
        self.hidden = kinds
        for item in self.items:
            item.shown = item.entry.kind not in kinds

    def rewrap(self, text_width: int) -> None:
        """Wrap every item again (the text column changed)."""
        for item in self.items:
            item.rows = 0
        self.reindex(text_width)

    def restack(self, index: int) -> None:
        """The height of ``items[index]`` changed: recompute the prefix sum from there."""
        heights = (it.height for it in self.items[index:])
        self.ends[index:] = list(accumulate(heights, initial=self.start(index)))[1:]

    def index(self, item: Item) -> int:
        """The position of `item`, or -1 if it is gone."""
        i = bisect_left(self.items, item.sort, key=sort_key)
        return i if i < len(self.items) and self.items[i] is item else -1

    def start(self, index: int) -> int:
        """The first row of ``items[index]``."""
        return self.ends[index - 1] if index else 0

    def at(self, line: int) -> int:
        """The index of the item shown on row ``line`` (< ``line_count``)."""
        return bisect_right(self.ends, line)

    def clear(self) -> None:
        self.items.clear()
        self.ends.clear()
        self.by_key.clear()
