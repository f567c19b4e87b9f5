"""Searching the messages: what matches a query, which match is current, and how older history is
searched on the server a page at a time. Plain objects, no widgets (the log's ``Item`` and
``shown_text`` come from ``log_rows``); ``SearchFeed`` drives them.

A ``Query`` is what the user typed, made ``visible`` (so a pasted escape sequence matches what the
log shows, ``␛``, and is drawn as that in the bar), matched as a plain substring with smart case
(less's ``-i``): ignoring case unless the query holds a capital letter. It matches an entry's text
as the log draws it (``* Alice waves`` for ``/me waves``, under the sender's current name; a
message's lines one by one, never across a line break) and a message's sender name, as drawn.

``Matches`` holds the log's matching items, oldest first, and the current one; its position is
counted from the newest (``1/17`` is the newest match), so matches that older history adds keep
the numbers of those already found. The text each item is matched by is kept on the item
(``Item.search_text``, made on first use), so a query typed over 100,000 entries is one pass of
substring tests.

``OlderSearch`` is a search of the messages older than the log's oldest: the server's SQL has no
``LIKE``, so the rows are fetched in pages by ``sent`` ranges (newest first) and matched here, on
the wire rows, before anything is decoded. The table has no index on ``sent``: every query costs the
server a scan of the whole table, so there are few: the older messages' times first (one column:
the page bounds are then exact), then pages that grow (5,000 messages, then 4 times more each time,
up to 50,000); what the server finds too big for its budget (rows or bytes) is asked again smaller.
"""

from __future__ import annotations

import dataclasses
import enum
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from chat_tui.entries import ACTION_PREFIX, EntryKind, LogEntry
from chat_tui.widgets.log_rows import Item, shown_text, sort_key
from chat_tui.wrap import paragraphs
from db_core.visible import visible

__all__ = ["Direction", "History", "Matches", "OlderSearch", "Query", "drawn_text", "status_text"]


class Direction(enum.Enum):
    """Which way a step goes through the matches."""

    OLDER = "older"
    NEWER = "newer"


class History(enum.Enum):
    """How far the older history (before the log's oldest message) was searched for a query."""

    UNSEARCHED = "unsearched"
    """There is some, not searched yet: going past the oldest match loaded searches it."""
    SEARCHING = "searching"
    SEARCHED = "searched"
    """There is none, or it was searched to the first message."""
    FAILED = "failed"
    """The server could not be asked, or refused; going past the oldest match asks again."""


def status_text(query: Query, position: tuple[int, int], history: History, *, note: str = "",
                progress: tuple[int, int | None] = (0, None), error: str = "") -> str:
    """What the search bar says after the field: ``3/17`` (``+``: older history not searched), then
    what is going on (searching, ``progress`` as messages searched and how many, ``error``) and a
    ``note`` on the last step (``no more matches``)."""
    if not query.needle:
        return "Enter/↑ older · ↓ newer · Esc back · Tab stay"
    current, total = position
    more = history is not History.SEARCHED
    parts = [f"{current:,}/{total:,}{'+' if more else ''}" if total else
             ("no match loaded" if more else "no match")]
    if history is History.SEARCHING:
        searched, of = progress
        parts.append("searching older history…" + (f" {searched:,} of {of:,}" if of is not None else
                                                   f" {searched:,}" if searched else ""))
    elif history is History.FAILED:
        parts.append(f"older history: {visible(error)}")
    elif history is History.UNSEARCHED and not total:
        parts.append("Enter searches older history")
    if note:
        parts.append(note)
    return " · ".join(parts)


def drawn_text(shown: str) -> str:
    """``shown`` (``log_rows.shown_text``) as the log draws it, its lines joined by newlines: a query
    (one line) never matches across a line break."""
    lines = paragraphs(shown)
    return lines[0] if len(lines) == 1 else "\n".join(lines)


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """A search text, ``visible`` (``Query.of`` makes one from what was typed)."""

    text: str
    case_sensitive: bool = dataclasses.field(init=False, compare=False)
    """Smart case: the text holds a capital letter."""
    needle: str = dataclasses.field(init=False, compare=False)
    """What is looked for: the text, casefolded unless ``case_sensitive``."""

    def __post_init__(self) -> None:
        sensitive = any(c.isupper() for c in self.text)
        object.__setattr__(self, "case_sensitive", sensitive)
        object.__setattr__(self, "needle", self.text if sensitive else self.text.casefold())

    @classmethod
    def of(cls, typed: str) -> Query:
        return cls(visible(typed))

    def finds_in(self, drawn: str) -> bool:
        """Whether the query is in ``drawn``."""
        return bool(self.needle) and self.needle in (drawn if self.case_sensitive else drawn.casefold())

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the query is in ``text``: (start, end) character offsets, left to right, not
        overlapping. Casefolding can lengthen a character (ß is ss): offsets are in ``text``."""
        needle = self.needle
        if not needle:
            return []
        hay = text if self.case_sensitive else text.casefold()
        starts: list[int] | None = None   # starts[i]: where character i begins in hay, if they differ
        if len(hay) != len(text):
            starts, at = [], 0
            for char in text:
                starts.append(at)
                at += len(char.casefold())
        out: list[tuple[int, int]] = []
        found = hay.find(needle)
        while found >= 0:
            end = found + len(needle)
            if starts is None:
                out.append((found, end))
            else:
                out.append((bisect_right(starts, found) - 1, bisect_left(starts, end)))
            found = hay.find(needle, end)
        return out


SEPARATOR = "\0"
"""Between an item's text as drawn and casefolded in ``Item.search_text``: never in a visible text."""


