"""The bottom line: connection state (always visible), what is unsent, what you have not read,
who is online, the key hints.

Short words first, in this order, so that they survive any width (80 columns hold them all)::

    ○ Offline · retry in 3 s · 2 unsent · 3 online (last known)          /help · ctrl+q quit
    ● Connected to 127.0.0.1:3000 · 3 unread, 1 mention · 3 online       /help · ctrl+q quit

The countdown runs to the next attempt; while not online the count is the last one known. The
unread messages are those that arrived while you were away (``chat_tui.unread``).
The details (why it is offline, a refusal) follow only if they fit whole; they are always in
the tooltip, and the app writes them to the log. What a server said is drawn ``visible``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget

from chat_tui.connection import ConnState
from db_core.visible import visible

MARKS = {ConnState.ONLINE: "●", ConnState.CONNECTING: "◌", ConnState.STARTING: "◌", ConnState.OFFLINE: "○",
         ConnState.FAILED: "✗"}
WORDS = {ConnState.ONLINE: "Connected", ConnState.CONNECTING: "Connecting…", ConnState.STARTING: "Starting server…",
         ConnState.OFFLINE: "Offline", ConnState.FAILED: "Stopped"}
"""The state in a word; the first three say it with ``text`` instead when it is short (LABEL_MAX)."""
LABEL_MAX = 40
HINT = "/help · ctrl+q quit "


class StatusBar(Widget):
    """Attributes down: ``state`` (a ``ConnState``), ``text`` (the state in a sentence),
    ``reason`` (why it is offline), ``retry_in`` (seconds to the next attempt, counted down from
    when it is set), ``queued`` (messages and calls waiting for the connection), ``unread`` and
    ``mentions`` (messages not read yet, and those among them that mention you) and ``online``
    (users online, the last count known)."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
    }
    StatusBar.-online .status-bar--mark { color: $success; }
    StatusBar.-offline, StatusBar.-failed { background: $error 30%; }
    StatusBar .status-bar--mark { color: $warning; }
    StatusBar.-failed .status-bar--mark { color: $error; }
    StatusBar .status-bar--hint { color: $text-muted; }
    StatusBar .status-bar--detail { color: $text-muted; }
    StatusBar .status-bar--unread { color: $text-accent; text-style: bold; }
    StatusBar .status-bar--mentioned { color: $text-warning; text-style: bold; }
    """

    COMPONENT_CLASSES = {"status-bar--mark", "status-bar--hint", "status-bar--detail", "status-bar--unread",
                         "status-bar--mentioned"}

    clock: ClassVar[Callable[[], float]] = time.monotonic
    """What the countdown counts with (a test freezes it)."""

    state: reactive[ConnState] = reactive(ConnState.CONNECTING)
    text: reactive[str] = reactive("")
    reason: reactive[str] = reactive("")
    retry_in: reactive[float | None] = reactive(None, always_update=True)
    queued: reactive[int] = reactive(0)
    unread: reactive[int] = reactive(0)
    mentions: reactive[int] = reactive(0)
    online: reactive[int | None] = reactive(None)

    _retry_at: float | None = None
    _ticker: Timer | None = None

    def on_mount(self) -> None:
        self._ticker = self.set_interval(1.0, self.refresh, pause=self._retry_at is None)

    def watch_state(self, old: ConnState, new: ConnState) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")

    def watch_text(self, text: str) -> None:
        self.tooltip = visible(text) or None

    def watch_retry_in(self, retry_in: float | None) -> None:
        self._retry_at = None if retry_in is None else type(self).clock() + retry_in
        if self._ticker is not None:
            if retry_in is None:
                self._ticker.pause()
            else:
                self._ticker.resume()

    def words(self) -> list[str]:
        """The short words, most important first: state, countdown, unsent, unread, online."""
        return [word for word, _ in self._items()]

    def _items(self) -> list[tuple[str, str]]:
        """``words`` with the style of each: "bold", a component class, or ""."""
        text = visible(self.text)
        short = self.state in (ConnState.ONLINE, ConnState.CONNECTING, ConnState.STARTING)
        items = [(text if short and text and cell_len(text) <= LABEL_MAX else WORDS[self.state], "")]
        if self.state is ConnState.OFFLINE and self._retry_at is not None:
            left = math.ceil(self._retry_at - type(self).clock())
            items.append((f"retry in {left} s" if left > 0 else "retrying…", ""))
        if self.queued:
            items.append((f"{self.queued} unsent", "bold"))
        if self.unread:
            mentions = f", {self.mentions} mention{'s' if self.mentions != 1 else ''}" if self.mentions else ""
            items.append((f"{self.unread} unread{mentions}",
                          "status-bar--mentioned" if self.mentions else "status-bar--unread"))
        if self.online is not None:
            items.append((f"{self.online} online" + ("" if self.state is ConnState.ONLINE else " (last known)"), ""))
        return items

    def render(self) -> Text:
        mark_style = self.get_component_rich_style("status-bar--mark", partial=True)
        line = Text(" ")
        line.append(MARKS.get(self.state, "?"), style=mark_style)
        for number, (word, style) in enumerate(self._items()):
            separator = " " if number == 0 else " · "
            if style in self.COMPONENT_CLASSES:
                line.append(separator)
                line.append(word, style=self.get_component_rich_style(style, partial=True))
            else:
                line.append(separator + word, style=style)
        width = self.size.width
        hint = Text(HINT, style=self.get_component_rich_style("status-bar--hint", partial=True))
        detail = "" if self.state in (ConnState.ONLINE, ConnState.CONNECTING) else \
            visible(self.reason if self.state is ConnState.OFFLINE else self.text)
        if detail and detail not in line.plain and line.cell_len + 3 + cell_len(detail) + 1 + hint.cell_len <= width:
            line.append(" · " + detail, style=self.get_component_rich_style("status-bar--detail", partial=True))
        pad = width - line.cell_len - hint.cell_len
        if pad >= 1:
            line.append(" " * pad)
            line.append_text(hint)
        else:
            line.truncate(width, overflow="ellipsis")
        return line
