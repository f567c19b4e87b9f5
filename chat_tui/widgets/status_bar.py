"""The bottom line: connection state (always visible), what is queued, and the key hints.

Its text can carry what a server said (a refusal, a close reason): it is drawn ``visible``."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from chat_tui.connection import ConnState
from db_core.visible import visible

MARKS = {ConnState.ONLINE: "●", ConnState.CONNECTING: "◌", ConnState.STARTING: "◌", ConnState.OFFLINE: "○",
         ConnState.FAILED: "✗"}


class StatusBar(Widget):
    """Attributes down: ``state`` (a ``ConnState``), ``text``,
    ``queued`` (calls waiting for the connection) and ``online`` (users online)."""

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
    """

    COMPONENT_CLASSES = {"status-bar--mark", "status-bar--hint"}

    state: reactive[ConnState] = reactive(ConnState.CONNECTING)
    text: reactive[str] = reactive("")
    queued: reactive[int] = reactive(0)
    online: reactive[int | None] = reactive(None)

    def watch_state(self, old: ConnState, new: ConnState) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")

    def render(self) -> Text:
        mark_style = self.get_component_rich_style("status-bar--mark", partial=True)
        hint_style = self.get_component_rich_style("status-bar--hint", partial=True)
        line = Text(" ")
        line.append(MARKS.get(self.state, "?"), style=mark_style)
        line.append(" " + visible(self.text))
        if self.queued:
            line.append(f" · {self.queued} waiting to send", style="bold")
        if self.online is not None:
            line.append(f" · {self.online} online")
        hint = Text("/help · ctrl+q quit ", style=hint_style)
        pad = self.size.width - line.cell_len - hint.cell_len
        if pad >= 1:
            line.append(" " * pad)
            line.append_text(hint)
        else:
            line.truncate(self.size.width, overflow="ellipsis")
        return line
