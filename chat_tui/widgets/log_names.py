"""The names in ``MessageLog``: each message is drawn under its sender's current name and colour,
looked up by identity when its rows are rendered, and the name column is as wide as the widest
of them, capped. No widget here.

A message names its sender by identity (``LogEntry.sender``); ``Senders.names`` holds everyone's
current name, so a rename redraws what the user wrote before it, in every client alike (the
rename lines in the log tell the history). An entry whose sender is unknown (an unsent message
before the welcome, a test's entry) is drawn under its own ``name``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.cells import cell_len
from rich.style import Style

from chat_tui.entries import LogEntry, nick_colour
from db_core.visible import visible

__all__ = ["Senders"]


class Senders:
    """Who wrote the log's messages, their current names, colours, and the name column's width."""

    __slots__ = ("names", "column", "least", "most", "_seen", "_nicks")

    def __init__(self, least: int, most: int) -> None:
        self.least, self.most = least, most
        self.names: dict[bytes, str] = {}
        """Current display names by identity, not yet visible."""
        self.column = least
        """The name column: the widest name drawn (``least`` <= it <= ``most``). It only grows,
        so the text column stays put while people come and go."""
        self._seen: set[bytes] = set()  # every sender of a message added
        self._nicks: dict[tuple[bytes, bool], Style] = {}

    def name(self, entry: LogEntry) -> str:
        """The name a message is drawn under: its sender's current name, else the entry's own."""
        return self.names.get(entry.sender, "") or entry.name

    def nick(self, entry: LogEntry, dark: bool) -> Style:
        """The sender's colour (by identity; by name for an entry without one), bold."""
        who = entry.sender or entry.name.encode()
        style = self._nicks.get((who, dark))
        if style is None:
            style = self._nicks[who, dark] = Style(color=nick_colour(who, dark=dark), bold=True)
        return style

    def width(self, names: Iterable[str]) -> int:
        """The column that fits ``names`` too (not yet visible), capped at ``most``."""
        widest = max((cell_len(visible(name)) for name in names), default=0)
        return max(self.column, min(widest, self.most))

    def added(self, messages: Iterable[LogEntry]) -> int:
        """Note the senders of ``messages``; returns the column that fits them (the caller sets it)."""
        messages = list(messages)
        self._seen.update(e.sender for e in messages if e.sender)
        return self.width({self.name(e) for e in messages})

    def fits(self, entry: LogEntry) -> bool:
        """Whether the entry's name fits the column as it is."""
        return min(cell_len(visible(self.name(entry))), self.most) <= self.column

    def update(self, names: Mapping[bytes, str]) -> int | None:
        """New current names: the column that fits them (the caller sets it and redraws), or None
        if no sender in the log changed name."""
        if names == self.names:
            return None
        old, self.names = self.names, dict(names)
        changed = [sender for sender in self._seen if names.get(sender) != old.get(sender)]
        if not changed:
            return None
        return self.width(names[s] for s in changed if s in names)

    def clear(self) -> None:
        """The log was emptied: the column starts narrow again (the names stay known)."""
        self._seen.clear()
        self.column = self.least
