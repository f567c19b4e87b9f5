"""Where the reader stopped reading, how much came since, and when a mention should reach them
(weechat's read marker, hotlist count and highlight notification). A plain object, no Textual, no
clock but the one it is given: ``UnreadFeed`` (in ``feeds``) feeds it and shows what it says.

The reader is *away* while the terminal has lost focus or the log is scrolled up from its end,
and *present* otherwise. Only live messages from others count (``arrived``): not your own, not
presence lines, not history pages.

- The unread line (``marker``, the key of the entry it is drawn above) goes above the first
  message that arrives while you are away. Coming back leaves it where it is, so you can find
  your place. Leaving again moves it, but only once something new arrives (until then the old
  line stays, even while you scroll around it), and only if you have seen it (``viewed``: it was
  on screen while the terminal had focus): an unread line you never scrolled back to stays.
  Sending a message clears it (weechat clears it when you reply).
- ``count`` and ``mentions`` are the messages (and the mentions of you among them) that arrived
  since you left; both are 0 again as soon as you are present.
- A mention notifies (``arrived`` returns an ``Alert``) only while the terminal is unfocused, or
  while it has never reported focus at all (a terminal or tmux without focus reporting: then, as
  before, every mention rings), at most once per ``NOTIFY_EVERY``, and never with ``NotifyMode.OFF``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Callable, Hashable, Iterable

from chat_tui.entries import ACTION_PREFIX, EntryKind, LogEntry

NOTIFY_EVERY = 5.0
"""Seconds: a flood of mentions notifies once, then at most once per this long."""


class NotifyMode(enum.StrEnum):
    """How a mention reaches you while the terminal is in the background (``--notify``)."""

    BELL = "bell"
    """The terminal bell (most terminals also mark the window or tab urgent)."""
    DESKTOP = "desktop"
    """A desktop notification with the sender and the text (OSC 777, OSC 9 in iTerm2)."""
    OFF = "off"
    """Nothing."""


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """A mention to notify about: who wrote it and what, as written (not yet visible)."""

    sender: str
    text: str


class Unread:
    """The read position and the counts of one reader; see the module docstring for the rules."""

    def __init__(self, notify: NotifyMode = NotifyMode.BELL, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.notify = notify
        self.focused = True
        """The terminal has focus (Textual's ``app_focus``: True until the terminal says otherwise)."""
        self.focus_reported = False
        """The terminal has reported a focus change at least once (so ``focused`` means something)."""
        self.at_end = True
        """The log's view is at its end."""
        self.marker: Hashable | None = None
        """The key of the entry the unread line is drawn above, or None."""
        self.count = 0
        self.mentions = 0
        self._clock = clock
        self._seen = True        # the unread line has been on screen while focused (or there is none)
        self._restart = True     # the next unread message starts a new unread line
        self._alerted = -math.inf

    @property
    def away(self) -> bool:
        return not (self.focused and self.at_end)

    def focus(self, focused: bool, *, line_in_view: bool) -> None:
        """The terminal gained or lost focus; ``line_in_view``: the unread line is on screen now
        (or there is none to find)."""
        was = self.away
        self.focused = focused
        if focused and line_in_view:
            self._seen = True
        self._moved(was)

    def scrolled(self, at_end: bool) -> None:
        """The log's view reached its end (True) or left it."""
        was = self.away
        self.at_end = at_end
        self._moved(was)

    def viewed(self) -> None:
        """The unread line came on screen: seen, if the terminal has focus."""
        if self.focused:
            self._seen = True

    def sent(self) -> None:
        """You sent a message: the unread line goes."""
        self.marker = None
        self._seen = self._restart = True

    def arrived(self, entries: Iterable[LogEntry], me: bytes) -> Alert | None:
        """Live entries arrived (``me``: your identity); the mention to notify about now, if any."""
        others = [e for e in entries if e.kind is EntryKind.MESSAGE and e.sender != me]
        if not others:
            return None
        if self.away:
            if self._restart or self.marker is None:
                self.marker = min(others, key=lambda e: e.time).key
                self._seen = self._restart = False
            self.count += len(others)
            self.mentions += sum(e.highlight for e in others)
        mention = next((e for e in others if e.highlight), None)
        if mention is None or self.notify is NotifyMode.OFF or (self.focused and self.focus_reported):
            return None
        now = self._clock()
        if now - self._alerted < NOTIFY_EVERY:
            return None
        self._alerted = now
        text = mention.text
        if mention.action:   # as the log shows it: "* Alice waves at bob"
            text = f"* {mention.name} {text[len(ACTION_PREFIX):]}"
        return Alert(mention.name, text)

    def title(self, title: str) -> str:
        """``title`` with the count first while there is one: ``(3) title``, ``(3, @1) title``."""
        if not self.count:
            return title
        return f"({self.count}{f', @{self.mentions}' if self.mentions else ''}) {title}"

    def _moved(self, was_away: bool) -> None:
        if self.away and not was_away:
            # Leaving: a line you have seen moves with the next unread message; one you have not stays.
            self._restart = self._seen
        elif was_away and not self.away:
            self.count = self.mentions = 0