def _text(item: Item, name: str) -> str:
    """``item.search_text`` (made now if missing or stale: a replaced entry, an action's new name):
    the text as drawn, ``SEPARATOR``, casefolded. One string, not a tuple: made for a whole log at
    once, tuples would set off the garbage collector's full passes."""
    entry = item.entry
    text = entry.text
    if entry.kind is EntryKind.MESSAGE and not entry.action and text.isascii() and text.isprintable():
        drawn = text   # the common case: drawn as it is (no line breaks, tabs or controls)
    else:
        drawn = drawn_text(shown_text(entry, name))
    item.search_for = (entry, name) if entry.action else entry
    item.search_text = made = f"{drawn}{SEPARATOR}{drawn.casefold()}"
    return made


class Matches:
    """The log's items matching ``query`` (shown ones only), oldest first, and the ``current`` one."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self.items: list[Item] = []
        self.current: Item | None = None

    def recount(self, items: Iterable[Item], name_of: Callable[[LogEntry], str]) -> None:
        """Match ``items`` (the log's, in order) again; ``name_of`` gives an entry's sender name as
        drawn under it. The current match stays if it still matches, else the nearest older one is."""
        query = self.query
        needle, sensitive = query.needle, query.case_sensitive
        found: list[Item] = []
        if needle:
            by_sender: dict[bytes, bool] = {}   # whether a sender's name matches
            message = EntryKind.MESSAGE
            for item in items:
                if not item.shown:
                    continue
                entry = item.entry
                if entry.kind is message and entry.action:   # "* Alice waves": the name is in the text
                    name = name_of(entry)
                    text = item.search_text if item.search_for == (entry, name) else _text(item, name)
                else:
                    text = item.search_text if item.search_for is entry else _text(item, "")
                # A casefolded needle in the text as drawn is in its casefolded copy too (casefolding
                # goes character by character); one with a capital is looked for as drawn only.
                if text.find(needle, 0, text.index(SEPARATOR)) >= 0 if sensitive else needle in text:
                    found.append(item)
                elif entry.kind is message and not entry.action:
                    named = by_sender.get(entry.sender) if entry.sender else None
                    if named is None:
                        named = query.finds_in(visible(name_of(entry)))
                        if entry.sender:
                            by_sender[entry.sender] = named
                    if named:
                        found.append(item)
        current = self.current
        self.items = found
        if current is not None and self._index(current) < 0:
            self.current = None
            self.start_at(current.sort)

    def _index(self, item: Item) -> int:
        i = bisect_left(self.items, item.sort, key=sort_key)
        return i if i < len(self.items) and self.items[i] is item else -1

    def start_at(self, sort: tuple[int, int] | None) -> None:
        """Make current the newest match at or before ``sort`` (None: the end), else the oldest one
        after it; None if nothing matches."""
        items = self.items
        if sort is None:
            self.current = items[-1] if items else None
            return
        i = bisect_right(items, sort, key=sort_key)
        self.current = items[i - 1] if i else (items[0] if items else None)

    def step(self, direction: Direction) -> bool:
        """Move to the next match ``direction``; False (and nothing moves) if there is none loaded."""
        if self.current is None:
            if not self.items:
                return False
            self.start_at(None)
            return True
        i = self._index(self.current) + (-1 if direction is Direction.OLDER else 1)
        if not 0 <= i < len(self.items):
            return False
        self.current = self.items[i]
        return True

    @property
    def position(self) -> tuple[int, int]:
        """(the current match's number counted from the newest, 0 if none; how many match)."""
        total = len(self.items)
        if self.current is None:
            return 0, total
        return total - self._index(self.current), total


_PLAIN = bytes(range(0x20, 0x7F)) + b"\n"   # ASCII drawn as it is (with the newlines joining texts)
_NEW_ACTION = "\n" + ACTION_PREFIX         # an action after the first text joined


class OlderSearch:
    """A search of the messages sent before ``before`` (µs), newest first, a page at a time.
    ``names``: the senders' current display names by identity (``ChatState.names``), matched as the
    log draws them; ``spacing``: the µs between messages lately (a guess, used only if the server
    will not send every older message's time at once).

    The connection asks for the times first (``times_wanted``, answered with ``got_times``: a column
    of ints, cheap next to the rows), so every page holds exactly as many messages as meant, however
    unevenly they were sent (a quiet night, a burst); then for each ``page`` (reported with
    ``passed``). A range the server finds too big for its budget is asked again smaller
    (``fewer_times``, ``smaller_page``)."""

    FIRST_PAGE = 5_000
    GROWTH = 4
    MAX_PAGE = 50_000
    DAY = 86_400_000_000

    def __init__(self, query: Query, names: Mapping[bytes, str], before: int, spacing: float | None = None) -> None:
        self.query, self.names, self.before = query, names, before
        self.total: int | None = None
        """How many messages are older than ``before``, once known (the times reached the first one)."""
        self.searched = 0
        """How many of them were fetched and matched."""
        self.hi = before             # every message from here on was searched
        self._times: list[int] = []  # the times in [_floor, hi) not searched yet, newest first
        self._floor: int | None = 0  # where the times in hand start (None: at the first message)
        self._have_times = False     # _times holds every time in [_floor, hi)
        self._width: int | None = None   # how far back times are asked for (None: all of them)
        self._spacing = spacing
        self._page = self.FIRST_PAGE
        self._last = False           # the page from the first message was fetched

    @property
    def done(self) -> bool:
        """Every older message was searched."""
        return self._last

    def times_wanted(self) -> tuple[int | None, int] | None:
        """The ``[lo, hi)`` of ``sent`` to fetch the times of (lo None: down to the first message),
        or None if those in hand make the next page."""
        if self._have_times and (self._times or self._floor is None):
            return None
        if self._width is None:
            return None, self.hi
        lo = self.hi - self._width
        return (lo if lo > 0 else None), self.hi

    def fewer_times(self) -> bool:
        """The server would not send that many times: ask for a quarter as far back (False if it
        cannot be narrower)."""
        if self._width is None:
            self._width = max(1, round(self._spacing * self.MAX_PAGE)) if self._spacing else self.DAY
        elif self._width > 1:
            self._width = max(1, self._width // 4)
        else:
            return False
        return True

    def got_times(self, lo: int | None, times: Iterable[int]) -> None:
        """The times of the messages in ``[lo, hi)``. None there: the search moves past that stretch
        (and asks further back next time)."""
        self._times = sorted(times, reverse=True)
        self._floor, self._have_times = lo, True
        if lo is None:
            self.total = self.searched + len(self._times)
            self._last = not self._times
        elif not self._times:
            self.hi = lo
            assert self._width is not None
            self._width *= 16
        elif len(self._times) < self.MAX_PAGE:
            assert self._width is not None
            self._width *= 4   # sparse here: ask further back next time

    def page(self) -> tuple[int | None, int]:
        """The ``[lo, hi)`` of the next page (lo None: down to the first message); call
        ``times_wanted`` first."""
        times = self._times
        if len(times) <= self._page:
            return self._floor, self.hi
        return times[self._page - 1], self.hi

    def smaller_page(self) -> bool:
        """The server would not send that page (too many bytes): half as many messages (False if it
        was one)."""
        if self._page <= 1:
            return False
        self._page = max(1, min(self._page, len(self._times)) // 2)
        return True

    def passed(self, lo: int | None, count: int) -> None:
        """The page ``[lo, hi)`` was fetched (``count`` messages) and matched: the next is older and
        bigger."""
        self.searched += count
        if lo is None:
            self._last = True
            return
        self._times = [t for t in self._times if t < lo] if self._times and self._times[-1] < lo else []
        self.hi = lo
        self._page = min(self.MAX_PAGE, self._page * self.GROWTH)

    def matches(self, rows: Sequence[Sequence[Any]], sender_at: int, text_at: int) -> bool:
        """Whether a wire row of ``message`` (``sender``, ``text`` at these positions) matches, as its
        log entry would (``Matches.recount``). The texts are joined by newlines (which a query never
        holds) and searched at once: a page of 50,000 is a few passes in C, not 50,000 in Python."""
        query, names = self.query, self.names
        blob = "\n".join([row[text_at] for row in rows])
        if (not blob.isascii() or blob.encode("ascii").translate(None, _PLAIN) or blob.startswith(ACTION_PREFIX)
                or _NEW_ACTION in blob):
            # Some text is not drawn as it is (a tab, a control or non-ASCII character, an action).
            blob = "\n".join([self._drawn(row[sender_at], row[text_at]) for row in rows])
        if query.finds_in(blob):
            return True
        # A message matches by its sender's name too (an action's name is in its text already).
        named = {sender for sender, name in names.items() if query.finds_in(visible(name))}
        return bool(named) and any(row[sender_at] in named for row in rows)

    def _drawn(self, sender: bytes, text: str) -> str:
        if text.startswith(ACTION_PREFIX) and text[len(ACTION_PREFIX):].strip():
            # As log_rows.shown_text draws an action: the name is in the text.
            return drawn_text(f"* {visible(self.names.get(bytes(sender), ''))} {text[len(ACTION_PREFIX):]}")
        return text if text.isascii() and text.isprintable() else drawn_text(text)
